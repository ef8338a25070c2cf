// Package retry re-sends HTTP requests that failed for reasons that go away:
// rate limits, locks, overloaded or restarting servers and dropped
// connections. Waits use exponential backoff with full jitter, so many
// clients retrying together spread out, and honour the server's Retry-After.
// The caller's context bounds everything: a retry whose wait would outlast
// the deadline is not attempted.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Policy says how often and how long to retry. The zero value is usable.
type Policy struct {
	// Attempts is the total number of tries, the first included (default 6).
	Attempts int
	// Base caps the first backoff (default 250ms); the cap doubles per retry.
	Base time.Duration
	// Max caps one backoff wait (default 15s). A server's Retry-After is
	// honoured even when longer; the context still bounds it.
	Max time.Duration

	// Retryable decides whether to try again; default Retryable.
	Retryable func(req *http.Request, resp *http.Response, err error) bool
	// OnRetry, when set, is told about each retry before its wait, e.g. to log it.
	OnRetry func(attempt int, wait time.Duration, resp *http.Response, err error)

	// Sleep waits for d or until ctx ends; tests replace it. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0,1) for jitter; tests replace it.
	Rand func() float64
	// Now is the clock used for Retry-After dates and deadlines.
	Now func() time.Time
}

func (p Policy) attempts() int {
	if p.Attempts > 0 {
		return p.Attempts
	}
	return 6
}

func (p Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Backoff returns the wait before retry n (1 for the first retry): a random
// duration in [0, min(Max, Base·2^(n-1))) — "full jitter".
func (p Policy) Backoff(n int) time.Duration {
	base, maxWait := p.Base, p.Max
	if base <= 0 {
		base = 250 * time.Millisecond
	}
	if maxWait <= 0 {
		maxWait = 15 * time.Second
	}
	ceiling := maxWait
	if n < 1 {
		n = 1
	}
	if n <= 32 {
		if c := base << (n - 1); c > 0 && c < maxWait {
			ceiling = c
		}
	}
	r := rand.Float64
	if p.Rand != nil {
		r = p.Rand
	}
	return time.Duration(r() * float64(ceiling))
}

// Delay returns the wait before retry n after resp: the server's Retry-After
// when it sent one, else Backoff(n).
func (p Policy) Delay(n int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := RetryAfter(resp.Header, p.now()); ok {
			return d
		}
	}
	return p.Backoff(n)
}

// RetryAfter parses a Retry-After header given in seconds or as an HTTP date.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// Retryable reports whether a request may be sent again.
//
// 429 (rate limited), 423 (locked: another operation is running) and 503
// (unavailable) mean the server did not act, so they are retried for every
// method, as Neon's API documentation says. Other 5xx answers and dropped
// connections (reset, EOF, timeouts) leave it unknown whether the server
// acted, so they are retried only for idempotent methods; a creating call
// must look up what it created instead. A connection refused never reached
// the server and is always retried.
func Retryable(req *http.Request, resp *http.Response, err error) bool {
	method := http.MethodGet
	if req != nil {
		method = req.Method
	}
	return RetryableAs(Idempotent(method), resp, err)
}

// RetryableAs is Retryable for a request whose repetition is (idempotent)
// or is not harmless, as the caller knows from the API: some POSTs are.
func RetryableAs(idempotent bool, resp *http.Response, err error) bool {
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return true
		}
		return idempotent && TransportError(err)
	}
	if resp == nil {
		return false
	}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests, s == http.StatusLocked, s == http.StatusServiceUnavailable:
		return true
	case s >= 500 && s != http.StatusNotImplemented && s != http.StatusHTTPVersionNotSupported:
		return idempotent
	}
	return false
}

// Idempotent reports whether sending a request with method twice has the
// effect of sending it once.
func Idempotent(method string) bool {
	switch strings.ToUpper(method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// TransportError reports whether err is a dropped or broken connection, as
// opposed to a request that could never succeed (bad URL, TLS mismatch).
func TransportError(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// Do sends the request built by newRequest (called once per attempt, so
// bodies are fresh) until it gets an answer that is not retryable, attempts
// run out, or ctx would end before the next try. It returns the last
// response, whose body the caller must close, or the last error. Bodies of
// responses that are retried are drained and closed here.
func (p Policy) Do(ctx context.Context, client *http.Client, newRequest func(ctx context.Context) (*http.Request, error)) (*http.Response, error) {
	if client == nil {
		client = http.DefaultClient
	}
	retryable := p.Retryable
	if retryable == nil {
		retryable = Retryable
	}
	sleep := p.Sleep
	if sleep == nil {
		sleep = Sleep
	}
	for attempt := 1; ; attempt++ {
		req, err := newRequest(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if attempt >= p.attempts() || !retryable(req, resp, err) {
			return resp, err
		}
		wait := p.Delay(attempt, resp)
		if dl, ok := ctx.Deadline(); ok && p.now().Add(wait).After(dl) {
			// Waiting would outlast the caller: give them what we have now.
			return resp, err
		}
		if p.OnRetry != nil {
			p.OnRetry(attempt, wait, resp, err)
		}
		last := describe(resp, err)
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%w (gave up retrying after %d attempts; last: %s)", err, attempt, last)
		}
	}
}

func describe(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// Sleep waits for d or until ctx ends, whichever comes first, and returns
// ctx's error in the second case. It is the default Policy.Sleep, shared by
// the clients that wait without a Policy.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TransientStatus reports whether an HTTP answer with status code says
// "not now" rather than "no": rate limits, locks and server errors.
func TransientStatus(code int) bool {
	switch {
	case code == http.StatusTooManyRequests, code == http.StatusLocked:
		return true
	case code >= 500:
		return code != http.StatusNotImplemented && code != http.StatusHTTPVersionNotSupported
	}
	return false
}

// Transient reports whether err is a failure a later attempt may well not
// meet: a service's "not now" (its error type has a Transient method, as
// the bot's API clients' errors do) or a dropped connection. A cancelled or
// expired context is not: the caller stopped waiting.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var t interface{ Transient() bool }
	if errors.As(err, &t) {
		return t.Transient()
	}
	return TransportError(err)
}
