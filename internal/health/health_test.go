package health

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/retry"
)

// fakeClock is the injected clock: Sleep advances time instead of waiting,
// so a three-minute budget takes microseconds.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// policy returns a Policy on the fake clock with jitter pinned near its
// ceiling, so the waits are predictable: just under 250ms, 500ms, 1s, ...
func policy(c *fakeClock, within time.Duration) Policy {
	return Policy{
		Within: within,
		Backoff: retry.Policy{
			Base: 250 * time.Millisecond, Max: 4 * time.Second,
			Rand: func() float64 { return 0.999 }, Sleep: c.Sleep, Now: c.Now,
		},
	}
}

// flaky answers failStatus to the first n requests, then 200 "ok".
func flaky(t *testing.T, n int, failStatus int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if int(hits.Add(1)) <= n {
			http.Error(w, "not yet", failStatus)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestHealthyAtOnce(t *testing.T) {
	srv, hits := flaky(t, 0, 0)
	clk := newFakeClock()
	res, err := Check(context.Background(), srv.Client(), Target{URL: srv.URL}, policy(clk, time.Minute))
	if err != nil || !res.Healthy || res.Attempts != 1 || res.LastStatus != 200 || res.LastError != "" {
		t.Fatalf("Check = %+v, %v; want healthy after 1 attempt", res, err)
	}
	if len(clk.Waits()) != 0 || hits.Load() != 1 {
		t.Errorf("waits %v, requests %d; want none and 1", clk.Waits(), hits.Load())
	}
}

func TestHealthyAfterFailures(t *testing.T) {
	srv, hits := flaky(t, 3, http.StatusBadGateway)
	clk := newFakeClock()
	res, err := Check(context.Background(), srv.Client(), Target{URL: srv.URL}, policy(clk, time.Minute))
	if err != nil || !res.Healthy || res.Attempts != 4 || hits.Load() != 4 {
		t.Fatalf("Check = %+v, %v (server saw %d); want healthy on attempt 4", res, err, hits.Load())
	}
	// Exponential backoff with full jitter: each wait is below its doubling
	// ceiling, and with Rand pinned near 1 they grow.
	waits := clk.Waits()
	ceilings := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}
	if len(waits) != len(ceilings) {
		t.Fatalf("waits = %v, want %d of them", waits, len(ceilings))
	}
	for i, w := range waits {
		if w >= ceilings[i] || w < ceilings[i]*99/100 {
			t.Errorf("wait %d = %v, want just under %v", i+1, w, ceilings[i])
		}
	}
	if want := waits[0] + waits[1] + waits[2]; res.Elapsed != want {
		t.Errorf("Elapsed = %v, want the sum of the waits %v", res.Elapsed, want)
	}
}

func TestNeverHealthyStopsAtDeadline(t *testing.T) {
	srv, hits := flaky(t, 1<<30, http.StatusInternalServerError)
	clk := newFakeClock()
	res, err := Check(context.Background(), srv.Client(), Target{URL: srv.URL}, policy(clk, 10*time.Second))
	if err != nil {
		t.Fatalf("not becoming healthy is a result, not an error: %v", err)
	}
	if res.Healthy || res.LastStatus != 500 || !strings.Contains(res.LastError, "got status 500, want 200") {
		t.Fatalf("Check = %+v; want unhealthy with the last status 500", res)
	}
	if res.Elapsed != 10*time.Second {
		t.Errorf("Elapsed = %v; the last attempt should be made at the 10s deadline", res.Elapsed)
	}
	waits := clk.Waits()
	if res.Attempts != len(waits)+1 || int(hits.Load()) != res.Attempts {
		t.Errorf("Attempts = %d, waits %d, server saw %d; want attempts = waits+1 = requests", res.Attempts, len(waits), hits.Load())
	}
	for _, w := range waits {
		if w > 4*time.Second {
			t.Errorf("wait %v exceeds Backoff.Max 4s", w)
		}
	}
}

func TestWrongStatus(t *testing.T) {
	srv, _ := flaky(t, 0, 0) // always 200
	clk := newFakeClock()
	p := policy(clk, time.Minute)
	p.MaxAttempts = 3
	res, err := Check(context.Background(), srv.Client(), Target{URL: srv.URL, ExpectStatus: http.StatusNoContent}, p)
	if err != nil || res.Healthy || res.Attempts != 3 || res.LastStatus != 200 || !strings.Contains(res.LastError, "got status 200, want 204") {
		t.Fatalf("Check = %+v, %v; want 3 failed attempts naming 200 vs 204", res, err)
	}

	// A non-200 expectation is honoured too.
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	res, err = Check(context.Background(), notFound.Client(), Target{URL: notFound.URL, ExpectStatus: 404}, policy(newFakeClock(), time.Minute))
	if err != nil || !res.Healthy {
		t.Fatalf("expecting 404 from a 404 server: %+v, %v", res, err)
	}
}

func TestConnectionRefusedIsAFailedAttempt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/health"
	ln.Close() // nothing listens there now

	var seen []error
	clk := newFakeClock()
	p := policy(clk, time.Minute)
	p.MaxAttempts = 3
	p.OnAttempt = func(_ int, _ int, err error, _ time.Duration) { seen = append(seen, err) }
	res, err := Check(context.Background(), http.DefaultClient, Target{URL: url}, p)
	if err != nil || res.Healthy || res.Attempts != 3 || res.LastStatus != 0 {
		t.Fatalf("Check = %+v, %v; want 3 failed attempts without a status", res, err)
	}
	if !strings.Contains(res.LastError, "connection refused") || strings.Contains(res.LastError, "Get ") {
		t.Errorf("LastError = %q; want the cause without the repeated request line", res.LastError)
	}
	if len(seen) != 2 {
		t.Errorf("OnAttempt called %d times, want 2 (not after the last attempt)", len(seen))
	}
}

