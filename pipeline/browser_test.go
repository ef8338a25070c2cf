package pipeline_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/revelations-studio/deploybot/internal/browsertest"
	"github.com/revelations-studio/deploybot/internal/demo"
)

// chromium is a headless Chromium on the bot's pages, signed in as one person at a time.
type chromium struct {
	t   *testing.T
	ctx context.Context
	e   *env
}

// signIn opens url as nobody, which sends the browser to the simulated
// GitHub's authorize page; it signs in there as login and follows GitHub
// back to url. It returns the status the bot answered url with.
func (b *chromium) signIn(url, login string) int64 {
	b.t.Helper()
	_, err := chromedp.Call(b.ctx, network.ClearBrowserCookies, cdp.Empty{})
	b.must(err)
	b.must(chromedp.Do(b.ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("authorize")),
		chromedp.SendKeys(chromedp.ID("login"), login),
	))
	// GitHub's redirect to the bot's callback, and the bot's to the page,
	// are one navigation: its response is the page's.
	resp, err := chromedp.Run(b.ctx, chromedp.WaitEvent(network.ResponseReceived, func(e network.EventResponseReceived) bool {
		return e.Type == network.ResourceTypeDocument && e.Response.URL == url
	}, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.ID("authorize")))))
	b.must(err)
	return resp.Response.Status
}

// waitFor waits until the page's JavaScript expression is true: the page
// changes by itself (its live stream), no reload.
func (b *chromium) waitFor(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(0))); err != nil {
		b.t.Fatalf("the page never showed %s: %v", what, err)
	}
}

// press clicks the run page's button for action and waits for the page it
// leads back to.
func (b *chromium) press(action string) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.ID("do-"+action))))
	b.must(err)
}

func (b *chromium) text(id string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.ID(id)))
	b.must(err)
	return s
}

func (b *chromium) must(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
	}
}

// TestWebInABrowser uses the web pages as people do, in headless Chromium,
// signed in through the simulated GitHub's sign-in page: a writer watches
// a preview's run page fill in while the run goes on, without reloading; a
// reader sees it too. The writer's Redeploy starts a run requested by
// them; the reader's is refused on the page and starts nothing. Once the
// repository is private, an outsider gets 404 for its runs while the
// writer still sees them. Screenshots of the page go to the test's
// artifacts (go test -artifacts).
func TestWebInABrowser(t *testing.T) {
	e := startWithin(t, demo.StackOptions{SignIn: true}, 3*time.Minute)
	b := &chromium{t: t, ctx: browsertest.New(t, 150*time.Second), e: e}
	e.must(e.gh.SetPermission(demo.Repo, "writer", "write"))
	e.must(e.gh.SetPermission(demo.Repo, "reader", "read"))

	fifo := filepath.Join(e.shared, "say")
	e.must(syscall.Mkfifo(fifo, 0o666))
	pr, _ := e.open("feature/browser", map[string]string{"scripts/migrate.sh": runPageMigrate(fifo)}, false)
	e.event(pr, "opened")
	say := e.waitOnFifo(fifo)
	var run int64
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT id FROM runs WHERE kind = 'preview' AND pr_number = $1`, pr).Scan(&run))
	runPage := e.s.BotURL + "/runs/" + strconv.FormatInt(run, 10)

	if status := b.signIn(runPage, "writer"); status != 200 {
		t.Fatalf("the writer, signed in, gets %d for the run's page", status)
	}
	if got := b.text("viewer"); got != "writer" {
		t.Errorf("the page says %q is signed in, want writer", got)
	}
	b.waitFor("the migration's line before its pause", `document.getElementById("log-migrate").textContent.includes("waiting for the test")`)
	if st := b.text("run-status"); !strings.Contains(st, "running") {
		t.Errorf("while the migration waits the run is %q, want running", st)
	}
	browsertest.Screenshot(t, b.ctx, "run-page-live.png")
	_, err := say.WriteString("go\n")
	e.must(err)
	e.must(say.Close())
	b.waitFor("the line printed after the page loaded", `document.getElementById("log-migrate").textContent.includes("the test said go")`)
	b.waitFor("the migration's end", `document.getElementById("step-migrate").className.includes("status-succeeded")`)
	e.idle()
	b.must(chromedp.Do(b.ctx, chromedp.Reload()))
	b.waitFor("the run's success", `document.getElementById("run-status").textContent.includes("succeeded")`)
	browsertest.Screenshot(t, b.ctx, "run-page.png")
	if body := b.text("steps"); !strings.Contains(body, "migration log line 0, to fill") {
		t.Error("the finished page lacks the beginning of the migration's log")
	}

	// The writer presses Redeploy: a new run, requested by them (its
	// migration waits on the fifo again).
	b.press("redeploy")
	again := e.waitOnFifo(fifo)
	_, err = again.WriteString("again\n")
	e.must(err)
	e.must(again.Close())
	e.idle()
	redeploys := func() (n int, newest int64) {
		t.Helper()
		e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT count(*), coalesce(max(id), 0) FROM runs
			WHERE kind = 'preview' AND pr_number = $1 AND reason = 'page.redeploy' AND actor = 'writer'`, pr).Scan(&n, &newest))
		return n, newest
	}
	n, redeploy := redeploys()
	if n != 1 {
		t.Fatalf("the writer's Redeploy started %d runs requested by them, want 1", n)
	}
	b.must(chromedp.Do(b.ctx, chromedp.Reload()))
	if got := b.text("actions"); !strings.Contains(got, "done") || !strings.Contains(got, "run "+strconv.FormatInt(redeploy, 10)) {
		t.Errorf("the page's requests do not show the redeploy done, with its run %d:\n%s", redeploy, got)
	}

	// A reader sees the page and its buttons, but GitHub gives them no
	// right to deploy: the page says refused, and nothing runs.
	if status := b.signIn(runPage, "reader"); status != 200 {
		t.Errorf("a reader of the public repository gets %d for its run's page", status)
	}
	b.press("redeploy")
	e.idle()
	b.must(chromedp.Do(b.ctx, chromedp.Reload()))
	if got := b.text("actions"); !strings.Contains(got, "reader") || !strings.Contains(got, "refused") {
		t.Errorf("the page does not show the reader's redeploy refused:\n%s", got)
	}
	var all int
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT count(*) FROM runs WHERE kind = 'preview' AND pr_number = $1 AND reason LIKE 'page.%'`, pr).Scan(&all))
	if all != 1 {
		t.Errorf("%d runs were started from the page, want the writer's 1", all)
	}

	repoPage := e.s.BotURL + "/repos/" + demo.Repo
	e.must(e.gh.SetPrivate(demo.Repo, true))
	if status := b.signIn(runPage, "outsider"); status != 404 {
		t.Errorf("an outsider gets %d for a private repository's run, want 404", status)
	}
	if resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(repoPage)); err != nil || resp.Status != 404 {
		t.Errorf("an outsider's view of the private repository's page: %v, %v; want 404", resp, err)
	}
	if status := b.signIn(runPage, "writer"); status != 200 {
		t.Errorf("the writer gets %d for the private repository's run, want 200", status)
	}
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(repoPage))
	b.must(err)
	if resp.Status != 200 {
		t.Fatalf("the writer gets %d for the repository's page", resp.Status)
	}
	if rows := b.text("runs"); !strings.Contains(rows, "page.redeploy") {
		t.Errorf("the repository's runs do not list the redeploy:\n%s", rows)
	}
	browsertest.Screenshot(t, b.ctx, "repository-page.png")
}
