package github

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gh "github.com/google/go-github/v66/github"
	"github.com/rs/zerolog"
)

// quotaGitHub is a transport that plays GitHub's primary limit for one or
// more installations: every answer spends one request of the installation's
// window and reports what is left. It also answers the installation-token
// exchange, so that it can stand behind NewClientCreator.
type quotaGitHub struct {
	clock *fakeClock
	mu    sync.Mutex
	quota map[int64]*fakeWindow // by installation; 0 for requests without a token
	sent  map[int64][]string    // "METHOD path" per installation
}

type fakeWindow struct {
	limit, remaining int
	reset            time.Time
}

func newQuotaGitHub(clock *fakeClock) *quotaGitHub {
	return &quotaGitHub{clock: clock, quota: map[int64]*fakeWindow{}, sent: map[int64][]string{}}
}

// set gives installation inst remaining of limit requests until reset.
func (g *quotaGitHub) set(inst int64, limit, remaining int, reset time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.quota[inst] = &fakeWindow{limit: limit, remaining: remaining, reset: reset}
}

func (g *quotaGitHub) requests(inst int64) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.sent[inst]...)
}

func (g *quotaGitHub) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if id, ok := strings.CutPrefix(r.URL.Path, "/app/installations/"); ok {
		id = strings.TrimSuffix(id, "/access_tokens")
		body, _ := json.Marshal(map[string]any{"token": "ghs_test" + id, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		return &http.Response{StatusCode: 201, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
	}
	var inst int64
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "token ghs_test"); ok {
		inst, _ = strconv.ParseInt(tok, 10, 64)
	}
	g.sent[inst] = append(g.sent[inst], r.Method+" "+r.URL.Path)
	h := http.Header{"Content-Type": {"application/json"}}
	if w := g.quota[inst]; w != nil {
		if !g.clock.Now().Before(w.reset) {
			w.remaining, w.reset = w.limit, g.clock.Now().Add(time.Hour)
		}
		w.remaining = max(w.remaining-1, 0)
		h.Set("X-RateLimit-Limit", strconv.Itoa(w.limit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(w.remaining))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(w.reset.Unix(), 10))
		h.Set("X-RateLimit-Resource", "core")
	}
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(`{}`)), Request: r}, nil
}

func send(t *testing.T, rt http.RoundTripper, ctx context.Context, method, path string) (*http.Response, error) {
	t.Helper()
	var body io.Reader
	if method != http.MethodGet {
		body = strings.NewReader(`{}`)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://api.github.com"+path, body)
	must(t, err)
	resp, err := rt.RoundTrip(req)
	if err == nil {
		_ = resp.Body.Close()
	}
	return resp, err
}

func sendOK(t *testing.T, rt http.RoundTripper, ctx context.Context, method, path string) {
	t.Helper()
	if _, err := send(t, rt, ctx, method, path); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
}

// sleptDuring returns the waits of the fake clock caused by f.
func sleptDuring(clock *fakeClock, f func()) []time.Duration {
	before := len(clock.Sleeps())
	f()
	return clock.Sleeps()[before:]
}

func TestPacingBelowTheReserveSpreadsTheQuotaUntilTheReset(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	g := newQuotaGitHub(clock)
	reset := clock.Now().Add(30 * time.Minute)
	g.set(0, 5000, 600, reset)
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).WithContext(t.Context())
	rt := RateLimitMiddleware(RateLimits{Now: clock.Now, Sleep: clock.Sleep})(g)

	// Above the reserve (10 % of 5000), requests go at once.
	waits := sleptDuring(clock, func() {
		for range 101 { // 600 → 499 remaining
			sendOK(t, rt, ctx, "GET", "/repos/o/r/pulls/1")
		}
	})
	if len(waits) != 0 {
		t.Fatalf("waited %v above the reserve", waits)
	}
	if n := strings.Count(logs.String(), "pacing requests"); n != 1 {
		t.Fatalf("pacing start logged %d times: %s", n, logs.String())
	}

	// Below it, the 499 requests left are spread evenly until the reset:
	// the waits add up to the time that was left.
	left := reset.Add(time.Second).Sub(clock.Now()) // resetTime's safety second
	waits = sleptDuring(clock, func() {
		for range 499 {
			sendOK(t, rt, ctx, "GET", "/repos/o/r/pulls/1")
		}
	})
	if len(waits) != 499 {
		t.Fatalf("%d of 499 requests waited", len(waits))
	}
	var sum time.Duration
	each := left / 499
	for i, w := range waits {
		sum += w
		if d := w - each; d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("wait %d is %v, want about %v (evenly spaced)", i, w, each)
		}
	}
	if d := left - sum; d < -time.Second || d > time.Second {
		t.Errorf("waits add up to %v, want the %v left until the reset", sum, left)
	}
	if n := strings.Count(logs.String(), "pacing requests"); n != 1 {
		t.Errorf("pacing start logged %d times", n)
	}

	// After the reset, a fresh window: pacing ends, once.
	waits = sleptDuring(clock, func() {
		for range 3 {
			sendOK(t, rt, ctx, "GET", "/repos/o/r/pulls/1")
		}
	})
	if len(waits) > 1 || strings.Count(logs.String(), "pacing ended") != 1 {
		t.Errorf("after the reset: waits %v, logs %s", waits, logs.String())
	}
	var start map[string]any
	line, _, _ := strings.Cut(logs.String()[strings.Index(logs.String(), `{"level":"info","resource"`):], "\n")
	must(t, json.Unmarshal([]byte(line), &start))
	if start["remaining"] != 499.0 || start["limit"] != 5000.0 || start["reset"] == nil || start["level"] != "info" {
		t.Errorf("pacing start log %s lacks remaining, limit or reset", line)
	}
	if strings.Contains(logs.String(), "ghs_") || strings.Contains(logs.String(), "Authorization") {
		t.Errorf("a credential was logged: %s", logs.String())
	}
}

