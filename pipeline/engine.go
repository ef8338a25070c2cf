package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/revelations-studio/deploybot/internal/retry"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// Step is one unit of a run. Steps whose Needs are done run at once, in
// parallel with any other ready step (all workers of a preview build and
// upload together). A step must be idempotent: a rescued run repeats the
// steps it had done, and they must converge rather than duplicate.
type Step struct {
	Name  string
	Needs []string
	Do    func(ctx context.Context, log *Log) error
	// Optional steps only report: when one fails, it shows as failed (and
	// skips the steps that need it) but does not fail the run.
	Optional bool
}

// Step statuses, as stored in run_steps.
const (
	StepPending   = "pending"
	StepRunning   = "running"
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
	StepSkipped   = "skipped"
	StepCancelled = "cancelled"
)

// StepState is what is known of a step during and after a run.
type StepState struct {
	Name     string
	Status   string
	Started  time.Time
	Finished time.Time
	Log      string // the tail of its output
	Err      string
	Optional bool // its failure does not fail the run (Step.Optional)
}

// Duration is how long the step ran (0 if it has not finished).
func (s StepState) Duration() time.Duration {
	if s.Started.IsZero() || s.Finished.IsZero() {
		return 0
	}
	return s.Finished.Sub(s.Started)
}

// maxLogTail bounds what is kept of a step's output: enough for a check
// run's per-step excerpt, small enough to store for every step.
const maxLogTail = 8 << 10

// Log collects a step's output: its tail, for the check run, and, in a
// run that keeps it, all of it for the run's page (runLog).
type Log struct {
	mu  sync.Mutex
	buf []byte
	// run and full keep the whole output; nil for none.
	run  *runLog
	full *stepLog
}

// Write keeps the last maxLogTail bytes written, and passes everything to
// the run's full log.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - maxLogTail; over > 0 {
		l.buf = slices.Clone(l.buf[over:])
	}
	l.mu.Unlock()
	if l.run != nil {
		l.run.write(l.full, p)
	}
	return len(p), nil
}

// Printf writes a line.
func (l *Log) Printf(format string, args ...any) {
	fmt.Fprintf(l, format+"\n", args...)
}

// String is the kept tail.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// stepRecorder records a run's steps and their whole output as they go
// (state.Steps in the bot; the engine's tests keep them in memory).
type stepRecorder interface {
	Plan(ctx context.Context, run int64, names []string) error
	Update(ctx context.Context, run int64, s state.Step) error
	logStore
}

// execute runs steps as a dependency graph, records each step's status,
// timings and log tail with rec, and calls onChange (serially) whenever
// a step starts or ends so the PR can show live progress. A failed step
// skips the steps that need it; independent steps still run. It returns the
// final states and the first failure.
func execute(ctx context.Context, rec stepRecorder, runID int64, steps []Step, onChange func([]StepState)) ([]StepState, error) {
	g, err := newGraphRun(ctx, rec, runID, steps)
	if err != nil {
		return nil, err
	}
	if err := rec.Plan(ctx, runID, stepNames(steps)); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	// Stored before execute returns, so before the run's end is recorded:
	// a page told the run ended has all of its log.
	g.logs = newRunLog(ctx, rec, runID, defaultLogLimits)
	defer g.logs.Close()
	notify := func() {
		if onChange != nil {
			onChange(g.snapshot())
		}
	}
	for {
		if g.advance() {
			notify()
		}
		if g.running == 0 {
			break
		}
		<-g.done
		g.running--
		notify()
	}
	g.wg.Wait()
	if g.firstErr == nil && ctx.Err() != nil {
		g.firstErr = ctx.Err()
	}
	return g.snapshot(), g.firstErr
}

// graphRun is one execution of a step graph.
type graphRun struct {
	ctx   context.Context
	rec   stepRecorder
	runID int64
	steps []Step
	index map[string]int // step name → position

	mu       sync.Mutex // guards states and firstErr
	states   []StepState
	firstErr error

	logs *runLog // every step's whole output

	wg      sync.WaitGroup
	done    chan int // a finished step's position
	running int      // steps started and not yet received on done
}

