package pipeline_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/login"
)

// browser is a person's browser on the bot's pages: it keeps their
// session's cookie.
type browser struct {
	e *env
	c *http.Client
}

// signIn opens page in a new browser, which the bot sends to sign in with
// the simulated GitHub; it authorizes as user there and returns the
// browser, back on the page.
func (e *env) signIn(page, user string) *browser {
	e.t.Helper()
	jar, err := cookiejar.New(nil)
	e.must(err)
	b := &browser{e: e, c: &http.Client{Jar: jar}}
	_, body := b.get(page)
	if !strings.Contains(body, `id="authorize"`) {
		e.t.Fatalf("%s did not lead to GitHub's authorize page: %s", page, body)
	}
	form := url.Values{}
	for _, m := range regexp.MustCompile(`name="(\w+)" value="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		form.Set(m[1], unescape(m[2]))
	}
	form.Set("login", user)
	resp, err := b.c.PostForm(strings.TrimSuffix(e.s.URLs.GitHub, "/")+"/login/oauth/authorize", form)
	e.must(err)
	resp.Body.Close()
	return b
}

func unescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'").Replace(s)
}

func (b *browser) get(u string) (int, string) {
	b.e.t.Helper()
	resp, err := b.c.Get(u)
	b.e.must(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	b.e.must(err)
	return resp.StatusCode, string(body)
}

// csrf is the token of the browser's session, read from page's forms.
func (b *browser) csrf(page string) string {
	b.e.t.Helper()
	_, body := b.get(page)
	m := regexp.MustCompile(`name="` + login.CSRFField + `" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		b.e.t.Fatalf("%s has no form with a CSRF token", page)
	}
	return unescape(m[1])
}

