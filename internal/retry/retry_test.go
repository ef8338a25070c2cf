package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeSleep records waits instead of sleeping.
type fakeSleep struct{ waits []time.Duration }

func (f *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	f.waits = append(f.waits, d)
	return ctx.Err()
}

func TestBackoffFullJitterIsBoundedAndGrows(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second, Rand: func() float64 { return 0.999999 }}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for n, w := range want {
		got := p.Backoff(n + 1)
		if got > w*time.Millisecond || got < w*time.Millisecond*99/100 {
			t.Errorf("Backoff(%d) = %v, want just under %v", n+1, got, w*time.Millisecond)
		}
	}
	p.Rand = func() float64 { return 0 }
	if got := p.Backoff(3); got != 0 {
		t.Errorf("full jitter must reach 0, got %v", got)
	}
	// Default jitter stays inside the window.
	p.Rand = nil
	for range 100 {
		if d := p.Backoff(2); d < 0 || d >= 200*time.Millisecond {
			t.Fatalf("Backoff(2) = %v outside [0,200ms)", d)
		}
	}
	if d := p.Backoff(200); d > time.Second {
		t.Fatalf("huge attempt overflowed: %v", d)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	h := http.Header{}
	h.Set("Retry-After", "7")
	if d, ok := RetryAfter(h, now); !ok || d != 7*time.Second {
		t.Errorf("seconds: %v %v", d, ok)
	}
	h.Set("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat))
	if d, ok := RetryAfter(h, now); !ok || d != 90*time.Second {
		t.Errorf("HTTP date: %v %v", d, ok)
	}
	h.Set("Retry-After", now.Add(-time.Hour).Format(http.TimeFormat))
	if d, ok := RetryAfter(h, now); !ok || d != 0 {
		t.Errorf("past date: %v %v", d, ok)
	}
	h.Set("Retry-After", "soon")
	if _, ok := RetryAfter(h, now); ok {
		t.Error("garbage accepted")
	}
	p := Policy{Now: func() time.Time { return now }, Rand: func() float64 { return 0.5 }, Base: time.Second}
	h.Set("Retry-After", "3")
	if d := p.Delay(1, &http.Response{Header: h}); d != 3*time.Second {
		t.Errorf("Delay honours Retry-After: %v", d)
	}
	if d := p.Delay(1, &http.Response{Header: http.Header{}}); d != 500*time.Millisecond {
		t.Errorf("Delay without Retry-After: %v", d)
	}
}

func TestRetryable(t *testing.T) {
	get, _ := http.NewRequest("GET", "http://x", nil)
	post, _ := http.NewRequest("POST", "http://x", nil)
	resp := func(code int) *http.Response { return &http.Response{StatusCode: code} }
	reset := &net.OpError{Op: "read", Err: syscall.ECONNRESET}
	cases := []struct {
		name string
		req  *http.Request
		resp *http.Response
		err  error
		want bool
	}{
		{"429 POST", post, resp(429), nil, true},
		{"423 POST", post, resp(423), nil, true},
		{"503 POST", post, resp(503), nil, true},
		{"500 GET", get, resp(500), nil, true},
		{"502 POST", post, resp(502), nil, false},
		{"501 GET", get, resp(501), nil, false},
		{"404 GET", get, resp(404), nil, false},
		{"400 GET", get, resp(400), nil, false},
		{"200 GET", get, resp(200), nil, false},
		{"reset GET", get, nil, fmt.Errorf("Get: %w", reset), true},
		{"reset POST", post, nil, reset, false},
		{"EOF DELETE", &http.Request{Method: "DELETE"}, nil, io.EOF, true},
		{"refused POST", post, nil, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"cancelled GET", get, nil, context.Canceled, false},
		{"other error GET", get, nil, errors.New("unsupported protocol scheme"), false},
	}
	for _, c := range cases {
		if got := Retryable(c.req, c.resp, c.err); got != c.want {
			t.Errorf("%s: Retryable = %v, want %v", c.name, got, c.want)
		}
	}
}

// script serves the given statuses in order, then 200.
func script(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := int(n.Add(1)) - 1
		if k < len(statuses) {
			if statuses[k] == 429 {
				w.Header().Set("Retry-After", "2")
			}
			w.WriteHeader(statuses[k])
			fmt.Fprint(w, "nope")
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "ok %s", body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestDoRetriesUntilSuccess(t *testing.T) {
	srv, n := script(t, 503, 429, 423)
	fs := &fakeSleep{}
	var notified int
	p := Policy{Sleep: fs.sleep, Rand: func() float64 { return 0.5 }, Base: 10 * time.Millisecond,
		OnRetry: func(int, time.Duration, *http.Response, error) { notified++ }}
	resp, err := p.Do(context.Background(), srv.Client(), func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "POST", srv.URL, strings.NewReader("body"))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "ok body" || n.Load() != 4 {
		t.Fatalf("got %d %q after %d requests", resp.StatusCode, b, n.Load())
	}
	want := []time.Duration{5 * time.Millisecond, 2 * time.Second, 20 * time.Millisecond}
	if fmt.Sprint(fs.waits) != fmt.Sprint(want) || notified != 3 {
		t.Fatalf("waits %v (notified %d), want %v", fs.waits, notified, want)
	}
}

func TestDoStopsOnNonRetryableAndAttempts(t *testing.T) {
	srv, n := script(t, 500, 500, 500, 500)
	fs := &fakeSleep{}
	p := Policy{Sleep: fs.sleep, Attempts: 3}
	newReq := func(method string) func(ctx context.Context) (*http.Request, error) {
		return func(ctx context.Context) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, method, srv.URL, nil)
		}
	}
	resp, err := p.Do(context.Background(), srv.Client(), newReq("POST"))
	if err != nil || resp.StatusCode != 500 || n.Load() != 1 {
		t.Fatalf("POST 500 must not be retried: %v %v after %d", resp, err, n.Load())
	}
	resp.Body.Close()
	resp, err = p.Do(context.Background(), srv.Client(), newReq("GET"))
	if err != nil || resp.StatusCode != 500 || n.Load() != 4 {
		t.Fatalf("GET 500 with 3 attempts: %v %v after %d requests", resp, err, n.Load())
	}
	resp.Body.Close()
}

func TestDoRespectsContext(t *testing.T) {
	srv, n := script(t, 429, 429)
	// A deadline shorter than Retry-After: return the 429 at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	fs := &fakeSleep{}
	p := Policy{Sleep: fs.sleep}
	resp, err := p.Do(ctx, srv.Client(), func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	})
	if err != nil || resp.StatusCode != 429 || len(fs.waits) != 0 || n.Load() != 1 {
		t.Fatalf("got %v %v, waits %v, requests %d", resp, err, fs.waits, n.Load())
	}
	resp.Body.Close()

	// Cancellation during the wait ends Do with the context's error.
	ctx2, cancel2 := context.WithCancel(context.Background())
	p.Sleep = func(ctx context.Context, d time.Duration) error { cancel2(); return ctx.Err() }
	_, err = p.Do(ctx2, srv.Client(), func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "429") {
		t.Fatalf("err = %v, want context.Canceled naming the last 429", err)
	}
}

func TestDoRetriesDroppedConnectionForGET(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	fs := &fakeSleep{}
	p := Policy{Sleep: fs.sleep}
	// A fresh transport: net/http itself silently retries some requests on
	// reused connections, which would hide the reset.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := p.Do(context.Background(), client, func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || n.Load() != 2 || len(fs.waits) != 1 {
		t.Fatalf("status %d after %d requests, waits %v", resp.StatusCode, n.Load(), fs.waits)
	}
}

func TestSleepCtx(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Fatalf("Sleep ignored cancellation: %v", err)
	}
}
