package main

import (
	"bufio"
	"bytes"
	"context"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/sandbox"
)

// lineWatch reads what is written to w line by line: the first line that
// matches is sent on found (closed if none does), and every line is kept
// in rest, readable once done is closed.
type lineWatch struct {
	w     *io.PipeWriter
	found chan string
	rest  bytes.Buffer
	done  chan struct{}
}

func watchLines(match func(string) bool) *lineWatch {
	r, w := io.Pipe()
	lw := &lineWatch{w: w, found: make(chan string, 1), done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			lw.rest.WriteString(sc.Text() + "\n")
			if !sent && match(sc.Text()) {
				lw.found <- sc.Text()
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, r)
		if !sent {
			close(lw.found)
		}
	}()
	return lw
}

// TestSetupThenServe is README's "Running it for real" against the sandbox:
// `bot setup` registers an App with the simulated GitHub (an HTTP client
// plays the browser), and `bot serve` started from the config it wrote
// authenticates as that App.
func TestSetupThenServe(t *testing.T) {
	ctx := context.Background()
	sb, err := sandbox.New(ctx, sandbox.Options{AdminURL: pgtest.ServerURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close(context.Background()) })
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	urls := sb.URLsAt(srv.URL)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yml")
	out := watchLines(func(l string) bool { return strings.HasPrefix(l, "Open http://") })
	setupDone := make(chan error, 1)
	go func() {
		setupDone <- run(ctx, []string{"setup", "--public-url", "https://bot.example.com", "--github-url", srv.URL + sandbox.GitHubPrefix,
			"--api-url", urls.GitHub, "--name", "Codex Deploys", "--config", cfgPath}, out.w, io.Discard, func(string) string { return "" })
		out.w.Close()
	}()
	line, ok := <-out.found
	if !ok {
		t.Fatalf("setup printed no page to open: %v", <-setupDone)
	}
	page := strings.Fields(strings.TrimPrefix(line, "Open "))[0]

	// The browser: open the page, submit its form to GitHub, follow
	// GitHub's redirect back.
	resp, err := http.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action := regexp.MustCompile(`<form action="([^"]+)" method="post">`).FindSubmatch(body)
	manifest := regexp.MustCompile(`<input type="hidden" name="manifest" value="([^"]+)">`).FindSubmatch(body)
	if action == nil || manifest == nil {
		t.Fatalf("the setup page has no manifest form:\n%s", body)
	}
	resp, err = http.PostForm(html.UnescapeString(string(action[1])), url.Values{"manifest": {html.UnescapeString(string(manifest[1]))}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-setupDone; err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("setup: %v (last page %d)", err, resp.StatusCode)
	}
	<-out.done
	if !strings.Contains(out.rest.String(), "/apps/codex-deploys/installations/new") {
		t.Errorf("setup's output has no install link:\n%s", out.rest.String())
	}
	for _, name := range []string{"config.yml", "github-app.pem", "github-webhook-secret"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want a file with mode 0600", name, st, err)
		}
	}

	// bot serve from that config asks GitHub who it is, as the new App.
	_, dbURL := pgtest.NewDatabaseURL(t)
	logs := watchLines(func(l string) bool { return strings.Contains(l, "deploybot is serving") })
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- run(serveCtx, []string{"serve", "--config", cfgPath, "--addr", "127.0.0.1:0"}, io.Discard, logs.w, func(k string) string {
			return map[string]string{"DEPLOYBOT_DATABASE_URL": dbURL}[k]
		})
		logs.w.Close()
	}()
	_, serving := <-logs.found
	stop()
	err = <-served
	<-logs.done
	if !serving || err != nil {
		t.Fatalf("serve did not start (%v):\n%s", err, logs.rest.String())
	}
	if !regexp.MustCompile(`"login":"codex-deploys\[bot\]".*"message":"the App's bot user"`).MatchString(logs.rest.String()) {
		t.Errorf("serve did not authenticate as the new App:\n%s", logs.rest.String())
	}
}
