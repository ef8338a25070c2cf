package github

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// The request budget of an installation.
//
// GitHub gives each installation an hourly quota per resource (core,
// search, graphql) and reports what is left on every answer
// (X-RateLimit-Limit, -Remaining, -Reset). A burst — many PRs pushed at
// once, a sweep — could spend it all in minutes, after which the bot is
// blind until the reset: it could not even conclude its check runs or
// update its status comments. So, per installation and resource:
//
//   - While at least the reserve (RateLimits.Reserve of the limit, default
//     10 %) remains, requests go out as they come.
//   - Below the reserve, requests are paced so that what remains lasts until
//     the reset: each waits until (reset − now) / remaining after the one
//     before it. The spacing is recomputed from every answer, so when other
//     replicas or tools spend the same quota the intervals grow with it.
//   - Requests that conclude what people see — creating or editing check
//     runs, issue comments (the status comment) and deployment statuses —
//     are not paced until the remaining quota falls below a hard floor of
//     1 % of the limit (at least 10 requests, at most the reserve): reads
//     slow down first, and the bot keeps reporting.
//   - Pacing is advice, not a limit: GitHub still has quota for the
//     request, so one whose turn would come after its context's deadline is
//     sent at once rather than failed.
//   - At 0 remaining, RateLimitMiddleware waits for the reset (or returns
//     GitHub's answer when the deadline comes first), as before.
//
// Independently, RateLimits.RequestsPerHour caps each installation's
// requests (every attempt counts, 304s included) with a token bucket
// refilled continuously, holding a minute's worth (at least 10). This is the
// operator's limit, not GitHub's: a request whose turn would come after its
// context's deadline fails at once with ErrBudgetExhausted instead of being
// sent.
//
// State lives in one budget per installation, shared by that installation's
// clients (see installationClients), so it survives go-githubapp evicting a
// client from its cache. It is per process: replicas each have their own
// hard cap.

// ErrBudgetExhausted is returned (wrapped) for a request the hard cap
// (RateLimits.RequestsPerHour) or the pacing of writes (RateLimits.Writes)
// would hold back beyond its context's deadline. The request was not sent.
var ErrBudgetExhausted = errors.New("github request budget exhausted")

const (
	// defaultReserve is RateLimits.Reserve's default.
	defaultReserve = 0.10
	// floorShare and floorMin set the hard floor under which even the
	// requests that conclude things are paced.
	floorShare = 0.01
	floorMin   = 10
	// burstMinutes is how many minutes of the hourly cap may go at once.
	burstMinutes = 1
	burstMin     = 10
)

// budget is what one installation may still spend: GitHub's counters as
// last seen, per resource, and the optional hard cap.
type budget struct {
	p            RateLimits
	installation int64 // 0 when not known (RateLimitMiddleware on its own)

	mu     sync.Mutex
	quotas map[string]*quota

	// The hard cap as a token bucket, kept as the time at which the bucket
	// would be full again (GCRA): each request moves it on by perRequest;
	// a request may go once it is no more than burst requests ahead of now.
	perRequest time.Duration // 0: no cap
	burst      int
	full       time.Time

	// writes paces content-creating requests (writes.go); nil: not paced.
	writes *writePacer
}

// quota is one resource's primary limit as last reported by GitHub.
type quota struct {
	limit     int       // 0: not reported
	remaining int       // -1: not reported
	reset     time.Time // zero: not reported
	// last is when the latest request was (or, when queued, will be) sent:
	// pacing spaces requests from it.
	last   time.Time
	pacing bool // whether requests are being paced, for logging changes
}

func newBudget(p RateLimits, installation int64) *budget {
	b := &budget{p: p, installation: installation, quotas: map[string]*quota{}, writes: newWritePacer(p.Writes)}
	if rph := p.RequestsPerHour; rph > 0 {
		b.perRequest = max(time.Hour/time.Duration(rph), time.Nanosecond)
		b.burst = min(max(rph/60*burstMinutes, burstMin), rph)
	}
	return b
}

