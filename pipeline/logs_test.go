package pipeline_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
)

// TestLogsTellTheStory: what an operator reads in the log. A preview whose
// first attempt fails on GitHub (a token refused) leaves a warning naming
// the job and its attempt; when it then succeeds, one line says the
// preview is ready, with the run's fields and the delivery id of the
// webhook that started it. A failing build is one warning naming the step.
func TestLogsTellTheStory(t *testing.T) {
	t.Parallel()
	e, logs := startLogged(t, demo.StackOptions{})

	pr, sha := e.open("feature/logs", map[string]string{"web/src/l.js": "1\n"}, false)
	e.gh.Faults().Set(fault.Rule{Method: http.MethodGet, Path: "/repos/" + demo.Repo + "/pulls/", Times: 1, Status: http.StatusUnauthorized})
	delivery := e.deliver(pr, "opened")
	e.idle()
	e.gh.Faults().Set()
	if got := e.checks()[sha]; got != "success" {
		t.Fatalf("check run: %q, want success", got)
	}

	failures := linesWith(logs.lines(t), "job_kind", "preview_requested", "delivery_id", delivery)
	var jobFailed []map[string]any
	for _, l := range failures {
		if strings.HasPrefix(str(l["message"]), "job failed") {
			jobFailed = append(jobFailed, l)
		}
	}
	if len(jobFailed) != 1 {
		t.Fatalf("%d job failure lines for delivery %s, want 1: %v", len(jobFailed), delivery, failures)
	}
	if l := jobFailed[0]; l["level"] != "warn" || l["attempt"] != 1.0 || l["max_attempts"] == nil || l["job_id"] == nil ||
		!strings.Contains(str(l["error"]), "401") {
		t.Errorf("job failure logged as %v: want warn, attempt 1, max_attempts, job_id and the 401", l)
	}

	ready := linesWith(logs.lines(t), "kind", "preview", "pr", float64(pr))
	if len(ready) != 1 {
		t.Fatalf("%d outcome lines for the preview of #%d, want 1: %v", len(ready), pr, ready)
	}
	want := map[string]any{"level": "info", "message": "preview ready", "outcome": "ready", "repo": demo.Repo, "sha": sha[:7],
		"delivery_id": delivery, "job_kind": "preview_requested", "attempt": 2.0}
	for k, v := range want {
		if ready[0][k] != v {
			t.Errorf("outcome line: %s = %v, want %v (%v)", k, ready[0][k], v, ready[0])
		}
	}
	for _, k := range []string{"run_id", "duration_ms", "job_id"} {
		if ready[0][k] == nil {
			t.Errorf("outcome line lacks %s: %v", k, ready[0])
		}
	}
	if _, failed := ready[0]["step"]; failed {
		t.Errorf("a ready preview names a failing step: %v", ready[0])
	}

	bad, badSHA := e.open("feature/logs-bad", map[string]string{"web/build.sh": "echo 'error TS2304' >&2\nexit 1\n"}, false)
	badDelivery := e.deliver(bad, "opened")
	e.idle()
	if got := e.checks()[badSHA]; got != "failure" {
		t.Fatalf("check run of the failing build: %q, want failure", got)
	}
	failed := linesWith(logs.lines(t), "kind", "preview", "pr", float64(bad))
	if len(failed) != 1 {
		t.Fatalf("%d outcome lines for the failed preview of #%d, want 1: %v", len(failed), bad, failed)
	}
	want = map[string]any{"level": "warn", "message": "preview failed at build:web", "outcome": "failed", "step": "build:web",
		"sha": badSHA[:7], "delivery_id": badDelivery}
	for k, v := range want {
		if failed[0][k] != v {
			t.Errorf("failure line: %s = %v, want %v (%v)", k, failed[0][k], v, failed[0])
		}
	}
	if !strings.Contains(str(failed[0]["error"]), "exited with status 1") {
		t.Errorf("failure line's error %q: want the build's exit status", failed[0]["error"])
	}
	// A failed preview is reported, not retried: no job failure for it.
	for _, l := range linesWith(logs.lines(t), "delivery_id", badDelivery) {
		if strings.HasPrefix(str(l["message"]), "job failed") {
			t.Errorf("a failed build logged as a job failure: %v", l)
		}
	}
}

// deliver sends the pull request's event and returns its delivery id.
func (e *env) deliver(pr int, action string) string {
	e.t.Helper()
	ev, err := e.gh.PullRequestEvent(demo.Repo, pr, action)
	e.must(err)
	d, err := e.s.Deliver(e.ctx, ev)
	e.must(err)
	return d.ID
}

// linesWith is the log lines whose fields have the values kv (key, value,
// key, value…).
func linesWith(lines []map[string]any, kv ...any) []map[string]any {
	var out []map[string]any
next:
	for _, l := range lines {
		for i := 0; i+1 < len(kv); i += 2 {
			if l[kv[i].(string)] != kv[i+1] {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
