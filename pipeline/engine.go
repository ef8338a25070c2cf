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

// Log collects the tail of a step's output.
type Log struct {
	mu  sync.Mutex
	buf []byte
}

// Write keeps the last maxLogTail bytes written.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - maxLogTail; over > 0 {
		l.buf = slices.Clone(l.buf[over:])
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

// stepRecorder records a run's steps as they go (state.Steps in the bot;
// the engine's tests keep them in memory).
type stepRecorder interface {
	Plan(ctx context.Context, run int64, names []string) error
	Update(ctx context.Context, run int64, s state.Step) error
}

// execute runs steps as a dependency graph, records each step's status,
// timings and log tail with rec, and calls onChange (serially) whenever
// a step starts or ends so the PR can show live progress. A failed step
// skips the steps that need it; independent steps still run. It returns the
// final states and the first failure.
func execute(ctx context.Context, rec stepRecorder, runID int64, steps []Step, onChange func([]StepState)) ([]StepState, error) {
	index := map[string]int{}
	for i, s := range steps {
		if _, dup := index[s.Name]; dup {
			return nil, fmt.Errorf("pipeline: two steps named %q", s.Name)
		}
		index[s.Name] = i
	}
	for _, s := range steps {
		for _, n := range s.Needs {
			if _, ok := index[n]; !ok {
				return nil, fmt.Errorf("pipeline: step %q needs unknown step %q", s.Name, n)
			}
		}
	}

	states := make([]StepState, len(steps))
	for i, s := range steps {
		states[i] = StepState{Name: s.Name, Status: StepPending, Optional: s.Optional}
	}
	if err := rec.Plan(ctx, runID, stepNames(steps)); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}

	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
		done     = make(chan int, len(steps))
	)
	snapshot := func() []StepState {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(states)
	}
	// persist records a step's state; the recorder outlives the run's
	// cancellation, as a cancelled step must still be recorded as such. A
	// failure to record does not stop the run: the check run and the
	// comment still say what happened.
	persist := func(st StepState) {
		_ = rec.Update(ctx, runID, state.Step{Name: st.Name, Status: st.Status, Started: st.Started, Finished: st.Finished, Log: st.Log, Err: st.Err})
	}
	notify := func() {
		if onChange != nil {
			onChange(snapshot())
		}
	}

	ready := func(i int) bool {
		for _, n := range steps[i].Needs {
			if states[index[n]].Status != StepSucceeded {
				return false
			}
		}
		return true
	}
	blocked := func(i int) bool {
		for _, n := range steps[i].Needs {
			switch states[index[n]].Status {
			case StepFailed, StepSkipped, StepCancelled:
				return true
			}
		}
		return false
	}

	running := 0
	for {
		mu.Lock()
		changed := false
		for i := range steps {
			if states[i].Status != StepPending {
				continue
			}
			switch {
			case ctx.Err() != nil:
				states[i].Status = StepCancelled
				persist(states[i])
				changed = true
			case blocked(i):
				states[i].Status = StepSkipped
				persist(states[i])
				changed = true
			case ready(i):
				states[i].Status = StepRunning
				states[i].Started = time.Now()
				persist(states[i])
				changed = true
				running++
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					log := &Log{}
					err := runStep(ctx, steps[i], log)
					mu.Lock()
					st := &states[i]
					st.Finished = time.Now()
					st.Log = log.String()
					switch {
					case err == nil:
						st.Status = StepSucceeded
					case ctx.Err() != nil:
						st.Status = StepCancelled
						st.Err = "cancelled"
					default:
						st.Status = StepFailed
						st.Err = err.Error()
						if firstErr == nil && !steps[i].Optional {
							firstErr = fmt.Errorf("step %s: %w", st.Name, err)
						}
					}
					persist(*st)
					mu.Unlock()
					done <- i
				}(i)
			}
		}
		mu.Unlock()
		if changed {
			notify()
		}
		if running == 0 {
			break
		}
		<-done
		running--
		notify()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return snapshot(), firstErr
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
