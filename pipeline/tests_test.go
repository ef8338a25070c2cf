package pipeline_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// These tests push branches of the sample repository, whose pipeline file
// (on main) has three test stages: static and unit, then integration on an
// ephemeral database branch. They check what a developer sees: one check
// run per stage on the pushed commit, its conclusion and annotations, and
// that no database branch outlives its run.

// pushBranch commits files to branch and delivers the push event.
func (e *env) pushBranch(branch, message string, files map[string]string) string {
	e.t.Helper()
	sha, err := e.gh.Commit(demo.Repo, branch, files, message)
	e.must(err)
	ev, err := e.gh.PushEvent(demo.Repo, branch)
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
	return sha
}

// stageChecks maps each stage to the conclusions (or statuses, while
// unfinished) of its check runs on sha, oldest first.
func (e *env) stageChecks(sha string) map[string][]string {
	out := map[string][]string{}
	for _, c := range e.gh.Snapshot().CheckRuns {
		stage, ok := strings.CutPrefix(c.Name, "deploybot/test: ")
		if c.HeadSHA != sha || !ok {
			continue
		}
		v := c.Conclusion
		if v == "" {
			v = c.Status
		}
		out[stage] = append(out[stage], v)
	}
	return out
}

// stageCheck is the newest check run of a stage on sha.
func (e *env) stageCheck(sha, stage string) ghsim.CheckRunState {
	e.t.Helper()
	var found *ghsim.CheckRunState
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.HeadSHA == sha && c.Name == "deploybot/test: "+stage {
			found = &c
		}
	}
	if found == nil {
		e.t.Fatalf("no check run for stage %s on %s", stage, sha[:7])
	}
	return *found
}

// testBranches are the ephemeral Neon branches that exist.
func (e *env) testBranches() []string {
	var out []string
	for _, b := range e.s.Resources().Branches {
		if strings.HasPrefix(b, "push-") {
			out = append(out, b)
		}
	}
	return out
}

type stepTimes struct {
	status            string
	started, finished time.Time
}

// steps are the steps of the newest test run of sha.
func (e *env) testSteps(sha string) map[string]stepTimes {
	e.t.Helper()
	rows, err := e.s.App.Pool.Query(e.ctx, `
		SELECT s.name, s.status, coalesce(s.started_at, 'epoch'), coalesce(s.finished_at, 'epoch') FROM run_steps s
		WHERE s.run_id = (SELECT max(id) FROM runs WHERE kind = 'test' AND head_sha = $1)`, sha)
	e.must(err)
	defer rows.Close()
	out := map[string]stepTimes{}
	for rows.Next() {
		var name string
		var st stepTimes
		e.must(rows.Scan(&name, &st.status, &st.started, &st.finished))
		out[name] = st
	}
	e.must(rows.Err())
	return out
}

// runStatuses are the statuses of the test runs of sha, oldest first.
func (e *env) runStatuses(sha string) []string {
	e.t.Helper()
	rows, err := e.s.App.Pool.Query(e.ctx, `SELECT status FROM runs WHERE kind = 'test' AND head_sha = $1 ORDER BY id`, sha)
	e.must(err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		e.must(rows.Scan(&s))
		out = append(out, s)
	}
	return out
}

