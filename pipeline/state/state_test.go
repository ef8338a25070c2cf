package state_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestLock: one holder per key across sessions; a released key is free;
// one connection holds several keys, and Also waits for a key held
// elsewhere until it is released.
func TestLock(t *testing.T) {
	st := state.New(pgtest.NewDatabase(t))
	ctx := t.Context()
	l, err := st.Lock(ctx, "deploybot:preview:o/r#1")
	must(t, err)
	if _, err := st.Lock(ctx, "deploybot:preview:o/r#1"); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("second holder: %v, want ErrLocked", err)
	}
	other, err := st.Lock(ctx, "deploybot:test-db:p/x")
	must(t, err)
	got := make(chan error, 1)
	go func() { got <- l.Also(ctx, "deploybot:test-db:p/x") }()
	other.Release()
	must(t, <-got) // taken once the other session let go
	if _, err := st.Lock(ctx, "deploybot:test-db:p/x"); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("a key taken with Also: %v, want ErrLocked", err)
	}
	l.Release()
	again, err := st.Lock(ctx, "deploybot:test-db:p/x")
	must(t, err)
	again.Release()
}

// TestPreviews: a preview's state and resources survive a round trip; the
// second load knows the pull request; the sweeper sees what it holds.
func TestPreviews(t *testing.T) {
	st := state.New(pgtest.NewDatabase(t))
	ctx := t.Context()
	p, err := st.Previews.Load(ctx, "o/r", 5, 42)
	must(t, err)
	if p.Known || !p.Resources.Empty() || st.Previews.Holds(ctx, "o/r", 5) {
		t.Fatalf("first load: %+v", p)
	}
	p.State, p.DeployedSHA, p.CommentID = "ready", "abc", 77
	p.Resources = state.Resources{Project: "prj", Branch: "pr-5", Workers: []state.DeployedWorker{{Name: "web", Script: "web-preview-5", Hostname: "web-5.example.com"}}}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	must(t, st.Previews.Save(cancelled, p)) // a cancelled run's work is still remembered
	again, err := st.Previews.Load(ctx, "o/r", 5, 42)
	must(t, err)
	if !again.Known || again.State != "ready" || again.CommentID != 77 || again.Resources.Workers[0].Hostname != "web-5.example.com" {
		t.Fatalf("second load: %+v", again)
	}
	if id, err := st.Previews.CommentID(ctx, "o/r", 5); err != nil || id != 77 {
		t.Fatalf("comment id %d, %v", id, err)
	}
	if id, err := st.Previews.CommentID(ctx, "o/r", 6); err != nil || id != 0 {
		t.Fatalf("comment id of an unknown PR: %d, %v", id, err)
	}
	held, err := st.Previews.Held(ctx)
	must(t, err)
	if len(held) != 1 || held[0].PR != 5 || held[0].InstallationID != 42 || held[0].Resources.Branch != "pr-5" || !st.Previews.Holds(ctx, "o/r", 5) {
		t.Fatalf("held: %+v", held)
	}
	projects, err := st.Previews.Projects(ctx)
	must(t, err)
	if len(projects) != 1 || projects[0] != [2]string{"o/r", "prj"} {
		t.Fatalf("projects %v", projects)
	}
}

// TestPreviewsAlive: a preview is alive while it holds a branch or Workers,
// whatever its state; one waiting for approval, or torn down, is not.
func TestPreviewsAlive(t *testing.T) {
	st := state.New(pgtest.NewDatabase(t))
	ctx := t.Context()
	alive := func(want int) {
		t.Helper()
		n, err := st.Previews.Alive(ctx)
		must(t, err)
		if n != want {
			t.Fatalf("%d previews alive, want %d", n, want)
		}
	}
	save := func(pr int, status string, res state.Resources) {
		t.Helper()
		p, err := st.Previews.Load(ctx, "o/r", pr, 42)
		must(t, err)
		p.State, p.Resources = status, res
		must(t, st.Previews.Save(ctx, p))
	}
	alive(0)
	save(1, "ready", state.Resources{Project: "prj", Branch: "pr-1", Workers: []state.DeployedWorker{{Name: "web", Script: "web-preview-1"}}})
	save(2, "awaiting_approval", state.Resources{})
	save(3, "failed", state.Resources{Workers: []state.DeployedWorker{{Name: "web", Script: "web-preview-3"}}})
	alive(2)
	save(1, "destroyed", state.Resources{})
	alive(1)
}

