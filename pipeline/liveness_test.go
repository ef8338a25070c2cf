package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/pgtest"
)

// TestLivenessRescuesOnlyDeadProcessesJobs: a job left running by a
// process whose heartbeat stopped (killed, crashed, its machine gone) is
// made available again; jobs of live processes, this one included, are not.
func TestLivenessRescuesOnlyDeadProcessesJobs(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDatabase(t)
	ctx := context.Background()
	queue, err := NewQueue(pool, QueueOptions{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	running := func(client string) int64 {
		res, err := queue.Insert(ctx, intent.PreviewRequested{Meta: intent.Meta{DeliveryID: client}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = ARRAY[$2] WHERE id = $1`, res.Job.ID, client); err != nil {
			t.Fatal(err)
		}
		return res.Job.ID
	}
	state := func(id int64) string {
		var s string
		if err := pool.QueryRow(ctx, `SELECT state FROM river_job WHERE id = $1`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	me := NewLiveness(pool, "me", zerolog.Nop())
	alive := NewLiveness(pool, "alive", zerolog.Nop())
	stale := NewLiveness(pool, "stale", zerolog.Nop())
	for _, l := range []*Liveness{me, alive, stale} {
		if err := l.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE bot_clients SET heartbeat_at = now() - interval '5 minutes' WHERE client_id = 'stale'`); err != nil {
		t.Fatal(err)
	}
	mine, live, silent, vanished := running("me"), running("alive"), running("stale"), running("never-beat")

	n, err := me.RescueDead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("rescued %d jobs, want 2", n)
	}
	for id, want := range map[int64]string{mine: "running", live: "running", silent: "retryable", vanished: "retryable"} {
		if got := state(id); got != want {
			t.Errorf("job %d: %s, want %s", id, got, want)
		}
	}
	if n, _ := me.RescueDead(ctx); n != 0 {
		t.Errorf("a second rescue found %d more", n)
	}
}

// TestLivenessWaitsAfterItsOwnOutage: while this process's heartbeat fails
// (the database is out of reach for every process alike) it rescues no one,
// and once its beats resume it waits DeadAfter, so that processes cut off
// with it have beaten again before their silence is taken for death.
func TestLivenessWaitsAfterItsOwnOutage(t *testing.T) {
	const deadAfter = 2 * time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	rescues := func(b *beating, now time.Time, ok bool) bool { return b.rescueAfter(now, ok, deadAfter) }
	b := beating{start: t0.Add(-deadAfter)}
	if !rescues(&b, at(0), true) {
		t.Error("a process beating all along does not rescue")
	}
	if rescues(&b, at(500), false) || rescues(&b, at(5000), false) {
		t.Error("rescues while its own heartbeat fails")
	}
	if rescues(&b, at(5500), true) || rescues(&b, at(7000), true) {
		t.Error("rescues before DeadAfter of its own beats after the outage")
	}
	if !rescues(&b, at(7500), true) {
		t.Error("does not rescue once its beats have gone unbroken for DeadAfter")
	}
}
