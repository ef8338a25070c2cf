package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// memSteps records steps in memory: the engine's tests need no database
// (state.Steps is tested against PostgreSQL in package state).
type memSteps struct {
	mu      sync.Mutex
	planned map[int64][]string
	steps   map[string]state.Step
	chunks  []state.LogChunk
	lastID  int64
}

func newMemSteps() *memSteps {
	return &memSteps{planned: map[int64][]string{}, steps: map[string]state.Step{}}
}

func (m *memSteps) Plan(_ context.Context, run int64, names []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.planned[run] = names
	return nil
}

func (m *memSteps) Update(_ context.Context, _ int64, s state.Step) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.steps[s.Name] = s
	return nil
}

func (m *memSteps) WriteLog(_ context.Context, _ int64, w state.LogWrite) ([]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []int64
	for _, c := range w.Chunks {
		m.lastID++
		c.ID = m.lastID
		m.chunks = append(m.chunks, c)
		ids = append(ids, c.ID)
	}
	m.chunks = slices.DeleteFunc(m.chunks, func(c state.LogChunk) bool { return slices.Contains(w.Drop, c.ID) })
	for i, c := range m.chunks {
		m.chunks[i].Cut += w.Cut[c.ID]
	}
	return ids, nil
}

func (m *memSteps) LogBytes(context.Context, int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, c := range m.chunks {
		n += int64(len(c.Text))
	}
	return n, nil
}

// log is what is stored of step's whole output, a marker written as the
// page shows it.
func (m *memSteps) log(step string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, c := range m.chunks {
		if c.Step != step {
			continue
		}
		if c.Marker {
			fmt.Fprintf(&b, "[cut %d]", c.Cut)
		}
		b.WriteString(c.Text)
	}
	return b.String()
}

func TestExecuteRunsTheGraph(t *testing.T) {
	rec := newMemSteps()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const runID = 7

	// "a" and "c" have no needs: "a" finishes only once "c" has started,
	// which deadlocks (and times out) unless they run in parallel.
	cStarted := make(chan struct{})
	steps := []Step{
		{Name: "a", Do: func(ctx context.Context, log *Log) error {
			select {
			case <-cStarted:
			case <-ctx.Done():
				return ctx.Err()
			}
			log.Printf("a done")
			return nil
		}},
		{Name: "c", Do: func(ctx context.Context, log *Log) error { close(cStarted); return nil }},
		{Name: "b", Needs: []string{"a"}, Do: func(ctx context.Context, log *Log) error { return nil }},
		{Name: "d", Needs: []string{"b", "c"}, Do: func(ctx context.Context, log *Log) error {
			log.Printf("building…")
			return errors.New("exit status 2")
		}},
		{Name: "e", Needs: []string{"d"}, Do: func(ctx context.Context, log *Log) error {
			t.Error("e ran although d failed")
			return nil
		}},
		{Name: "f", Needs: []string{"c"}, Do: func(ctx context.Context, log *Log) error { panic("boom") }},
	}
	var updates int
	states, err := execute(ctx, rec, runID, steps, func([]StepState) { updates++ })
	if err == nil || !strings.Contains(err.Error(), "exit status 2") && !strings.Contains(err.Error(), "panic") {
		t.Fatalf("err = %v", err)
	}
	want := map[string]string{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepFailed, "e": StepSkipped, "f": StepFailed}
	for _, s := range states {
		if s.Status != want[s.Name] {
			t.Errorf("step %s: %s, want %s", s.Name, s.Status, want[s.Name])
		}
	}
	if updates < len(steps) {
		t.Errorf("%d progress updates, want at least one per step", updates)
	}

	// What a person would read later: recorded statuses, timings, log tails.
	if got := strings.Join(rec.planned[runID], " "); got != "a c b d e f" {
		t.Errorf("planned %q", got)
	}
	for name, status := range want {
		st := rec.steps[name]
		if st.Status != status {
			t.Errorf("recorded %s = %q, want %q", name, st.Status, status)
		}
		if status != StepSkipped && (st.Started.IsZero() || st.Finished.Before(st.Started)) {
			t.Errorf("recorded %s ran from %v to %v", name, st.Started, st.Finished)
		}
	}
	if d := rec.steps["d"]; !strings.Contains(d.Log, "building…") || d.Err != "exit status 2" {
		t.Errorf("step d recorded log %q, error %q", d.Log, d.Err)
	}
	if f := rec.steps["f"]; !strings.Contains(f.Err, "panic: boom") {
		t.Errorf("step f recorded error %q", f.Err)
	}
}

