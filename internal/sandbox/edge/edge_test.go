package edge

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var attached = time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)

func sites(host, path string) (Site, bool) {
	switch host {
	case "codex-preview-7.revelations.studio":
		return Site{Script: "codex-web-preview-7", VersionID: "v-7", Vars: map[string]string{"DEPLOYBOT_COMMIT": "abc1234"}, Since: attached,
			Asset: func(p string) ([]byte, string, bool) {
				switch p {
				case "/index.html":
					return []byte("<p>home</p>"), "text/html; charset=utf-8", true
				case "/LICENSE":
					return []byte("MIT"), "application/null", true
				}
				return nil, "", false
			}}, true
	case "api-preview-7.revelations.studio":
		return Site{Script: "ecom-api-preview-7", VersionID: "v-api", Vars: map[string]string{"COMMIT_SHA": "def5678"}}, true
	}
	return Site{}, false
}

func get(s *Server, hostport, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "http://"+hostport+path, nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestServesTheLiveVersionByHost(t *testing.T) {
	s := New(Options{Resolver: ResolverFunc(sites)})
	// Paths without a static asset get the page naming what is deployed.
	w := get(s, "Codex-Preview-7.revelations.studio:8443", "/about")
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{"codex-web-preview-7", "v-7", "abc1234"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	if w.Header().Get("X-Deploybot-Version") != "v-7" || w.Header().Get("X-Deploybot-Commit") != "abc1234" {
		t.Errorf("headers = %v", w.Header())
	}
	if w := get(s, "api-preview-7.revelations.studio", "/health"); w.Header().Get("X-Deploybot-Commit") != "def5678" {
		t.Errorf("commit from COMMIT_SHA not found: %v", w.Header())
	}
	if w := get(s, "codex-preview-7.revelations.studio", "/"); !strings.Contains(w.Body.String(), "<p>home</p>") || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("/ does not serve the index asset with its type: %q, %v", w.Body.String(), w.Header())
	}
	// Uploaded as application/null: served with no type at all, none
	// guessed.
	if w := get(s, "codex-preview-7.revelations.studio", "/LICENSE"); w.Body.String() != "MIT" || len(w.Header().Values("Content-Type")) != 0 {
		t.Errorf("/LICENSE: %q, %v; want no Content-Type", w.Body.String(), w.Header())
	}
}

func TestUnknownHostIs404(t *testing.T) {
	s := New(Options{Resolver: ResolverFunc(sites)})
	w := get(s, "nope.revelations.studio", "/")
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "error code: 1001") {
		t.Fatalf("%d %q", w.Code, w.Body.String())
	}
}

func TestHealthyAfterRequests(t *testing.T) {
	s := New(Options{Resolver: ResolverFunc(sites)})
	const host = "codex-preview-7.revelations.studio"
	s.SetHealth(host, Health{HealthyAfterRequests: 2})
	var codes []int
	for range 4 {
		codes = append(codes, get(s, host, "/").Code)
	}
	if codes[0] != 526 || codes[1] != 526 || codes[2] != 200 || codes[3] != 200 {
		t.Fatalf("codes = %v, want [526 526 200 200]", codes)
	}
	// Setting the health again restarts the count.
	s.SetHealth(host, Health{HealthyAfterRequests: 1, FailStatus: 522})
	if c := get(s, host, "/").Code; c != 522 {
		t.Fatalf("after reset: %d", c)
	}
	if c := get(s, host, "/").Code; c != 200 {
		t.Fatalf("second after reset: %d", c)
	}
	if n := s.Requests(host); n != 6 {
		t.Fatalf("requests = %d", n)
	}
}

func TestHealthyAfterDelayCountsFromAttachment(t *testing.T) {
	clk := &clock{t: attached.Add(10 * time.Second)}
	s := New(Options{Resolver: ResolverFunc(sites), Now: clk.now, DefaultHealth: Health{HealthyAfter: 30 * time.Second}})
	if c := get(s, "codex-preview-7.revelations.studio", "/").Code; c != 526 {
		t.Fatalf("20s before the certificate: %d", c)
	}
	clk.add(20 * time.Second)
	if c := get(s, "codex-preview-7.revelations.studio", "/").Code; c != 200 {
		t.Fatalf("at 30s: %d", c)
	}
	// Without an attachment time the delay counts from the first request.
	if c := get(s, "api-preview-7.revelations.studio", "/").Code; c != 526 {
		t.Fatalf("first request to a host without Since: %d", c)
	}
	clk.add(31 * time.Second)
	if c := get(s, "api-preview-7.revelations.studio", "/").Code; c != 200 {
		t.Fatalf("31s later: %d", c)
	}
}

func TestNeverHealthyAndFixedStatus(t *testing.T) {
	s := New(Options{Resolver: ResolverFunc(sites)})
	s.SetHealth("codex-preview-7.revelations.studio", Health{Never: true})
	for range 3 {
		if c := get(s, "codex-preview-7.revelations.studio", "/").Code; c != 526 {
			t.Fatalf("never-healthy host answered %d", c)
		}
	}
	s.SetHealth("api-preview-7.revelations.studio", Health{Status: 500})
	if w := get(s, "api-preview-7.revelations.studio", "/"); w.Code != 500 || w.Header().Get("X-Deploybot-Script") != "" {
		t.Fatalf("fixed 500: %d %v", w.Code, w.Header())
	}
	s.SetHealth("api-preview-7.revelations.studio", Health{Status: 203})
	if w := get(s, "api-preview-7.revelations.studio", "/"); w.Code != 203 || w.Header().Get("X-Deploybot-Script") != "ecom-api-preview-7" {
		t.Fatalf("fixed 203: %d %v", w.Code, w.Header())
	}
	s.ClearHealth("codex-preview-7.revelations.studio")
	if c := get(s, "codex-preview-7.revelations.studio", "/").Code; c != 200 {
		t.Fatalf("after ClearHealth: %d", c)
	}
}
