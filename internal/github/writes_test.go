package github

import (
	"context"
	"errors"
	"testing"
	"time"

	gh "github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// sendWrites books n writes on p, each sent when its turn comes (the clock
// jumps there), and returns the send times.
func sendWrites(t *testing.T, p *writePacer, clock *fakeClock, n int) []time.Time {
	t.Helper()
	var at []time.Time
	for i := range n {
		wait, _, err := p.book(context.Background(), clock.Now())
		if err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
		must(t, clock.Sleep(context.Background(), wait))
		at = append(at, clock.Now())
	}
	return at
}

// most is the largest number of times in any window (t-d, t].
func most(times []time.Time, d time.Duration) int {
	best := 0
	for i, end := range times {
		n := 0
		for _, t := range times[:i+1] {
			if t.After(end.Add(-d)) {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

func TestSecondaryLimitPacesWrites(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newWritePacer(WritePace{})
	at := sendWrites(t, p, clock, 600)

	for i, a := range at[:10] {
		if !a.Equal(at[0]) {
			t.Fatalf("write %d waited %s: a burst of 10 goes at once", i+1, a.Sub(at[0]))
		}
	}
	if gap := at[10].Sub(at[9]); gap <= 0 || gap > 2*time.Second {
		t.Errorf("after the burst, writes are %s apart, want under a second or so", gap)
	}
	// Nine tenths of GitHub's limits, the rest left for jitter and people.
	if n := most(at, time.Minute); n > 72 {
		t.Errorf("%d writes in one minute, want at most 72 (GitHub allows 80)", n)
	}
	if n := most(at, time.Hour); n > 450 {
		t.Errorf("%d writes in one hour, want at most 450 (GitHub allows 500)", n)
	}
	if wait := at[450].Sub(at[0]); wait <= time.Hour {
		t.Errorf("the 451st write went %s after the first, want past the hour", wait)
	}

	// Scaled: the same rule over a shorter minute.
	p = newWritePacer(WritePace{Minute: time.Second})
	at = sendWrites(t, p, clock, 200)
	if n := most(at, time.Second); n > 72 || n < 65 {
		t.Errorf("scaled: %d writes in one (1 s) minute, want at most 72 and close to it", n)
	}

	if newWritePacer(WritePace{PerMinute: -1}) != nil {
		t.Error("PerMinute < 0 still paces")
	}
}

func TestSecondaryLimitPacingStopsAtTheDeadline(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	p := newWritePacer(WritePace{PerMinute: 2, PerHour: -1}) // a burst of 1, then one a minute
	if wait, _, err := p.book(context.Background(), clock.Now()); err != nil || wait != 0 {
		t.Fatalf("first write: wait %s, %v", wait, err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(10*time.Second))
	defer cancel()
	if _, _, err := p.book(ctx, clock.Now()); !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("a write whose turn comes after the deadline: %v, want ErrBudgetExhausted", err)
	}
	wait, undo, err := p.book(context.Background(), clock.Now())
	if err != nil || wait != time.Minute {
		t.Fatalf("the refused write took no turn: the next waits %s (%v), want 1m", wait, err)
	}
	undo() // not sent after all (its context ended while it waited)
	if again, _, _ := p.book(context.Background(), clock.Now()); again != wait {
		t.Errorf("after undo the next write waits %s, want %s", again, wait)
	}
}

// Through the installation client: writes wait their turn, reads do not,
// and a cancelled context ends the wait.
func TestSecondaryLimitPacingIsForWritesOnly(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	e.cfg.RateLimits.Writes = WritePace{PerMinute: 4, PerHour: -1} // a burst of 1, then one each 20 s
	client := e.installationClient(e.cfg)
	ctx := t.Context()
	for range 3 {
		_, _, err := client.PullRequests.Get(ctx, owner, name, 1)
		must(t, err)
	}
	if s := e.clock.Sleeps(); len(s) != 0 {
		t.Fatalf("reads waited %v", s)
	}
	for range 3 {
		must(t, postComment(ctx, client))
	}
	if s := e.clock.Sleeps(); len(s) != 2 || s[0] != 20*time.Second || s[1] != 20*time.Second {
		t.Errorf("writes waited %v, want [20s 20s]", s)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	before := e.requests(routeCreateComment)
	if err := postComment(cancelled, client); !errors.Is(err, context.Canceled) {
		t.Errorf("a write with a cancelled context: %v", err)
	}
	if n := e.requests(routeCreateComment) - before; n != 0 {
		t.Errorf("the cancelled write was sent %d times", n)
	}
}

func postComment(ctx context.Context, client *gh.Client) error {
	_, _, err := client.Issues.CreateComment(ctx, owner, name, 1, &gh.IssueComment{Body: gh.String("hi")})
	return err
}

// A burst of writes from several goroutines, on the real clock, against the
// simulated GitHub's content-creation limit: none is refused (without the
// pacing, some are). Both run on a 2 s minute, so the 100 writes take about
// three seconds.
func TestSecondaryLimitNotHitByABurstOfWrites(t *testing.T) {
	const minute = 2 * time.Second
	e := newEnv(t, ghsim.Options{ContentMinute: minute})
	e.cfg.RateLimits = RateLimits{Writes: WritePace{Minute: minute}} // the real clock
	client := e.installationClient(e.cfg)
	ctx := t.Context()
	errs := make(chan error, 100)
	for range 8 {
		go func() {
			for {
				select {
				case errs <- postComment(ctx, client):
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	for i := range 100 {
		if err := <-errs; err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	if n := e.sim.SecondaryLimitRefusals(); n != 0 {
		t.Errorf("GitHub refused %d of the burst's writes", n)
	}
}
