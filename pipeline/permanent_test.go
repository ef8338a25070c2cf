package pipeline_test

import (
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// TestJobsThatCannotSucceedEndAtOnce: a delivery for an installation that
// was suspended, or for a repository the App was since removed from, ends
// its job on the first attempt (cancelled, not retried for days) with one
// line naming the repository, the delivery and why.
func TestJobsThatCannotSucceedEndAtOnce(t *testing.T) {
	t.Parallel()
	e, logs := startLogged(t, demo.StackOptions{})

	// endedAtOnce checks the delivery's jobs were cancelled on their first
	// attempt and logged once, with reason.
	endedAtOnce := func(delivery, reason string) {
		t.Helper()
		rows, err := e.s.App.Pool.Query(e.ctx, `SELECT kind, state, attempt FROM river_job WHERE args->>'delivery_id' = $1`, delivery)
		e.must(err)
		jobs := 0
		for rows.Next() {
			var kind, state string
			var attempt int
			e.must(rows.Scan(&kind, &state, &attempt))
			jobs++
			if state != "cancelled" || attempt != 1 {
				t.Errorf("job %s of delivery %s: %s after %d attempts, want cancelled after 1", kind, delivery, state, attempt)
			}
		}
		e.must(rows.Err())
		if jobs == 0 {
			t.Fatalf("delivery %s queued no job", delivery)
		}
		lines := linesWith(logs.lines(t), "delivery_id", delivery)
		var ended []map[string]any
		for _, l := range lines {
			switch msg := str(l["message"]); {
			case strings.HasPrefix(msg, "job ended without retries"):
				ended = append(ended, l)
			case strings.HasPrefix(msg, "job failed"):
				t.Errorf("delivery %s: a job failure was logged for a job that cannot succeed: %v", delivery, l)
			}
		}
		if len(ended) != jobs {
			t.Fatalf("delivery %s: %d lines say a job ended, want %d: %v", delivery, len(ended), jobs, lines)
		}
		for _, l := range ended {
			if l["level"] != "error" || l["repo"] != demo.Repo || !strings.Contains(str(l["reason"]), reason) {
				t.Errorf("the line ending the job: %v; want level error, repo %s and a reason saying %q", l, demo.Repo, reason)
			}
		}
	}

	// The installation is suspended before the bot ever had a token of it.
	pr, _ := e.open("feature/suspended", map[string]string{"web/src/s.js": "1\n"}, false)
	e.must(e.gh.SetInstallationState(ghsim.InstallationSuspended))
	suspended := e.deliver(pr, "opened")
	e.idle()
	endedAtOnce(suspended, "the installation is suspended")

	// Active again, but the repository is no longer among the
	// installation's: GitHub answers 404 for it.
	e.must(e.gh.SetInstallationState(ghsim.InstallationActive))
	e.must(e.gh.SetInstalled(demo.Repo, false))
	removed := e.deliver(pr, "reopened")
	e.idle()
	endedAtOnce(removed, "the App is not installed on repository "+demo.Repo)
	if st := e.gh.Snapshot(); len(st.CheckRuns) != 0 || len(st.Comments) != 0 {
		t.Errorf("the bot wrote to a repository it cannot reach: %d check runs, %d comments", len(st.CheckRuns), len(st.Comments))
	}
}
