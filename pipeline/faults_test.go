package pipeline_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// TestConvergesUnderFaults: a fifth of the calls to Neon and Cloudflare fail
// with mixed statuses, GitHub's reads and edits fail too, every call is
// slowed down, and every webhook arrives three times and out of order. The
// PR still ends with exactly its newest commit live and one status comment,
// and with nothing left after it closes.
func TestConvergesUnderFaults(t *testing.T) {
	e := start(t)
	sb := e.s.Sandbox
	e.injectFaults()

	pr, _ := e.open("feature/faults", map[string]string{"web/src/f.js": "1\n"}, false)
	opened, err := e.gh.PullRequestEvent(demo.Repo, pr, "opened")
	e.must(err)
	sha2 := e.push(pr, map[string]string{"web/src/f.js": "2\n"})
	synced, err := e.gh.PullRequestEvent(demo.Repo, pr, "synchronize")
	e.must(err)
	// Three copies each, the newer event first.
	e.deliverAll(synced, opened, synced, opened, opened, synced)
	e.idle()

	if e.live(host("web", pr)) != sha2 || e.live(host("auth", pr)) != sha2 || e.live(host("api", pr)) != sha2 {
		t.Errorf("live: web %.7s auth %.7s api %.7s, want %.7s everywhere",
			e.live(host("web", pr)), e.live(host("auth", pr)), e.live(host("api", pr)), sha2)
	}
	if c := e.comment(pr); !strings.Contains(c, "✅ Preview ready for `"+sha2[:7]+"`") {
		t.Errorf("comment:\n%s", c)
	}

	_, err = e.gh.ClosePR(demo.Repo, pr, false)
	e.must(err)
	closed, err := e.gh.PullRequestEvent(demo.Repo, pr, "closed")
	e.must(err)
	// A stale synchronize arrives after the close: it must not resurrect.
	e.deliverAll(closed, synced, closed, closed)
	e.idle()
	sb.Neon.Faults().Set()
	sb.Cloudflare.Faults().Set()
	sb.GitHub.Faults().Set()
	e.expectNothingLeft(pr)
	if c := e.comment(pr); !strings.Contains(c, "🗑️ Preview destroyed") {
		t.Errorf("comment after close:\n%s", c)
	}
	injected := sb.Neon.Snapshot().FaultsInjected + sb.Cloudflare.Snapshot().FaultsInjected + sb.GitHub.Snapshot().FaultsInjected
	if injected < 5 {
		t.Errorf("only %d faults injected: the test did not test much", injected)
	}
	t.Logf("%d faults injected", injected)
}

// injectFaults makes a fifth of the calls to Neon and Cloudflare fail with
// mixed statuses (5 % of Neon reads lose their connection), GitHub's reads
// and edits fail too, and every call is slowed down.
func (e *env) injectFaults() {
	sb := e.s.Sandbox
	sb.Neon.Faults().Set(
		fault.Rule{Rate: 0.08, Status: http.StatusServiceUnavailable, Latency: 2 * time.Millisecond},
		fault.Rule{Rate: 0.06, Status: http.StatusLocked},
		fault.Rule{Rate: 0.06, Status: http.StatusTooManyRequests},
		fault.Rule{Method: http.MethodGet, Rate: 0.05, Reset: true},
	)
	sb.Cloudflare.Faults().Set(
		fault.Rule{Rate: 0.1, Status: http.StatusServiceUnavailable, Latency: 2 * time.Millisecond},
		fault.Rule{Rate: 0.1, Status: http.StatusTooManyRequests},
	)
	sb.GitHub.Faults().Set(
		fault.Rule{Method: http.MethodGet, Path: "/repos/", Rate: 0.2, Status: http.StatusBadGateway, Latency: 2 * time.Millisecond},
		fault.Rule{Method: http.MethodPatch, Rate: 0.2, Status: http.StatusServiceUnavailable},
	)
}

// deliverAll sends events as GitHub would on redelivery: each copy has its
// own delivery id, and the bot must treat them all alike.
func (e *env) deliverAll(events ...ghsim.Event) {
	e.t.Helper()
	for _, ev := range events {
		_, err := e.s.Deliver(e.ctx, ev)
		e.must(err)
	}
}