func TestConcludingWritesAreNotPacedUntilTheFloor(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	g := newQuotaGitHub(clock)
	g.set(0, 5000, 301, clock.Now().Add(time.Hour))
	rt := RateLimitMiddleware(RateLimits{Now: clock.Now, Sleep: clock.Sleep})(g)
	ctx := t.Context()
	sendOK(t, rt, ctx, "GET", "/repos/o/r") // learns: 300 left, below the reserve of 500

	writes := [][2]string{
		{"POST", "/repos/o/r/check-runs"},
		{"PATCH", "/repos/o/r/check-runs/7"},
		{"POST", "/repos/o/r/issues/1/comments"},
		{"PATCH", "/repos/o/r/issues/comments/9"},
		{"POST", "/repos/o/r/deployments/3/statuses"},
		{"PATCH", "/api/v3/repos/o/r/check-runs/7"}, // GitHub Enterprise Server
	}
	waits := sleptDuring(clock, func() {
		for _, w := range writes {
			sendOK(t, rt, ctx, w[0], w[1])
		}
	})
	if len(waits) != 0 {
		t.Errorf("concluding writes waited %v above the floor", waits)
	}
	// Anything else is paced.
	for _, r := range [][2]string{{"GET", "/repos/o/r/pulls/1"}, {"POST", "/repos/o/r/issues/comments/9/reactions"}, {"POST", "/repos/o/r/deployments"}} {
		if waits := sleptDuring(clock, func() { sendOK(t, rt, ctx, r[0], r[1]) }); len(waits) != 1 {
			t.Errorf("%s %s below the reserve: waits %v, want paced", r[0], r[1], waits)
		}
	}

	// Below the floor (1 % of 5000 = 50), writes are paced too.
	g.set(0, 5000, 41, clock.Now().Add(time.Hour))
	sendOK(t, rt, ctx, "GET", "/repos/o/r")
	waits = sleptDuring(clock, func() { sendOK(t, rt, ctx, "PATCH", "/repos/o/r/check-runs/7") })
	if len(waits) != 1 || waits[0] < time.Minute {
		t.Errorf("check-run update below the floor: waits %v, want about an hour / 40", waits)
	}
}

