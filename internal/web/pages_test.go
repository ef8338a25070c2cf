package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/login"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
	"github.com/revelations-studio/deploybot/internal/web"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// insertOnly is a River client over pool that queues jobs without working
// them, as `bot sweep` opens the queue.
func insertOnly(t *testing.T, pool *pgxpool.Pool) *river.Client[pgx.Tx] {
	t.Helper()
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	must(t, err)
	return c
}

// queueProduction queues a production deploy of repo at sha, as the
// webhook's intake does on a push to the default branch.
func queueProduction(t *testing.T, c *river.Client[pgx.Tx], repo, sha, sender string) int64 {
	t.Helper()
	owner, name, _ := strings.Cut(repo, "/")
	res, err := c.Insert(t.Context(), intent.ProductionPush{
		Meta: intent.Meta{DeliveryID: "d-" + sha, Event: "push", InstallationID: 7, Sender: sender,
			Repo: intent.Repo{ID: 1, Owner: owner, Name: name, DefaultBranch: "main"}},
		Push: intent.Push{Branch: "main", After: sha},
	}, nil)
	must(t, err)
	return res.Job.ID
}

// production records a finished production run of repo at sha.
func production(t *testing.T, st *state.Store, repo, sha, reason, actor, status string, steps []state.Step, versions map[string]string) int64 {
	t.Helper()
	ctx := t.Context()
	id, err := st.Runs.Start(ctx, state.Run{Kind: "production", Repo: repo, Branch: "main", HeadSHA: sha, Reason: reason, Actor: actor})
	must(t, err)
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
	}
	must(t, st.Steps.Plan(ctx, id, names))
	for _, s := range steps {
		must(t, st.Steps.Update(ctx, id, s))
	}
	if versions != nil {
		must(t, st.Runs.SetVersions(ctx, id, versions))
	}
	must(t, st.Runs.Finish(ctx, id, status, ""))
	return id
}