func TestPushRunsStagesInOrder(t *testing.T) {
	e := start(t)
	// The integration stage prints its DATABASE_URL: the output must show it
	// masked.
	files, err := e.s.SampleFiles()
	e.must(err)
	integration := files["tests/integration.sh"] + "echo \"connected to $DATABASE_URL\"\n"
	sha := e.pushBranch("feature/tests", "Add a page", map[string]string{
		"web/src/page.js":      "export const page = 1;\n",
		"tests/integration.sh": integration,
	})
	e.idle()

	got := e.stageChecks(sha)
	want := map[string][]string{"static": {"success"}, "unit": {"success"}, "integration": {"success"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("check runs: %v, want %v", got, want)
	}
	if c := e.stageCheck(sha, "integration"); !strings.HasPrefix(c.OutputTitle, "Passed in ") || c.SummaryBytes == 0 || c.TextBytes == 0 {
		t.Errorf("integration check run output: %+v", c)
	}

	// Stages ran as a graph: integration after both of its needs and the
	// migration; static and unit did not wait for the database.
	steps := e.testSteps(sha)
	for _, need := range []string{"static", "unit", "setup:migrate"} {
		if !steps["integration"].started.After(steps[need].finished) && !steps["integration"].started.Equal(steps[need].finished) {
			t.Errorf("integration started %s, before %s finished %s", steps["integration"].started, need, steps[need].finished)
		}
	}
	for _, s := range []string{"static", "unit"} {
		if !steps[s].started.Before(steps["setup:migrate"].finished) {
			t.Errorf("%s waited for the migration (started %s, migration finished %s)", s, steps[s].started, steps["setup:migrate"].finished)
		}
	}

	var logTail string
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT log_tail FROM run_steps s JOIN runs r ON r.id = s.run_id
		WHERE r.head_sha = $1 AND s.name = 'integration'`, sha).Scan(&logTail))
	if !strings.Contains(logTail, "users table works on push-feature-tests-"+sha[:7]) || !strings.Contains(logTail, "connected to ***") || strings.Contains(logTail, "postgres://") {
		t.Errorf("integration log:\n%s", logTail)
	}
	if left := e.testBranches(); len(left) != 0 {
		t.Errorf("ephemeral branches left: %v", left)
	}
	if got := e.runStatuses(sha); !slices.Equal(got, []string{"succeeded"}) {
		t.Errorf("runs: %v", got)
	}
	// A stage's Details is its step on the run's page.
	var run int64
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT id FROM runs WHERE kind = 'test' AND head_sha = $1`, sha).Scan(&run))
	if got, want := e.stageCheck(sha, "integration").DetailsURL, fmt.Sprintf("%s/runs/%d#step-integration", e.s.BotURL, run); got != want {
		t.Errorf("the integration stage's details_url is %q, want %q", got, want)
	}
}

