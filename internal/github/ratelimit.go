package github

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/palantir/go-githubapp/githubapp"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/retry"
)

// RateLimits configures how clients wait out GitHub's rate limits. The zero
// value is ready to use.
type RateLimits struct {
	// MaxRetries is how often one request is retried after a rate-limit
	// answer (default 3).
	MaxRetries int
	// SecondaryWait is the first wait after a secondary rate limit that came
	// without Retry-After; GitHub asks for "at least one minute" (default),
	// doubled on each further attempt.
	SecondaryWait time.Duration
	// Reserve is the share of a resource's hourly limit (0.1 = 10 %) below
	// which an installation's requests are paced so that the rest lasts
	// until the reset (see budget.go). 0: the default, 10 %; negative: no
	// pacing.
	Reserve float64
	// RequestsPerHour caps each installation's requests (a token bucket
	// holding a minute's worth, at least 10); 0: no cap but GitHub's.
	RequestsPerHour int
	// Writes paces each installation's content-creating requests under
	// GitHub's secondary limit (see writes.go); the zero value is GitHub's
	// 80 a minute and 500 an hour.
	Writes WritePace
	// OnQuota, when set, is told what GitHub says is left of an
	// installation's quota of resource (core, graphql, …) each time an
	// answer says it (the metrics). It is called with the installation's
	// budget locked: it must only record.
	OnQuota func(installationID int64, resource string, remaining, limit int)
	// Now and Sleep are the clock; tests inject a fake one. Sleep must return
	// ctx.Err() when ctx ends first.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (p RateLimits) withDefaults() RateLimits {
	if p.MaxRetries <= 0 {
		p.MaxRetries = 3
	}
	if p.SecondaryWait <= 0 {
		p.SecondaryWait = time.Minute
	}
	if p.Reserve == 0 {
		p.Reserve = defaultReserve
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Sleep == nil {
		p.Sleep = retry.Sleep
	}
	return p
}

// RateLimitMiddleware returns client middleware that honours GitHub's
// primary limit (X-RateLimit-Remaining: 0 → wait until X-RateLimit-Reset)
// and secondary limits (403/429 with Retry-After, or GitHub's "secondary rate
// limit" message → back off), then retries the request. Waits never outlast
// the request's context: when the deadline comes before the limit lifts, the
// rate-limit response is returned at once, so the caller sees GitHub's error
// instead of a timeout. Each attempt is also admitted to the request budget
// (pacing near the limit, the optional hard cap: see budget.go).
//
// Each client gets its own state. NewClientCreator does not use it for
// installation clients: those share one state per installation, as GitHub
// counts limits per installation.
func RateLimitMiddleware(p RateLimits) githubapp.ClientMiddleware {
	p = p.withDefaults()
	return func(next http.RoundTripper) http.RoundTripper {
		b := newBudget(p, 0)
		return b.waitForLimits(b.gate(next))
	}
}

// waitForLimits is the rate-limit waiting of RateLimitMiddleware. It reads
// what GitHub said is left from b, which must be kept up to date by b.gate
// somewhere inside next.
func (b *budget) waitForLimits(next http.RoundTripper) http.RoundTripper {
	return &rateLimiter{next: next, p: b.p, b: b}
}

type rateLimiter struct {
	next http.RoundTripper
	p    RateLimits
	b    *budget
}

func (rl *rateLimiter) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	resource := resourceOf(req.URL.Path)
	for attempt := 0; ; attempt++ {
		if wait := rl.b.exhaustedFor(resource); wait > 0 && fitsDeadline(ctx, rl.p.Now(), wait) {
			logWait(ctx, req, "primary", wait)
			if err := rl.p.Sleep(ctx, wait); err != nil {
				return nil, err
			}
		}
		try := req
		if attempt > 0 {
			var err error
			if try, err = rewind(req); err != nil {
				return nil, err
			}
		}
		resp, err := rl.next.RoundTrip(try)
		if err != nil {
			return nil, err
		}
		wait, limited, kind := rl.retryDelay(resp, attempt)
		if !limited {
			if resp.StatusCode < 400 && resp.Header.Get("X-RateLimit-Remaining") == "0" {
				// go-github refuses, without asking GitHub, every later
				// request until the reset it saw on this response. This
				// middleware waits for that reset before the next request
				// instead, so hide it from go-github.
				resp.Header.Del("X-RateLimit-Reset")
			}
			return resp, nil
		}
		if attempt >= rl.p.MaxRetries || !replayable(req) || !fitsDeadline(ctx, rl.p.Now(), wait) {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		_ = resp.Body.Close()
		logWait(ctx, req, kind, wait)
		if err := rl.p.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func logWait(ctx context.Context, req *http.Request, kind string, wait time.Duration) {
	zerolog.Ctx(ctx).Info().
		Str("method", req.Method).
		Str("path", req.URL.Path).
		Str("limit", kind).
		Dur("wait", wait).
		Msg("github rate limit: waiting before retrying")
}

// resourceOf names the rate-limit bucket a path counts against, as GitHub
// reports it in X-RateLimit-Resource.
func resourceOf(path string) string {
	switch {
	case strings.HasSuffix(path, "/graphql"):
		return "graphql"
	case strings.Contains(path, "/search/"):
		return "search"
	default:
		return "core"
	}
}

// resetTime reads X-RateLimit-Reset (UTC epoch seconds). GitHub's reset is
// rounded down to the second, so a second is added before trusting it.
func resetTime(h http.Header) (time.Time, bool) {
	secs, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, false
	}
	return time.Unix(secs, 0).Add(time.Second), true
}

// retryDelay says whether resp is a rate-limit answer and how long to wait.
func (rl *rateLimiter) retryDelay(resp *http.Response, attempt int) (time.Duration, bool, string) {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return 0, false, ""
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), rl.p.Now()); ok {
		return d, true, "secondary"
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		if reset, ok := resetTime(resp.Header); ok {
			return max(reset.Sub(rl.p.Now()), time.Second), true, "primary"
		}
	}
	if mentionsSecondaryLimit(resp) {
		return rl.p.SecondaryWait << attempt, true, "secondary"
	}
	return 0, false, "" // an ordinary 403: no permission
}

func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return max(time.Duration(secs)*time.Second, time.Second), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), time.Second), true
	}
	return 0, false
}

// mentionsSecondaryLimit peeks at the error body; GitHub sometimes signals a
// secondary limit only there. The body stays readable for the caller.
func mentionsSecondaryLimit(resp *http.Response) bool {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return err == nil && bytes.Contains(bytes.ToLower(body), []byte("secondary rate limit"))
}

func fitsDeadline(ctx context.Context, now time.Time, wait time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || now.Add(wait).Before(deadline)
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// rewind returns a copy of req with a fresh body for another attempt.
func rewind(req *http.Request) (*http.Request, error) {
	r := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = body
	}
	return r, nil
}
