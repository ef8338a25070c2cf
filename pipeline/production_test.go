package pipeline_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/sandbox/edge"
)

var prodHosts = map[string]string{
	"web":  "codex.revelations.studio",
	"auth": "auth.revelations.studio",
	"api":  "api.revelations.studio",
}

// merge commits files to main and delivers the push, as a merge would.
func (e *env) merge(files map[string]string) string {
	e.t.Helper()
	sha, err := e.gh.Commit(demo.Repo, "main", files, "Merge")
	e.must(err)
	ev, err := e.gh.PushEvent(demo.Repo, "main")
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
	return sha
}

// failedSteps lists the failed steps of all runs with their errors, for
// messages.
func (e *env) failedSteps() string {
	rows, err := e.s.App.Pool.Query(e.ctx, `SELECT name, error FROM run_steps WHERE status = 'failed'`)
	if err != nil {
		return err.Error()
	}
	var out []string
	for rows.Next() {
		var n, msg string
		_ = rows.Scan(&n, &msg)
		out = append(out, n+": "+msg)
	}
	return strings.Join(out, "; ")
}

// production maps each commit's production check run to its conclusion.
func (e *env) production() map[string]string {
	out := map[string]string{}
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.Name == "deploybot/production" {
			out[c.HeadSHA] = c.Conclusion
		}
	}
	return out
}

// liveEverywhere reports which commit each production hostname serves.
func (e *env) liveEverywhere() map[string]string {
	out := map[string]string{}
	for w, h := range prodHosts {
		out[w] = e.live(h)
	}
	return out
}

func expectAll(t *testing.T, live map[string]string, sha string) {
	t.Helper()
	for w, got := range live {
		if got != sha {
			t.Errorf("%s serves %q, want %s", w, got, sha)
		}
	}
}

