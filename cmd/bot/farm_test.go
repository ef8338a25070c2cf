package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/sandbox"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// farm is what the tests that run the real binary share: the bot built
// once, a sandbox of the simulated clouds serving the sample repository,
// and the App's key on disk.
type farm struct {
	t       *testing.T
	dir     string
	bin     string
	secret  string
	sb      *sandbox.Sandbox
	server  *httptest.Server
	gh      *ghsim.Server
	keyFile string
}

func newFarm(ctx context.Context, t *testing.T, secret string) *farm {
	t.Helper()
	f := &farm{t: t, dir: t.TempDir(), secret: secret}
	f.bin = filepath.Join(f.dir, "bot")
	if out, err := exec.Command("go", "build", "-o", f.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sb, err := sandbox.New(ctx, sandbox.Options{AdminURL: pgtest.ServerURL(t), WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close(context.Background()) })
	f.sb, f.gh = sb, sb.GitHub
	f.server = httptest.NewServer(sb.Handler())
	t.Cleanup(f.server.Close)
	if err := demo.SeedSample(sb); err != nil {
		t.Fatal(err)
	}
	f.keyFile = filepath.Join(f.dir, "app.pem")
	if err := os.WriteFile(f.keyFile, f.gh.AppPrivateKeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// bot writes the configuration of a `bot serve` named name, listening on a
// free address, whose database URL is dbURL, and returns it unstarted.
func (f *farm) bot(name, dbURL string) *botProcess {
	f.t.Helper()
	addr := freeAddr(f.t)
	urls := f.sb.URLsAt(f.server.URL)
	cfgPath := filepath.Join(f.dir, "config-"+name+".yml")
	cfg := fmt.Sprintf(`server: {address: %q, shutdown_timeout: 5s}
database: {url: {env: BOT_DB}}
data_dir: %q
github:
  v3_api_url: %q
  app: {integration_id: %d, webhook_secret: %q, private_key: {file: %q}}
neon: {api_url: %q, api_key: sandbox}
cloudflare: {api_url: %q, api_token: sandbox}
master_key: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdee
jobs: {workers: 6, heartbeat: 300ms}
health_check: {connect_to: %q, scheme: http}
log: {level: warn}
repositories:
  %s:
    cloudflare: {account_id: %q, zone_id: %q}
    secrets: {STRIPE_SECRET_KEY: sk_test_farm}
`, addr, filepath.Join(f.dir, "data-"+name), urls.GitHub, f.gh.AppID(), f.secret, f.keyFile, urls.Neon, urls.Cloudflare,
		strings.TrimPrefix(f.server.URL, "http://"), demo.Repo, f.sb.Cloudflare.AccountID(), f.sb.ZoneID)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return &botProcess{t: f.t, bin: f.bin, cfg: cfgPath, addr: addr, env: []string{"BOT_DB=" + dbURL},
		log: filepath.Join(f.dir, "bot-"+name+".log")}
}

// openPRs commits a change to n new branches named prefix/i and opens a
// pull request from each.
func (f *farm) openPRs(prefix string, n int) []int {
	f.t.Helper()
	var prs []int
	for i := range n {
		branch := fmt.Sprintf("%s/%d", prefix, i)
		if _, err := f.gh.Commit(demo.Repo, branch, map[string]string{"web/src/" + prefix + ".js": fmt.Sprintf("%d\n", i)}, prefix); err != nil {
			f.t.Fatal(err)
		}
		pr, err := f.gh.OpenPR(demo.Repo, branch, "main", branch, false, false)
		if err != nil {
			f.t.Fatal(err)
		}
		prs = append(prs, pr)
	}
	return prs
}

// expectConverged checks what a user sees once the bot is idle: one status
// comment on each of prs, each open PR's preview serving its head, and no
// preview (nor Worker) left of a closed one.
func (f *farm) expectConverged(prs []int) {
	f.t.Helper()
	st := f.gh.Snapshot()
	for _, pr := range prs {
		var n int
		for _, c := range st.Comments {
			if c.Issue == pr && c.Author == f.gh.BotLogin() && strings.Contains(c.Body, "deploybot:status") {
				n++
			}
		}
		if n != 1 {
			f.t.Errorf("PR #%d has %d status comments", pr, n)
		}
	}
	scripts := f.sb.Cloudflare.Snapshot().Scripts
	for _, p := range st.PullRequests {
		site, live := f.sb.Cloudflare.ResolveHost(fmt.Sprintf("codex-preview-%d.revelations.studio", p.Number), "/")
		switch {
		case p.State == "open" && site.Vars["DEPLOYBOT_COMMIT"] != p.HeadSHA:
			f.t.Errorf("open PR #%d serves %.7q, want its head %.7s", p.Number, site.Vars["DEPLOYBOT_COMMIT"], p.HeadSHA)
		case p.State == "closed" && live:
			f.t.Errorf("closed PR #%d still has a preview", p.Number)
		}
		if p.State != "closed" {
			continue
		}
		for _, s := range scripts {
			if strings.HasSuffix(s.Name, fmt.Sprintf("-preview-%d", p.Number)) {
				f.t.Errorf("script %s of the closed PR #%d is left", s.Name, p.Number)
			}
		}
	}
}

// expectCheckRunsConcluded fails the test for every check run left open.
func (f *farm) expectCheckRunsConcluded() {
	f.t.Helper()
	for _, c := range f.gh.Snapshot().CheckRuns {
		if c.Status != "completed" {
			f.t.Errorf("check run %s@%.7s left %s", c.Name, c.HeadSHA, c.Status)
		}
	}
}

// expectEachDeliveryWorkedOnce fails the test for a delivery that queued
// more than one job.
func expectEachDeliveryWorkedOnce(ctx context.Context, t *testing.T, conn *pgx.Conn) {
	t.Helper()
	var twice int
	if err := conn.QueryRow(ctx, `
		SELECT count(*) FROM (SELECT args->>'delivery_id' FROM river_job WHERE args ? 'delivery_id'
		GROUP BY 1 HAVING count(*) > 1) d`).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if twice != 0 {
		t.Errorf("%d deliveries queued more than one job", twice)
	}
}

// logRuns writes the runs table and the bots' log tails to the test's log,
// for a failed test.
func logRuns(ctx context.Context, t *testing.T, conn *pgx.Conn, bots []*botProcess) {
	rows, _ := conn.Query(ctx, `SELECT pr_number, kind, status, error, id FROM runs ORDER BY id`)
	for rows.Next() {
		var pr int
		var kind, status, e string
		var id int64
		_ = rows.Scan(&pr, &kind, &status, &e, &id)
		t.Logf("run %d pr %d %s %s %.120s", id, pr, kind, status, e)
	}
	for _, b := range bots {
		log, _ := os.ReadFile(b.log)
		t.Logf("%s (tail):\n%s", filepath.Base(b.log), tail(string(log), 6000/len(bots)))
	}
}
