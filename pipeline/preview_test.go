package pipeline_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/sandbox/cfsim"
	"github.com/revelations-studio/deploybot/internal/sandbox/edge"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
	"github.com/revelations-studio/deploybot/pipeline"
)

// These tests drive the whole bot (webhook → job → pipeline → simulated
// clouds) through the sandbox, one PR transition at a time, and check what a
// user would see: the check runs, the one status comment, the Workers live
// at the preview hostnames, and the database branches.

type env struct {
	t   *testing.T
	ctx context.Context
	s   *demo.Stack
	gh  *ghsim.Server
	// shared is a folder the repository's commands see (see StackOptions.Shared).
	shared string
}

func start(t *testing.T) *env { return startWith(t, demo.StackOptions{}) }

// Every end-to-end test runs in parallel with the others: each has its own
// stack (simulators, bot, database); only the PostgreSQL server is shared.
// Most of a test's time is spent waiting on the bot, so two at a time
// halve the package's time even on two cores.
func startWith(t *testing.T, opts demo.StackOptions) *env {
	t.Helper()
	return startWithin(t, opts, 2*time.Minute)
}

// startWithin is startWith for a test that needs more than two minutes.
func startWithin(t *testing.T, opts demo.StackOptions, within time.Duration) *env {
	t.Helper()
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	t.Cleanup(cancel)
	_, dbURL := pgtest.NewDatabaseURL(t)
	opts.AdminURL, opts.DatabaseURL, opts.DataDir = pgtest.ServerURL(t), dbURL, t.TempDir()
	// Repository commands run in a sandbox that sees nothing of the host:
	// this folder is where a test hands them files or reads what they wrote.
	shared := t.TempDir()
	opts.Shared = append(opts.Shared, shared)
	opts.Logger, opts.HealthWithin = zerolog.Nop(), 3*time.Second
	if opts.GitHubMinute == 0 {
		// The sandbox runs in seconds what takes GitHub and the clouds
		// minutes, so a test does in one minute what a team does in ten:
		// GitHub's content-creation limit (80 writes a minute) and the
		// bot's pacing under it run on a minute as short.
		opts.GitHubMinute = 6 * time.Second
	}
	s, err := demo.StartStack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &env{t: t, ctx: ctx, s: s, gh: s.Sandbox.GitHub, shared: shared}
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// open commits files to a new branch and opens a PR from it.
func (e *env) open(branch string, files map[string]string, draft bool) (int, string) {
	e.t.Helper()
	sha, err := e.gh.Commit(demo.Repo, branch, files, "change")
	e.must(err)
	pr, err := e.gh.OpenPR(demo.Repo, branch, "main", "A change", false, draft)
	e.must(err)
	return pr, sha
}

func (e *env) event(pr int, action string) {
	e.t.Helper()
	ev, err := e.gh.PullRequestEvent(demo.Repo, pr, action)
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
}

func (e *env) idle() {
	e.t.Helper()
	e.must(e.s.WaitIdle(e.ctx))
}

func (e *env) push(pr int, files map[string]string) string {
	e.t.Helper()
	sha, err := e.gh.PushPR(demo.Repo, pr, files, "more")
	e.must(err)
	return sha
}

// comment is the PR's one status comment.
func (e *env) comment(pr int) string {
	e.t.Helper()
	comments := e.s.Comments(pr)
	if len(comments) != 1 {
		e.t.Fatalf("PR #%d has %d status comments, want exactly 1: %q", pr, len(comments), comments)
	}
	return comments[0]
}

// checks maps each head SHA's preview check run to its conclusion (or
// status while unfinished).
func (e *env) checks() map[string]string {
	out := map[string]string{}
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.Name != "deploybot/preview" {
			e.t.Errorf("check run %d is named %q", c.ID, c.Name)
		}
		v := c.Conclusion
		if v == "" {
			v = c.Status
		}
		if prev, dup := out[c.HeadSHA]; dup {
			v = prev + "," + v
		}
		out[c.HeadSHA] = v
	}
	return out
}

// live returns the commit the edge serves at host, or "" when nothing is.
func (e *env) live(host string) string {
	site, ok := e.s.Sandbox.Cloudflare.ResolveHost(host, "/")
	if !ok {
		return ""
	}
	return site.Vars["DEPLOYBOT_COMMIT"]
}

func host(worker string, pr int) string {
	prefix := map[string]string{"web": "codex", "auth": "auth", "api": "api"}[worker]
	return fmt.Sprintf("%s-preview-%d.revelations.studio", prefix, pr)
}

// tableExists reports whether table exists on a Neon branch's database.
func (e *env) tableExists(branch, table string) bool {
	e.t.Helper()
	url := e.s.Sandbox.Neon.DatabaseURL(e.s.Sandbox.NeonProject.ID, branch)
	if url == "" {
		e.t.Fatalf("no database for branch %s", branch)
	}
	conn, err := pgx.Connect(e.ctx, url)
	e.must(err)
	defer conn.Close(e.ctx)
	var exists bool
	e.must(conn.QueryRow(e.ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists))
	return exists
}

