// Package health decides whether a freshly deployed Worker answers, by
// asking it over HTTP until it does or time runs out.
//
// The seed pipeline waited a fixed 30 seconds for certificates and then
// tried once per worker. That is slow when the edge is ready after two
// seconds and wrong when it needs forty. Here every attempt is a real
// request; between attempts the wait grows exponentially with full jitter
// (internal/retry's Backoff), capped by what is left of the budget, so a
// healthy target is seen within one backoff step of becoming healthy and an
// unhealthy one is reported at the deadline with what it last answered.
//
// The HTTP client is the caller's: production uses an ordinary client, the
// sandbox routes every hostname to its simulated edge with
// ClientResolvingTo, and tests inject the clock and the sleep.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/retry"
)

// Target is what to check.
type Target struct {
	// URL is requested with GET, e.g. https://codex-preview-7.revelations.studio/health.
	URL string
	// ExpectStatus is the status that means healthy (default 200).
	ExpectStatus int
	// ExpectBody, when set, must also occur in the response body (read up
	// to 1 MiB), e.g. the commit SHA the page names, so an edge still
	// serving the previous version does not count as healthy.
	ExpectBody string
	// Timeout bounds one attempt (default 10s), so a hanging connection
	// costs one attempt, not the whole budget.
	Timeout time.Duration
}

// Policy says how long and how often to try.
type Policy struct {
	// Within is the budget for the whole check (default 3 minutes),
	// counted from the first attempt: no attempt starts after it, and the
	// last one starts at it (so it may end up to Target.Timeout later).
	// The context may end the check sooner.
	Within time.Duration
	// MaxAttempts, when > 0, also stops after that many attempts.
	MaxAttempts int
	// Backoff shapes the waits between attempts: Base (first cap, default
	// 250ms), Max (largest wait, default 15s), Rand, Sleep and Now are
	// used; Attempts, Retryable and OnRetry are not (Within and
	// MaxAttempts decide when to stop). A Retry-After header on a failed
	// answer is honoured, within the budget.
	Backoff retry.Policy
	// OnAttempt, when set, is told about each failed attempt before the
	// wait, e.g. to log progress or update a status comment.
	OnAttempt func(attempt int, status int, err error, wait time.Duration)
}

// Result is the outcome of a check.
type Result struct {
	Healthy    bool
	Attempts   int
	LastStatus int    // status of the last answer, 0 if none came
	LastError  string // why the last attempt failed; "" when healthy
	Elapsed    time.Duration
}

const maxBody = 1 << 20

// Check requests t.URL with client until it answers t.ExpectStatus (and
// contains t.ExpectBody), p.Within has passed or p.MaxAttempts were made.
//
// Not becoming healthy in time is a result, not an error: err is nil and
// res.Healthy false, with the last status and failure in res. err is set
// only when the check cannot be made (an invalid URL) or ctx ended first;
// then it wraps ctx.Err() and res holds what was seen so far. A nil client
// means http.DefaultClient.
func Check(ctx context.Context, client *http.Client, t Target, p Policy) (Result, error) {
	if client == nil {
		client = http.DefaultClient
	}
	want := t.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	perAttempt := t.Timeout
	if perAttempt <= 0 {
		perAttempt = 10 * time.Second
	}
	within := p.Within
	if within <= 0 {
		within = 3 * time.Minute
	}
	now := p.Backoff.Now
	if now == nil {
		now = time.Now
	}
	sleep := p.Backoff.Sleep
	if sleep == nil {
		sleep = retry.Sleep
	}
	if _, err := http.NewRequest(http.MethodGet, t.URL, nil); err != nil {
		return Result{}, fmt.Errorf("health: check %s: %w", t.URL, err)
	}

	start := now()
	deadline := start.Add(within)
	var res Result
	for {
		res.Attempts++
		status, retryAfter, err := attempt(ctx, client, t, want, now, perAttempt)
		res.LastStatus = status
		res.Elapsed = now().Sub(start)
		if err == nil {
			res.Healthy, res.LastError = true, ""
			return res, nil
		}
		res.LastError = err.Error()
		if ctx.Err() != nil {
			return res, fmt.Errorf("health: check %s: stopped after %d attempts: %w", t.URL, res.Attempts, ctx.Err())
		}
		if p.MaxAttempts > 0 && res.Attempts >= p.MaxAttempts {
			return res, nil
		}
		left := deadline.Sub(now())
		if left <= 0 {
			return res, nil
		}
		wait := p.Backoff.Backoff(res.Attempts)
		if retryAfter > 0 {
			wait = retryAfter
		}
		// The last attempt is made at the deadline rather than giving up
		// with part of the budget unused.
		wait = min(wait, left)
		if p.OnAttempt != nil {
			p.OnAttempt(res.Attempts, status, err, wait)
		}
		if err := sleep(ctx, wait); err != nil {
			res.Elapsed = now().Sub(start)
			return res, fmt.Errorf("health: check %s: stopped after %d attempts: %w", t.URL, res.Attempts, err)
		}
	}
}

// attempt makes one request and says why it is not healthy (nil if it is).
func attempt(ctx context.Context, client *http.Client, t Target, want int, now func() time.Time, timeout time.Duration) (status int, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("User-Agent", "deploybot-health")
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, describe(err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != want {
		if d, ok := retry.RetryAfter(resp.Header, now()); ok {
			retryAfter = d
		}
		return resp.StatusCode, retryAfter, fmt.Errorf("got status %d, want %d", resp.StatusCode, want)
	}
	if t.ExpectBody != "" {
		if readErr != nil {
			return resp.StatusCode, 0, fmt.Errorf("reading body: %v", describe(readErr))
		}
		if !strings.Contains(string(body), t.ExpectBody) {
			return resp.StatusCode, 0, fmt.Errorf("status %d but the body does not contain %q", resp.StatusCode, t.ExpectBody)
		}
	}
	return resp.StatusCode, 0, nil
}

// describe shortens transport errors to what a person needs in a status
// comment ("connection refused", "timed out") while keeping the cause.
func describe(err error) error {
	// *url.Error repeats method and URL, which the caller knows.
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("timed out: %w", err)
	}
	return err
}

// ClientResolvingTo returns a client that connects to addr (host:port) for
// every URL, whatever its hostname, while keeping the URL's host as the
// Host header and the TLS server name (SNI) and certificate name. This is
// how the sandbox reaches "codex-preview-7.revelations.studio" on its
// simulated edge, like a hosts-file entry. Proxies from the environment are
// not used. Replace TLSClientConfig on its transport to trust a test CA.
func ClientResolvingTo(addr string) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        16,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &http.Client{Transport: tr}
}