func TestConcludes(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/repos/o/r/check-runs", true},
		{"PATCH", "/repos/o/r/check-runs/1", true},
		{"GET", "/repos/o/r/check-runs/1", false},
		{"POST", "/repos/o/r/check-runs/1/rerequest", false},
		{"POST", "/repos/o/r/issues/5/comments", true},
		{"PATCH", "/repos/o/r/issues/comments/5", true},
		{"DELETE", "/repos/o/r/issues/comments/5", false},
		{"GET", "/repos/o/r/issues/5/comments", false},
		{"POST", "/repos/o/r/issues/comments/5/reactions", false},
		{"POST", "/repos/o/r/deployments/2/statuses", true},
		{"POST", "/repos/o/r/deployments", false},
		{"POST", "/api/v3/repos/o/r/issues/5/comments", true},
		{"POST", "/", false},
	} {
		req, err := http.NewRequest(c.method, "https://api.github.com"+c.path, nil)
		must(t, err)
		if got := concludes(req); got != c.want {
			t.Errorf("concludes(%s %s) = %v", c.method, c.path, got)
		}
	}
}

func TestHardCapHoldsTheRequestAfterTheBurst(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	g := newQuotaGitHub(clock)
	// 600 an hour: one every 6s, a burst of 10 (a minute's worth is less).
	rt := RateLimitMiddleware(RateLimits{Now: clock.Now, Sleep: clock.Sleep, RequestsPerHour: 600})(g)
	ctx := t.Context()
	waits := sleptDuring(clock, func() {
		for range 10 {
			sendOK(t, rt, ctx, "GET", "/repos/o/r")
		}
	})
	if len(waits) != 0 {
		t.Fatalf("the burst waited %v", waits)
	}
	waits = sleptDuring(clock, func() {
		sendOK(t, rt, ctx, "GET", "/repos/o/r")
		sendOK(t, rt, ctx, "PATCH", "/repos/o/r/check-runs/1") // the cap spares no one
	})
	if len(waits) != 2 || waits[0] != 6*time.Second || waits[1] != 6*time.Second {
		t.Errorf("waits %v, want 6s each: the bucket refills one request per 6s", waits)
	}
	// A quiet minute refills the burst, no more.
	clock.Sleep(ctx, time.Hour)
	waits = sleptDuring(clock, func() {
		for range 11 {
			sendOK(t, rt, ctx, "GET", "/repos/o/r")
		}
	})
	if len(waits) != 1 || waits[0] != 6*time.Second {
		t.Errorf("after a quiet hour: waits %v, want only the 11th to wait 6s", waits)
	}

	// Large caps burst a minute's worth.
	if b := newBudget(RateLimits{RequestsPerHour: 15000}, 0); b.burst != 250 || b.perRequest != 240*time.Millisecond {
		t.Errorf("15000/h: burst %d, one per %v", b.burst, b.perRequest)
	}
	if b := newBudget(RateLimits{RequestsPerHour: 4}, 0); b.burst != 4 {
		t.Errorf("4/h: burst %d, want at most the hour's worth", b.burst)
	}
}