func (e *env) expectNothingLeft(pr int) {
	e.t.Helper()
	r := e.s.Resources()
	if len(r.Domains) != 0 || len(r.Scripts) != 0 || strings.Join(r.Branches, ",") != "production" {
		e.t.Fatalf("after PR #%d closed: branches %v, scripts %v, domains %v", pr, r.Branches, r.Scripts, r.Domains)
	}
}

// waitForStep waits until a run's step is running; the sandbox's edge is
// made to hold it there, so a test can act "during the deploy".
func (e *env) waitForStep(name string) {
	e.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT count(*) FROM run_steps WHERE name = $1 AND status = 'running'`, name).Scan(&n))
		if n > 0 {
			return
		}
		select {
		case <-tick.C:
		case <-e.ctx.Done():
			e.t.Fatalf("step %s never started", name)
		}
	}
}

func TestOpenPushCloseReopen(t *testing.T) {
	e := start(t)
	pr, sha1 := e.open("feature/a", map[string]string{"migrations/002_orders.sql": "CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY);\n"}, false)
	e.event(pr, "opened")
	e.idle()

	c := e.comment(pr)
	for _, want := range []string{"✅ Preview ready for `" + sha1[:7] + "`", "https://" + host("web", pr), "https://" + host("api", pr), "pr-1 | ✅ Ready"} {
		if !strings.Contains(c, want) {
			t.Errorf("comment lacks %q:\n%s", want, c)
		}
	}
	if got := e.checks()[sha1]; got != "success" {
		t.Errorf("check run of %s: %s", sha1[:7], got)
	}
	if e.live(host("web", pr)) != sha1 || e.live(host("api", pr)) != sha1 {
		t.Errorf("live: web %q, api %q; want %s", e.live(host("web", pr)), e.live(host("api", pr)), sha1)
	}
	// The PR's migration ran on its branch only.
	if !e.tableExists("pr-1", "orders") || !e.tableExists("pr-1", "users") {
		t.Error("migrations did not run on pr-1")
	}
	if e.tableExists("production", "orders") {
		t.Error("the PR's migration changed production")
	}
	// The secrets reached the Worker: configured, generated and the branch URL.
	script, ok := e.s.Sandbox.Cloudflare.Script("ecom-api-preview-1")
	if !ok {
		t.Fatal("no api script")
	}
	if v, _ := e.s.Sandbox.Cloudflare.SecretValue("ecom-api-preview-1", "STRIPE_SECRET_KEY"); !strings.HasPrefix(v, "sk_test_") {
		t.Errorf("STRIPE_SECRET_KEY = %q", v)
	}
	auth1, _ := e.s.Sandbox.Cloudflare.SecretValue("codex-web-preview-1", "BETTER_AUTH_SECRET")
	if dbURL, _ := e.s.Sandbox.Cloudflare.SecretValue("codex-web-preview-1", "DATABASE_URL"); !strings.Contains(dbURL, "postgres") {
		t.Errorf("DATABASE_URL = %q", dbURL)
	}
	_ = script
	deployments := e.gh.Snapshot().Deployments
	if len(deployments) != 1 || deployments[0].Environment != "preview" {
		t.Fatalf("deployments: %+v", deployments)
	}

	// A push rebuilds in place: same comment, same branch, new commit live,
	// the generated secret unchanged.
	sha2 := e.push(pr, map[string]string{"web/src/extra.js": "export {}\n"})
	e.event(pr, "synchronize")
	e.idle()
	if c := e.comment(pr); !strings.Contains(c, "✅ Preview ready for `"+sha2[:7]+"`") {
		t.Errorf("after push:\n%s", c)
	}
	if e.live(host("web", pr)) != sha2 {
		t.Errorf("web serves %q after the push, want %s", e.live(host("web", pr)), sha2)
	}
	if auth2, _ := e.s.Sandbox.Cloudflare.SecretValue("codex-web-preview-1", "BETTER_AUTH_SECRET"); auth2 != auth1 || len(auth1) != 64 {
		t.Errorf("generated secret changed across redeploys: %q → %q", auth1, auth2)
	}
	if !e.tableExists("pr-1", "orders") {
		t.Error("the branch lost its data on redeploy")
	}

	// Close: everything goes, the comment says so.
	_, err := e.gh.ClosePR(demo.Repo, pr, false)
	e.must(err)
	e.event(pr, "closed")
	e.idle()
	e.expectNothingLeft(pr)
	if c := e.comment(pr); !strings.Contains(c, "🗑️ Preview destroyed") {
		t.Errorf("after close:\n%s", c)
	}
	for _, d := range e.gh.Snapshot().Deployments {
		if len(d.Statuses) == 0 || d.Statuses[len(d.Statuses)-1].State != "inactive" {
			t.Errorf("deployment %d not inactive after close: %+v", d.ID, d.Statuses)
		}
	}

	// A second close (redelivery, or a retried job) changes nothing.
	e.event(pr, "closed")
	e.idle()
	e.expectNothingLeft(pr)

	// Reopen: a fresh preview.
	e.must(e.gh.ReopenPR(demo.Repo, pr))
	e.event(pr, "reopened")
	e.idle()
	if c := e.comment(pr); !strings.Contains(c, "✅ Preview ready for `"+sha2[:7]+"`") {
		t.Errorf("after reopen:\n%s", c)
	}
	if e.live(host("web", pr)) != sha2 {
		t.Error("reopened PR has no preview")
	}
}

const (
	hangingBuild = "sleep 600\n"
	normalBuild  = "mkdir -p dist\ncp src/index.js dist/index.js\ncp -R public dist/public\n"
)

// TestRerunAllChecks: "Re-run all checks" on a PR's head (GitHub's
// check_suite rerequested) rebuilds the preview as well as the tests.
// (Who may re-run is checked as for "Re-run" on one check run:
// TestRerunNeedsPermission.)
func TestRerunAllChecks(t *testing.T) {
	e := start(t)
	pr, sha := e.open("feature/rerun-all", map[string]string{"web/src/r.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	if got := e.checks()[sha]; got != "success" {
		t.Fatalf("preview check runs of %.7s: %q", sha, got)
	}
	e.deliverCheckSuite(sha, "feature/rerun-all", "rerequested")
	e.idle()
	var previews, tests []string
	for _, c := range e.gh.Snapshot().CheckRuns {
		switch {
		case c.HeadSHA != sha:
		case c.Name == "deploybot/preview":
			previews = append(previews, c.Conclusion)
		case strings.HasPrefix(c.Name, "deploybot/test: "):
			tests = append(tests, c.Conclusion)
		}
	}
	if strings.Join(previews, ",") != "success,success" {
		t.Errorf("preview check runs after re-running all checks: %q, want a second success", previews)
	}
	if len(tests) == 0 {
		t.Error("re-running all checks ran no test stage")
	}
	if e.live(host("web", pr)) != sha {
		t.Errorf("the preview does not serve %.7s after the re-run", sha)
	}
}

// TestNewerPushSupersedes: a push while the previous commit is still
// deploying cancels that run; only the newest commit ends up live.
func TestNewerPushSupersedes(t *testing.T) {
	e := start(t)
	// The first commit's build never ends by itself: only cancellation
	// (which kills its process group) ends that run.
	pr, sha1 := e.open("feature/b", map[string]string{"web/build.sh": hangingBuild}, false)
	e.event(pr, "opened")
	e.waitForStep("build:web")

	sha2 := e.push(pr, map[string]string{"web/build.sh": normalBuild, "web/src/b.js": "2\n"})
	sha3 := e.push(pr, map[string]string{"web/src/b.js": "3\n"})
	e.event(pr, "synchronize") // for sha2, delivered after sha3 was pushed
	e.event(pr, "synchronize")
	e.idle()

	checks := e.checks()
	if checks[sha1] != "cancelled" {
		t.Errorf("check run of the superseded commit: %q, want cancelled", checks[sha1])
	}
	if checks[sha3] != "success" {
		t.Errorf("check run of the newest commit: %q, want success", checks[sha3])
	}
	if _, ok := checks[sha2]; ok {
		t.Errorf("a run was started for %s, which was never the head when a job looked", sha2[:7])
	}
	if e.live(host("web", pr)) != sha3 || e.live(host("api", pr)) != sha3 {
		t.Errorf("live: %q / %q, want %s", e.live(host("web", pr)), e.live(host("api", pr)), sha3)
	}
	if c := e.comment(pr); !strings.Contains(c, "✅ Preview ready for `"+sha3[:7]+"`") {
		t.Errorf("comment:\n%s", c)
	}
}

// TestCancelledWhileGitHubCreatesTheCheckRun: a newer push cancels a run
// while GitHub is still creating its check run. GitHub creates it anyway;
// the bot must learn its id and conclude it, not leave it spinning on the
// commit (as it did when the cancellation cut the create short).
func TestCancelledWhileGitHubCreatesTheCheckRun(t *testing.T) {
	e := start(t)
	held := make(chan *http.Request, 1)
	release := make(chan struct{})
	var once sync.Once
	e.gh.Faults().Set(fault.Rule{Method: http.MethodPost, Path: "/repos/" + demo.Repo + "/check-runs", Hold: func(r *http.Request) {
		once.Do(func() {
			held <- r
			<-release
		})
	}})
	pr, sha1 := e.open("feature/held-create", map[string]string{"web/src/h.js": "1\n"}, false)
	e.event(pr, "opened")
	var create *http.Request
	select {
	case create = <-held:
	case <-e.ctx.Done():
		t.Fatal("the first run never asked for its check run")
	}
	sha2 := e.push(pr, map[string]string{"web/src/h.js": "2\n"})
	e.event(pr, "synchronize")
	e.until("the first run's job is cancelled", func() bool {
		var n int
		err := e.s.App.Pool.QueryRow(e.ctx, `SELECT count(*) FROM river_job j JOIN runs r ON r.job_id = j.id
			WHERE r.head_sha = $1 AND j.metadata ? 'cancel_attempted_at'`, sha1).Scan(&n)
		return err == nil && n > 0
	})
	// A bot that lets the cancellation reach the request gives it up now;
	// one that does not keeps waiting. Either way GitHub then creates it.
	select {
	case <-create.Context().Done():
	case <-time.After(2 * time.Second):
	}
	close(release)
	e.idle()

	checks := e.checks()
	if checks[sha1] != "cancelled" {
		t.Errorf("check run of the cancelled run: %q, want cancelled", checks[sha1])
	}
	if checks[sha2] != "success" {
		t.Errorf("check run of the newer commit: %q, want success", checks[sha2])
	}
}

// TestCopiesOfAnEventStartOneRun: GitHub (and proxies in front of the
// bot) sometimes send one event under several delivery ids at once. The
// copies must start one run of the commit, not a run per copy each
// cancelling the one before, whether they arrive together or while the
// run of the first is deploying.
func TestCopiesOfAnEventStartOneRun(t *testing.T) {
	e := start(t)
	release := filepath.Join(e.shared, "release")
	pr, sha := e.open("feature/copies", map[string]string{
		"web/build.sh": "while [ ! -f '" + release + "' ]; do sleep 0.05; done\n" + normalBuild,
	}, false)
	ev, err := e.gh.PullRequestEvent(demo.Repo, pr, "opened")
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
	e.waitForStep("build:web")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			_, err := e.s.Deliver(e.ctx, ev)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.must(err)
	}
	e.until("the copies' jobs ended", func() bool {
		var n int
		err := e.s.App.Pool.QueryRow(e.ctx, `SELECT count(*) FROM river_job WHERE kind <> 'sweep' AND state NOT IN ('completed', 'cancelled', 'discarded') AND attempted_at IS NULL`).Scan(&n)
		return err == nil && n == 0
	})
	e.must(os.WriteFile(release, nil, 0o644))
	e.idle()
	var previews []string
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.HeadSHA == sha && c.Name == pipeline.CheckPreview {
			previews = append(previews, c.Conclusion)
		}
	}
	if len(previews) != 1 || previews[0] != "success" {
		t.Errorf("preview check runs of the commit: %q, want one, succeeded", previews)
	}
}

// TestCloseDuringDeploy: closing a PR mid-deploy cancels the deploy and
// leaves nothing behind, including what the cancelled run had created.
func TestCloseDuringDeploy(t *testing.T) {
	e := start(t)
	pr, sha := e.open("feature/c", map[string]string{"web/build.sh": hangingBuild}, false)
	e.event(pr, "opened")
	e.waitForStep("build:web")

	_, err := e.gh.ClosePR(demo.Repo, pr, false)
	e.must(err)
	e.event(pr, "closed")
	e.idle()
	e.expectNothingLeft(pr)
	if got := e.checks()[sha]; got != "cancelled" {
		t.Errorf("check run: %q, want cancelled", got)
	}
	if c := e.comment(pr); !strings.Contains(c, "🗑️ Preview destroyed") {
		t.Errorf("comment:\n%s", c)
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		files    map[string]string
		health   *edge.Health
		step     string // the failing step named in the comment
		inLog    string // what its log excerpt shows
		notLive  bool   // the web worker must not have been deployed
		deployed bool   // workers were uploaded (the failure came after)
	}{
		{name: "failing migration", files: map[string]string{"migrations/002_bad.sql": "CREATE TABLE broken (;\n"},
			step: "migrate", inLog: "syntax error", notLive: true},
		{name: "failing build", files: map[string]string{"web/build.sh": "echo 'error TS2304: Cannot find name login' >&2\nexit 2\n"},
			step: "build:web", inLog: "error TS2304", notLive: true},
		{name: "health check never passes", files: map[string]string{"web/src/x.js": "1\n"}, health: &edge.Health{Never: true},
			step: "health:web", inLog: "526", deployed: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := start(t)
			pr, sha := e.open("feature/fail", c.files, false)
			if c.health != nil {
				e.s.Sandbox.Edge.SetHealth(host("web", pr), *c.health)
			}
			e.event(pr, "opened")
			e.idle()
			if got := e.checks()[sha]; got != "failure" {
				t.Errorf("check run: %q, want failure", got)
			}
			comment := e.comment(pr)
			for _, want := range []string{"❌ Preview failed", "<code>" + c.step + "</code> failed", c.inLog} {
				if !strings.Contains(comment, want) {
					t.Errorf("comment lacks %q:\n%s", want, comment)
				}
			}
			if c.notLive && e.live(host("web", pr)) != "" {
				t.Error("the web worker was deployed although an earlier step failed")
			}
			if c.deployed && e.live(host("web", pr)) != sha {
				t.Error("the web worker was not deployed")
			}
			// A failed preview is still torn down with its PR.
			_, err := e.gh.ClosePR(demo.Repo, pr, false)
			e.must(err)
			e.event(pr, "closed")
			e.idle()
			e.expectNothingLeft(pr)
		})
	}
}

// TestBuildSymlinkToHostFileIsNotUploaded: a build (repository code) makes
// its Worker's entry module a symlink to a file of the bot's host. The deploy
// step refuses it with the module's name and uploads nothing of that Worker.
func TestBuildSymlinkToHostFileIsNotUploaded(t *testing.T) {
	hostFile := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(hostFile, []byte("export default 'host-secret'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := start(t)
	pr, sha := e.open("feature/symlink", map[string]string{"web/build.sh": "mkdir -p dist\nln -s " + hostFile + " dist/index.js\n"}, false)
	e.event(pr, "opened")
	e.idle()
	if got := e.checks()[sha]; got != "failure" {
		t.Errorf("check run: %q, want failure", got)
	}
	comment := e.comment(pr)
	for _, want := range []string{"<code>deploy:web</code> failed", "web/dist/index.js leads outside the workspace"} {
		if !strings.Contains(comment, want) {
			t.Errorf("comment lacks %q:\n%s", want, comment)
		}
	}
	if _, ok := e.s.Sandbox.Cloudflare.Script(fmt.Sprintf("codex-web-preview-%d", pr)); ok {
		t.Error("the web worker was uploaded although its module leads outside the workspace")
	}
}

// TestHealthPassesAfterDelay models a certificate that takes a few requests
// to be ready: the bot polls with backoff rather than failing or sleeping.
func TestHealthPassesAfterDelay(t *testing.T) {
	e := start(t)
	pr, sha := e.open("feature/slow", map[string]string{"web/src/slow.js": "1\n"}, false)
	e.s.Sandbox.Edge.SetHealth(host("web", pr), edge.Health{HealthyAfterRequests: 3})
	e.event(pr, "opened")
	e.idle()
	if got := e.checks()[sha]; got != "success" {
		t.Errorf("check run: %q, want success", got)
	}
	if n := e.s.Sandbox.Edge.Requests(host("web", pr)); n < 4 {
		t.Errorf("%d health requests, want at least 4 (3 failures, then healthy)", n)
	}
	var logTail string
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT log_tail FROM run_steps WHERE name = 'health:web'`).Scan(&logTail))
	if !strings.Contains(logTail, "attempt 3") || !strings.Contains(logTail, "healthy after 4 attempt(s)") {
		t.Errorf("health log:\n%s", logTail)
	}
}