func (b *budget) quota(resource string) *quota {
	q, ok := b.quotas[resource]
	if !ok {
		q = &quota{remaining: -1}
		b.quotas[resource] = q
	}
	return q
}

// thresholds returns the counts below which requests are paced: all of
// them (paceBelow) and those that conclude things (floor).
func (b *budget) thresholds(limit int) (paceBelow, floor int) {
	if b.p.Reserve <= 0 || limit <= 0 {
		return 0, 0
	}
	paceBelow = int(math.Ceil(float64(limit) * min(b.p.Reserve, 1)))
	floor = min(paceBelow, max(int(math.Ceil(float64(limit)*floorShare)), floorMin))
	return paceBelow, floor
}

// shouldPace says whether q is below the reserve in a window still open.
func (b *budget) shouldPace(q *quota, now time.Time) bool {
	paceBelow, _ := b.thresholds(q.limit)
	return q.remaining >= 0 && q.remaining < paceBelow && now.Before(q.reset)
}

// exhaustedFor is how long until the primary limit of resource resets
// when none of it remains; 0 otherwise.
func (b *budget) exhaustedFor(resource string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.quotas[resource]
	if !ok || q.remaining != 0 || q.reset.IsZero() {
		return 0
	}
	return q.reset.Sub(b.p.Now())
}

// admit decides when req may be sent and books its place: it returns the
// wait, and undo, which gives the place back when the request is not sent
// after all. When the hard cap would hold req back beyond its deadline it
// returns ErrBudgetExhausted and books nothing.
func (b *budget) admit(ctx context.Context, req *http.Request, resource string) (time.Duration, func(), error) {
	now := b.p.Now()
	b.mu.Lock()
	var capWait time.Duration
	undo := func() {}
	if b.perRequest > 0 {
		full := later(b.full, now).Add(b.perRequest)
		capWait = max(full.Sub(now)-time.Duration(b.burst)*b.perRequest, 0)
		if capWait > 0 && !fitsDeadline(ctx, now, capWait) {
			b.mu.Unlock()
			return 0, nil, fmt.Errorf("%w: installation %d may send its next request in %s (github.budget.requests_per_hour is %d), after this request's deadline",
				ErrBudgetExhausted, b.installation, capWait.Round(time.Second), b.p.RequestsPerHour)
		}
		b.full = full
		undo = func() {
			b.mu.Lock()
			b.full = b.full.Add(-b.perRequest)
			b.mu.Unlock()
		}
	}

	q := b.quota(resource)
	var paceWait time.Duration
	paceBelow, floor := b.thresholds(q.limit)
	if concludes(req) {
		paceBelow = floor
	}
	if q.remaining >= 0 && q.remaining < paceBelow && now.Before(q.reset) {
		interval := q.reset.Sub(now) / time.Duration(max(q.remaining, 1))
		paceWait = max(q.last.Add(interval).Sub(now), 0)
		if !fitsDeadline(ctx, now, paceWait) {
			paceWait = 0 // advice only: GitHub would still answer it
		}
	}
	wait := max(capWait, paceWait)
	q.last = later(q.last, now.Add(wait))
	ended := q.pacing && !b.shouldPace(q, now) // the window reset meanwhile
	if ended {
		q.pacing = false
	}
	snap := *q
	b.mu.Unlock()
	if ended {
		b.logPacing(ctx, resource, snap, false)
	}
	return wait, undo, nil
}

// observe records the rate-limit headers of resp.
func (b *budget) observe(ctx context.Context, resp *http.Response, resource string) {
	if r := resp.Header.Get("X-RateLimit-Resource"); r != "" {
		resource = r
	}
	remaining, err := strconv.Atoi(resp.Header.Get("X-RateLimit-Remaining"))
	if err != nil || remaining < 0 {
		return
	}
	reset, _ := resetTime(resp.Header)
	limit, _ := strconv.Atoi(resp.Header.Get("X-RateLimit-Limit"))
	now := b.p.Now()

	b.mu.Lock()
	q := b.quota(resource)
	if !reset.IsZero() && reset.Before(q.reset) {
		// An answer from a window that has since reset, overtaken by a
		// later one.
		b.mu.Unlock()
		return
	}
	q.remaining, q.reset, q.limit = remaining, reset, max(limit, 0)
	pace := b.shouldPace(q, now)
	changed := pace != q.pacing
	q.pacing = pace
	snap := *q
	if b.p.OnQuota != nil && b.installation != 0 {
		// Under the lock, so that answers are reported in the order
		// they were recorded.
		b.p.OnQuota(b.installation, resource, snap.remaining, snap.limit)
	}
	b.mu.Unlock()
	if changed {
		b.logPacing(ctx, resource, snap, pace)
	}
}

