package login_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/revelations-studio/deploybot/internal/browsertest"
)

// TestSignInInABrowser signs in as a person would, in headless Chromium:
// the bot's page sends the browser to GitHub's authorize page, the person
// types their login and authorizes, and GitHub's redirect brings them back
// signed in to the page they asked for.
func TestSignInInABrowser(t *testing.T) {
	w := newWorld(t)
	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(w.botURL+"/whoami?repo=acme/secret"),
		chromedp.WaitVisible(chromedp.ID("authorize")),
		chromedp.SendKeys(chromedp.ID("login"), "writer"),
	); err != nil {
		t.Fatal(err)
	}
	// The click's navigation (GitHub's redirect to the callback, the bot's
	// to the page) ends with one load of the page asked for.
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.ID("authorize")))); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "login=writer admin=false role=read") {
		t.Fatalf("back from GitHub the page says %q", text)
	}
	where, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(where, "/whoami?repo=acme/secret") {
		t.Fatalf("back at %s, not the page asked for", where)
	}
}
