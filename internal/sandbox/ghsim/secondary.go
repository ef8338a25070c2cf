package ghsim

import (
	"net/http"
	"strconv"
	"time"
)

// The content-creation secondary rate limit.
//
// GitHub's "Rate limits for the REST API" (About secondary rate limits):
// "In general, no more than 80 content-generating requests per minute and
// no more than 500 content-generating requests per hour are allowed." Past
// it, GitHub answers 403 or 429 with a message saying a secondary rate limit
// was exceeded and, when present, a retry-after header in seconds.
//
// The documentation does not define "content-generating"; its table of
// secondary-limit points groups "POST, PATCH, PUT, or DELETE" requests, and
// its best practices ask for a pause between exactly those ("mutative")
// requests. So ghsim counts every POST, PATCH, PUT and DELETE an
// installation token makes on the REST API, whatever its answer. The App's
// own requests with its JWT (minting installation tokens, GET /app) create
// no content on GitHub and are not counted. GraphQL is not simulated.
//
// The windows slide: a write is refused when the installation made
// ContentPerMinute writes in the last ContentMinute, or ContentPerHour in
// the last 60 ContentMinutes. They run on the real clock, not Options.Now:
// tests stand that clock still, while a client waits a Retry-After out in
// real time, so a window measured on it would never free a slot.

// contentLog is the accepted writes of one installation, oldest first,
// pruned to the last hour.
type contentLog []time.Time

// isWrite reports whether a request counts against the content-creation
// limit.
func isWrite(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// allowContent applies the content-creation limit of installation inst to
// r: a write within the limit is recorded and let through; one past it is
// answered 403 with Retry-After, the seconds until a slot frees.
func (s *Server) allowContent(rec *recorder, r *http.Request, inst int64) bool {
	if !isWrite(r) {
		return true
	}
	minute := s.opts.ContentMinute
	hour := 60 * minute
	s.mu.Lock()
	now := s.realNow()
	log := s.content[inst]
	// Prune what left the hour.
	i := 0
	for i < len(log) && !log[i].After(now.Add(-hour)) {
		i++
	}
	log = log[i:]
	var freeAt time.Time // zero: a slot is free now
	if n := len(log); n >= s.opts.ContentPerHour {
		freeAt = log[n-s.opts.ContentPerHour].Add(hour)
	}
	if n := len(log); n >= s.opts.ContentPerMinute {
		if t := log[n-s.opts.ContentPerMinute].Add(minute); t.After(now) && t.After(freeAt) {
			freeAt = t
		}
	}
	if freeAt.IsZero() || !freeAt.After(now) {
		s.content[inst] = append(log, now)
		s.mu.Unlock()
		return true
	}
	s.content[inst] = log
	s.contentRefusals++
	s.mu.Unlock()
	// GitHub's retry-after is whole seconds: round up, so that a client
	// waiting it out finds the slot free.
	secs := max(int((freeAt.Sub(now)+time.Second-1)/time.Second), 1)
	rec.Header().Set("Retry-After", strconv.Itoa(secs))
	s.write(rec, r, fail(http.StatusForbidden, secondaryLimitMessage, secondaryLimitDocs))
	return false
}

// SecondaryLimitRefusals is how many requests the content-creation limit
// refused so far (injected faults not included).
func (s *Server) SecondaryLimitRefusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.contentRefusals
}