func TestDraftThenReady(t *testing.T) {
	e := start(t)
	pr, sha := e.open("feature/draft", map[string]string{"web/src/d.js": "1\n"}, true)
	e.event(pr, "opened")
	e.idle()
	if c := e.comment(pr); !strings.Contains(c, "draft") {
		t.Errorf("draft comment:\n%s", c)
	}
	if len(e.s.Resources().Scripts) != 0 {
		t.Fatal("a draft was deployed")
	}
	e.must(e.gh.SetDraft(demo.Repo, pr, false))
	e.event(pr, "ready_for_review")
	e.idle()
	if e.live(host("web", pr)) != sha {
		t.Error("not deployed after ready_for_review")
	}
	if c := e.comment(pr); !strings.Contains(c, "✅ Preview ready") {
		t.Errorf("comment:\n%s", c)
	}
}

// TestForkIsNotDeployed: code from a fork never runs without approval.
func TestForkIsNotDeployed(t *testing.T) {
	e := start(t)
	_, err := e.gh.Commit(demo.Repo, "fork/steal", map[string]string{"web/build.sh": "env > /tmp/stolen\n"}, "innocent")
	e.must(err)
	pr, err := e.gh.OpenPR(demo.Repo, "fork/steal", "main", "Innocent change", true, false)
	e.must(err)
	e.event(pr, "opened")
	e.idle()
	if c := e.comment(pr); !strings.Contains(c, "awaiting approval") || !strings.Contains(c, "/deploy") {
		t.Errorf("fork comment:\n%s", c)
	}
	r := e.s.Resources()
	if len(r.Scripts) != 0 || len(r.Branches) != 1 || len(r.CheckRuns) != 0 {
		t.Fatalf("a fork PR started work: %+v", r)
	}
}