// press posts a button's form (action on page, with the token csrf and
// the fields given), following the answer's redirect.
func (b *browser) press(page, action, csrf string, fields ...string) (int, string) {
	b.e.t.Helper()
	form := url.Values{}
	if csrf != "" {
		form.Set(login.CSRFField, csrf)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Set(fields[i], fields[i+1])
	}
	resp, err := b.c.PostForm(page+"/actions/"+action, form)
	b.e.must(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	b.e.must(err)
	return resp.StatusCode, string(body)
}

// runsCount counts pr's runs of kind started for reason.
func (e *env) runsCount(pr int, kind, reason string) int {
	e.t.Helper()
	var n int
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT count(*) FROM runs WHERE pr_number = $1 AND kind = $2 AND reason = $3`, pr, kind, reason).Scan(&n))
	return n
}

// TestPageActionsOnAPreview: the buttons of a pull request's run page do
// what the PR commands do, for whom the commands let, on a private
// repository: a writer's Redeploy starts a run requested by them; a
// reader's is refused, visibly, and starts nothing; an outsider cannot
// even find the run; a form without the session's token is refused; and
// Destroy tears the preview down.
func TestPageActionsOnAPreview(t *testing.T) {
	e := startWith(t, demo.StackOptions{SignIn: true})
	e.must(e.gh.SetPrivate(demo.Repo, true))
	e.must(e.gh.SetPermission(demo.Repo, "writer", "write"))
	e.must(e.gh.SetPermission(demo.Repo, "reader", "read"))
	pr, sha := e.newPR("feature/buttons")
	e.event(pr, "opened")
	e.idle()
	if live := e.live(host("web", pr)); live != sha {
		t.Fatalf("the preview serves %q, want %s", live, sha[:7])
	}
	var first int64
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT id FROM runs WHERE kind = 'preview' AND pr_number = $1`, pr).Scan(&first))
	page := e.s.BotURL + "/runs/" + strconv.FormatInt(first, 10)

	// A writer presses Redeploy: a new run, requested by them.
	writer := e.signIn(page, "writer")
	_, body := writer.get(page)
	for _, id := range []string{`id="do-redeploy"`, `id="do-redeploy-reset-db"`, `id="do-destroy"`, `id="do-deploy"`} {
		if !strings.Contains(body, id) {
			t.Errorf("the writer's page has no %s button", id)
		}
	}
	token := writer.csrf(page)
	status, body := writer.press(page, "redeploy", token)
	if status != http.StatusOK || !strings.Contains(body, `id="action-`) {
		t.Fatalf("Redeploy: %d, the page shows no request: %s", status, body)
	}
	e.idle()
	var again int64
	var actor string
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT id, actor FROM runs WHERE kind = 'preview' AND pr_number = $1 AND reason = 'page.redeploy'`, pr).Scan(&again, &actor))
	if actor != "writer" {
		t.Errorf("the redeploy's run was requested by %q, want writer", actor)
	}
	_, body = writer.get(e.s.BotURL + "/runs/" + strconv.FormatInt(again, 10))
	if !strings.Contains(body, `<dd id="run-trigger">page.redeploy</dd>`) || !strings.Contains(body, `<dt>Requested by</dt><dd id="run-actor">writer</dd>`) {
		t.Errorf("the new run's page does not say who asked for it from the page:\n%s", body)
	}
	_, body = writer.get(page)
	if !regexp.MustCompile(`(?s)<tr id="action-\d+"[^>]*>.*?writer.*?redeploy.*?status-done">done</span> <a href="` + strconv.FormatInt(again, 10) + `">`).MatchString(body) {
		t.Errorf("the first run's page does not list the writer's redeploy as done, with its run:\n%s", body)
	}

	// A reader has buttons too (the page cannot know the commands' rules),
	// but the job refuses them, says so on the page, and starts nothing.
	reader := e.signIn(page, "reader")
	status, body = reader.press(page, "redeploy", reader.csrf(page))
	if status != http.StatusOK {
		t.Fatalf("the reader's Redeploy: %d %s", status, body)
	}
	e.idle()
	if n := e.runsCount(pr, "preview", "page.redeploy"); n != 1 {
		t.Errorf("after the reader's Redeploy there are %d redeploy runs, want the writer's 1", n)
	}
	_, body = reader.get(page)
	if !regexp.MustCompile(`(?s)reader.*?status-refused">refused</span> <span class="message">@reader may not steer deploybot on ` + demo.Repo).MatchString(body) {
		t.Errorf("the page does not show the reader's request refused:\n%s", body)
	}

	// An outsider cannot see the private repository's run, nor act on it.
	outsider := e.signIn(page, "outsider")
	if status, _ := outsider.get(page); status != http.StatusNotFound {
		t.Errorf("an outsider reads the private repository's run page: %d", status)
	}
	if status, _ := outsider.press(page, "destroy", token); status != http.StatusNotFound {
		t.Errorf("an outsider's Destroy: %d, want 404", status)
	}

	// A form without the session's token, or with another's, is refused.
	if status, body := writer.press(page, "destroy", ""); status != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Errorf("Destroy without a CSRF token: %d %s, want 403", status, body)
	}
	if status, _ := writer.press(page, "destroy", reader.csrf(page)); status != http.StatusForbidden {
		t.Errorf("Destroy with the reader's CSRF token: %d, want 403", status)
	}
	// Nor are actions the run does not offer.
	if status, body := writer.press(page, "rollback", token); status != http.StatusBadRequest || !strings.Contains(body, `offers no action "rollback"`) {
		t.Errorf("a rollback on a preview's run: %d %s, want 400", status, body)
	}
	e.idle()
	if live := e.live(host("web", pr)); live != sha {
		t.Fatalf("after the refused requests the preview serves %q, want %s", live, sha[:7])
	}

	// Destroy tears the preview down, as /destroy does.
	if status, body := writer.press(page, "destroy", token); status != http.StatusOK {
		t.Fatalf("Destroy: %d %s", status, body)
	}
	e.idle()
	e.expectNothingLeft(pr)
	if n := e.runsCount(pr, "teardown", "page.destroy"); n != 1 {
		t.Errorf("Destroy left %d teardown runs requested from the page, want 1", n)
	}
}

