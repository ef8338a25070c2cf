package main

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// TestSurvivesDatabaseRestart stops the bot's PostgreSQL while pull requests'
// runs are in progress, and starts it again on the same port. During the
// outage a delivery must be refused with a 5xx, promptly (GitHub then shows
// it failed and it is redelivered), and /readyz must say not ready (a load
// balancer stops sending deliveries). Afterwards the same process, never
// restarted, must have reconnected by itself and converged as after a kill:
// the refused delivery, redelivered, is acted on once like every other,
// every check run and every run ended, one status comment per PR, and each
// PR's preview serves its head commit.
func TestSurvivesDatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("database restart test skipped in -short mode")
	}
	if _, err := pgcluster.FindBinaries(); errors.Is(err, pgcluster.ErrNoServer) {
		t.Skip(err) // CI installs them
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := newFarm(ctx, t, "dbrestart-test-secret")
	gh := f.gh

	// The bot's own database, in a cluster of this test's that it can stop
	// and start. The sandbox's Neon branches stay on pgtest's server.
	pgDir := filepath.Join(f.dir, "pg")
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: pgDir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	if err := cluster.CreateDatabase(ctx, "deploybot"); err != nil {
		t.Fatal(err)
	}
	dbURL := cluster.URL("deploybot")
	bot := f.bot("0", dbURL)
	addr := bot.addr
	bot.start(ctx)
	t.Cleanup(bot.stop)
	bot.waitReady(ctx)
	hook := "http://" + addr + "/api/github/hook"

	var taken []string // delivery ids the bot stored
	deliver := func(ev ghsim.Event) {
		t.Helper()
		d, err := gh.Deliver(ctx, hook, ev)
		if d.Status != http.StatusOK {
			t.Fatalf("delivery %s %s answered %d, %v", ev.Name, ev.Action, d.Status, err)
		}
		taken = append(taken, d.ID)
	}
	event := func(pr int, action string) ghsim.Event {
		t.Helper()
		ev, err := gh.PullRequestEvent(demo.Repo, pr, action)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	prs := f.openPRs("restart", 3)
	for _, pr := range prs {
		deliver(event(pr, "opened"))
	}

	// The outage starts while a run is in progress: its check run is open.
	waitFor(ctx, t, "a check run in progress", func() bool {
		for _, c := range gh.Snapshot().CheckRuns {
			if c.Status == "in_progress" {
				return true
			}
		}
		return false
	})
	stopCtx, stopCancel := context.WithTimeout(ctx, time.Minute)
	err = cluster.Stop(stopCtx)
	stopCancel()
	if err != nil {
		t.Fatalf("stop the bot's database: %v", err)
	}
	t.Log("database stopped")

	// A push during the outage. GitHub waits 10 s for an answer; the bot
	// must refuse within that, not hang until GitHub gives up.
	if _, err := gh.PushPR(demo.Repo, prs[0], map[string]string{"web/src/r.js": "during the outage\n"}, "outage"); err != nil {
		t.Fatal(err)
	}
	deliverCtx, deliverCancel := context.WithTimeout(ctx, 10*time.Second)
	refused, err := gh.Deliver(deliverCtx, hook, event(prs[0], "synchronize"))
	deliverCancel()
	t.Logf("delivery during the outage answered %d", refused.Status)
	if refused.Status < 500 || refused.Status > 599 {
		t.Fatalf("a delivery during the outage was answered %d (%v), want a 5xx so that GitHub redelivers", refused.Status, err)
	}
	waitFor(ctx, t, "/readyz to say not ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})

	// The database comes back where the bot's URL points.
	restarted, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: pgDir, Ephemeral: true, Port: cluster.Port()})
	if err != nil {
		t.Fatalf("restart the bot's database: %v", err)
	}
	cluster = restarted // for the cleanup
	t.Log("database started again")

	// GitHub's redelivery (by hand, or the bot's catch-up) until it is taken.
	for tries := 0; ; tries++ {
		d, err := gh.Redeliver(ctx, refused.ID)
		if d.Status == http.StatusOK {
			t.Logf("redelivery %d taken", tries+1)
			taken = append(taken, d.ID)
			break
		}
		if tries > 100 || ctx.Err() != nil {
			t.Fatalf("redelivery never taken: %+v, %v", d, err)
		}
		bot.waitReady(ctx)
	}
	bot.waitReady(ctx)
	select {
	case <-bot.done:
		t.Fatal("the bot exited instead of reconnecting")
	default:
	}
	waitIdle(ctx, t, dbURL, []*botProcess{bot})

	f.expectCheckRunsConcluded()
	f.expectConverged(prs)

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, id := range taken {
		var jobs int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE args->>'delivery_id' = $1`, id).Scan(&jobs); err != nil {
			t.Fatal(err)
		}
		if jobs != 1 {
			t.Errorf("delivery %s queued %d jobs, want 1", id, jobs)
		}
	}
	expectEachDeliveryWorkedOnce(ctx, t, conn)
	var unended int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM runs WHERE status IN ('running', 'queued')`).Scan(&unended); err != nil {
		t.Fatal(err)
	}
	if unended != 0 {
		t.Errorf("%d runs never ended", unended)
	}
	if t.Failed() {
		logRuns(ctx, t, conn, []*botProcess{bot})
	}
}

// waitFor polls cond until it holds, failing the test when ctx ends first.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
