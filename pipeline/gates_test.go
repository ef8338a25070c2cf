package pipeline_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/demo"
)

// Deploys that wait for tests: preview.needs_tests and
// production.needs_tests in the pipeline file on main.

// gate adds needs_tests to a section of the sample's pipeline file.
func gate(section, needs string) func(string) string {
	return func(f string) string {
		switch section {
		case "preview":
			return strings.Replace(f, "workers:\n", "preview:\n  needs_tests: "+needs+"\nworkers:\n", 1)
		default:
			return strings.Replace(f, "  needs_tests: all ", "  needs_tests: "+needs+" ", 1)
		}
	}
}

// until waits for cond, checking every 20 ms, for at most the test's
// deadline.
func (e *env) until(what string, cond func() bool) {
	e.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-e.ctx.Done():
			e.t.Fatalf("gave up waiting: %s", what)
		}
	}
}

// rerunStage delivers "Re-run" on a stage's check run of sha.
func (e *env) rerunStage(sha, stage string) {
	e.t.Helper()
	ev, err := e.gh.CheckRunEvent(demo.Repo, e.stageCheck(sha, stage).ID, "rerequested", "")
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
}

// stepStart is when a step of the newest preview or production run of sha
// started.
func (e *env) stepStart(kind, sha, step string) time.Time {
	e.t.Helper()
	var at time.Time
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT coalesce(s.started_at, 'epoch') FROM run_steps s
		WHERE s.name = $3 AND s.run_id = (SELECT max(id) FROM runs WHERE kind = $1 AND head_sha = $2)`, kind, sha, step).Scan(&at))
	return at
}

// openPushed pushes files to a new branch (its tests start) and opens a
// pull request from it, as a developer's first push and PR do.
func (e *env) openPushed(branch string, files map[string]string) (pr int, sha string) {
	e.t.Helper()
	sha = e.pushBranch(branch, "Change", files)
	pr, err := e.gh.OpenPR(demo.Repo, branch, "main", "Change", false, false)
	e.must(err)
	e.event(pr, "opened")
	return pr, sha
}

// TestPreviewWaitsForTests: a gated preview shows that it waits for its
// stage on the comment and the check run, builds meanwhile, and deploys
// once the stage passed.
func TestPreviewWaitsForTests(t *testing.T) {
	e := start(t)
	e.commitMain(gate("preview", "[unit]"))
	release := filepath.Join(e.shared, "release")
	pr, sha := e.openPushed("feature/gated", map[string]string{
		"tests/unit.sh": fmt.Sprintf("while [ ! -e %q ]; do sleep 0.05; done\necho ok\n", release),
	})

	e.until("the comment says the preview waits for tests", func() bool {
		c := e.s.Comments(pr)
		return len(c) == 1 && strings.Contains(c[0], "Preview waiting for tests")
	})
	if c := e.comment(pr); !strings.Contains(c, "Waiting for test stage `unit` on `"+sha[:7]+"`") {
		t.Errorf("comment:\n%s", c)
	}
	if c := e.previewCheck(sha); c.OutputTitle != "Waiting for tests" || c.Status != "in_progress" {
		t.Errorf("preview check run while waiting: %+v", c)
	}
	if got := e.live(host("web", pr)); got != "" {
		t.Errorf("the preview went live (%s) before its tests passed", got)
	}

	e.must(os.WriteFile(release, nil, 0o644))
	e.idle()
	e.expectReady(pr, sha, "once the tests passed")
	unitDone := e.testSteps(sha)["unit"].finished
	if deployed := e.stepStart("preview", sha, "deploy:web"); deployed.Before(unitDone) {
		t.Errorf("deploy:web started at %s, before unit finished at %s", deployed, unitDone)
	}
}

// expectReady fails the test unless sha's preview check run succeeded and
// the web preview serves sha.
func (e *env) expectReady(pr int, sha, when string) {
	e.t.Helper()
	if c := e.previewCheck(sha); c.Conclusion != "success" {
		e.t.Fatalf("%s: preview check run %+v (%s)", when, c, e.failedSteps())
	}
	if got := e.live(host("web", pr)); got != sha {
		e.t.Errorf("%s: web preview serves %q, want %s", when, got, sha)
	}
}

// previewCheck is the newest preview check run of sha.
func (e *env) previewCheck(sha string) (found struct{ Status, Conclusion, OutputTitle string }) {
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.Name == "deploybot/preview" && c.HeadSHA == sha {
			found.Status, found.Conclusion, found.OutputTitle = c.Status, c.Conclusion, c.OutputTitle
		}
	}
	return found
}

// TestFailingTestsHoldBackThePreview: a stage that fails holds the preview
// back (nothing deployed, the reason on the PR); a re-run that passes
// releases it without anyone pushing again.
func TestFailingTestsHoldBackThePreview(t *testing.T) {
	e := start(t)
	e.commitMain(gate("preview", "[unit]"))
	fixed := filepath.Join(e.shared, "fixed")
	pr, sha := e.openPushed("feature/flaky", map[string]string{
		"tests/unit.sh": fmt.Sprintf("if [ ! -e %q ]; then echo 'tests/unit.sh:1: error: flaky'; exit 1; fi\necho ok\n", fixed),
	})
	e.idle()
	if c := e.previewCheck(sha); c.Conclusion != "failure" || c.OutputTitle != "Held back: a test stage failed" {
		t.Fatalf("preview check run: %+v", c)
	}
	if c := e.comment(pr); !strings.Contains(c, "Step <code>tests</code> failed") || !strings.Contains(c, "test stage `unit` did not pass on "+sha[:7]) {
		t.Errorf("comment:\n%s", c)
	}
	if r := e.s.Resources(); len(r.Scripts) != 0 {
		t.Errorf("Workers uploaded although the tests failed: %v", r.Scripts)
	}

	e.must(os.WriteFile(fixed, nil, 0o644))
	e.rerunStage(sha, "unit")
	e.idle()
	e.expectReady(pr, sha, "after the re-run")
}

// TestProductionWaitsForTests: production.needs_tests: all holds a merge
// whose tests fail before anything changes (the migration included); "Re-run
// all checks" that passes deploys it.
func TestProductionWaitsForTests(t *testing.T) {
	e := start(t)
	e.commitMain(gate("production", "all"))
	fixed := filepath.Join(e.shared, "fixed")
	sha := e.merge(map[string]string{
		"tests/unit.sh":                  fmt.Sprintf("if [ ! -e %q ]; then exit 1; fi\necho ok\n", fixed),
		"migrations/002_gated.sql":       "CREATE TABLE gated (id int);\n",
		"web/src/production-gate.js":     "1\n",
		"auth/src/production-gate.js":    "1\n",
		"api/src/lib/production-gate.js": "1\n",
	})
	e.idle()
	if got := e.production()[sha]; got != "failure" {
		t.Fatalf("production check run: %q, want failure", got)
	}
	if failed := e.failedSteps(); !strings.Contains(failed, "tests: test stage `unit`, `integration` did not pass") {
		t.Errorf("failed steps: %s", failed)
	}
	if _, ok := e.s.Sandbox.Cloudflare.Script("codex-web"); ok {
		t.Error("production was deployed although its tests failed")
	}
	if e.tableExists("production", "gated") {
		t.Error("the migration ran although the tests failed")
	}

	e.must(os.WriteFile(fixed, nil, 0o644))
	e.deliverCheckSuite(sha, "main", "rerequested")
	e.idle()
	if got := e.production()[sha]; got != "success" {
		t.Fatalf("after re-running the checks: production %q (%s)", got, e.failedSteps())
	}
	expectAll(t, e.liveEverywhere(), sha)
}

// TestPathFilters: a push tests only the stages whose paths it changed; the
// others get a check run "skipped" that says why, and a stage that needed
// one of them runs without it. A later push that changes their files runs
// them.
func TestPathFilters(t *testing.T) {
	e := start(t)
	// The sample's static stage ignores **/*.md; unit gets paths here.
	e.commitMain(func(f string) string {
		return strings.Replace(f, "run: sh tests/unit.sh\n", "run: sh tests/unit.sh\n      paths: [\"web/**\", \"api/**\"]\n", 1)
	})
	docs := e.pushBranch("feature/paths", "Docs", map[string]string{"docs/notes.md": "notes\n"})
	e.idle()
	got := e.stageChecks(docs)
	if want := map[string][]string{"static": {"skipped"}, "unit": {"skipped"}, "integration": {"success"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("a docs-only push: %v, want %v", got, want)
	}
	if c := e.stageCheck(docs, "unit"); c.OutputTitle != "Skipped: no change in its paths" {
		t.Errorf("unit check run: %+v", c)
	}

	code := e.pushBranch("feature/paths", "Code", map[string]string{"web/src/paths.js": "1\n"})
	e.idle()
	got = e.stageChecks(code)
	if want := map[string][]string{"static": {"success"}, "unit": {"success"}, "integration": {"success"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("a push changing web/: %v, want %v", got, want)
	}
}

// TestPathFiltersKeepUnchangedWorkers: a preview rebuilds only the Workers
// whose paths the push changed; the others keep their live version (and
// the comment shows the commit it was built from).
func TestPathFiltersKeepUnchangedWorkers(t *testing.T) {
	e := start(t)
	e.commitMain(func(f string) string {
		return strings.Replace(f, "    script: ecom-api\n", "    script: ecom-api\n    paths: [\"api/**\"]\n", 1)
	})
	pr, first := e.open("feature/filters", map[string]string{"web/src/a.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	if got := e.live(host("api", pr)); got != first {
		t.Fatalf("first deploy: api serves %q, want %s (every Worker deploys the first time)", got, first)
	}

	second := e.push(pr, map[string]string{"web/src/b.js": "2\n"})
	e.event(pr, "synchronize")
	e.idle()
	e.expectReady(pr, second, "second deploy")
	if got := e.live(host("api", pr)); got != first {
		t.Errorf("api serves %q, want %s: nothing under api/ changed", got, first)
	}
	if c := e.comment(pr); !strings.Contains(c, "| ⚙️ | api | ✅ Ready | https://"+host("api", pr)+" | `"+first[:7]+"` |") {
		t.Errorf("comment:\n%s", c)
	}

	third := e.push(pr, map[string]string{"api/src/lib/c.js": "3\n"})
	e.event(pr, "synchronize")
	e.idle()
	if got := e.live(host("api", pr)); got != third {
		t.Errorf("api serves %q after a change under api/, want %s", got, third)
	}
}

// TestSetupRunsOncePerRun: the setup command runs once per run, before the
// builds and the stages, which all see what it installed (each test stage
// in its own copy of the set-up checkout).
func TestSetupRunsOncePerRun(t *testing.T) {
	e := start(t)
	// The sample's setup is scripts/setup.sh: this one counts its runs.
	ran := filepath.Join(e.shared, "setup-runs")
	setup := fmt.Sprintf("mkdir -p node_modules && echo installed > node_modules/.installed\necho \"$DEPLOYBOT_ENVIRONMENT\" >> %q\n", ran)
	needsSetup := "test -f ../node_modules/.installed || { echo 'setup did not run before the build'; exit 1; }\n" + normalBuild
	files := map[string]string{
		"scripts/setup.sh": setup,
		"web/build.sh":     needsSetup,
		"tests/unit.sh":    "test -f node_modules/.installed && echo 'unit sees the setup'\n",
	}
	sha := e.pushBranch("feature/setup", "Setup", files)
	pr, err := e.gh.OpenPR(demo.Repo, "feature/setup", "main", "Setup", false, false)
	e.must(err)
	e.event(pr, "opened")
	e.idle()
	if c := e.previewCheck(sha); c.Conclusion != "success" {
		t.Fatalf("preview: %+v (%s)", c, e.failedSteps())
	}
	if got := e.stageChecks(sha); fmt.Sprint(got["unit"]) != "[success]" || fmt.Sprint(got["integration"]) != "[success]" {
		t.Errorf("stages: %v (%s)", got, e.failedSteps())
	}
	log, err := os.ReadFile(ran)
	e.must(err)
	if got := strings.Fields(string(log)); fmt.Sprint(slices.Sorted(slices.Values(got))) != "[preview test]" {
		t.Errorf("setup ran for %v, want once for the preview and once for the test run", got)
	}
}

// TestWranglerFileDeploys: a Worker whose settings come from its wrangler
// file deploys with them (main, compatibility date, vars, assets), and the
// pipeline file's own vars win.
func TestWranglerFileDeploys(t *testing.T) {
	e := start(t)
	files, err := e.s.SampleFiles()
	e.must(err)
	pipeline := strings.Replace(files[".github/deploybot.yml"], `    dir: web
    build: sh build.sh
    main: dist/index.js
    assets: dist/public      # HTML, CSS and JS, each served with its Content-Type
    compatibility_date: "2025-01-01"
`, `    wrangler: web/wrangler.toml
    build: sh build.sh
    vars: {FROM_PIPELINE: "yes", SHARED: pipeline}
`, 1)
	if pipeline == files[".github/deploybot.yml"] {
		t.Fatal("the sample's web worker is not written as this test expects")
	}
	wrangler := `name = "codex-web"
main = "dist/index.js"
compatibility_date = "2025-01-01"
workers_dev = false

[vars]
FROM_WRANGLER = "yes"
SHARED = "wrangler"

[assets]
directory = "dist/public"
`
	_, err = e.gh.Commit(demo.Repo, "main", map[string]string{".github/deploybot.yml": pipeline, "web/wrangler.toml": wrangler}, "wrangler")
	e.must(err)
	pr, sha := e.open("feature/wrangler", map[string]string{"web/src/w.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	if c := e.previewCheck(sha); c.Conclusion != "success" {
		t.Fatalf("preview: %+v (%s)", c, e.failedSteps())
	}
	vars := e.vars(host("web", pr))
	if vars["FROM_WRANGLER"] != "yes" || vars["FROM_PIPELINE"] != "yes" || vars["SHARED"] != "pipeline" {
		t.Errorf("web vars: %v", vars)
	}
	if st, _ := e.s.Sandbox.Cloudflare.Script(fmt.Sprintf("codex-web-preview-%d", pr)); len(st.Assets) == 0 {
		t.Errorf("the web preview has no assets: %+v", st)
	}
}

// TestSetupCache: setup.cache puts back what the setup command installed
// for the same lockfile, in previews and test runs alike; a new lockfile
// installs again.
func TestSetupCache(t *testing.T) {
	e := start(t)
	e.commitMain(func(f string) string {
		return strings.Replace(f, "setup:\n  run: sh scripts/setup.sh\n", "setup:\n  run: sh scripts/setup.sh\n  cache: {key: [pnpm-lock.yaml], paths: [node_modules]}\n", 1)
	})
	runs := filepath.Join(e.shared, "setup-runs")
	setup := fmt.Sprintf("if [ -f node_modules/.installed ]; then echo \"$DEPLOYBOT_SHA $DEPLOYBOT_ENVIRONMENT reused\" >> %[1]q\n"+
		"else mkdir -p node_modules && echo x > node_modules/.installed && echo \"$DEPLOYBOT_SHA $DEPLOYBOT_ENVIRONMENT installed\" >> %[1]q; fi\n", runs)
	e.pushBranch("feature/cache", "Cache", map[string]string{"scripts/setup.sh": setup, "pnpm-lock.yaml": "lock: 1\n"})
	pr, err := e.gh.OpenPR(demo.Repo, "feature/cache", "main", "Cache", false, false)
	e.must(err)
	e.event(pr, "opened")
	e.idle()

	// A push to the PR: the push's tests and the PR's synchronize.
	push := func(files map[string]string) string {
		sha := e.push(pr, files)
		ev, err := e.gh.PushEvent(demo.Repo, "feature/cache")
		e.must(err)
		_, err = e.s.Deliver(e.ctx, ev)
		e.must(err)
		e.event(pr, "synchronize")
		e.idle()
		return sha
	}
	second := push(map[string]string{"web/src/c.js": "2\n"})
	third := push(map[string]string{"pnpm-lock.yaml": "lock: 2\n"})

	log, err := os.ReadFile(runs)
	e.must(err)
	outcomes := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		f := strings.Fields(line)
		outcomes[f[0]] = append(outcomes[f[0]], f[1]+":"+f[2])
	}
	if got := slices.Sorted(slices.Values(outcomes[second])); fmt.Sprint(got) != "[preview:reused test:reused]" {
		t.Errorf("the second commit (same lockfile): %v, want both runs to reuse the cache (all: %v)", got, outcomes)
	}
	if got := outcomes[third]; !slices.Contains(got, "preview:installed") && !slices.Contains(got, "test:installed") {
		t.Errorf("a new lockfile: %v, want an install", got)
	}
	if c := e.previewCheck(third); c.Conclusion != "success" {
		t.Errorf("preview: %+v (%s)", c, e.failedSteps())
	}
}