// runPage is the page of the newest run of kind at sha.
func (e *env) runPage(kind, sha string) string {
	e.t.Helper()
	var id int64
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT max(id) FROM runs WHERE kind = $1 AND head_sha = $2`, kind, sha).Scan(&id))
	return e.s.BotURL + "/runs/" + strconv.FormatInt(id, 10)
}

// newestRun is the reason and actor of the newest run of kind at sha.
func (e *env) newestRun(kind, sha string) (reason, actor string) {
	e.t.Helper()
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT reason, actor FROM runs WHERE kind = $1 AND head_sha = $2 ORDER BY id DESC LIMIT 1`, kind, sha).Scan(&reason, &actor))
	return reason, actor
}

// TestPageActionsOnProductionAndTests: a production run's page re-runs
// its deploy and rolls back to it, and a test run's page re-runs one
// stage, as the check runs' Re-run and "Roll back to this" do, each run
// requested by the person who pressed.
func TestPageActionsOnProductionAndTests(t *testing.T) {
	e := startWith(t, demo.StackOptions{SignIn: true})
	e.must(e.gh.SetPermission(demo.Repo, "writer", "write"))
	first := e.merge(map[string]string{"web/src/v.js": "1\n"})
	e.idle()
	second := e.merge(map[string]string{"web/src/v.js": "2\n"})
	sha := e.pushBranch("feature/stages", "Change", map[string]string{"web/src/s.js": "s\n"})
	e.idle()
	expectAll(t, e.liveEverywhere(), second)

	page := e.runPage("production", second)
	writer := e.signIn(page, "writer")
	token := writer.csrf(page)
	_, body := writer.get(e.runPage("production", first))
	if !strings.Contains(body, `id="do-rerun"`) || !strings.Contains(body, `id="do-rollback"`) {
		t.Errorf("a successful production run's page lacks Re-run or Roll back:\n%s", body)
	}
	if status, body := writer.press(page, "rerun", token); status != http.StatusOK {
		t.Fatalf("Re-run: %d %s", status, body)
	}
	e.idle()
	if _, conclusion, _, n := e.productionCheck(second); n != 2 || conclusion != "success" {
		t.Errorf("after Re-run from the page: %d production check runs on %s, the newest %q; want 2, success (%s)", n, second[:7], conclusion, e.failedSteps())
	}
	if reason, actor := e.newestRun("production", second); reason != "rerun" || actor != "writer" {
		t.Errorf("the re-run's run: reason %q, requested by %q; want rerun by writer", reason, actor)
	}

	if status, body := writer.press(e.runPage("production", first), "rollback", token); status != http.StatusOK {
		t.Fatalf("Roll back: %d %s", status, body)
	}
	e.idle()
	expectAll(t, e.liveEverywhere(), first)
	if reason, actor := e.newestRun("production", first); reason != "rollback" || actor != "writer" {
		t.Errorf("the rollback's run: reason %q, requested by %q; want rollback by writer", reason, actor)
	}

	tests := e.runPage("test", sha)
	_, body = writer.get(tests)
	if !strings.Contains(body, `id="do-rerun-unit"`) || strings.Contains(body, `id="do-rerun-setup:`) {
		t.Errorf("the test run's page should offer a re-run of each stage, and of no setup step:\n%s", body)
	}
	if status, body := writer.press(tests, "rerun", token, "stage", "nosuch"); status != http.StatusBadRequest || !strings.Contains(body, `stage "nosuch"`) {
		t.Errorf("a re-run of a stage the run does not have: %d %s, want 400", status, body)
	}
	if status, body := writer.press(tests, "rerun", token, "stage", "unit"); status != http.StatusOK {
		t.Fatalf("Re-run unit: %d %s", status, body)
	}
	e.idle()
	got := e.stageChecks(sha)
	if len(got["unit"]) != 2 || len(got["static"]) != 1 || got["unit"][1] != "success" {
		t.Errorf("after re-running unit from the page: %v, want unit twice, static once", got)
	}
	if reason, actor := e.newestRun("test", sha); reason != "rerun" || actor != "writer" {
		t.Errorf("the stage re-run's run: reason %q, requested by %q; want rerun by writer", reason, actor)
	}
}