// TestFailingStage: a failing stage fails its check run with annotations on
// the lines its output names, the stage that needs it is skipped, the
// others still pass, and the database branch is gone.
func TestFailingStage(t *testing.T) {
	e := start(t)
	sha := e.pushBranch("feature/debug", "Debug the page", map[string]string{
		"web/src/debug.js": "export const debug = () => {\n  console.log('here');\n  debugger;\n};\n",
	})
	e.idle()

	got := e.stageChecks(sha)
	want := map[string][]string{"static": {"failure"}, "unit": {"success"}, "integration": {"skipped"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("check runs: %v, want %v", got, want)
	}
	static := e.stageCheck(sha, "static")
	if static.Annotations != 2 || static.OutputTitle != "Failed with exit code 1" {
		t.Errorf("static check run: %d annotations, title %q; want 2 (one per line)", static.Annotations, static.OutputTitle)
	}
	if c := e.stageCheck(sha, "integration"); c.OutputTitle != "Skipped: static failed" {
		t.Errorf("integration title %q", c.OutputTitle)
	}
	if left := e.testBranches(); len(left) != 0 {
		t.Errorf("ephemeral branches left after a failure: %v", left)
	}
	if got := e.runStatuses(sha); !slices.Equal(got, []string{"failed"}) {
		t.Errorf("runs: %v", got)
	}
}

// TestFailingMigration: a migration that breaks fails the database stages
// (they could not be tested), not the others.
func TestFailingMigration(t *testing.T) {
	e := start(t)
	sha := e.pushBranch("feature/schema", "Break the schema", map[string]string{
		"migrations/002_bad.sql": "CREATE TABLE broken (;\n",
	})
	e.idle()
	got := e.stageChecks(sha)
	want := map[string][]string{"static": {"success"}, "unit": {"success"}, "integration": {"failure"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("check runs: %v, want %v", got, want)
	}
	if c := e.stageCheck(sha, "integration"); c.OutputTitle != "Setup failed: the migration failed" || c.TextBytes == 0 {
		t.Errorf("integration check run: %+v", c)
	}
	if left := e.testBranches(); len(left) != 0 {
		t.Errorf("ephemeral branches left: %v", left)
	}
}

func TestSkipCI(t *testing.T) {
	e := start(t)
	for i, msg := range []string{"Fix typo [skip ci]", "[CI SKIP] docs"} {
		sha := e.pushBranch(fmt.Sprintf("docs/%d", i), msg, map[string]string{"README.md": msg + "\n"})
		e.idle()
		if got := e.stageChecks(sha); len(got) != 0 {
			t.Errorf("%q: check runs %v", msg, got)
		}
		if got := e.runStatuses(sha); !slices.Equal(got, []string{"skipped"}) {
			t.Errorf("%q: runs %v, want one skipped", msg, got)
		}
	}
	if b := e.s.Resources().Branches; len(b) != 1 {
		t.Errorf("Neon branches %v, want only production", b)
	}
}

// TestPipelineFileFromDefaultBranch: a push cannot choose what runs; the
// stages come from main's pipeline file.
func TestPipelineFileFromDefaultBranch(t *testing.T) {
	e := start(t)
	files, err := e.s.SampleFiles()
	e.must(err)
	evil := strings.Replace(files[".github/deploybot.yml"], "run: sh tests/unit.sh", "run: echo pwned", 1)
	evil += "    - name: extra\n      run: echo extra\n"
	sha := e.pushBranch("feature/evil", "Change the pipeline", map[string]string{".github/deploybot.yml": evil})
	e.idle()
	got := e.stageChecks(sha)
	if _, ok := got["extra"]; ok || len(got) != 3 {
		t.Fatalf("check runs %v: the push's own pipeline file was used", got)
	}
	var logTail string
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT log_tail FROM run_steps s JOIN runs r ON r.id = s.run_id
		WHERE r.head_sha = $1 AND s.name = 'unit'`, sha).Scan(&logTail))
	if strings.Contains(logTail, "pwned") || !strings.Contains(logTail, "ok    web") {
		t.Errorf("unit ran something else:\n%s", logTail)
	}
}

// TestNewerPushCancelsOlderRun: the unit stage of the first commit never
// ends by itself; the next push to the branch cancels that run (its
// commands killed, its check runs concluded, its database branch deleted)
// and tests the new commit.
func TestNewerPushCancelsOlderRun(t *testing.T) {
	e := start(t)
	sha1 := e.pushBranch("feature/slow", "Slow tests", map[string]string{"tests/unit.sh": "sleep 600\n"})
	e.waitForStep("unit")
	files, err := e.s.SampleFiles()
	e.must(err)
	sha2 := e.pushBranch("feature/slow", "Fast tests", map[string]string{"tests/unit.sh": files["tests/unit.sh"]})
	e.idle()

	old := e.stageChecks(sha1)
	if fmt.Sprint(old["unit"]) != "[cancelled]" || fmt.Sprint(old["integration"]) != "[cancelled]" {
		t.Errorf("check runs of the superseded commit: %v", old)
	}
	for stage, cs := range old {
		if len(cs) != 1 || (cs[0] != "cancelled" && cs[0] != "success") {
			t.Errorf("stage %s of the superseded commit: %v", stage, cs)
		}
	}
	newer := e.stageChecks(sha2)
	want := map[string][]string{"static": {"success"}, "unit": {"success"}, "integration": {"success"}}
	if fmt.Sprint(newer) != fmt.Sprint(want) {
		t.Errorf("check runs of the new commit: %v, want %v", newer, want)
	}
	if got := e.runStatuses(sha1); !slices.Equal(got, []string{"cancelled"}) {
		t.Errorf("runs of the old commit: %v", got)
	}
	if left := e.testBranches(); len(left) != 0 {
		t.Errorf("ephemeral branches left: %v", left)
	}
}

// TestPushesInQuickSuccession: while a slow run holds its branch, two more
// pushes arrive. The middle one waits (its job snoozes) and is cancelled by
// the newest before it ever runs; no run is left queued, only the newest
// commit is tested to the end.
func TestPushesInQuickSuccession(t *testing.T) {
	e := start(t)
	slow := map[string]string{"tests/unit.sh": "sleep 600\n"}
	sha1 := e.pushBranch("feature/busy", "Slow tests", slow)
	e.waitForStep("unit")
	files, err := e.s.SampleFiles()
	e.must(err)
	sha2 := e.pushBranch("feature/busy", "Still slow", map[string]string{"tests/unit.sh": "sleep 601\n"})
	sha3 := e.pushBranch("feature/busy", "Fast tests", map[string]string{"tests/unit.sh": files["tests/unit.sh"]})
	e.idle()

	if got := e.runStatuses(sha1); !slices.Equal(got, []string{"cancelled"}) {
		t.Errorf("runs of the first commit: %v", got)
	}
	// Cancelled by the newest push, or skipped when its job started after
	// the newest commit was pushed (it was not the branch's head any more).
	if got := e.runStatuses(sha2); !slices.Equal(got, []string{"cancelled"}) && !slices.Equal(got, []string{"skipped"}) {
		t.Errorf("runs of the middle commit: %v, want one cancelled or skipped", got)
	}
	for stage, cs := range e.stageChecks(sha2) {
		for _, c := range cs {
			if c != "cancelled" {
				t.Errorf("stage %s of the middle commit concluded %s", stage, c)
			}
		}
	}
	if got := e.runStatuses(sha3); !slices.Equal(got, []string{"succeeded"}) {
		t.Errorf("runs of the newest commit: %v", got)
	}
	var open int
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT count(*) FROM runs WHERE kind = 'test' AND status IN ('queued', 'running')`).Scan(&open))
	if open != 0 {
		t.Errorf("%d test runs left queued or running", open)
	}
	if left := e.testBranches(); len(left) != 0 {
		t.Errorf("ephemeral branches left: %v", left)
	}
}