// TestProductionAndTestsUnderFaults: a merge delivered three times while the
// clouds and GitHub fail a share of calls still deploys the merge everywhere
// once, runs each test stage once to a conclusion, and leaves no ephemeral
// test branch.
func TestProductionAndTestsUnderFaults(t *testing.T) {
	e := start(t)
	sb := e.s.Sandbox
	sb.Neon.Faults().Set(
		fault.Rule{Rate: 0.08, Status: http.StatusServiceUnavailable},
		fault.Rule{Rate: 0.06, Status: http.StatusLocked},
		fault.Rule{Method: http.MethodGet, Rate: 0.05, Reset: true},
	)
	sb.Cloudflare.Faults().Set(fault.Rule{Rate: 0.1, Status: http.StatusServiceUnavailable})
	sb.GitHub.Faults().Set(
		fault.Rule{Method: http.MethodGet, Path: "/repos/", Rate: 0.2, Status: http.StatusBadGateway},
		fault.Rule{Method: http.MethodPatch, Rate: 0.2, Status: http.StatusServiceUnavailable},
	)
	sha, err := e.gh.Commit(demo.Repo, "main", map[string]string{"web/src/m.js": "1\n"}, "Merge")
	e.must(err)
	ev, err := e.gh.PushEvent(demo.Repo, "main")
	e.must(err)
	e.deliverAll(ev, ev, ev)
	e.idle()
	sb.Neon.Faults().Set()
	sb.Cloudflare.Faults().Set()
	sb.GitHub.Faults().Set()

	for w, h := range prodHosts {
		if got := e.live(h); got != sha {
			t.Errorf("production %s serves %.7q, want %.7s", w, got, sha)
		}
	}
	prod, stages := 0, map[string]string{}
	for _, c := range e.gh.Snapshot().CheckRuns {
		switch {
		case c.Name == "deploybot/production" && c.HeadSHA == sha:
			prod++
			if c.Conclusion != "success" && c.Conclusion != "skipped" {
				t.Errorf("production check run concluded %q", c.Conclusion)
			}
		case strings.HasPrefix(c.Name, "deploybot/test: "):
			if c.Status != "completed" {
				t.Errorf("%s left %s", c.Name, c.Status)
			}
			if _, dup := stages[c.Name]; dup {
				t.Errorf("%s ran twice for one merge delivered three times", c.Name)
			}
			stages[c.Name] = c.Conclusion
		}
	}
	if prod != 1 {
		t.Errorf("%d production check runs for one merge delivered three times, want 1", prod)
	}
	if len(stages) == 0 {
		t.Error("no test check runs")
	}
	for _, b := range e.s.Resources().Branches {
		if strings.HasPrefix(b, "push-") {
			t.Errorf("test branch %s left behind", b)
		}
	}
	t.Logf("test stages: %v", stages)
}

// TestCommandsUnderFaults: each comment is delivered three times (under
// distinct delivery ids) while the clouds and GitHub fail a share of calls.
// Every command is still carried out exactly once, with one set of
// reactions, and the PRs end in the state the last command asked for.
func TestCommandsUnderFaults(t *testing.T) {
	e := start(t)
	e.must(e.gh.SetPermission(demo.Repo, "ada", "admin"))
	e.must(e.gh.SetPermission(demo.Repo, "reo", "read"))
	sb := e.s.Sandbox
	e.injectFaults()
	// sayThrice posts a comment and delivers it three times.
	sayThrice := func(pr int, user, body string) int64 {
		t.Helper()
		id, err := e.gh.AddComment(demo.Repo, pr, user, body)
		e.must(err)
		ev, err := e.gh.IssueCommentEvent(demo.Repo, id)
		e.must(err)
		e.deliverAll(ev, ev, ev)
		e.idle()
		return id
	}
	expectReactions := func(comment int64, want string) {
		t.Helper()
		if got := strings.Join(e.reactions(comment), ","); got != want {
			t.Errorf("reactions %q, want %q", got, want)
		}
	}
	liveEverywhere := func(pr int) string {
		t.Helper()
		web, auth, api := e.live(host("web", pr)), e.live(host("auth", pr)), e.live(host("api", pr))
		if web != auth || web != api {
			t.Errorf("PR #%d: web %.7s auth %.7s api %.7s differ", pr, web, auth, api)
		}
		return web
	}

	pr, sha := e.open("feature/commands-under-faults", map[string]string{"web/src/c.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	if got := liveEverywhere(pr); got != sha {
		t.Fatalf("preview serves %.7q after open, want %.7s", got, sha)
	}
	runsBefore := e.checkRunsOf(sha)

	c := sayThrice(pr, "ada", "/redeploy --reset-db")
	expectReactions(c, "eyes,rocket")
	if t.Failed() {
		t.Logf("comment after /redeploy:\n%s\nsteps:\n%s", e.comment(pr), e.stepsOf(pr))
	}
	if n := e.checkRunsOf(sha) - runsBefore; n != 1 {
		t.Errorf("one /redeploy delivered three times made %d new check runs, want 1", n)
	}

	c = sayThrice(pr, "reo", "/destroy")
	expectReactions(c, "confused")
	if r := e.replies(pr); len(r) != 0 {
		t.Errorf("a refused command delivered three times: replies %q, want none (a 😕 only)", r)
	}
	if got := liveEverywhere(pr); got != sha {
		t.Errorf("a reader's /destroy changed the preview: serves %.7q", got)
	}

	c = sayThrice(pr, "ada", "/destroy")
	expectReactions(c, "eyes,rocket")
	if got := liveEverywhere(pr); got != "" {
		t.Errorf("after /destroy the preview still serves %.7s", got)
	}
	if cm := e.comment(pr); !strings.Contains(cm, "🗑️") {
		t.Errorf("comment after /destroy:\n%s", cm)
	}

	c = sayThrice(pr, "ada", "/deploy")
	expectReactions(c, "eyes,rocket")
	if got := liveEverywhere(pr); got != sha {
		t.Errorf("after /deploy the preview serves %.7q, want %.7s", got, sha)
	}

	forkSHA, err := e.gh.Commit(demo.Repo, "fork/commands-under-faults", map[string]string{"web/src/c.js": "fork\n"}, "fork")
	e.must(err)
	fork, err := e.gh.OpenPR(demo.Repo, "fork/commands-under-faults", "main", "From a fork", true, false)
	e.must(err)
	e.event(fork, "opened")
	e.idle()
	// The approval names the commit: a plain /deploy needs the status
	// comment to have shown the head seconds before, and here it is the
	// same second.
	c = sayThrice(fork, "ada", "/deploy "+forkSHA)
	expectReactions(c, "eyes,rocket")
	if got := liveEverywhere(fork); got != forkSHA {
		t.Errorf("approved fork serves %.7q, want %.7s", got, forkSHA)
	}

	for _, n := range []int{pr, fork} {
		_, err := e.gh.ClosePR(demo.Repo, n, false)
		e.must(err)
		e.event(n, "closed")
	}
	e.idle()
	sb.Neon.Faults().Set()
	sb.Cloudflare.Faults().Set()
	sb.GitHub.Faults().Set()
	e.expectNothingLeft(pr)
	for _, cr := range e.gh.Snapshot().CheckRuns {
		if cr.Status != "completed" {
			t.Errorf("check run %d (%s) left %s", cr.ID, cr.HeadSHA[:7], cr.Status)
		}
	}
	injected := sb.Neon.Snapshot().FaultsInjected + sb.Cloudflare.Snapshot().FaultsInjected + sb.GitHub.Snapshot().FaultsInjected
	if injected < 5 {
		t.Errorf("only %d faults injected: the test did not test much", injected)
	}
	t.Logf("%d faults injected", injected)
}

// stepsOf lists the steps of pr's runs with their status and log tail, for
// failure messages.
func (e *env) stepsOf(pr int) string {
	e.t.Helper()
	rows, err := e.s.App.Pool.Query(e.ctx, `
		SELECT r.id, s.name, s.status, s.error || E'\\n' || s.log_tail FROM run_steps s JOIN runs r ON r.id = s.run_id
		WHERE r.pr_number = $1 ORDER BY r.id, s.started_at NULLS LAST`, pr)
	e.must(err)
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id int64
		var name, status, log string
		e.must(rows.Scan(&id, &name, &status, &log))
		fmt.Fprintf(&b, "run %d %s %s\n", id, name, status)
		if status == "failed" {
			fmt.Fprintf(&b, "    %s\n", strings.ReplaceAll(strings.TrimSpace(log), "\n", "\n    "))
		}
	}
	e.must(rows.Err())
	return b.String()
}

