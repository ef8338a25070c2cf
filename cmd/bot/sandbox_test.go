package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/pgtest"
)

// TestSandboxServeBot follows README's "Trying it against the sandbox":
// bot sandbox --serve-bot, then the printed curl commands over HTTP — a
// repository from the sample, a pull request — until the PR's comment says
// its preview is ready, then a merge.
func TestSandboxServeBot(t *testing.T) {
	if testing.Short() {
		t.Skip("the sandbox with its bot is an end-to-end test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	botAddr := freeAddr(t)
	out, w := io.Pipe()
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		done <- run(runCtx, []string{"sandbox", "--addr", "127.0.0.1:0", "--bot-addr", botAddr, "--serve-bot"}, w, io.Discard,
			func(k string) string { return map[string]string{"DATABASE_URL": pgtest.ServerURL(t)}[k] })
		w.Close()
	}()

	// Read what it prints up to the help on driving it.
	var printed strings.Builder
	lines := bufio.NewScanner(out)
	for lines.Scan() && !strings.Contains(lines.Text(), "Ctrl-C to stop") {
		printed.WriteString(lines.Text() + "\n")
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	m := regexp.MustCompile(`deploybot sandbox at (http://\S+)`).FindStringSubmatch(printed.String())
	if m == nil || !strings.Contains(printed.String(), "The bot is ready; webhooks go to http://"+botAddr+"/api/github/hook") {
		t.Fatalf("bot sandbox --serve-bot printed:\n%s", printed.String())
	}
	base := m[1]
	for _, want := range []string{"curl -X POST " + base + "/repos", "/pulls -d", "/state"} {
		if !strings.Contains(printed.String(), want) {
			t.Errorf("the printed help lacks %q:\n%s", want, printed.String())
		}
	}

	post := func(path, body string) map[string]any {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode >= 300 {
			t.Fatalf("POST %s: %d %v %v", path, resp.StatusCode, v, err)
		}
		return v
	}
	post("/repos", `{"repo": "revelations-studio/codex", "sample": true}`)
	opened := post("/repos/revelations-studio/codex/pulls", `{"head": "feature/login", "title": "Add login", "files": {"web/src/login.js": "export const login = 1;\n"}}`)
	for _, d := range opened["deliveries"].([]any) {
		if d := d.(map[string]any); d["status"] != 200.0 {
			t.Fatalf("the bot answered a delivery with %v", d)
		}
	}
	sha := opened["sha"].(string)

	// The preview takes seconds to build: read the state as the README
	// says until the comment says it is ready (the deadline bounds it).
	comment := func() string {
		resp, err := http.Get(base + "/state")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct {
			GitHub struct {
				Comments []struct{ Author, Body string } `json:"comments"`
			} `json:"github"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		for _, c := range st.GitHub.Comments {
			if c.Author == "deploybot[bot]" {
				return c.Body
			}
		}
		return ""
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(comment(), "Preview ready for `"+sha[:7]+"`") {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("the preview never became ready; the comment says:\n%s", comment())
		}
	}
	closed := post("/repos/revelations-studio/codex/pulls/1/close", `{"merge": true}`)
	if n := len(closed["deliveries"].([]any)); n != 2 {
		t.Errorf("a merge delivered %d webhooks, want pull_request closed and push", n)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("bot sandbox ended with %v", err)
	}
}