// TestLatePushDelivery: two pushes to a branch whose deliveries arrive in
// the wrong order. The newer commit is tested; the late delivery of the
// older one tests nothing and cancels nothing.
func TestLatePushDelivery(t *testing.T) {
	e := start(t)
	sha1, err := e.gh.Commit(demo.Repo, "feature/late", map[string]string{"web/src/l.js": "1\n"}, "First")
	e.must(err)
	first, err := e.gh.PushEvent(demo.Repo, "feature/late")
	e.must(err)
	sha2, err := e.gh.Commit(demo.Repo, "feature/late", map[string]string{"web/src/l.js": "2\n"}, "Second")
	e.must(err)
	second, err := e.gh.PushEvent(demo.Repo, "feature/late")
	e.must(err)
	e.deliverAll(second)
	e.idle()
	e.deliverAll(first)
	e.idle()

	if got := e.runStatuses(sha2); !slices.Equal(got, []string{"succeeded"}) {
		t.Errorf("runs of the newer commit: %v, want one succeeded", got)
	}
	if got := e.runStatuses(sha1); !slices.Equal(got, []string{"skipped"}) {
		t.Errorf("runs of the older commit delivered late: %v, want one skipped", got)
	}
	if got := e.stageChecks(sha1); len(got) != 0 {
		t.Errorf("the late push made check runs: %v", got)
	}
}