// TestJobsWaiting: the queue's jobs are counted by kind and state, and the
// age of the oldest due job counts from when it became due: a job
// scheduled for later, running or finished does not make a kind look
// stuck.
func TestJobsWaiting(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	st := state.New(pool)
	ctx := t.Context()
	for _, j := range []struct {
		kind, state string
		due         string // interval from now
	}{
		{"preview_requested", "available", "-10 minutes"},
		{"preview_requested", "available", "-1 minute"},
		{"preview_requested", "scheduled", "+5 minutes"}, // snoozed behind its PR's lock
		{"preview_requested", "running", "-1 hour"},
		{"preview_closed", "retryable", "+1 minute"},
		{"preview_closed", "completed", "-2 hours"},
		{"sweep", "scheduled", "-30 seconds"}, // due, not yet moved to available
	} {
		_, err := pool.Exec(ctx, `
			INSERT INTO river_job (kind, args, max_attempts, priority, queue, state, scheduled_at, attempt, attempted_at, finalized_at)
			VALUES ($1, '{}', 5, 1, 'default', $2::river_job_state, now() + $3::interval,
				CASE WHEN $2 IN ('running', 'retryable', 'completed') THEN 1 ELSE 0 END,
				CASE WHEN $2 IN ('running', 'retryable', 'completed') THEN now() END,
				CASE WHEN $2 = 'completed' THEN now() END)`, j.kind, j.state, j.due)
		must(t, err)
	}
	got, err := st.Jobs.Waiting(ctx)
	must(t, err)
	byKind := map[string]state.JobsOfKind{}
	for _, k := range got {
		byKind[k.Kind] = k
	}
	if len(byKind) != 3 {
		t.Fatalf("kinds %v, want preview_requested, preview_closed and sweep", got)
	}
	pr := byKind["preview_requested"]
	if pr.ByState["available"] != 2 || pr.ByState["scheduled"] != 1 || pr.ByState["running"] != 1 || pr.ByState["retryable"] != 0 {
		t.Errorf("preview_requested: %v", pr.ByState)
	}
	// Both times are the database's (scheduled_at was set from its now()),
	// so the age is 10 minutes plus the time between insert and query.
	if pr.OldestDue < 10*time.Minute || pr.OldestDue > 11*time.Minute {
		t.Errorf("preview_requested's oldest due job waited %s, want 10 minutes", pr.OldestDue)
	}
	if c := byKind["preview_closed"]; c.ByState["retryable"] != 1 || c.OldestDue != 0 {
		t.Errorf("preview_closed: %v, oldest %s; want 1 retryable not yet due", c.ByState, c.OldestDue)
	}
	if s := byKind["sweep"]; s.ByState["scheduled"] != 1 || s.OldestDue < 30*time.Second || s.OldestDue > 90*time.Second {
		t.Errorf("sweep: %v, oldest %s; want 1 scheduled job due 30 s ago", s.ByState, s.OldestDue)
	}
}

