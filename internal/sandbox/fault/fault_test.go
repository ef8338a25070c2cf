package fault

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":"","message":%q}`, msg)
}

// handler returns the injector's middleware around a handler that counts the
// requests it really served.
func handler(i *Injector) (http.Handler, *int) {
	served := new(int)
	return i.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*served++
		w.WriteHeader(http.StatusOK)
	}), writeError), served
}

func do(h http.Handler, method, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestOneShotFailures(t *testing.T) {
	i := New(1)
	i.Set(Rule{Method: "POST", Path: "/projects/p/branches", Times: 2, Status: 503})
	h, served := handler(i)

	if w := do(h, "GET", "/projects/p/branches"); w.Code != 200 {
		t.Fatalf("GET matched a POST rule: %d", w.Code)
	}
	for n := 1; n <= 2; n++ {
		if w := do(h, "POST", "/projects/p/branches"); w.Code != 503 {
			t.Fatalf("POST #%d: %d, want 503", n, w.Code)
		}
	}
	if w := do(h, "POST", "/projects/p/branches"); w.Code != 200 {
		t.Fatalf("POST after the rule was spent: %d, want 200", w.Code)
	}
	if *served != 2 || i.Injected() != 2 {
		t.Fatalf("served %d, injected %d; want 2 and 2", *served, i.Injected())
	}
	// Set replaces the rules.
	i.Set()
	if w := do(h, "POST", "/projects/p/branches"); w.Code != 200 {
		t.Fatalf("after Set(): %d", w.Code)
	}
}

func failures(seed int64, n int) []bool {
	i := New(seed)
	i.Set(Rule{Rate: 0.3, Status: 500})
	h, _ := handler(i)
	out := make([]bool, n)
	for k := range out {
		out[k] = do(h, "GET", "/x").Code == 500
	}
	return out
}

func TestRateIsSeeded(t *testing.T) {
	a, b, c := failures(42, 400), failures(42, 400), failures(7, 400)
	count := 0
	for k := range a {
		if a[k] != b[k] {
			t.Fatalf("same seed, different failure at request %d", k)
		}
		if a[k] {
			count++
		}
	}
	if count < 80 || count > 160 {
		t.Fatalf("rate 0.3 failed %d of 400 requests", count)
	}
	same := true
	for k := range a {
		if a[k] != c[k] {
			same = false
		}
	}
	if same {
		t.Fatal("different seeds gave the same failures")
	}
}

func TestRetryAfter(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{1500 * time.Millisecond, "2"}, {200 * time.Millisecond, "1"}, {3 * time.Second, "3"}} {
		i := New(1)
		i.Set(Rule{Times: 1, Status: 429, RetryAfter: c.d})
		h, _ := handler(i)
		w := do(h, "GET", "/")
		if w.Code != 429 || w.Header().Get("Retry-After") != c.want {
			t.Errorf("RetryAfter %v: %d Retry-After %q, want 429 %q", c.d, w.Code, w.Header().Get("Retry-After"), c.want)
		}
	}
	// No header unless asked for.
	i := New(1)
	i.Set(Rule{Times: 1, Status: 423})
	h, _ := handler(i)
	if w := do(h, "GET", "/"); w.Code != 423 || w.Header().Get("Retry-After") != "" {
		t.Errorf("423 without RetryAfter: %d %q", w.Code, w.Header().Get("Retry-After"))
	}
}

func TestLatency(t *testing.T) {
	i := New(1)
	i.Set(Rule{Path: "/slow", Latency: 30 * time.Millisecond})
	h, served := handler(i)
	start := time.Now()
	if w := do(h, "GET", "/slow/x"); w.Code != 200 {
		t.Fatalf("latency-only rule failed the request: %d", w.Code)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("answered after %v, want at least 30ms", d)
	}
	if i.Injected() != 0 || *served != 1 {
		t.Fatalf("injected %d served %d", i.Injected(), *served)
	}

	// A cancelled request does not wait out the latency and is not served.
	i.Set(Rule{Latency: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("latency ignored the request's cancellation")
	}
	if *served != 1 {
		t.Fatal("cancelled request reached the handler")
	}
}

func TestConnectionReset(t *testing.T) {
	i := New(1)
	i.Set(Rule{Method: "POST", Times: 1, Reset: true})
	h, served := handler(i)
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := srv.Client().Post(srv.URL+"/projects/p/branches", "application/json", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("reset request got a response: %d", resp.StatusCode)
	}
	t.Logf("client saw: %v", err)
	if *served != 0 || i.Injected() != 1 {
		t.Fatalf("served %d injected %d", *served, i.Injected())
	}
	resp, err = srv.Client().Post(srv.URL+"/projects/p/branches", "application/json", nil)
	if err != nil {
		t.Fatalf("after the one-shot reset: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || *served != 1 {
		t.Fatalf("second POST: %d served %d", resp.StatusCode, *served)
	}
}

func TestAfterServeLosesTheResponse(t *testing.T) {
	for _, rule := range []Rule{
		{Method: "POST", Times: 1, Reset: true, AfterServe: true},
		{Method: "POST", Times: 1, Status: 502, AfterServe: true},
	} {
		i := New(1)
		i.Set(rule)
		h, served := handler(i)
		srv := httptest.NewServer(h)
		resp, err := srv.Client().Post(srv.URL+"/x", "application/json", nil)
		if rule.Reset && err == nil {
			resp.Body.Close()
			t.Fatalf("%+v: got a response %d", rule, resp.StatusCode)
		}
		if !rule.Reset {
			if err != nil || resp.StatusCode != 502 {
				t.Fatalf("%+v: %v %v", rule, resp, err)
			}
			resp.Body.Close()
		}
		srv.Close()
		if *served != 1 || i.Injected() != 1 {
			t.Fatalf("%+v: served %d injected %d, want the request served once and its answer lost", rule, *served, i.Injected())
		}
	}
}