func TestProductionDeploysWorkersInOrder(t *testing.T) {
	e := start(t)
	sha := e.merge(map[string]string{"migrations/002_orders.sql": "CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY);\n"})
	e.idle()

	if got := e.production()[sha]; got != "success" {
		t.Fatalf("production check run: %q; failed steps: %s", got, e.failedSteps())
	}
	expectAll(t, e.liveEverywhere(), sha)
	if !e.tableExists("production", "orders") {
		t.Error("the production branch was not migrated")
	}
	// One at a time, each after the previous one's health check.
	rows, err := e.s.App.Pool.Query(e.ctx, `
		SELECT s.name FROM run_steps s JOIN runs r ON r.id = s.run_id
		WHERE r.kind = 'production' AND (s.name LIKE 'deploy:%' OR s.name LIKE 'health:%') ORDER BY s.started_at`)
	e.must(err)
	var order []string
	for rows.Next() {
		var n string
		e.must(rows.Scan(&n))
		order = append(order, n)
	}
	// web binds api and auth, api binds auth: each goes after what it
	// binds (Cloudflare refuses a binding to a Worker that does not exist
	// yet), whatever the file's order.
	want := "deploy:auth health:auth deploy:api health:api deploy:web health:web"
	if strings.Join(order, " ") != want {
		t.Errorf("order %v, want %s", order, want)
	}
	var deployed bool
	for _, d := range e.gh.Snapshot().Deployments {
		if d.Environment == "production" && d.SHA == sha && len(d.Statuses) > 0 && d.Statuses[len(d.Statuses)-1].State == "success" {
			deployed = true
		}
	}
	if !deployed {
		t.Errorf("no successful production deployment: %+v", e.gh.Snapshot().Deployments)
	}
	// Its check run's Details and its deployment's log are the run's page.
	var run int64
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT id FROM runs WHERE kind = 'production' AND head_sha = $1`, sha).Scan(&run))
	page := fmt.Sprintf("%s/runs/%d", e.s.BotURL, run)
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.HeadSHA == sha && c.Name == "deploybot/production" && c.DetailsURL != page {
			t.Errorf("the production check run's details_url is %q, want %s", c.DetailsURL, page)
		}
	}
	for _, d := range e.gh.Snapshot().Deployments {
		for _, st := range d.Statuses {
			if d.Environment == "production" && d.SHA == sha && st.LogURL != page {
				t.Errorf("the production deployment's %s status links %q, want %s", st.State, st.LogURL, page)
			}
		}
	}
	if v, _ := e.s.Sandbox.Cloudflare.SecretValue("ecom-api", "STRIPE_SECRET_KEY"); !strings.HasPrefix(v, "sk_live_") {
		t.Error("production api lacks its configured (live) secret")
	}
	// The merge's tests ran too, each stage once.
	stages := map[string]int{}
	for _, c := range e.gh.Snapshot().CheckRuns {
		if strings.HasPrefix(c.Name, "deploybot/test: ") && c.HeadSHA == sha {
			stages[c.Name]++
		}
	}
	if len(stages) == 0 {
		t.Error("no test check runs for the merge")
	}
	for name, n := range stages {
		if n != 1 {
			t.Errorf("%s ran %d times", name, n)
		}
	}
}

// TestProductionRollsBack: the second worker's health check fails (api,
// deployed after auth, which it binds; web, which binds both, goes last),
// so the two deployed go back to what was live and production is as it was.
func TestProductionRollsBack(t *testing.T) {
	e := start(t)
	sha1 := e.merge(map[string]string{"web/src/v.js": "1\n"})
	e.idle()
	expectAll(t, e.liveEverywhere(), sha1)

	e.s.Sandbox.Edge.SetHealth(prodHosts["api"], edge.Health{Never: true})
	sha2 := e.merge(map[string]string{"web/src/v.js": "2\n", "migrations/003_x.sql": "CREATE TABLE IF NOT EXISTS x (id int);\n"})
	e.idle()

	if got := e.production()[sha2]; got != "failure" {
		t.Fatalf("production check run of %s: %q, want failure", sha2[:7], got)
	}
	expectAll(t, e.liveEverywhere(), sha1)
	var rolled []string
	rows, err := e.s.App.Pool.Query(e.ctx, `SELECT name, status FROM run_steps WHERE name LIKE 'rollback:%' ORDER BY started_at`)
	e.must(err)
	for rows.Next() {
		var n, st string
		e.must(rows.Scan(&n, &st))
		rolled = append(rolled, n+"="+st)
	}
	if strings.Join(rolled, " ") != "rollback:api=succeeded rollback:auth=succeeded" {
		t.Errorf("rollbacks %v", rolled)
	}
	// The migration stays: it is never rolled back automatically.
	if !e.tableExists("production", "x") {
		t.Error("the migration was undone")
	}
}

// TestProductionQueuesAndSupersedes: merges during a deploy wait for it
// (it is never cancelled), and of the waiting ones only the newest deploys.
func TestProductionQueuesAndSupersedes(t *testing.T) {
	e := start(t)
	release := filepath.Join(e.shared, "release")
	hold := "while [ ! -f '" + release + "' ]; do sleep 0.05; done\n" + normalBuild
	sha1 := e.merge(map[string]string{"web/build.sh": hold})
	e.waitForStep("build:web")

	sha2 := e.merge(map[string]string{"web/build.sh": normalBuild, "web/src/q.js": "2\n"})
	sha3 := e.merge(map[string]string{"web/src/q.js": "3\n"})
	e.must(os.WriteFile(release, nil, 0o644))
	e.idle()

	got := e.production()
	if got[sha1] != "success" || got[sha2] != "skipped" || got[sha3] != "success" {
		t.Errorf("production check runs: %s=%q %s=%q %s=%q; want success, skipped, success",
			sha1[:7], got[sha1], sha2[:7], got[sha2], sha3[:7], got[sha3])
	}
	expectAll(t, e.liveEverywhere(), sha3)
	var overlaps int
	e.must(e.s.App.Pool.QueryRow(e.ctx, `
		SELECT count(*) FROM runs a JOIN runs b ON a.id < b.id
		WHERE a.kind = 'production' AND b.kind = 'production' AND b.started_at < a.finished_at AND a.status <> 'skipped' AND b.status <> 'skipped'`).Scan(&overlaps))
	if overlaps != 0 {
		t.Errorf("%d production runs overlapped", overlaps)
	}
}

// TestProductionLateDelivery: two merges whose push deliveries arrive in
// the wrong order. Production ends on the newer merge; the late delivery of
// the older one must not roll production back to it.
func TestProductionLateDelivery(t *testing.T) {
	e := start(t)
	sha1, err := e.gh.Commit(demo.Repo, "main", map[string]string{"web/src/late.js": "1\n"}, "Merge one")
	e.must(err)
	first, err := e.gh.PushEvent(demo.Repo, "main")
	e.must(err)
	sha2, err := e.gh.Commit(demo.Repo, "main", map[string]string{"web/src/late.js": "2\n"}, "Merge two")
	e.must(err)
	second, err := e.gh.PushEvent(demo.Repo, "main")
	e.must(err)
	e.deliverAll(second)
	e.idle()
	expectAll(t, e.liveEverywhere(), sha2)
	e.deliverAll(first)
	e.idle()

	expectAll(t, e.liveEverywhere(), sha2)
	if got := e.production(); got[sha2] != "success" || (got[sha1] != "" && got[sha1] != "skipped") {
		t.Errorf("production check runs: %s=%q %s=%q; want success, and skipped or none", sha2[:7], got[sha2], sha1[:7], got[sha1])
	}
}

// productionCheck is the newest production check run of sha.
func (e *env) productionCheck(sha string) (id int64, conclusion, title string, n int) {
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.Name == "deploybot/production" && c.HeadSHA == sha {
			id, conclusion, title, n = c.ID, c.Conclusion, c.OutputTitle, n+1
		}
	}
	return id, conclusion, title, n
}

// clickProduction delivers a check_run event for sha's production check
// run: "rerequested" or a button's "requested_action".
func (e *env) clickProduction(sha, action, identifier string) {
	e.t.Helper()
	id, _, _, _ := e.productionCheck(sha)
	ev, err := e.gh.CheckRunEvent(demo.Repo, id, action, identifier)
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
}

// TestProductionRerunAndRollback: "Re-run" on a production check run
// deploys its commit again; "Roll back to this" on an earlier deploy's
// check run puts that deploy's Worker versions back everywhere, runs no
// migration, and says so.
func TestProductionRerunAndRollback(t *testing.T) {
	e := start(t)
	first := e.merge(map[string]string{"web/src/v.js": "1\n"})
	e.idle()
	second := e.merge(map[string]string{"web/src/v.js": "2\n", "migrations/002_later.sql": "CREATE TABLE IF NOT EXISTS later (id int);\n"})
	e.idle()
	expectAll(t, e.liveEverywhere(), second)

	e.clickProduction(second, "rerequested", "")
	e.idle()
	if _, conclusion, _, n := e.productionCheck(second); n != 2 || conclusion != "success" {
		t.Errorf("after Re-run: %d production check runs on %s, the newest %q; want 2, success (%s)", n, second[:7], conclusion, e.failedSteps())
	}
	expectAll(t, e.liveEverywhere(), second)

	e.clickProduction(first, "requested_action", "rollback")
	e.idle()
	_, conclusion, title, n := e.productionCheck(first)
	if n != 2 || conclusion != "success" || title != "Rolled back to "+first[:7] {
		t.Fatalf("the rollback's check run: %d on %s, the newest %q %q (%s)", n, first[:7], conclusion, title, e.failedSteps())
	}
	expectAll(t, e.liveEverywhere(), first)
	if !e.tableExists("production", "later") {
		t.Error("the rollback undid a migration")
	}
	// A delivery of the newest push again does not undo the rollback.
	ev, err := e.gh.PushEvent(demo.Repo, "main")
	e.must(err)
	_, err = e.s.Deliver(e.ctx, ev)
	e.must(err)
	e.idle()
	expectAll(t, e.liveEverywhere(), first)
}

// TestProductionActionsNeedPermission: a reader's "Re-run" or "Roll back"
// on a production check run changes nothing.
func TestProductionActionsNeedPermission(t *testing.T) {
	e := start(t)
	first := e.merge(map[string]string{"web/src/v.js": "1\n"})
	e.idle()
	second := e.merge(map[string]string{"web/src/v.js": "2\n"})
	e.idle()
	e.must(e.gh.SetPermission(demo.Repo, demo.Owner, "read"))
	e.clickProduction(first, "requested_action", "rollback")
	e.clickProduction(second, "rerequested", "")
	e.idle()
	for _, sha := range []string{first, second} {
		if _, _, _, n := e.productionCheck(sha); n != 1 {
			t.Errorf("%d production check runs on %s after a reader's clicks, want 1", n, sha[:7])
		}
	}
	expectAll(t, e.liveEverywhere(), second)
}
