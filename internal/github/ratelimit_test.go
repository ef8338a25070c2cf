package github

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// script is a transport answering from a list of canned responses and
// recording the bodies it was sent.
type script struct {
	mu      sync.Mutex
	answers []func() *http.Response
	bodies  []string
}

func (s *script) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body := ""
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		_ = r.Body.Close()
		body = string(b)
	}
	s.bodies = append(s.bodies, body)
	next := s.answers[0]
	if len(s.answers) > 1 {
		s.answers = s.answers[1:]
	}
	resp := next()
	resp.Request = r
	return resp, nil
}

func answer(status int, body string, headers ...string) func() *http.Response {
	return func() *http.Response {
		h := http.Header{}
		for i := 0; i+1 < len(headers); i += 2 {
			h.Set(headers[i], headers[i+1])
		}
		return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body))}
	}
}

func limited(t *testing.T, clock *fakeClock, answers ...func() *http.Response) (http.RoundTripper, *script) {
	t.Helper()
	s := &script{answers: answers}
	return RateLimitMiddleware(RateLimits{Now: clock.Now, Sleep: clock.Sleep})(s), s
}

func post(t *testing.T, rt http.RoundTripper, ctx context.Context, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", "https://api.github.com/repos/o/r/issues/1/comments", strings.NewReader(body))
	must(t, err)
	resp, err := rt.RoundTrip(req)
	must(t, err)
	return resp
}

func TestSecondaryLimitRetriesWithTheSameBody(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	rt, s := limited(t, clock,
		answer(429, `{"message":"slow down"}`, "Retry-After", "7"),
		answer(403, `{"message":"You have exceeded a secondary rate limit."}`),
		answer(201, `{}`),
	)
	resp := post(t, rt, t.Context(), `{"body":"hi"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := clock.Sleeps(); len(got) != 2 || got[0] != 7*time.Second || got[1] != 2*time.Minute {
		t.Errorf("waits %v, want Retry-After (7s), then the doubled minute GitHub asks for without it", got)
	}
	for i, b := range s.bodies {
		if b != `{"body":"hi"}` {
			t.Errorf("attempt %d sent body %q", i, b)
		}
	}
}

func TestForbiddenWithoutRateLimitIsNotRetried(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	rt, s := limited(t, clock, answer(403, `{"message":"Resource not accessible by integration"}`))
	resp := post(t, rt, t.Context(), "{}")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || len(s.bodies) != 1 || len(clock.Sleeps()) != 0 || !strings.Contains(string(body), "not accessible") {
		t.Errorf("status %d after %d attempts, waits %v, body %q", resp.StatusCode, len(s.bodies), clock.Sleeps(), body)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	rt, s := limited(t, clock, answer(429, `{}`, "Retry-After", "1"))
	resp := post(t, rt, t.Context(), "{}")
	if resp.StatusCode != 429 || len(s.bodies) != 4 {
		t.Errorf("status %d after %d attempts, want 429 after 1+3", resp.StatusCode, len(s.bodies))
	}
}

func TestPrimaryLimitWaitsForReset(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	reset := strconv.FormatInt(clock.Now().Add(10*time.Minute).Unix(), 10)
	rt, s := limited(t, clock,
		// The last request of the budget succeeds...
		answer(200, `{}`, "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", reset),
		// ...the next is sent only after the reset.
		answer(200, `{}`, "X-RateLimit-Remaining", "4999", "X-RateLimit-Reset", reset),
	)
	resp := post(t, rt, t.Context(), "{}")
	if resp.Header.Get("X-RateLimit-Reset") != "" {
		t.Error("the exhausted reset is still visible to go-github, which would refuse the next call without asking")
	}
	post(t, rt, t.Context(), "{}")
	if got := clock.Sleeps(); len(got) != 1 || got[0] != 10*time.Minute+time.Second {
		t.Errorf("waits %v, want until the reset (+1s)", got)
	}
	if len(s.bodies) != 2 {
		t.Errorf("%d requests sent", len(s.bodies))
	}

	// A 403 for the exhausted limit is retried after the reset.
	clock2 := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	rt2, _ := limited(t, clock2,
		answer(403, `{"message":"API rate limit exceeded"}`, "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(clock2.Now().Add(time.Minute).Unix(), 10)),
		answer(201, `{}`),
	)
	if resp := post(t, rt2, t.Context(), "{}"); resp.StatusCode != 201 || len(clock2.Sleeps()) != 1 {
		t.Errorf("status %d, waits %v", resp.StatusCode, clock2.Sleeps())
	}
}

func TestWaitsDoNotOutlastTheContext(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	rt, s := limited(t, clock, answer(403, `{}`, "Retry-After", "3600"))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp := post(t, rt, ctx, "{}")
	if resp.StatusCode != 403 || len(s.bodies) != 1 || len(clock.Sleeps()) != 0 {
		t.Errorf("status %d after %d attempts and waits %v; want GitHub's 403 at once", resp.StatusCode, len(s.bodies), clock.Sleeps())
	}

	// A context that ends during the wait ends it.
	real := RateLimitMiddleware(RateLimits{})(&script{answers: []func() *http.Response{answer(429, `{}`, "Retry-After", "30")}})
	ctx2, cancel2 := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx2, "GET", "https://api.github.com/x", nil)
	must(t, err)
	cancel2()
	if _, err := real.RoundTrip(req); err != context.Canceled {
		t.Errorf("cancelled wait: %v, want context.Canceled", err)
	}
}
