package github

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Pacing an installation's writes.
//
// Besides its hourly quota, GitHub limits how much content an installation
// creates: "no more than 80 content-generating requests per minute and no
// more than 500 content-generating requests per hour" (Rate limits for the
// REST API, About secondary rate limits), and asks integrators to "wait at
// least one second" between POST, PATCH, PUT and DELETE requests when making
// many of them (Best practices for using the REST API). Twenty PRs pushed at
// once each start a check run, a status comment and a deployment and then
// edit them as the run goes: well past 80 in a minute if sent as they come,
// and every answer past it is a 403 the rate-limit middleware must wait out
// (a minute or more when GitHub gives no Retry-After).
//
// So each installation's writes are paced before they are sent, in this
// process: a token bucket lets a short burst go at once (an eighth of the
// minute's allowance) and then spaces writes so that no minute holds more
// than nine tenths of WritePace.PerMinute, counting the burst; a log of the
// last hour's writes holds them to nine tenths of WritePace.PerHour. The
// tenth left over absorbs what the pacer cannot see: the time between
// booking a write here and GitHub counting it, which a loaded machine
// stretches unevenly, and a person's own edits in the web interface, which
// GitHub counts against the same limit. Every attempt counts,
// retries included, as GitHub counts them. Reads and GraphQL queries are
// not paced. Waiting on 403/429 (ratelimit.go) stays as the fallback for
// what pacing cannot see: other replicas, other tools sharing the App.

// WritePace paces each installation's content-creating requests (POST,
// PATCH, PUT, DELETE on the REST API). The zero value is GitHub's
// documented limit.
type WritePace struct {
	// PerMinute is GitHub's limit of writes in any minute (default 80);
	// the pacer keeps nine tenths of it. Negative: writes are not paced.
	PerMinute int
	// PerHour is GitHub's limit of writes in any hour (default 500), of
	// which the pacer keeps nine tenths. Negative: no hourly bound.
	PerHour int
	// Minute is the length of PerMinute's minute (default a minute); the
	// hour is 60 of them. Tests shorten it together with the simulated
	// GitHub's (ghsim.Options.ContentMinute).
	Minute time.Duration
}

func (w WritePace) withDefaults() WritePace {
	if w.PerMinute == 0 {
		w.PerMinute = 80
	}
	if w.PerHour == 0 {
		w.PerHour = 500
	}
	if w.Minute <= 0 {
		w.Minute = time.Minute
	}
	return w
}

// writePacer is one installation's WritePace.
type writePacer struct {
	pace WritePace
	// The minute as a token bucket (GCRA): a write may go at tat-tolerance;
	// each moves tat on by interval. With a burst of b and an interval of
	// minute/(perMinute-b), a minute holds fewer than perMinute writes.
	interval  time.Duration
	tolerance time.Duration
	perHour   int // the hour's share; 0: no hourly bound

	mu   sync.Mutex
	tat  time.Time
	sent []time.Time // the last hour's writes (booked send times), ascending
}

func newWritePacer(w WritePace) *writePacer {
	w = w.withDefaults()
	if w.PerMinute < 0 {
		return nil
	}
	perMinute := max(w.PerMinute-w.PerMinute/10, 1)
	burst := min(max(w.PerMinute/8, 1), perMinute)
	interval := w.Minute / time.Duration(max(perMinute-burst, 1))
	p := &writePacer{pace: w, interval: interval, tolerance: time.Duration(burst-1) * interval}
	if w.PerHour > 0 {
		p.perHour = max(w.PerHour-w.PerHour/10, 1)
	}
	return p
}

// isContentWrite reports whether req counts against GitHub's content
// creation limit: a REST POST, PATCH, PUT or DELETE. GraphQL queries are
// POSTs but create nothing.
func isContentWrite(req *http.Request) bool {
	switch req.Method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
		return !strings.HasSuffix(req.URL.Path, "/graphql")
	}
	return false
}

// book returns when, from now, the next write may be sent and books that
// time; undo gives it back when the write is not sent after all. A write
// whose turn would come after ctx's deadline is not booked:
// ErrBudgetExhausted.
func (p *writePacer) book(ctx context.Context, now time.Time) (time.Duration, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := later(now, p.tat.Add(-p.tolerance))
	hour := 60 * p.pace.Minute
	if p.perHour > 0 {
		i := 0
		for i < len(p.sent) && !p.sent[i].After(now.Add(-hour)) {
			i++
		}
		p.sent = p.sent[i:]
		if n := len(p.sent); n >= p.perHour {
			// Past the oldest write that keeps the hour full.
			at = later(at, p.sent[n-p.perHour].Add(hour+time.Millisecond))
		}
	}
	wait := at.Sub(now)
	if wait > 0 && !fitsDeadline(ctx, now, wait) {
		return 0, nil, fmt.Errorf("%w: GitHub's content-creation limit (%d writes a minute, %d an hour) allows the next write in %s, after this request's deadline",
			ErrBudgetExhausted, p.pace.PerMinute, p.pace.PerHour, wait.Round(time.Millisecond))
	}
	prevTAT := p.tat
	p.tat = later(p.tat, at).Add(p.interval)
	if p.perHour > 0 {
		i, _ := slices.BinarySearchFunc(p.sent, at, time.Time.Compare)
		p.sent = slices.Insert(p.sent, i, at)
	}
	undo := func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.tat.Equal(later(prevTAT, at).Add(p.interval)) {
			p.tat = prevTAT // nothing booked since
		}
		if i := slices.IndexFunc(p.sent, func(t time.Time) bool { return t.Equal(at) }); i >= 0 {
			p.sent = slices.Delete(p.sent, i, i+1)
		}
	}
	return wait, undo, nil
}