func TestBudgetWaitBeyondTheDeadlineFailsAtOnce(t *testing.T) {
	// The deadline is compared with the clock: start the fake one at the
	// real time.
	clock := &fakeClock{t: time.Now()}
	g := newQuotaGitHub(clock)
	rt := RateLimitMiddleware(RateLimits{Now: clock.Now, Sleep: clock.Sleep, RequestsPerHour: 600})(g)
	for range 10 {
		sendOK(t, rt, t.Context(), "GET", "/repos/o/r")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := send(t, rt, ctx, "PATCH", "/repos/o/r/check-runs/1")
	if !errors.Is(err, ErrBudgetExhausted) || !strings.Contains(err.Error(), "budget exhausted") || !strings.Contains(err.Error(), "requests_per_hour") {
		t.Fatalf("err = %v, want the budget error", err)
	}
	if len(clock.Sleeps()) != 0 || len(g.requests(0)) != 10 {
		t.Errorf("waited %v, sent %d requests; want neither", clock.Sleeps(), len(g.requests(0)))
	}
	// The refused request kept no place in the bucket.
	if waits := sleptDuring(clock, func() { sendOK(t, rt, t.Context(), "GET", "/repos/o/r") }); len(waits) != 1 || waits[0] != 6*time.Second {
		t.Errorf("next request waited %v, want 6s", waits)
	}

	// A paced request whose turn comes after its deadline is sent at once:
	// GitHub still has quota for it.
	g.set(0, 5000, 3, clock.Now().Add(time.Hour))
	rt = RateLimitMiddleware(RateLimits{Now: clock.Now, Sleep: clock.Sleep})(g)
	sendOK(t, rt, t.Context(), "GET", "/repos/o/r") // 2 left: 30 minutes apart
	if waits := sleptDuring(clock, func() { sendOK(t, rt, ctx, "GET", "/repos/o/r") }); len(waits) != 0 {
		t.Errorf("paced request with a near deadline waited %v", waits)
	}
}

// TestInstallationsHaveIndependentBudgets goes through NewClientCreator:
// one budget per installation, shared by its clients and kept when
// go-githubapp's cache evicts them.
func TestInstallationsHaveIndependentBudgets(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	g := newQuotaGitHub(clock)
	key, err := rsaPEM()
	must(t, err)
	cc, err := NewClientCreator(Config{
		AppID: 1, PrivateKey: key, Transport: g,
		RateLimits: RateLimits{Now: clock.Now, Sleep: clock.Sleep, RequestsPerHour: 600},
	})
	must(t, err)
	ctx := t.Context()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	client := func(id int64) *gh.Client {
		c, err := cc.NewInstallationClient(id)
		must(t, err)
		return c
	}
	getRepo := func(c *gh.Client, ctx context.Context) error {
		_, _, err := c.Repositories.Get(ctx, "o", "r")
		return err
	}
	evictAll := func() {
		for id := int64(100); id < 170; id++ {
			client(id)
		}
	}

	// The hard cap: installation 1 spends its burst of 10; a request that
	// would then wait beyond its deadline fails, through go-github, with
	// the budget error. Installation 2 has a burst of its own.
	one, two := client(1), client(2)
	for range 10 {
		must(t, getRepo(one, ctx))
	}
	if _, _, err := one.Checks.UpdateCheckRun(short, "o", "r", 1, gh.UpdateCheckRunOptions{Name: "deploybot/preview"}); !errors.Is(err, ErrBudgetExhausted) {
		t.Errorf("installation 1 past its cap: %v, want ErrBudgetExhausted", err)
	}
	for range 10 {
		if err := getRepo(two, short); err != nil {
			t.Fatalf("installation 2: %v", err)
		}
	}
	// go-githubapp keeps 64 clients; a new client for installation 1 after
	// its old one was evicted still has the spent budget.
	evictAll()
	again := client(1)
	if again == one {
		t.Fatal("installation 1's client was not evicted; the test proves nothing")
	}
	if err := getRepo(again, short); !errors.Is(err, ErrBudgetExhausted) {
		t.Errorf("a new client for installation 1 got a fresh budget: %v", err)
	}
	if got := len(g.requests(1)); got != 10 {
		t.Errorf("installation 1 sent %d requests, want 10", got)
	}
	if len(clock.Sleeps()) != 0 {
		t.Fatalf("waits %v so far", clock.Sleeps())
	}

	// Pacing: installation 3 has nearly spent GitHub's quota, 4 has not.
	g.set(3, 5000, 21, clock.Now().Add(time.Hour))
	g.set(4, 5000, 4000, clock.Now().Add(time.Hour))
	three, four := client(3), client(4)
	must(t, getRepo(three, ctx)) // learns: 20 left
	if waits := sleptDuring(clock, func() { must(t, getRepo(three, ctx)) }); len(waits) != 1 || waits[0] < time.Minute {
		t.Errorf("installation 3 with 20 requests left: waits %v, want paced (an hour / 20)", waits)
	}
	if waits := sleptDuring(clock, func() {
		for range 10 {
			must(t, getRepo(four, ctx))
		}
	}); len(waits) != 0 {
		t.Errorf("installation 4 slowed down by installation 3: waits %v", waits)
	}
	evictAll()
	if waits := sleptDuring(clock, func() { must(t, getRepo(client(3), ctx)) }); len(waits) != 1 {
		t.Errorf("a new client for installation 3 forgot the pacing: waits %v", waits)
	}
}