// TestRerunFailedStage: "Re-run" on a failed stage's check run runs that
// stage again at the same commit (here a flaky test that passes the second
// time), and only that stage.
func TestRerunFailedStage(t *testing.T) {
	e := start(t)
	marker := filepath.Join(e.shared, "flake-fixed")
	flaky := fmt.Sprintf("if [ ! -e %q ]; then echo 'tests/unit.sh:1: error: flaky'; exit 1; fi\necho 'ok now'\n", marker)
	sha := e.pushBranch("feature/flaky", "Flaky", map[string]string{"tests/unit.sh": flaky})
	e.idle()
	if got := e.stageChecks(sha); fmt.Sprint(got["unit"]) != "[failure]" || fmt.Sprint(got["integration"]) != "[skipped]" {
		t.Fatalf("first run: %v", got)
	}
	unit := e.stageCheck(sha, "unit")
	if unit.Annotations != 1 {
		t.Errorf("unit failure has %d annotations, want 1", unit.Annotations)
	}

	e.must(os.WriteFile(marker, nil, 0o600))
	ev, err := e.gh.CheckRunEvent(demo.Repo, unit.ID, "rerequested", "")
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
	e.idle()
	got := e.stageChecks(sha)
	want := map[string][]string{"static": {"success"}, "unit": {"failure", "success"}, "integration": {"skipped"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after re-run: %v, want %v", got, want)
	}
	if got := e.runStatuses(sha); !slices.Equal(got, []string{"failed", "succeeded"}) {
		t.Errorf("runs: %v", got)
	}

	// "Re-run all checks" runs every stage again.
	e.deliverCheckSuite(sha, "feature/flaky", "rerequested")
	e.idle()
	got = e.stageChecks(sha)
	want = map[string][]string{"static": {"success", "success"}, "unit": {"failure", "success", "success"}, "integration": {"skipped", "success"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after re-running the suite: %v, want %v", got, want)
	}
	// GitHub's "requested" on each push needs nothing more: no new run.
	e.deliverCheckSuite(sha, "feature/flaky", "requested")
	e.idle()
	if n := len(e.runStatuses(sha)); n != 3 {
		t.Errorf("%d runs after check_suite requested, want still 3", n)
	}
	if left := e.testBranches(); len(left) != 0 {
		t.Errorf("ephemeral branches left: %v", left)
	}
}

// TestRerunNeedsPermission: a reader's "Re-run" starts nothing.
func TestRerunNeedsPermission(t *testing.T) {
	e := start(t)
	sha := e.pushBranch("feature/read", "Change", map[string]string{"tests/unit.sh": "exit 1\n"})
	e.idle()
	e.must(e.gh.SetPermission(demo.Repo, demo.Owner, "read"))
	ev, err := e.gh.CheckRunEvent(demo.Repo, e.stageCheck(sha, "unit").ID, "rerequested", "")
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
	e.deliverCheckSuite(sha, "feature/read", "rerequested")
	e.idle()
	if got := e.stageChecks(sha); len(got["unit"]) != 1 || len(got["static"]) != 1 {
		t.Errorf("a reader re-ran stages: %v", got)
	}
}

// TestForkTestsAfterApproval: a fork's code is tested once a maintainer
// approved its head, with a database branch holding the schema only.
func TestForkTestsAfterApproval(t *testing.T) {
	e := start(t)
	e.must(e.gh.SetPermission(demo.Repo, "ada", "admin"))
	sha, err := e.gh.Commit(demo.Repo, "fork/feature", map[string]string{"web/src/f.js": "export const f = 1;\n"}, "From a fork")
	e.must(err)
	pr, err := e.gh.OpenPR(demo.Repo, "fork/feature", "main", "From a fork", true, false)
	e.must(err)
	e.event(pr, "opened")
	e.idle()
	if got := e.stageChecks(sha); len(got) != 0 {
		t.Fatalf("an unapproved fork was tested: %v", got)
	}
	e.say(pr, "ada", "/deploy "+sha)
	e.idle()
	want := map[string][]string{"static": {"success"}, "unit": {"success"}, "integration": {"success"}}
	if got := e.stageChecks(sha); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("approved fork head: %v, want %v", got, want)
	}
	var branch string
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT branch FROM runs WHERE kind = 'test' AND head_sha = $1`, sha).Scan(&branch))
	if branch != fmt.Sprintf("pull:%d", pr) {
		t.Errorf("fork run keyed %q", branch)
	}
	// Another sync of the same approved head does not test it again.
	e.event(pr, "synchronize")
	e.idle()
	if n := len(e.runStatuses(sha)); n != 1 {
		t.Errorf("%d test runs of the approved head, want 1", n)
	}
	if left := e.testBranches(); len(left) != 0 {
		t.Errorf("ephemeral branches left: %v", left)
	}
}

// deliverCheckSuite sends a check_suite event for sha, built from a push
// event's repository, installation and sender (ghsim has no builder for it).
func (e *env) deliverCheckSuite(sha, branch, action string) {
	e.t.Helper()
	push, err := e.gh.PushEvent(demo.Repo, branch)
	e.must(err)
	var env map[string]any
	e.must(json.Unmarshal(push.Payload, &env))
	payload := map[string]any{
		"action":       action,
		"check_suite":  map[string]any{"id": 4242, "head_sha": sha, "head_branch": branch, "pull_requests": []any{}},
		"repository":   env["repository"],
		"installation": env["installation"],
		"sender":       env["sender"],
	}
	body, err := json.Marshal(payload)
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ghsim.Event{Name: "check_suite", Action: action, Payload: body})
	e.must(err)
}

// commitMain replaces the sample pipeline file on main.
func (e *env) commitMain(edit func(string) string) {
	e.t.Helper()
	files, err := e.s.SampleFiles()
	e.must(err)
	_, err = e.gh.Commit(demo.Repo, "main", map[string]string{".github/deploybot.yml": edit(files[".github/deploybot.yml"])}, "pipeline")
	e.must(err)
}

// TestStageTimeout: a stage that outlives its timeout is killed and its
// check run says it timed out; the stage that needs it is skipped.
func TestStageTimeout(t *testing.T) {
	e := start(t)
	e.commitMain(func(f string) string {
		return strings.Replace(f, "run: sh tests/unit.sh\n      timeout: 5m", "run: sh tests/unit.sh\n      timeout: 1s", 1)
	})
	sha := e.pushBranch("feature/hang", "Hang", map[string]string{"tests/unit.sh": "echo starting\nsleep 60\n"})
	e.idle()
	got := e.stageChecks(sha)
	want := map[string][]string{"static": {"success"}, "unit": {"timed_out"}, "integration": {"skipped"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("check runs: %v, want %v", got, want)
	}
	if c := e.stageCheck(sha, "unit"); c.OutputTitle != "Timed out after 1s" {
		t.Errorf("unit title %q", c.OutputTitle)
	}
	if steps := e.testSteps(sha); steps["unit"].finished.Sub(steps["unit"].started) > 30*time.Second {
		t.Errorf("the stage ran %s despite its 1s timeout", steps["unit"].finished.Sub(steps["unit"].started))
	}
}

// TestBadPipelineFileFailsTests: a pipeline file on main that cannot be
// read is reported on one check run, and nothing runs.
func TestBadPipelineFileFailsTests(t *testing.T) {
	e := start(t)
	e.commitMain(func(f string) string { return strings.Replace(f, "needs: [static, unit]", "needs: [static, unti]", 1) })
	sha := e.pushBranch("feature/x", "Change", map[string]string{"web/src/x.js": "1\n"})
	e.idle()
	var found []ghsim.CheckRunState
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.HeadSHA == sha {
			found = append(found, c)
		}
	}
	if len(found) != 1 || found[0].Name != "deploybot/test" || found[0].Conclusion != "failure" || found[0].OutputTitle != "The pipeline file has errors" {
		t.Fatalf("check runs: %+v", found)
	}
	if got := e.runStatuses(sha); !slices.Equal(got, []string{"failed"}) {
		t.Errorf("runs: %v", got)
	}
}

// TestBranchNameIsData: a branch name reaches the commands only as the
// value of DEPLOYBOT_BRANCH, never as shell code, and the commands get
// none of the bot's own secrets.
func TestBranchNameIsData(t *testing.T) {
	e := start(t)
	branch := "x/$(echo${IFS}INJECTED)`echo${IFS}INJECTED`"
	sha := e.pushBranch(branch, "Odd name", map[string]string{
		"tests/unit.sh": "echo \"branch=[$DEPLOYBOT_BRANCH]\"\nenv | sort\n",
	})
	e.idle()
	if got := e.stageChecks(sha); fmt.Sprint(got["unit"]) != "[success]" || fmt.Sprint(got["integration"]) != "[success]" {
		t.Fatalf("check runs: %v", got)
	}
	var logTail string
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT log_tail FROM run_steps s JOIN runs r ON r.id = s.run_id
		WHERE r.head_sha = $1 AND s.name = 'unit'`, sha).Scan(&logTail))
	if !strings.Contains(logTail, "branch=["+branch+"]") || strings.Contains(logTail, "=[x/INJECTED") {
		t.Errorf("the branch name was not passed as data:\n%s", logTail)
	}
	stripe, _, _ := e.s.Config.Repositories[demo.Repo].SecretIn("test", "STRIPE_SECRET_KEY")
	for _, secret := range []string{stripe.Value(), e.s.Config.MasterKey.Value(), e.s.Config.GitHub.App.WebhookSecret.Value(), "sandbox-neon-key"} {
		if strings.Contains(logTail, secret) {
			t.Errorf("a bot secret reached the stage's environment:\n%s", logTail)
		}
	}
	if !strings.Contains(logTail, "CI=true") || !strings.Contains(logTail, "DEPLOYBOT_SHA="+sha) || strings.Contains(logTail, "DATABASE_URL") {
		t.Errorf("stage environment:\n%s", logTail)
	}
	if left := e.testBranches(); len(left) != 0 {
		t.Errorf("ephemeral branches left: %v", left)
	}
}