// TestRuns: a run's life, and what a newer job or a rescue sees of it.
func TestRuns(t *testing.T) {
	st := state.New(pgtest.NewDatabase(t))
	ctx := t.Context()
	old, err := st.Runs.Start(ctx, state.Run{Kind: "preview", Repo: "o/r", PR: 5, HeadSHA: "aaa", JobID: 1, Reason: "pull_request.opened"})
	must(t, err)
	head, err := st.Runs.Start(ctx, state.Run{Kind: "preview", Repo: "o/r", PR: 5, HeadSHA: "bbb", JobID: 2, Reason: "pull_request.synchronize"})
	must(t, err)
	must(t, st.Runs.AttachCheckRun(ctx, head, 900))

	jobs, err := st.Runs.RunningJobs(ctx, "o/r", 5, 3, "bbb")
	must(t, err)
	if len(jobs) != 1 || jobs[0] != 1 {
		t.Fatalf("running jobs other than the head's: %v, want [1]", jobs)
	}
	if pr, err := st.Runs.PullRequestOf(ctx, "o/r", 900, ""); err != nil || pr != 5 {
		t.Fatalf("PR of check run 900: %d, %v", pr, err)
	}

	must(t, st.Runs.Finish(ctx, old, "cancelled", "superseded"))
	abandoned, err := st.Runs.AbandonedPreviews(ctx, "o/r", 5)
	must(t, err)
	if len(abandoned) != 1 || abandoned[0].ID != head || abandoned[0].CheckRunID != 900 || abandoned[0].HeadSHA != "bbb" {
		t.Fatalf("abandoned %+v, want the head's run with its check run", abandoned)
	}
	// Until they are ended, they are found again (a bot stopped while it
	// concluded them leaves them to the next).
	if again, err := st.Runs.AbandonedPreviews(ctx, "o/r", 5); err != nil || len(again) != 1 {
		t.Fatalf("abandoned runs found again: %+v, %v", again, err)
	}
	must(t, st.Runs.Abandon(ctx, head))
	if again, err := st.Runs.AbandonedPreviews(ctx, "o/r", 5); err != nil || len(again) != 0 {
		t.Fatalf("abandoned after they ended: %+v, %v", again, err)
	}

	prod, err := st.Runs.Start(ctx, state.Run{Kind: "production", Repo: "o/r", HeadSHA: "ccc", JobID: 4, Reason: "push"})
	must(t, err)
	if sha, err := st.Runs.LastProduction(ctx, "o/r", 5); err != nil || sha != "ccc" {
		t.Fatalf("last production %q, %v", sha, err)
	}
	if sha, err := st.Runs.LastProduction(ctx, "o/r", 4); err != nil || sha != "" {
		t.Fatalf("last production but job 4's: %q, %v", sha, err)
	}
	must(t, st.Runs.Finish(ctx, prod, "succeeded", ""))
}

// TestSteps: the plan is recorded once; a step's state is recorded even
// when the run's context is cancelled.
func TestSteps(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	st := state.New(pool)
	ctx := t.Context()
	run, err := st.Runs.Start(ctx, state.Run{Kind: "preview", Repo: "o/r", PR: 1, HeadSHA: "aaa"})
	must(t, err)
	must(t, st.Steps.Plan(ctx, run, []string{"source", "build:web"}))
	must(t, st.Steps.Update(ctx, run, state.Step{Name: "source", Status: "succeeded", Started: time.Now(), Finished: time.Now(), Log: "ok"}))
	must(t, st.Steps.Plan(ctx, run, []string{"source", "build:web"})) // a rescued run plans again
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	must(t, st.Steps.Update(cancelled, run, state.Step{Name: "build:web", Status: "cancelled", Started: time.Now(), Err: "cancelled"}))
	rows, err := pool.Query(ctx, `SELECT name, status, log_tail, finished_at IS NULL FROM run_steps WHERE run_id = $1 ORDER BY name`, run)
	must(t, err)
	defer rows.Close()
	var got []string
	for rows.Next() {
		var name, status, log string
		var unfinished bool
		must(t, rows.Scan(&name, &status, &log, &unfinished))
		got = append(got, name+"="+status)
		if name == "source" && (log != "ok" || unfinished) {
			t.Errorf("source: log %q, unfinished %v", log, unfinished)
		}
	}
	if len(got) != 2 || got[0] != "build:web=cancelled" || got[1] != "source=succeeded" {
		t.Fatalf("steps %v", got)
	}
}

// TestRunEndOutcome: ending a run returns what its log line needs: the
// run's row, its times and its steps.
func TestRunEndOutcome(t *testing.T) {
	st := state.New(pgtest.NewDatabase(t))
	ctx := t.Context()
	id, err := st.Runs.Start(ctx, state.Run{Kind: "production", Repo: "o/r", HeadSHA: "ddd", Branch: "main", JobID: 7, Reason: "push"})
	must(t, err)
	must(t, st.Steps.Plan(ctx, id, []string{"source", "deploy:web", "rollback:web"}))
	now := time.Now()
	must(t, st.Steps.Update(ctx, id, state.Step{Name: "source", Status: "succeeded", Started: now, Finished: now}))
	must(t, st.Steps.Update(ctx, id, state.Step{Name: "deploy:web", Status: "failed", Started: now, Finished: now.Add(time.Second), Err: "boom"}))
	e, err := st.Runs.End(ctx, id, "failed", "step deploy:web: boom")
	must(t, err)
	if e.Kind != "production" || e.Repo != "o/r" || e.Branch != "main" || e.HeadSHA != "ddd" || e.Reason != "push" || e.Status != "failed" ||
		e.Started.IsZero() || e.Finished.Before(e.Started) {
		t.Errorf("ended run %+v", e)
	}
	if len(e.Steps) != 3 || e.Steps[0].Name != "source" || e.Steps[1].Name != "deploy:web" || e.Steps[1].Err != "boom" || e.Steps[2].Status != "pending" {
		t.Errorf("steps of the ended run: %+v", e.Steps)
	}
	if e, err := st.Runs.End(ctx, id+100, "failed", ""); err != nil || e.Kind != "" {
		t.Errorf("ending a run that does not exist: %+v, %v; want nothing", e, err)
	}
}