func TestExecuteCancelled(t *testing.T) {
	rec := newMemSteps()
	ctx, cancel := context.WithCancel(context.Background())
	steps := []Step{
		{Name: "long", Do: func(ctx context.Context, log *Log) error {
			cancel() // a newer commit supersedes this run mid-step
			<-ctx.Done()
			return ctx.Err()
		}},
		{Name: "after", Needs: []string{"long"}, Do: func(ctx context.Context, log *Log) error {
			t.Error("ran after cancellation")
			return nil
		}},
	}
	states, err := execute(ctx, rec, 1, steps, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	for _, s := range states {
		if s.Status != StepCancelled || rec.steps[s.Name].Status != StepCancelled {
			t.Errorf("%s: %s (recorded %s), want cancelled", s.Name, s.Status, rec.steps[s.Name].Status)
		}
	}
}

// TestTransientStepFailuresAreRetried: a step that meets a service's "not
// now" is tried again (and its log says so); a step that meets a "no" is
// not; a service that stays down fails the step after stepAttempts tries.
func TestTransientStepFailuresAreRetried(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tries := map[string]int{}
	steps := []Step{
		{Name: "flaky", Do: func(ctx context.Context, log *Log) error {
			if tries["flaky"]++; tries["flaky"] == 1 {
				return &neon.APIError{Status: http.StatusServiceUnavailable, Message: "try later"}
			}
			return nil
		}},
		{Name: "refused", Do: func(ctx context.Context, log *Log) error {
			tries["refused"]++
			return &neon.APIError{Status: http.StatusUnprocessableEntity, Message: "branch name taken"}
		}},
		{Name: "down", Do: func(ctx context.Context, log *Log) error {
			tries["down"]++
			return &neon.APIError{Status: http.StatusBadGateway}
		}},
	}
	// Each step runs in its own goroutine; tries is written by one step each
	// but read after execute returns, so guard it anyway for the race detector.
	var mu sync.Mutex
	for i := range steps {
		do := steps[i].Do
		steps[i].Do = func(ctx context.Context, log *Log) error { mu.Lock(); defer mu.Unlock(); return do(ctx, log) }
	}
	states, _ := execute(ctx, newMemSteps(), 1, steps, nil)
	got := map[string]StepState{}
	for _, s := range states {
		got[s.Name] = s
	}
	if got["flaky"].Status != StepSucceeded || tries["flaky"] != 2 || !strings.Contains(got["flaky"].Log, "trying the step again") {
		t.Errorf("flaky: %s after %d tries, log %q", got["flaky"].Status, tries["flaky"], got["flaky"].Log)
	}
	if got["refused"].Status != StepFailed || tries["refused"] != 1 {
		t.Errorf("refused: %s after %d tries, want failed after 1", got["refused"].Status, tries["refused"])
	}
	if got["down"].Status != StepFailed || tries["down"] != stepAttempts {
		t.Errorf("down: %s after %d tries, want failed after %d", got["down"].Status, tries["down"], stepAttempts)
	}
}

func TestLogKeepsTheTail(t *testing.T) {
	var l Log
	for i := range 3000 {
		l.Printf("line %04d", i)
	}
	s := l.String()
	if len(s) > maxLogTail || !strings.HasSuffix(s, "line 2999\n") || strings.Contains(s, "line 0000") {
		t.Fatalf("tail of %d bytes ends %q", len(s), s[len(s)-20:])
	}
}

// TestOptionalStepFailureDoesNotFailTheRun: an optional step that fails is
// recorded as failed, but the run succeeds.
func TestOptionalStepFailureDoesNotFailTheRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []Step{
		{Name: "work", Do: func(ctx context.Context, log *Log) error { return nil }},
		{Name: "report", Needs: []string{"work"}, Optional: true, Do: func(ctx context.Context, log *Log) error {
			return errors.New("403 Resource not accessible by integration")
		}},
	}
	states, err := execute(ctx, newMemSteps(), 1, steps, nil)
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	if states[1].Status != StepFailed || !states[1].Optional || states[1].Err == "" {
		t.Errorf("optional step: %+v, want failed with its error", states[1])
	}
}