// logPacing says once that pacing started or ended. Only counts and times
// are logged, never request headers.
func (b *budget) logPacing(ctx context.Context, resource string, q quota, started bool) {
	paceBelow, floor := b.thresholds(q.limit)
	ev := zerolog.Ctx(ctx).Info().
		Str("resource", resource).
		Int("remaining", q.remaining).
		Int("limit", q.limit).
		Time("reset", q.reset)
	if b.installation != 0 {
		ev = ev.Int64("installation_id", b.installation)
	}
	if started {
		ev.Int("reserve", paceBelow).Int("floor", floor).
			Msg("github budget: below the reserve, pacing requests so the quota lasts until the reset")
		return
	}
	ev.Msg("github budget: pacing ended")
}

// concludes reports whether req creates or edits something people look at
// for the outcome: a check run, an issue comment (the status comment) or a
// deployment status. Matched on the end of the path, so that GitHub
// Enterprise Server's /api/v3 prefix does not matter.
func concludes(req *http.Request) bool {
	if req.Method != http.MethodPost && req.Method != http.MethodPatch {
		return false
	}
	s := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	n := len(s)
	at := func(i int) string { // i counted from the end, 1 = last
		if i > n {
			return ""
		}
		return s[n-i]
	}
	switch {
	case at(1) == "check-runs", at(2) == "check-runs": // …/check-runs, …/check-runs/{id}
		return true
	case at(3) == "issues" && (at(1) == "comments" || at(2) == "comments"): // …/issues/{n}/comments, …/issues/comments/{id}
		return true
	case at(3) == "deployments" && at(1) == "statuses": // …/deployments/{id}/statuses
		return true
	}
	return false
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// gate is the middleware that admits each request to the
// installation's budget and records what GitHub says is left. It sits
// inside the transient-failure retries, so every attempt counts.
func (b *budget) gate(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		ctx := req.Context()
		unbookWrite := func() {}
		if b.writes != nil && isContentWrite(req) {
			wait, undo, err := b.writes.book(ctx, b.p.Now())
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
			}
			if wait > 0 {
				zerolog.Ctx(ctx).Debug().Str("method", req.Method).Str("path", req.URL.Path).Dur("wait", wait).
					Msg("github writes: waiting for a turn under GitHub's content-creation limit")
				if err := b.p.Sleep(ctx, wait); err != nil {
					undo()
					return nil, err
				}
			}
			unbookWrite = undo
		}
		resource := resourceOf(req.URL.Path)
		wait, undo, err := b.admit(ctx, req, resource)
		if err != nil {
			unbookWrite()
			return nil, err
		}
		if wait > 0 {
			if err := b.p.Sleep(ctx, wait); err != nil {
				undo()
				unbookWrite()
				return nil, err
			}
		}
		resp, err := next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		b.observe(ctx, resp, resource)
		return resp, nil
	})
}

// budgets holds one budget per installation, for the life of the process:
// an installation's entry is a few words, and an App has few
// installations compared with the memory of one client's cache.
type budgets struct {
	p  RateLimits
	mu sync.Mutex
	m  map[int64]*budget
}

func newBudgets(p RateLimits) *budgets {
	return &budgets{p: p.withDefaults(), m: map[int64]*budget{}}
}

func (bs *budgets) get(installation int64) *budget {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b, ok := bs.m[installation]
	if !ok {
		b = newBudget(bs.p, installation)
		bs.m[installation] = b
	}
	return b
}