// TestAbandonedRunIsConcluded: a run whose bot died (its row still says
// running, its check run still spins) is concluded by the PR's next sync, so
// no check run is left in progress forever.
func TestAbandonedRunIsConcluded(t *testing.T) {
	e := start(t)
	pr, sha := e.open("feature/crash", map[string]string{"web/src/c.js": "1\n"}, false)

	// What a killed bot leaves: an in-progress check run and its run row.
	cc, err := github.NewClientCreator(github.Config{V3APIURL: e.s.URLs.GitHub, AppID: e.gh.AppID(), PrivateKey: e.gh.AppPrivateKeyPEM()})
	e.must(err)
	client, err := cc.NewInstallationClient(e.gh.InstallationID())
	e.must(err)
	rep := github.NewReporter(client, demo.Owner, demo.RepoName)
	ref, err := rep.CreateCheckRun(e.ctx, github.CheckRun{Name: "deploybot/preview", HeadSHA: sha, Status: github.StatusInProgress})
	e.must(err)
	checkID := ref.ID
	_, err = e.s.App.Pool.Exec(e.ctx, `INSERT INTO runs (kind, repo, pr_number, head_sha, job_id, check_run_id) VALUES ('preview', $1, $2, $3, 424242, $4)`,
		demo.Repo, pr, sha, checkID)
	e.must(err)

	e.event(pr, "opened")
	e.idle()
	if got := e.checks()[sha]; got != "cancelled,success" {
		t.Errorf("check runs of %s: %q, want the abandoned one cancelled and a new one succeeded", sha[:7], got)
	}
	var running int
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT count(*) FROM runs WHERE status = 'running'`).Scan(&running))
	if running != 0 {
		t.Errorf("%d runs still marked running", running)
	}
}

// TestDNSRouteMode: hostnames as proxied CNAMEs plus Worker routes, created
// with the preview and deleted with it.
func TestDNSRouteMode(t *testing.T) {
	e := startWith(t, demo.StackOptions{DNSRoutes: true})
	pr, sha := e.open("feature/dns", map[string]string{"web/src/d.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	if e.live(host("web", pr)) != sha {
		t.Fatalf("web not served through its route: %q", e.live(host("web", pr)))
	}
	cf := e.s.Sandbox.Cloudflare
	if recs := cf.DNSRecords(host("web", pr)); len(recs) != 1 || !recs[0].Proxied || recs[0].Type != "CNAME" {
		t.Errorf("DNS records for %s: %+v", host("web", pr), recs)
	}
	if len(cf.Routes()) != 3 || len(e.s.Resources().Domains) != 0 {
		t.Errorf("routes %+v, custom domains %v", cf.Routes(), e.s.Resources().Domains)
	}
	_, err := e.gh.ClosePR(demo.Repo, pr, false)
	e.must(err)
	e.event(pr, "closed")
	e.idle()
	e.expectNothingLeft(pr)
	if recs := cf.DNSRecords(host("web", pr)); len(recs) != 0 || len(cf.Routes()) != 0 {
		t.Errorf("left after close: records %+v, routes %+v", recs, cf.Routes())
	}
}

// TestBadPipelineFile: a mistake in the base branch's pipeline file is
// reported on the PR with the line and key, and nothing is deployed.
func TestBadPipelineFile(t *testing.T) {
	e := start(t)
	files, err := e.s.SampleFiles()
	e.must(err)
	broken := strings.Replace(files[".github/deploybot.yml"], "    build: sh build.sh\n", "    bulid: sh build.sh\n", 1)
	_, err = e.gh.Commit(demo.Repo, "main", map[string]string{".github/deploybot.yml": broken}, "typo")
	e.must(err)
	// The PR fixes the typo, but the file is read from the base branch.
	pr, sha := e.open("feature/fix", map[string]string{".github/deploybot.yml": files[".github/deploybot.yml"]}, false)
	e.event(pr, "opened")
	e.idle()
	if got := e.checks()[sha]; got != "failure" {
		t.Errorf("check run: %q, want failure", got)
	}
	line := strings.Count(broken[:strings.Index(broken, "    bulid:")], "\n") + 1
	if c := e.comment(pr); !strings.Contains(c, fmt.Sprintf(".github/deploybot.yml@main:%d: workers[0].bulid: unknown key (did you mean \"build\"?)", line)) {
		t.Errorf("comment:\n%s", c)
	}
	if r := e.s.Resources(); len(r.Scripts) != 0 || len(r.Branches) != 1 {
		t.Errorf("deployed despite the bad file: %+v", r)
	}
}

// TestSweepMissedClose: the close event never arrived, an orphaned branch
// lingers, and a person's own branch sits beside them. The sweep removes the
// bot's leftovers, repairs the PR's comment, and leaves the person's branch.
func TestSweepMissedClose(t *testing.T) {
	e := start(t)
	pr, _ := e.open("feature/missed", map[string]string{"web/src/m.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	_, err := e.gh.ClosePR(demo.Repo, pr, false) // no event delivered
	e.must(err)

	nc := neon.New(e.s.URLs.Neon, "key", nil)
	_, err = nc.EnsureBranch(e.ctx, e.s.Sandbox.NeonProject.ID, neon.BranchOptions{
		Name: "pr-99", Parent: "production", Tags: neon.Tags{Repo: demo.Repo, Purpose: neon.PurposePreview, PR: 99},
	})
	e.must(err)
	e.personsBranch("scratch", "")

	// A branch as fresh as pr-99 may belong to a preview being made: kept.
	fresh, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{DryRun: true})
	e.must(err)
	if len(fresh) != 1 || !strings.Contains(fresh[0].String(), "pull request is closed") {
		t.Fatalf("dry run right away: %v", fresh)
	}
	later := time.Now().Add(10 * time.Minute)
	dry, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{DryRun: true, Now: later})
	e.must(err)
	var said []string
	for _, a := range dry {
		said = append(said, a.String())
	}
	if len(dry) != 2 || !strings.Contains(strings.Join(said, "\n"), "pull request is closed") || !strings.Contains(strings.Join(said, "\n"), "neon branch pr-99") {
		t.Fatalf("dry run: %q", said)
	}
	if len(e.s.Resources().Scripts) == 0 {
		t.Fatal("the dry run removed something")
	}

	_, err = e.s.App.Sweep(e.ctx, pipeline.SweepOptions{Now: later})
	e.must(err)
	e.idle()
	r := e.s.Resources()
	if len(r.Scripts) != 0 || len(r.Domains) != 0 || strings.Join(r.Branches, ",") != "production,scratch" {
		t.Errorf("after the sweep: branches %v, scripts %v, domains %v", r.Branches, r.Scripts, r.Domains)
	}
	if c := e.comment(pr); !strings.Contains(c, "🗑️ Preview destroyed") {
		t.Errorf("comment not repaired:\n%s", c)
	}
	again, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{DryRun: true, Now: later})
	e.must(err)
	if len(again) != 0 {
		t.Errorf("a second sweep still finds %v", again)
	}
}

// TestSweepForgottenPreview: the bot's database lost a preview (restored
// from an old backup) whose PR then closed. The sweep finds the Workers by
// their tags and the branch by its annotations, and removes them with their
// hostnames; Workers it did not make, or made for a repository it is not
// configured for, stay.
func TestSweepForgottenPreview(t *testing.T) {
	e := start(t)
	pr, _ := e.open("feature/forgotten", map[string]string{"web/src/f.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	cf, err := cloudflare.New(cloudflare.Options{AccountID: e.s.Sandbox.Cloudflare.AccountID(), APIToken: "t", BaseURL: e.s.URLs.Cloudflare})
	e.must(err)
	worker := func(name string, tags ...string) {
		_, err := cf.UploadWorker(e.ctx, cloudflare.Script{Name: name, MainModule: "index.js", Tags: tags,
			Modules: []cloudflare.Module{{Name: "index.js", Content: []byte("export default { fetch() { return new Response('hi') } }")}}})
		e.must(err)
	}
	worker("codex-web-preview-500")                                                               // a person's
	worker("other-web-preview-7", "deploybot", "deploybot-repo:acme/other", "deploybot-env:pr-7") // another repository's
	_, err = e.s.App.Pool.Exec(e.ctx, `DELETE FROM previews WHERE pr_number = $1`, pr)
	e.must(err)
	_, err = e.gh.ClosePR(demo.Repo, pr, false) // no event delivered
	e.must(err)

	later := time.Now().Add(10 * time.Minute)
	dry, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{DryRun: true, Now: later})
	e.must(err)
	var said []string
	for _, a := range dry {
		said = append(said, a.Resource)
	}
	slices.Sort(said)
	want := []string{"neon branch pr-1", "worker auth-worker-preview-1", "worker codex-web-preview-1", "worker ecom-api-preview-1"}
	if !slices.Equal(said, want) {
		t.Fatalf("dry run found %q, want %q", said, want)
	}
	_, err = e.s.App.Sweep(e.ctx, pipeline.SweepOptions{Now: later})
	e.must(err)
	r := e.s.Resources()
	slices.Sort(r.Scripts)
	if strings.Join(r.Scripts, ",") != "codex-web-preview-500,other-web-preview-7" || len(r.Domains) != 0 || strings.Join(r.Branches, ",") != "production" {
		t.Errorf("after the sweep: branches %v, scripts %v, domains %v", r.Branches, r.Scripts, r.Domains)
	}
	if e.live(host("web", pr)) != "" {
		t.Errorf("the forgotten preview is still served")
	}
}

// TestSweepOrphanedTestBranch: a test run killed with its machine leaves its
// ephemeral branch; the sweep deletes it once no test run could be using it.
func TestSweepOrphanedTestBranch(t *testing.T) {
	e := start(t)
	pr, _ := e.open("feature/t", map[string]string{"web/src/t.js": "1\n"}, false)
	e.event(pr, "opened") // the bot now knows the repository and its installation
	e.idle()

	nc := neon.New(e.s.URLs.Neon, "key", nil)
	_, err := nc.EnsureBranch(e.ctx, e.s.Sandbox.NeonProject.ID, neon.BranchOptions{
		Name: "push-crashed-abc1234", Parent: "production", Tags: neon.Tags{Repo: demo.Repo, Purpose: neon.PurposeTest},
	})
	e.must(err)
	has := func() bool {
		for _, b := range e.s.Resources().Branches {
			if b == "push-crashed-abc1234" {
				return true
			}
		}
		return false
	}
	sweepAt := func(later time.Duration) {
		_, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{Now: time.Now().Add(later)})
		e.must(err)
	}

	sweepAt(time.Minute)
	if !has() {
		t.Fatal("a fresh test branch was swept (its run may be about to record it)")
	}
	// While a test run of the repository is active, only a very old branch goes.
	_, err = e.s.App.Pool.Exec(e.ctx, `INSERT INTO runs (kind, repo, status) VALUES ('test', $1, 'running')`, demo.Repo)
	e.must(err)
	sweepAt(10 * time.Minute)
	if !has() {
		t.Fatal("a test branch was swept while a test run was active")
	}
	_, err = e.s.App.Pool.Exec(e.ctx, `UPDATE runs SET status = 'failed' WHERE kind = 'test'`)
	e.must(err)
	sweepAt(10 * time.Minute)
	if has() {
		t.Fatal("the orphaned test branch survived the sweep")
	}
	if r := e.s.Resources(); len(r.Scripts) != 3 {
		t.Errorf("the sweep touched the open PR's preview: %v", r.Scripts)
	}
}

// TestDeploymentRecordFails: GitHub refuses to record the Deployment (an
// App installed without the Deployments permission). The preview works, so
// it is shown ready; the check run says what did not work.
func TestDeploymentRecordFails(t *testing.T) {
	e := start(t)
	e.s.Sandbox.GitHub.Faults().Set(fault.Rule{Method: http.MethodPost, Path: "/repos/" + demo.Repo + "/deployments", Rate: 1, Status: http.StatusForbidden})
	pr, sha := e.open("feature/no-deployments", map[string]string{"web/src/d.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	if c := e.comment(pr); !strings.Contains(c, "✅ Preview ready for `"+sha[:7]+"`") {
		t.Errorf("comment:\n%s", c)
	}
	if got := e.live(host("web", pr)); got != sha {
		t.Errorf("preview serves %.7q, want %.7s", got, sha)
	}
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.HeadSHA != sha {
			continue
		}
		if c.Conclusion != "success" || c.OutputTitle != "Preview ready (step deployment failed)" {
			t.Errorf("check run: %s %q", c.Conclusion, c.OutputTitle)
		}
	}
}

// TestWorkerLimit: the account's plan caps its Workers. A preview that
// brings the account within 10% of the limit says so in its log while it
// still works; the one that would pass it fails with Cloudflare's refusal
// and what to do, and the bot's cleanup still leaves nothing behind.
func TestWorkerLimit(t *testing.T) {
	// Three Workers per preview: the first preview fills 3 of 4.
	e := startWith(t, demo.StackOptions{CloudflarePlan: cfsim.Plan{Workers: 4}})
	first, sha1 := e.open("feature/one", map[string]string{"web/src/a.js": "1\n"}, false)
	e.event(first, "opened")
	e.idle()
	if got := e.checks()[sha1]; got != "success" {
		t.Fatalf("first preview: %q, want success", got)
	}
	second, sha2 := e.open("feature/two", map[string]string{"web/src/b.js": "1\n"}, false)
	e.event(second, "opened")
	e.idle()
	if got := e.checks()[sha2]; got != "failure" {
		t.Fatalf("second preview: %q, want failure (the account is full)", got)
	}
	var warned int
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT count(*) FROM run_steps WHERE log_tail LIKE '%warning: Cloudflare account % will have 4 of the 4 Workers%'`).Scan(&warned))
	if warned == 0 { // one per Worker uploaded in parallel at that count
		t.Error("no step warned that the account was nearly full")
	}
	comment := e.comment(second)
	for _, want := range []string{"❌ Preview failed", "10037", "as many Workers as its plan allows"} {
		if !strings.Contains(comment, want) {
			t.Errorf("status comment lacks %q:\n%s", want, comment)
		}
	}
	for _, pr := range []int{first, second} {
		_, err := e.gh.ClosePR(demo.Repo, pr, false)
		e.must(err)
		e.event(pr, "closed")
		e.idle()
	}
	e.expectNothingLeft(second)
}
