package pipeline

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func newRun(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var id int64
	if err := pool.QueryRow(context.Background(), `INSERT INTO runs (kind, repo) VALUES ('preview', 'o/r') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestExecuteRunsTheGraph(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runID := newRun(t, pool)

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
	states, err := execute(ctx, pool, runID, steps, func([]StepState) { updates++ })
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

	// What a person would read later: stored statuses, timings, log tails.
	rows, err := pool.Query(ctx, `SELECT name, status, log_tail, error, finished_at IS NOT NULL FROM run_steps WHERE run_id = $1 ORDER BY name`, runID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]string{}
	for rows.Next() {
		var name, status, logTail, stepErr string
		var finished bool
		if err := rows.Scan(&name, &status, &logTail, &stepErr, &finished); err != nil {
			t.Fatal(err)
		}
		stored[name] = status
		if name == "d" && (!strings.Contains(logTail, "building…") || stepErr != "exit status 2" || !finished) {
			t.Errorf("step d stored log %q, error %q, finished %v", logTail, stepErr, finished)
		}
		if name == "f" && !strings.Contains(stepErr, "panic: boom") {
			t.Errorf("step f stored error %q", stepErr)
		}
	}
	for name, status := range want {
		if stored[name] != status {
			t.Errorf("stored %s = %q, want %q", name, stored[name], status)
		}
	}
}

func TestExecuteCancelled(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	runID := newRun(t, pool)
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
	states, err := execute(ctx, pool, runID, steps, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	for _, s := range states {
		if s.Status != StepCancelled {
			t.Errorf("%s: %s, want cancelled", s.Name, s.Status)
		}
	}
}

// TestTransientStepFailuresAreRetried: a step that meets a service's "not
// now" is tried again (and its log says so); a step that meets a "no" is
// not; a service that stays down fails the step after stepAttempts tries.
func TestTransientStepFailuresAreRetried(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runID := newRun(t, pool)
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
	states, _ := execute(ctx, pool, runID, steps, nil)
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
	pool := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []Step{
		{Name: "work", Do: func(ctx context.Context, log *Log) error { return nil }},
		{Name: "report", Needs: []string{"work"}, Optional: true, Do: func(ctx context.Context, log *Log) error {
			return errors.New("403 Resource not accessible by integration")
		}},
	}
	states, err := execute(ctx, pool, newRun(t, pool), steps, nil)
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	if states[1].Status != StepFailed || !states[1].Optional || states[1].Err == "" {
		t.Errorf("optional step: %+v, want failed with its error", states[1])
	}
}
