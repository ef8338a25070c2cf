// Package fault injects the failures real APIs show — rate limits, locks,
// server errors, slow answers and dropped connections — in front of a
// simulator, so the clients' retry and idempotency paths run in tests.
//
// Randomness is seeded: the same seed and the same request sequence give the
// same failures, so a failing test can be replayed.
package fault

import (
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rule says which requests fail and how. A rule with neither Times nor Rate
// set never fails; it only adds Latency.
type Rule struct {
	Method     string        // "" any
	Path       string        // path prefix of r.URL.Path; "" any
	Latency    time.Duration // added before answering (respecting the request context)
	Rate       float64       // 0..1 probability that a matching request fails
	Times      int           // >0: the next Times matching requests fail (one-shot), then the rule is spent
	Status     int           // status of a failure (429, 423, 500, 502, 503); 503 when 0
	RetryAfter time.Duration // Retry-After header (whole seconds, min 1) on failures when >0
	Reset      bool          // failure = connection closed without a response (hijack)
	// AfterServe lets a failing request reach the API first and then replaces
	// its answer with the failure: the server acted but the client never
	// learns it — the "lost response" that makes creating calls unsafe to
	// simply repeat.
	AfterServe bool
	// Hold, when set, is called with each matching request before it is
	// served, and may block: a test holds a request inside the API (as a
	// slow GitHub would) while it makes something happen on the client's
	// side, then lets it through.
	Hold func(*http.Request)
}

func (r Rule) matches(req *http.Request) bool {
	if r.Method != "" && !strings.EqualFold(r.Method, req.Method) {
		return false
	}
	return r.Path == "" || strings.HasPrefix(req.URL.Path, r.Path)
}

// Injector applies rules to requests. It is safe for concurrent use.
type Injector struct {
	mu       sync.Mutex
	rng      *rand.Rand
	rules    []*state
	injected int
}

type state struct {
	Rule
	left int // failures left for a Times rule
}

// New returns an injector without rules whose random choices derive from seed.
func New(seed int64) *Injector {
	return &Injector{rng: rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15))}
}

// Set replaces all rules.
func (i *Injector) Set(rules ...Rule) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.rules = i.rules[:0]
	for _, r := range rules {
		i.rules = append(i.rules, &state{Rule: r, left: r.Times})
	}
}

// Injected returns how many failures were injected so far.
func (i *Injector) Injected() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.injected
}

// decide picks the latency to add and the failing rule, if any, for req.
// Every matching rule adds its latency; the first one that fails decides
// the failure.
func (i *Injector) decide(req *http.Request) (latency time.Duration, fail *Rule, holds []func(*http.Request)) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, s := range i.rules {
		if !s.matches(req) {
			continue
		}
		if s.Hold != nil {
			holds = append(holds, s.Hold)
		}
		if s.Times > 0 && s.left == 0 {
			continue // spent
		}
		latency += s.Latency
		if fail != nil {
			continue
		}
		switch {
		case s.Times > 0:
			s.left--
			r := s.Rule
			fail = &r
		case s.Rate > 0 && i.rng.Float64() < s.Rate:
			r := s.Rule
			fail = &r
		}
	}
	if fail != nil {
		i.injected++
	}
	return latency, fail, holds
}

// Middleware answers matching requests with the failure their rule describes
// and passes the others to next. writeError renders failures in the API's own
// error shape.
func (i *Injector) Middleware(next http.Handler, writeError func(w http.ResponseWriter, r *http.Request, status int, msg string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		latency, fail, holds := i.decide(r)
		for _, hold := range holds {
			hold(r)
		}
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return // the client gave up; nobody reads an answer
			}
		}
		if fail == nil {
			next.ServeHTTP(w, r)
			return
		}
		if fail.AfterServe {
			next.ServeHTTP(&discard{h: http.Header{}}, r)
		}
		if fail.Reset {
			reset(w)
			return
		}
		status := fail.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		if fail.RetryAfter > 0 {
			secs := int(math.Ceil(fail.RetryAfter.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		}
		writeError(w, r, status, "injected fault: "+http.StatusText(status))
	})
}

// reset drops the connection without an answer, as a crashed proxy or a
// network failure would: with a TCP RST where possible, so the client sees
// "connection reset by peer".
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// HTTP/2 or a recorder: net/http closes the stream without a response.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// discard is a ResponseWriter that forgets the answer of a request whose
// response is to be lost.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}
