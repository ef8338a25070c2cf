package github

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

func TestTruncateMarkdown(t *testing.T) {
	if got := TruncateMarkdown("short", 100); got != "short" {
		t.Errorf("short text changed: %q", got)
	}
	long := "```\n" + strings.Repeat("é✅x\n", 20000)
	for _, limit := range []int{200, 1000, 4097, MaxOutputBytes} {
		got := TruncateMarkdown(long, limit)
		if len(got) > limit || !utf8.ValidString(got) || !strings.Contains(got, "truncated") {
			t.Errorf("limit %d: %d bytes, valid UTF-8 %v: ...%q", limit, len(got), utf8.ValidString(got), got[max(len(got)-80, 0):])
		}
		if strings.Count(got, "```")%2 != 0 {
			t.Errorf("limit %d: code fence left open", limit)
		}
	}
	if got := TruncateMarkdown(strings.Repeat("✅", 100), 10); len(got) > 10 || !utf8.ValidString(got) {
		t.Errorf("tiny limit: %q", got)
	}
}

func TestLRUCacheIsBounded(t *testing.T) {
	c := newLRUCache(10)
	c.Set("a", []byte("12345"))
	c.Set("b", []byte("12345"))
	c.Get("a") // a is now the most recent
	c.Set("c", []byte("123"))
	if _, ok := c.Get("b"); ok {
		t.Error("least recently used entry kept beyond the bound")
	}
	if _, ok := c.Get("a"); !ok {
		t.Error("recently used entry evicted")
	}
	c.Set("huge", make([]byte, 11))
	if _, ok := c.Get("huge"); ok {
		t.Error("an entry larger than the whole cache was stored")
	}
	c.Delete("a")
	if _, ok := c.Get("a"); ok || c.size != 3 {
		t.Errorf("after delete: size %d", c.size)
	}
}

func TestConfig(t *testing.T) {
	for v3, want := range map[string]string{
		"":                                "https://api.github.com/graphql",
		"https://api.github.com/":         "https://api.github.com/graphql",
		"https://ghe.example.com/api/v3/": "https://ghe.example.com/api/graphql",
		"http://127.0.0.1:8081/github/":   "http://127.0.0.1:8081/github/graphql",
	} {
		if got := DefaultV4URL(v3); got != want {
			t.Errorf("DefaultV4URL(%q) = %q, want %q", v3, got, want)
		}
	}
	for v3, want := range map[string]string{
		"":                                "https://github.com",
		"https://api.github.com/":         "https://github.com",
		"https://ghe.example.com/api/v3/": "https://ghe.example.com",
		"http://127.0.0.1:8081/github/":   "https://github.com",
	} {
		if got := WebURL(v3); got != want {
			t.Errorf("WebURL(%q) = %q, want %q", v3, got, want)
		}
	}
	key, err := rsaPEM()
	must(t, err)
	if _, err := NewClientCreator(Config{AppID: 1, PrivateKey: []byte("not a key")}); err == nil {
		t.Error("accepted a key that is not PEM")
	}
	if _, err := NewClientCreator(Config{PrivateKey: key}); err == nil {
		t.Error("accepted a missing app ID")
	}
	if _, err := NewClientCreator(Config{AppID: 1, PrivateKey: key, V3APIURL: "api.github.com"}); err == nil {
		t.Error("accepted a relative API URL")
	}
}

// TestEnterpriseStyleBaseURL runs the bot against the simulator mounted
// under /api/v3 as GitHub Enterprise Server serves it, including the
// token exchange, pagination links and the archive redirect.
func TestEnterpriseStyleBaseURL(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ghes := httptest.NewServer(http.StripPrefix("/api/v3", e.sim.Handler()))
	t.Cleanup(ghes.Close)
	e.sim.SetBaseURL(ghes.URL + "/api/v3")
	cfg := e.cfg
	cfg.V3APIURL = ghes.URL + "/api/v3/"
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).WithContext(t.Context())
	rep := NewReporter(e.installationClient(cfg), owner, name, WithBotLogin(e.sim.BotLogin()))

	for i := range 120 {
		_, err := e.sim.AddComment(repo, 1, "alice", strings.Repeat("x", i%7))
		must(t, err)
	}
	if _, err := e.sim.AddComment(repo, 1, e.sim.BotLogin(), StatusMarker(1)+"\nold"); err != nil {
		t.Fatal(err)
	}
	if _, err := rep.UpsertStatusComment(ctx, 1, "new", 0); err != nil {
		t.Fatal(err)
	}
	if n := e.requests(routeCreateComment); n != 0 {
		t.Errorf("status comment on page 2 not found through the prefixed Link: %d created", n)
	}
	rc, err := rep.Tarball(ctx, "main")
	must(t, err)
	rc.Close()

	// Requests are logged at debug level, without credentials.
	out := logs.String()
	if !strings.Contains(out, `"message":"github_request"`) || !strings.Contains(out, `"level":"debug"`) {
		t.Errorf("no debug request logs: %s", out)
	}
	if strings.Contains(out, "ghs_") || strings.Contains(out, "token=") || strings.Contains(out, "Bearer") {
		t.Errorf("logs show a credential: %s", out)
	}
}