// newGraphRun checks that step names are unique and every need names a
// step.
func newGraphRun(ctx context.Context, rec stepRecorder, runID int64, steps []Step) (*graphRun, error) {
	g := &graphRun{ctx: ctx, rec: rec, runID: runID, steps: steps, index: map[string]int{},
		states: make([]StepState, len(steps)), done: make(chan int, len(steps))}
	for i, s := range steps {
		if _, dup := g.index[s.Name]; dup {
			return nil, fmt.Errorf("pipeline: two steps named %q", s.Name)
		}
		g.index[s.Name] = i
		g.states[i] = StepState{Name: s.Name, Status: StepPending, Optional: s.Optional}
	}
	for _, s := range steps {
		for _, n := range s.Needs {
			if _, ok := g.index[n]; !ok {
				return nil, fmt.Errorf("pipeline: step %q needs unknown step %q", s.Name, n)
			}
		}
	}
	return g, nil
}

func (g *graphRun) snapshot() []StepState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.states)
}

// persist records a step's state; the recorder outlives the run's
// cancellation, as a cancelled step must still be recorded as such. A
// failure to record does not stop the run: the check run and the comment
// still say what happened.
func (g *graphRun) persist(st StepState) {
	_ = g.rec.Update(g.ctx, g.runID, state.Step{Name: st.Name, Status: st.Status, Started: st.Started, Finished: st.Finished, Log: st.Log, Err: st.Err})
}

// advance settles every pending step that can be settled: cancelled when
// the run is, skipped when a need did not succeed, started when all needs
// did. It reports whether anything changed. The caller is the only one to
// call it, between steps' ends.
func (g *graphRun) advance() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := false
	for i := range g.steps {
		st := &g.states[i]
		if st.Status != StepPending {
			continue
		}
		switch {
		case g.ctx.Err() != nil:
			st.Status = StepCancelled
		case g.blocked(i):
			st.Status = StepSkipped
		case g.ready(i):
			st.Status, st.Started = StepRunning, time.Now()
			g.running++
			g.wg.Add(1)
			go g.run(i)
		default:
			continue
		}
		g.persist(*st)
		changed = true
	}
	return changed
}

// run runs step i and records how it ended.
func (g *graphRun) run(i int) {
	defer g.wg.Done()
	name := g.steps[i].Name
	log := &Log{run: g.logs, full: g.logs.step(name)}
	err := runStep(g.ctx, g.steps[i], log)
	g.logs.endStep(name)
	g.mu.Lock()
	st := &g.states[i]
	st.Finished = time.Now()
	st.Log = log.String()
	switch {
	case err == nil:
		st.Status = StepSucceeded
	case g.ctx.Err() != nil:
		st.Status, st.Err = StepCancelled, "cancelled"
	default:
		st.Status, st.Err = StepFailed, err.Error()
		if g.firstErr == nil && !g.steps[i].Optional {
			g.firstErr = fmt.Errorf("step %s: %w", st.Name, err)
		}
	}
	g.persist(*st)
	g.mu.Unlock()
	g.done <- i
}

// ready reports whether every need of step i succeeded. g.mu is held.
func (g *graphRun) ready(i int) bool {
	for _, n := range g.steps[i].Needs {
		if g.states[g.index[n]].Status != StepSucceeded {
			return false
		}
	}
	return true
}

// blocked reports whether a need of step i will never succeed. g.mu is held.
func (g *graphRun) blocked(i int) bool {
	for _, n := range g.steps[i].Needs {
		switch g.states[g.index[n]].Status {
		case StepFailed, StepSkipped, StepCancelled:
			return true
		}
	}
	return false
}

// stepAttempts is how often a step is tried when it fails transiently (a
// service said "not now" after the client's own retries, or a connection
// dropped): a preview should not fail because GitHub answered 502 for a
// second. Steps are idempotent, so another attempt converges.
const stepAttempts = 3

// stepRetryBase is the wait before the second attempt; it doubles after.
const stepRetryBase = time.Second

// runStep runs one step, trying it again after transient failures, and turns
// a panic into a failure of that step rather than of the whole bot.
func runStep(ctx context.Context, s Step, log *Log) error {
	policy := retry.Policy{Base: stepRetryBase}
	for attempt := 1; ; attempt++ {
		err := tryStep(ctx, s, log)
		if err == nil {
			return nil
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt >= stepAttempts || !retry.Transient(err) || ctx.Err() != nil {
			return err
		}
		// Half the ceiling at least: full jitter could retry at once.
		wait := stepRetryBase<<(attempt-1)/2 + policy.Backoff(attempt)/2
		log.Printf("%v\n→ a transient failure: trying the step again in %s (attempt %d of %d)", err, wait.Round(time.Millisecond), attempt+1, stepAttempts)
		if err := retry.Sleep(ctx, wait); err != nil {
			return ctx.Err()
		}
	}
}

func tryStep(ctx context.Context, s Step, log *Log) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return s.Do(ctx, log)
}

func stepNames(steps []Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name
	}
	return out
}