func rowIDs(page, class string) []string {
	var ids []string
	for _, m := range regexp.MustCompile(`<tr class="`+class+`[^"]*" data-run-id="(\d+)"`).FindAllStringSubmatch(page, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// section returns the HTML of page's <section id="id">.
func section(t *testing.T, page, id string) string {
	t.Helper()
	_, rest, ok := strings.Cut(page, `<section id="`+id+`">`)
	if !ok {
		t.Fatalf("the page has no section %q", id)
	}
	s, _, _ := strings.Cut(rest, "</section>")
	return s
}

// TestRepoPage: a repository's page shows its open previews with their
// links, its production history with versions, who merged and a marker
// on the run that rolled back, its production queue and who holds its
// lock, and its runs filtered and paged; each run links its page.
func TestRepoPage(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	st := state.New(pool)
	h, err := web.New(web.Options{Reader: web.StateReader(st), Logger: zerolog.Nop(), PreviewScheme: "http"})
	must(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s := &site{st: st, srv: srv}
	ctx := t.Context()
	const repo = "acme/shop"

	// Previews: #12 ready, #13 torn down.
	prRun, err := st.Runs.Start(ctx, state.Run{Kind: "preview", Repo: repo, PR: 12, HeadSHA: "aaaa1111bbbb", Reason: "pull_request.opened", Actor: "dev"})
	must(t, err)
	must(t, st.Runs.Finish(ctx, prRun, "succeeded", ""))
	for pr, stateName := range map[int]string{12: "ready", 13: "destroyed"} {
		p, err := st.Previews.Load(ctx, repo, pr, 7)
		must(t, err)
		p.State, p.DeployedSHA = stateName, "aaaa1111bbbb"
		if stateName == "ready" {
			p.Resources.Workers = []state.DeployedWorker{{Name: "web", Script: "codex-web-preview-12", Hostname: "codex-preview-12.example.test"}}
		}
		must(t, st.Previews.Save(ctx, p))
	}

	// Production: a deploy, one that failed and rolled back, and a
	// rollback asked for from a check run.
	t0 := time.Now().Add(-time.Hour)
	ok := production(t, st, repo, "c0ffee0000000001", "push", "merger", "succeeded", nil, map[string]string{"codex-web": "v-111"})
	bad := production(t, st, repo, "c0ffee0000000002", "push", "hasty", "failed", []state.Step{
		{Name: "deploy:web", Status: "failed", Started: t0, Finished: t0.Add(time.Second), Err: "health check failed"},
		{Name: "rollback:web", Status: "succeeded", Started: t0.Add(time.Second), Finished: t0.Add(2 * time.Second)},
	}, nil)
	back := production(t, st, repo, "c0ffee0000000001", "rollback", "oncall", "succeeded", nil, map[string]string{"codex-web": "v-111"})
	// Another repository's run is not this one's.
	other, err := st.Runs.Start(ctx, state.Run{Kind: "test", Repo: "acme/other", Branch: "main", HeadSHA: "fff"})
	must(t, err)

	code, page := s.get(t, "/repos/"+repo)
	if code != http.StatusOK {
		t.Fatalf("GET the repository page: %d %s", code, page)
	}
	previews := section(t, page, "previews")
	for _, want := range []string{
		`<tr class="preview-row" data-pr="12">`,
		`<a href="https://github.com/acme/shop/pull/12">#12</a>`,
		`<a href="https://github.com/acme/shop/commit/aaaa1111bbbb"><code>aaaa111</code></a>`,
		`<a class="preview" href="http://codex-preview-12.example.test">web</a>`,
		`<span class="badge status-ready">ready</span>`,
	} {
		if !strings.Contains(previews, want) {
			t.Errorf("the previews lack %s:\n%s", want, previews)
		}
	}
	if strings.Contains(previews, `data-pr="13"`) {
		t.Error("a torn-down preview is listed as open")
	}

	prod := section(t, page, "production")
	if got, want := rowIDs(prod, "run-row"), []string{fmt.Sprint(back), fmt.Sprint(bad), fmt.Sprint(ok)}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("production history lists runs %v, want %v (newest first)", got, want)
	}
	for _, want := range []string{
		fmt.Sprintf(`<tr class="run-row rolled-back" data-run-id="%d">`, bad),
		`<span class="marker rollback">rolled back</span>`,
		`<span class="marker rollback">rollback</span>`,
		`<code class="version">codex-web v-111</code>`,
		`<td>merger</td>`, `<td>hasty</td>`, `<td>oncall</td>`,
		fmt.Sprintf(`<a href="../../runs/%d">%d</a>`, ok, ok),
		`The production lock is free.`,
		`No production job waiting.`,
	} {
		if !strings.Contains(prod, want) {
			t.Errorf("production lacks %s:\n%s", want, prod)
		}
	}
	if strings.Count(prod, `class="marker rollback">rolled back<`) != 1 {
		t.Error("the rolled-back marker is on more than the run that rolled back")
	}

	// A deploy queued and one running, holding the lock.
	jobID := queueProduction(t, insertOnly(t, pool), repo, "dec0de0000000003", "merger2")
	running, err := st.Runs.Start(ctx, state.Run{Kind: "production", Repo: repo, Branch: "main", HeadSHA: "dec0de0000000004", Reason: "push", Actor: "merger3"})
	must(t, err)
	lock, err := st.Lock(ctx, state.ProductionLock(repo))
	must(t, err)
	_, page = s.get(t, "/repos/"+repo)
	prod = section(t, page, "production")
	for _, want := range []string{
		fmt.Sprintf(`The production lock is <strong>held</strong> by <a href="../../runs/%d">run %d</a> (running <code>dec0de0</code>`, running, running),
		fmt.Sprintf(`<tr class="job-row" data-job-id="%d">`, jobID),
		`<a href="https://github.com/acme/shop/commit/dec0de0000000003"><code>dec0de0</code></a>`,
		`<td>merger2</td>`,
		`<span class="badge status-available">available</span>`,
	} {
		if !strings.Contains(prod, want) {
			t.Errorf("with a deploy queued and one running, production lacks %s:\n%s", want, prod)
		}
	}
	lock.Release()
	must(t, st.Runs.Finish(ctx, running, "succeeded", ""))

	// 60 test runs: the list pages by 50, filtered.
	var tests []int64
	for i := range 60 {
		id, err := st.Runs.Start(ctx, state.Run{Kind: "test", Repo: repo, Branch: "feature", HeadSHA: fmt.Sprintf("%040d", i)})
		must(t, err)
		status := "succeeded"
		if i%20 == 0 {
			status = "failed"
		}
		must(t, st.Runs.Finish(ctx, id, status, ""))
		tests = append(tests, id)
	}
	_, page = s.get(t, "/repos/"+repo)
	runs := section(t, page, "runs")
	ids := rowIDs(runs, "run-row")
	if len(ids) != 50 || ids[0] != fmt.Sprint(tests[59]) {
		t.Fatalf("the first page lists %d runs from %v, want 50 from the newest (%d)", len(ids), ids[:1], tests[59])
	}
	older := regexp.MustCompile(`<a id="older" href="([^"]+)">`).FindStringSubmatch(runs)
	if older == nil {
		t.Fatal("the first page of runs has no link to older ones")
	}
	_, page = s.get(t, "/repos/"+repo+htmlUnescape(strings.TrimSuffix(older[1], "#runs")))
	ids = rowIDs(section(t, page, "runs"), "run-row")
	// 10 older test runs, 4 production, the preview's run.
	if len(ids) != 15 || ids[0] != fmt.Sprint(tests[9]) || ids[len(ids)-1] != fmt.Sprint(prRun) {
		t.Errorf("the second page lists %v, want the 15 runs before %d", ids, tests[10])
	}
	if strings.Contains(section(t, page, "runs"), `id="older"`) {
		t.Error("the last page links older runs")
	}

	_, page = s.get(t, "/repos/"+repo+"?kind=test&status=failed")
	if got := rowIDs(section(t, page, "runs"), "run-row"); strings.Join(got, ",") != fmt.Sprintf("%d,%d,%d", tests[40], tests[20], tests[0]) {
		t.Errorf("failed test runs: %v, want %d, %d, %d", got, tests[40], tests[20], tests[0])
	}
	if !strings.Contains(page, `<option selected>failed</option>`) {
		t.Error("the filter does not show the status chosen")
	}
	_, page = s.get(t, "/repos/"+repo+"?kind=production")
	if got := rowIDs(section(t, page, "runs"), "run-row"); len(got) != 4 {
		t.Errorf("production runs: %v, want 4", got)
	}
	if strings.Contains(page, fmt.Sprintf(`data-run-id="%d"`, other)) {
		t.Error("another repository's run is listed")
	}

	for q, want := range map[string]string{
		"?kind=deploy":    `kind "deploy" is not one of preview, teardown, production, test`,
		"?status=broken":  `status "broken" is not one of`,
		"?before=-3":      `before "-3" is not a run id`,
		"?before=abc&x=1": `before "abc" is not a run id`,
	} {
		code, body := s.get(t, "/repos/"+repo+q)
		if code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q, want 400 saying %s", q, code, body, want)
		}
	}

	denied := newSite(t, onlyRepo("acme/other"))
	if code, body := denied.get(t, "/repos/"+repo); code != http.StatusNotFound || strings.Contains(body, "previews") {
		t.Errorf("a repository the viewer may not read: %d %q, want 404", code, body)
	}
	if code, _ := s.get(t, "/repos/acme/sh%20op"); code != http.StatusNotFound {
		t.Errorf("a name GitHub would not allow: %d, want 404", code)
	}
}

// signedInSite is the pages with sign-in through a simulated GitHub where
// "boss" is an admin, "writer" may read acme/shop, and acme/secret is
// private; River UI is served.
type signedInSite struct {
	st     *state.Store
	pool   *pgxpool.Pool
	gh     *ghsim.Server
	ghURL  string
	url    string
	secret string // the OAuth client's secret
	queue  *river.Client[pgx.Tx]
}

func newSignedInSite(t *testing.T, budget func() []web.BudgetRow) *signedInSite {
	t.Helper()
	gh, err := ghsim.New(ghsim.Options{})
	must(t, err)
	ghSrv := httptest.NewServer(gh.Handler())
	t.Cleanup(ghSrv.Close)
	gh.SetBaseURL(ghSrv.URL)
	for _, r := range []string{"shop", "secret"} {
		must(t, gh.CreateRepo("acme", r, "main"))
	}
	must(t, gh.SetPrivate("acme/secret", true))
	must(t, gh.SetPermission("acme/shop", "writer", "read"))

	var pages http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pages.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	gh.AddCallbackURL(srv.URL + login.PathCallback)
	pool := pgtest.NewDatabase(t)
	svc, err := login.New(pool, login.Options{
		WebURL: ghSrv.URL, APIURL: ghSrv.URL + "/",
		ClientID: ghsim.ClientID, ClientSecret: gh.ClientSecret(),
		PublicURL: srv.URL, MasterKey: []byte("0123456789abcdef0123456789abcdef"),
		Admins: []string{"boss"}, Logger: zerolog.Nop(),
	})
	must(t, err)
	queue := insertOnly(t, pool)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	riverUI, err := web.NewRiverUI(ctx, queue, zerolog.Nop())
	must(t, err)
	st := state.New(pool)
	h, err := web.New(web.Options{Reader: web.StateReader(st), Login: svc, River: riverUI, Budget: budget, GitHubURL: ghSrv.URL, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	must(t, err)
	pages = h
	return &signedInSite{st: st, pool: pool, gh: gh, ghURL: ghSrv.URL, url: srv.URL, secret: gh.ClientSecret(), queue: queue}
}

// browse signs in as login on a cookie-keeping client.
func (s *signedInSite) browse(t *testing.T, as string) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	must(t, err)
	b := &http.Client{Jar: jar}
	resp, err := b.Get(s.url + "/")
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `id="authorize"`) {
		t.Fatalf("the overview did not lead to GitHub's authorize page: %d %s", resp.StatusCode, body)
	}
	form := url.Values{}
	for _, m := range regexp.MustCompile(`name="(\w+)" value="([^"]*)"`).FindAllStringSubmatch(string(body), -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	form.Set("login", as)
	resp, err = b.PostForm(s.ghURL+"/login/oauth/authorize", form)
	must(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("signing in as %s: %d %s", as, resp.StatusCode, b)
	}
	return b
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'").Replace(s)
}

func fetch(t *testing.T, b *http.Client, u string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	must(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

// TestOverviewAndRiverUI: an admin's overview shows the queue by kind,
// the runs that failed in the last day, GitHub's rate limits and the
// previews alive, and links River UI, which shows the queued job; a
// reader sees only the repositories they may read, and neither the
// operators' data nor River UI exists for them. No page shows a secret.
func TestOverviewAndRiverUI(t *testing.T) {
	said := time.Now().Add(-2 * time.Minute)
	s := newSignedInSite(t, func() []web.BudgetRow {
		return []web.BudgetRow{{Installation: 7, Resource: "core", Remaining: 300, Limit: 5000, At: said}}
	})
	ctx := t.Context()
	failed, err := s.st.Runs.Start(ctx, state.Run{Kind: "preview", Repo: "acme/secret", PR: 4, HeadSHA: "5ec4e7", Reason: "pull_request.opened"})
	must(t, err)
	must(t, s.st.Runs.Finish(ctx, failed, "failed", "step build:web: runner: command exited with status 1"))
	fine, err := s.st.Runs.Start(ctx, state.Run{Kind: "test", Repo: "acme/shop", Branch: "main", HeadSHA: "abc"})
	must(t, err)
	must(t, s.st.Runs.Finish(ctx, fine, "succeeded", ""))
	oldFail, err := s.st.Runs.Start(ctx, state.Run{Kind: "test", Repo: "acme/shop", Branch: "main", HeadSHA: "old"})
	must(t, err)
	must(t, s.st.Runs.Finish(ctx, oldFail, "failed", "long ago"))
	_, err = s.pool.Exec(ctx, `UPDATE runs SET finished_at = now() - interval '25 hours' WHERE id = $1`, oldFail)
	must(t, err)
	job := queueProduction(t, s.queue, "acme/shop", "dec0de", "merger")

	boss := s.browse(t, "boss")
	code, _, page := fetch(t, boss, s.url+"/")
	if code != http.StatusOK {
		t.Fatalf("the admin's overview: %d %s", code, page)
	}
	queue := section(t, page, "queue")
	if !regexp.MustCompile(`<tr class="queue-row" data-kind="production_push">\s*<td>production_push</td><td>1</td><td>0</td><td>0</td><td>0</td><td class="oldest">[^<]+</td>`).MatchString(queue) {
		t.Errorf("the queue does not show the production job waiting:\n%s", queue)
	}
	if !strings.Contains(queue, `<a id="river" href="river/">River UI</a>`) {
		t.Error("the overview does not link River UI")
	}
	failures := section(t, page, "failed")
	if got := rowIDs(failures, "run-row"); len(got) != 1 || got[0] != fmt.Sprint(failed) {
		t.Errorf("failed in the last 24 h: %v, want only run %d", got, failed)
	}
	for _, want := range []string{fmt.Sprintf(`<a href="./runs/%d">`, failed), `<a href="repos/acme/secret">acme/secret</a>`, "runner: command exited with status 1"} {
		if !strings.Contains(failures, want) {
			t.Errorf("the failures lack %s:\n%s", want, failures)
		}
	}
	if b := section(t, page, "budget"); !strings.Contains(b, `<tr class="budget-row low" data-installation="7" data-resource="core">`) || !strings.Contains(b, "<td>300</td><td>5000</td><td>94%</td><td>2m0") {
		t.Errorf("the budget does not show installation 7's core limit, nearly used:\n%s", b)
	}
	if !strings.Contains(page, `<span id="previews-alive">0</span>`) {
		t.Error("the overview does not count the previews alive")
	}
	if r := section(t, page, "repos"); !strings.Contains(r, `<a href="repos/acme/secret">`) || !strings.Contains(r, `<a href="repos/acme/shop">`) {
		t.Errorf("the admin's repositories:\n%s", r)
	}

	// River UI: its page, and its API listing the queued job.
	code, hdr, body := fetch(t, boss, s.url+"/river/", "Accept", "text/html")
	if code != http.StatusOK || !strings.Contains(body, `id="config__json"`) || !strings.Contains(body, `/river/api`) {
		t.Fatalf("River UI for an admin: %d %q", code, body)
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "style-src 'self' 'unsafe-inline'") || strings.Contains(csp, "default-src 'none'") {
		t.Errorf("River UI's CSP: %q", csp)
	}
	code, _, body = fetch(t, boss, s.url+"/river/api/jobs?state=available&limit=20")
	if code != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`"id":%d`, job)) || !strings.Contains(body, `"kind":"production_push"`) {
		t.Errorf("River UI's job list for an admin: %d %s", code, body)
	}

	writer := s.browse(t, "writer")
	code, _, page = fetch(t, writer, s.url+"/")
	if code != http.StatusOK {
		t.Fatalf("a reader's overview: %d", code)
	}
	for _, id := range []string{"queue", "failed", "budget", "alive"} {
		if strings.Contains(page, `<section id="`+id+`">`) {
			t.Errorf("a reader sees the operators' %s", id)
		}
	}
	if r := section(t, page, "repos"); !strings.Contains(r, `<a href="repos/acme/shop">acme/shop</a>`) || strings.Contains(r, "acme/secret") {
		t.Errorf("a reader's repositories: %s, want acme/shop only", r)
	}
	for _, path := range []string{"/river/", "/river/api/jobs?state=available", "/river", "/repos/acme/secret"} {
		if code, _, body := fetch(t, writer, s.url+path, "Accept", "text/html"); code != http.StatusNotFound {
			t.Errorf("%s for a reader: %d %.80q, want 404", path, code, body)
		}
	}
	if code, _, _ := fetch(t, writer, s.url+"/repos/acme/shop"); code != http.StatusOK {
		t.Errorf("a repository the reader may read: %d", code)
	}
	// A page River UI would change the queue from, posted from elsewhere.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/river/api/jobs/cancel", strings.NewReader(fmt.Sprintf(`{"ids":["%d"]}`, job)))
	must(t, err)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Content-Type", "application/json")
	resp, err := boss.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site change through River UI: %d, want 403", resp.StatusCode)
	}

	// No page shows a secret the pages' process knows.
	password := s.pool.Config().ConnConfig.Password
	for _, path := range []string{"/", "/repos/acme/shop", "/repos/acme/secret", fmt.Sprintf("/runs/%d", failed)} {
		_, _, body := fetch(t, boss, s.url+path)
		for name, secret := range map[string]string{"the OAuth client's secret": s.secret, "the master key": "0123456789abcdef0123456789abcdef", "the database password": password} {
			if secret != "" && strings.Contains(body, secret) {
				t.Errorf("%s shows %s", path, name)
			}
		}
	}
}

// TestOverviewWithoutSignIn: without sign-in the overview is everyone's
// (the demo, a bot behind its own proxy), but River UI, which can change
// the queue, is not served.
func TestOverviewWithoutSignIn(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	st := state.New(pool)
	h, err := web.New(web.Options{Reader: web.StateReader(st), Logger: zerolog.Nop(), River: http.NotFoundHandler()})
	must(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s := &site{st: st, srv: srv}
	run, err := st.Runs.Start(t.Context(), state.Run{Kind: "test", Repo: "acme/shop", Branch: "main", HeadSHA: "abc"})
	must(t, err)
	must(t, st.Runs.Finish(t.Context(), run, "failed", "unit failed"))
	code, page := s.get(t, "/")
	if code != http.StatusOK || !strings.Contains(section(t, page, "failed"), `data-run-id="`+strconv.FormatInt(run, 10)+`"`) ||
		!strings.Contains(section(t, page, "budget"), "Not known to these pages.") {
		t.Errorf("the overview without sign-in: %d\n%s", code, page)
	}
	if strings.Contains(page, `id="river"`) {
		t.Error("the overview links River UI without sign-in")
	}
	if code, _ := s.get(t, "/river/"); code != http.StatusNotFound {
		t.Errorf("River UI without sign-in: %d, want 404", code)
	}
}