// TestRunLog: a run's log is read back in order after any chunk; a batch
// drops chunks and counts them on its marker at once; the run's page reads
// the run with its steps and who started it.
func TestRunLog(t *testing.T) {
	st := state.New(pgtest.NewDatabase(t))
	ctx := t.Context()
	run, err := st.Runs.Start(ctx, state.Run{Kind: "preview", Repo: "o/r", PR: 3, HeadSHA: "abc", Reason: "pull_request.opened", Actor: "octocat"})
	must(t, err)
	must(t, st.Steps.Plan(ctx, run, []string{"source", "build:web"}))
	ids, err := st.Steps.WriteLog(ctx, run, state.LogWrite{Chunks: []state.LogChunk{
		{Step: "build:web", Text: "head\n"}, {Step: "build:web", Marker: true}, {Step: "build:web", Text: "old\n"}, {Step: "source", Text: "café\n"},
	}})
	must(t, err)
	if len(ids) != 4 || !(ids[0] < ids[1] && ids[1] < ids[2] && ids[2] < ids[3]) {
		t.Fatalf("ids %v: want four, in order", ids)
	}
	_, err = st.Steps.WriteLog(ctx, run, state.LogWrite{Chunks: []state.LogChunk{{Step: "build:web", Text: "new\n"}},
		Drop: []int64{ids[2]}, Cut: map[int64]int64{ids[1]: 4}})
	must(t, err)
	all, err := st.Steps.LogSince(ctx, run, 0, 100)
	must(t, err)
	var got []string
	for _, c := range all {
		got = append(got, fmt.Sprintf("%s:%q:%v:%d", c.Step, c.Text, c.Marker, c.Cut))
	}
	want := []string{`build:web:"head\n":false:0`, `build:web:"":true:4`, `source:"café\n":false:0`, `build:web:"new\n":false:0`}
	if !slices.Equal(got, want) {
		t.Fatalf("log: %q, want %q", got, want)
	}
	after, err := st.Steps.LogSince(ctx, run, ids[3], 100)
	must(t, err)
	if len(after) != 1 || after[0].Text != "new\n" {
		t.Fatalf("after chunk %d: %+v, want the last one", ids[3], after)
	}
	n, err := st.Steps.LogBytes(ctx, run)
	must(t, err)
	if n != int64(len("head\ncafé\nnew\n")) {
		t.Fatalf("LogBytes = %d", n)
	}

	start := time.Now()
	must(t, st.Steps.Update(ctx, run, state.Step{Name: "source", Status: "succeeded", Started: start, Finished: start.Add(time.Second)}))
	must(t, st.Runs.Finish(ctx, run, "succeeded", ""))
	d, found, err := st.Runs.Get(ctx, run)
	must(t, err)
	if !found || d.Actor != "octocat" || d.PR != 3 || d.Reason != "pull_request.opened" || !d.Ended() || d.Status != "succeeded" {
		t.Fatalf("run: %+v", d)
	}
	if len(d.Steps) != 2 || d.Steps[0].Name != "source" || d.Steps[0].Status != "succeeded" || d.Steps[1].Status != "pending" {
		t.Fatalf("steps: %+v, want source (started) then build:web (pending)", d.Steps)
	}
	if _, found, err := st.Runs.Get(ctx, run+100); err != nil || found {
		t.Fatalf("an unknown run: found %v, %v", found, err)
	}
}