// TestLostCreateResponses: GitHub creates what the bot asked for but the
// answer is lost (a 502 after the fact) for a share of its POSTs — check
// runs, the status comment, deployments, reactions. The bot must still end
// with every check run it started concluded, one status comment, and the
// PR's deployments inactive once it is closed.
func TestLostCreateResponses(t *testing.T) {
	e := start(t)
	sb := e.s.Sandbox
	sb.GitHub.Faults().Set(
		fault.Rule{Method: http.MethodPost, Path: "/repos/", Rate: 0.5, Status: http.StatusBadGateway, AfterServe: true},
	)
	pr, _ := e.open("feature/lost-creates", map[string]string{"web/src/l.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	sha2 := e.push(pr, map[string]string{"web/src/l.js": "2\n"})
	e.event(pr, "synchronize")
	e.idle()
	if got := e.live(host("web", pr)); got != sha2 {
		t.Errorf("preview serves %.7q, want %.7s", got, sha2)
	}
	if c := e.comment(pr); !strings.Contains(c, "✅ Preview ready for `"+sha2[:7]+"`") {
		t.Errorf("comment:\n%s", c)
	}
	_, err := e.gh.ClosePR(demo.Repo, pr, false)
	e.must(err)
	e.event(pr, "closed")
	e.idle()
	sb.GitHub.Faults().Set()
	e.expectNothingLeft(pr)
	snap := e.gh.Snapshot()
	for _, c := range snap.CheckRuns {
		if c.Status != "completed" {
			t.Errorf("check run %d (%s@%.7s) left %s", c.ID, c.Name, c.HeadSHA, c.Status)
		}
	}
	for _, d := range snap.Deployments {
		state := "none"
		if n := len(d.Statuses); n > 0 {
			state = d.Statuses[n-1].State
		}
		if state != "inactive" {
			t.Errorf("deployment %d (%s@%.7s) left %s after the close", d.ID, d.Environment, d.SHA, state)
		}
	}
	if c := e.comment(pr); !strings.Contains(c, "🗑️ Preview destroyed") {
		t.Errorf("comment after close:\n%s", c)
	}
	t.Logf("%d lost responses", snap.FaultsInjected)
}