// TestTestBranchExpires: a test run's ephemeral branch carries Neon's
// expires_at a few hours ahead, so that Neon deletes it even if the bot
// dies for good before the run (or the sweeper) can.
func TestTestBranchExpires(t *testing.T) {
	e := start(t)
	files, err := e.s.SampleFiles()
	e.must(err)
	release := filepath.Join(e.shared, "release")
	hold := "while [ ! -f '" + release + "' ]; do sleep 0.05; done\n" + files["tests/integration.sh"]
	sha := e.pushBranch("feature/expiry", "Hold the stage", map[string]string{"tests/integration.sh": hold})
	e.waitForStep("integration")
	var expires *time.Time
	for _, b := range e.s.Sandbox.Neon.Snapshot().Projects[0].Branches {
		if strings.HasPrefix(b.Name, "push-") {
			expires = b.ExpiresAt
		}
	}
	if expires == nil || time.Until(*expires) < time.Hour || time.Until(*expires) > 24*time.Hour {
		t.Errorf("the test branch expires at %v, want a few hours from now", expires)
	}
	e.must(os.WriteFile(release, nil, 0o644))
	e.idle()
	if got := e.stageChecks(sha)["integration"]; fmt.Sprint(got) != "[success]" {
		t.Errorf("integration: %v", got)
	}
	if left := e.testBranches(); len(left) != 0 {
		t.Errorf("ephemeral branches left: %v", left)
	}
}