func TestRefusedThenHealthy(t *testing.T) {
	// The edge comes up while we poll: first attempts are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	clk := newFakeClock()
	p := policy(clk, time.Minute)
	p.OnAttempt = func(n int, _ int, _ error, _ time.Duration) {
		if n == 2 {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("re-listen on %s: %v", addr, err)
				return
			}
			srv.Listener = l
			srv.Start()
		}
	}
	defer func() {
		if srv.Listener != nil {
			srv.Close()
		}
	}()
	res, err := Check(context.Background(), &http.Client{}, Target{URL: "http://" + addr + "/"}, p)
	if err != nil || !res.Healthy || res.Attempts != 3 {
		t.Fatalf("Check = %+v, %v; want healthy on attempt 3", res, err)
	}
}

func TestExpectBodyWaitsForNewVersion(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			fmt.Fprint(w, "codex-web-preview-7 version old commit 1111111")
			return
		}
		fmt.Fprint(w, "codex-web-preview-7 version new commit 2222222")
	}))
	defer srv.Close()
	res, err := Check(context.Background(), srv.Client(), Target{URL: srv.URL, ExpectBody: "2222222"}, policy(newFakeClock(), time.Minute))
	if err != nil || !res.Healthy || res.Attempts != 3 {
		t.Fatalf("Check = %+v, %v; want healthy once the new commit is served (attempt 3)", res, err)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}))
	defer srv.Close()
	clk := newFakeClock()
	res, err := Check(context.Background(), srv.Client(), Target{URL: srv.URL}, policy(clk, time.Minute))
	if err != nil || !res.Healthy || res.Attempts != 2 {
		t.Fatalf("Check = %+v, %v", res, err)
	}
	if w := clk.Waits(); len(w) != 1 || w[0] != 7*time.Second {
		t.Errorf("waits = %v, want [7s] from Retry-After", w)
	}
}

func TestAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // hang until the client gives up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	p := policy(newFakeClock(), time.Minute)
	p.MaxAttempts = 2
	res, err := Check(context.Background(), srv.Client(), Target{URL: srv.URL, Timeout: 50 * time.Millisecond}, p)
	if err != nil || res.Healthy || res.Attempts != 2 || !strings.Contains(res.LastError, "timed out") {
		t.Fatalf("Check = %+v, %v; want 2 attempts that each timed out", res, err)
	}
}

func TestCancelStops(t *testing.T) {
	srv, _ := flaky(t, 1<<30, http.StatusInternalServerError)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := policy(newFakeClock(), time.Hour)
	p.OnAttempt = func(n int, _ int, _ error, _ time.Duration) {
		if n == 2 {
			cancel() // e.g. a newer push superseded this run
		}
	}
	res, err := Check(ctx, srv.Client(), Target{URL: srv.URL}, p)
	if !errors.Is(err, context.Canceled) || res.Healthy || res.Attempts != 2 || res.LastStatus != 500 {
		t.Fatalf("Check = %+v, %v; want context.Canceled after 2 attempts", res, err)
	}
}

func TestInvalidURL(t *testing.T) {
	_, err := Check(context.Background(), nil, Target{URL: "://nope"}, Policy{})
	if err == nil || !strings.Contains(err.Error(), "://nope") {
		t.Fatalf("err = %v, want one naming the URL", err)
	}
}

// Without an injected clock the real timer is used; tiny waits keep it fast.
func TestRealClock(t *testing.T) {
	srv, _ := flaky(t, 2, http.StatusServiceUnavailable)
	p := Policy{Within: 10 * time.Second, Backoff: retry.Policy{Base: time.Millisecond, Max: 2 * time.Millisecond}}
	res, err := Check(context.Background(), srv.Client(), Target{URL: srv.URL}, p)
	if err != nil || !res.Healthy || res.Attempts != 3 || res.Elapsed <= 0 {
		t.Fatalf("Check = %+v, %v", res, err)
	}
}

func TestClientResolvingToKeepsHost(t *testing.T) {
	hosts := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts <- r.Host
	}))
	defer srv.Close()
	client := ClientResolvingTo(srv.Listener.Addr().String())
	for _, u := range []string{
		"http://codex-preview-7.revelations.studio/health",
		"http://auth-preview-7.revelations.studio:8443/", // port ignored for dialing, kept in Host
	} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		resp.Body.Close()
	}
	if h := <-hosts; h != "codex-preview-7.revelations.studio" {
		t.Errorf("Host = %q", h)
	}
	if h := <-hosts; h != "auth-preview-7.revelations.studio:8443" {
		t.Errorf("Host = %q", h)
	}
}

func TestClientResolvingToTLSUsesURLHostForSNI(t *testing.T) {
	names := make(chan string, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		names <- r.TLS.ServerName
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake below is expected
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	client := ClientResolvingTo(srv.Listener.Addr().String())
	client.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool

	// httptest's certificate is valid for example.com: verification passes
	// only if the URL's host, not the dialled address, is checked.
	res, err := Check(context.Background(), client, Target{URL: "https://example.com/health"}, Policy{MaxAttempts: 1})
	if err != nil || !res.Healthy {
		t.Fatalf("Check over TLS = %+v, %v", res, err)
	}
	if sni := <-names; sni != "example.com" {
		t.Errorf("SNI = %q, want example.com", sni)
	}
	// A host the certificate does not cover fails verification.
	res, _ = Check(context.Background(), client, Target{URL: "https://codex-preview-7.revelations.studio/"}, Policy{MaxAttempts: 1})
	if res.Healthy || !strings.Contains(res.LastError, "certificate") {
		t.Errorf("wrong-host TLS = %+v; want a certificate error", res)
	}
}
