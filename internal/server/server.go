// Package server is the bot's HTTP front: the GitHub webhook endpoint, the
// health probes, the metrics when given, and the web pages beside them
// (Options.Pages).
//
// The endpoint is open to the internet, so it spends as little as it can on
// a request before knowing GitHub sent it: a request without a well-formed
// X-Hub-Signature-256 is refused before its body is read; a signed one is
// read within MaxBodyBytes while its HMAC is computed, and only a body whose
// signature matches is parsed. At most Limits.Concurrent webhook requests
// are read or handled at once, holding at most Limits.Bytes of bodies; a
// request that finds no room within Limits.Wait is answered 503 at once
// rather than queued without bound. HTTPServer sets the timeouts that stop
// a client from holding a connection by sending slowly.
//
// A delivery then goes to go-githubapp's dispatcher and the event
// handlers, which store it and queue its job. Status codes tell GitHub (and
// whoever reads the App's delivery log) what happened:
//
//	200  stored and queued, or a redelivery of a stored delivery
//	202  an event or action the bot does not act on
//	400  malformed: no event or delivery header, not JSON, a ref git forbids
//	401  missing or wrong X-Hub-Signature-256
//	413  body over MaxBodyBytes
//	500  the database could not store it: GitHub shows it failed, redeliver
//	503  too many deliveries at once: redeliver
//
// Options.Observe is told each request's outcome, for the metrics: the
// status says it, but for 200, which the handlers tell apart (stored or a
// duplicate) through handlers.WithOutcome.
package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/palantir/go-githubapp/githubapp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/revelations-studio/deploybot/handlers"
)

// MaxBodyBytes is GitHub's own cap on webhook payloads (25 MiB).
const MaxBodyBytes = 25 << 20

// WebhookPath is where GitHub delivers events.
const WebhookPath = githubapp.DefaultWebhookRoute

// Options configures New.
type Options struct {
	WebhookSecret string
	Handlers      []githubapp.EventHandler
	// Ready reports whether the bot can do its work (database reachable,
	// schema current); nil means always ready.
	Ready  func(context.Context) error
	Logger zerolog.Logger
	// Limits bound the webhook requests in progress; zero fields take
	// DefaultLimits' values.
	Limits Limits
	// Observe, when set, is told of every webhook request once it is
	// answered: its X-GitHub-Event as sent (unchecked: the caller bounds
	// it), what became of it (stored, duplicate, ignored, bad_request,
	// unauthorized, too_large, busy, error) and how long the answer took.
	Observe func(event, outcome string, took time.Duration)
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	// Pages serves every path the webhook and the probes do not: the web
	// interface (internal/web), or nil for none.
	Pages http.Handler
}

// Limits bound what webhook requests can hold at once.
type Limits struct {
	// Concurrent is how many webhook requests are read or handled at once.
	Concurrent int
	// Bytes bounds the request bodies held in memory at once. A request
	// reserves its Content-Length (MaxBodyBytes when it sends none) before
	// its body is read. It is at least MaxBodyBytes, so the largest
	// delivery GitHub sends always fits.
	Bytes int64
	// Wait is how long a request waits for room before it is answered
	// 503. GitHub gives up on a delivery after 10 s.
	Wait time.Duration
}

// DefaultLimits: a burst of GitHub's deliveries (a few KiB each) is
// handled in parallel, while forged large bodies cannot hold more than
// 64 MiB of the bot's memory.
var DefaultLimits = Limits{Concurrent: 64, Bytes: 64 << 20, Wait: 5 * time.Second}

func (l Limits) withDefaults() Limits {
	if l.Concurrent <= 0 {
		l.Concurrent = DefaultLimits.Concurrent
	}
	if l.Bytes <= 0 {
		l.Bytes = DefaultLimits.Bytes
	}
	l.Bytes = max(l.Bytes, MaxBodyBytes)
	if l.Wait <= 0 {
		l.Wait = DefaultLimits.Wait
	}
	return l
}

// New returns the bot's HTTP handler.
func New(opts Options) http.Handler {
	dispatcher := githubapp.NewEventDispatcher(opts.Handlers, opts.WebhookSecret,
		githubapp.WithErrorCallback(onError),
		githubapp.WithResponseCallback(respond),
	)
	mux := http.NewServeMux()
	hook := limit(opts.Limits.withDefaults(), verify(opts.WebhookSecret, dispatcher))
	if opts.Observe != nil {
		hook = observe(opts.Observe, hook)
	}
	mux.Handle("POST "+WebhookPath, hook)
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /readyz", readiness(opts.Ready))
	if opts.Pages != nil {
		mux.Handle("/", opts.Pages)
	}
	return withLogger(opts.Logger, mux)
}

// Timeouts are HTTPServer's connection timeouts.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers, Read the whole
	// request (a 25 MiB delivery from GitHub arrives in well under it),
	// Write the answer (the handler stores the delivery first), Idle a
	// kept-alive connection between requests.
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultTimeouts suit GitHub's deliveries, which GitHub itself abandons
// after 10 s.
var DefaultTimeouts = Timeouts{ReadHeader: 5 * time.Second, Read: 30 * time.Second, Write: 30 * time.Second, Idle: 90 * time.Second}

// MaxHeaderBytes bounds a request's headers; GitHub's are about 2 KiB.
const MaxHeaderBytes = 64 << 10

// HTTPServer returns the server for h with t's timeouts (DefaultTimeouts
// for zero fields), so that a client sending slowly — headers or body —
// cannot hold a connection and a handler goroutine for ever.
func HTTPServer(h http.Handler, t Timeouts) *http.Server {
	pick := func(v, d time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return d
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: pick(t.ReadHeader, DefaultTimeouts.ReadHeader),
		ReadTimeout:       pick(t.Read, DefaultTimeouts.Read),
		WriteTimeout:      pick(t.Write, DefaultTimeouts.Write),
		IdleTimeout:       pick(t.Idle, DefaultTimeouts.Idle),
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// readiness answers /readyz. The answer says only "ready" or "not ready":
// the probe is reachable by anyone, and a database error names hosts and
// users. The reason goes to the log when readiness changes, not on every
// probe.
func readiness(ready func(context.Context) error) http.Handler {
	var failing atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			defer cancel()
			if err := ready(ctx); err != nil {
				if !failing.Swap(true) {
					zerolog.Ctx(r.Context()).Warn().Err(err).Msg("not ready")
				}
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			if failing.Swap(false) {
				zerolog.Ctx(r.Context()).Info().Msg("ready again")
			}
		}
		_, _ = io.WriteString(w, "ready\n")
	})
}

// limit admits a webhook request when there is room for it — a slot and
// its body's bytes — within l.Wait, and answers 503 otherwise. The room is
// held until the request is answered, since the body stays in memory
// until then.
func limit(l Limits, next http.Handler) http.Handler {
	slots := make(chan struct{}, l.Concurrent)
	mem := semaphore.NewWeighted(l.Bytes)
	busy := func(w http.ResponseWriter, r *http.Request, what string) {
		zerolog.Ctx(r.Context()).Warn().
			Str(githubapp.LogKeyDeliveryID, r.Header.Get("X-GitHub-Delivery")).
			Str("waiting_for", what).Msg("webhook refused: too many requests in progress")
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many deliveries in progress; redeliver", http.StatusServiceUnavailable)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), l.Wait)
		defer cancel()
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-ctx.Done():
			busy(w, r, "a request slot")
			return
		}
		n := r.ContentLength
		if n < 0 || n > MaxBodyBytes {
			n = MaxBodyBytes // verify refuses more
		}
		if err := mem.Acquire(ctx, n); err != nil {
			busy(w, r, "memory for the body")
			return
		}
		defer mem.Release(n)
		next.ServeHTTP(w, r)
	})
}

// withLogger gives every request a context logger: go-githubapp and the
// handlers log through zerolog.Ctx, which discards without one.
func withLogger(logger zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(logger.WithContext(r.Context())))
	})
}

// verify checks the body's HMAC-SHA256 signature before the dispatcher
// sees it: a request without a well-formed signature is refused before its
// body is read, and a signed body is hashed as it is read, within
// MaxBodyBytes. The dispatcher checks again, but reports every failure
// alike as 400; answering 401 here tells an operator at a glance that the
// secret is wrong.
func verify(secret string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger := zerolog.Ctx(r.Context()).With().
			Str(githubapp.LogKeyEventType, r.Header.Get("X-GitHub-Event")).
			Str(githubapp.LogKeyDeliveryID, r.Header.Get("X-GitHub-Delivery")).
			Logger()
		header := r.Header.Get("X-Hub-Signature-256")
		want, ok := parseSignature(header)
		if !ok || secret == "" {
			logger.Warn().Bool("signed", header != "").Msg("webhook signature missing or malformed")
			// Not reading the body, so the connection is not reused.
			w.Header().Set("Connection", "close")
			http.Error(w, "missing or invalid X-Hub-Signature-256", http.StatusUnauthorized)
			return
		}
		if r.ContentLength > MaxBodyBytes {
			logger.Warn().Int64("bytes", r.ContentLength).Msg("webhook body too large")
			w.Header().Set("Connection", "close")
			http.Error(w, "payload larger than 25 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		mac := hmac.New(sha256.New, []byte(secret))
		var buf bytes.Buffer
		if r.ContentLength > 0 {
			buf.Grow(int(r.ContentLength))
		}
		_, err := buf.ReadFrom(io.TeeReader(http.MaxBytesReader(unwrap(w), r.Body, MaxBodyBytes), mac))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				logger.Warn().Msg("webhook body too large")
				http.Error(w, "payload larger than 25 MiB", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "could not read body", http.StatusBadRequest)
			return
		}
		if !hmac.Equal(want, mac.Sum(nil)) {
			logger.Warn().Msg("webhook signature wrong")
			http.Error(w, "missing or invalid X-Hub-Signature-256", http.StatusUnauthorized)
			return
		}
		if r.Header.Get("X-GitHub-Delivery") == "" {
			http.Error(w, "missing X-GitHub-Delivery header", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(&buf)
		next.ServeHTTP(w, r)
	})
}

// parseSignature decodes "sha256=<64 hex digits>".
func parseSignature(header string) ([]byte, bool) {
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(sig) != 2*sha256.Size {
		return nil, false
	}
	b, err := hex.DecodeString(sig)
	return b, err == nil
}

func onError(w http.ResponseWriter, r *http.Request, err error) {
	logger := zerolog.Ctx(r.Context())
	if _, ok := errors.AsType[*handlers.BadPayloadError](err); ok {
		logger.Warn().Err(err).Msg("malformed webhook payload")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if ve, ok := errors.AsType[githubapp.ValidationError](err); ok {
		logger.Warn().Err(ve.Cause).Msg("invalid webhook request")
		http.Error(w, "invalid webhook request: "+ve.Cause.Error(), http.StatusBadRequest)
		return
	}
	logger.Error().Err(err).Msg("could not store webhook delivery")
	http.Error(w, "could not store the delivery; it is safe to redeliver", http.StatusInternalServerError)
}

// respond answers a delivery the handlers took as they asked
// (githubapp.SetResponder), and one of an event no handler takes with a
// 202 that says so: go-githubapp's default answers it with an empty body,
// which leaves whoever reads GitHub's delivery log guessing.
func respond(w http.ResponseWriter, r *http.Request, event string, handled bool) {
	if handled || event == "ping" {
		githubapp.DefaultResponseCallback(w, r, event, handled)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]string{"ignored": "deploybot does not act on " + event + " events"})
}

// Outcomes of webhook requests the handlers did not take (see
// handlers.WithOutcome for those they did), as Options.Observe is told.
const (
	OutcomeBadRequest   = "bad_request"
	OutcomeUnauthorized = "unauthorized"
	OutcomeTooLarge     = "too_large"
	OutcomeBusy         = "busy"
	OutcomeError        = "error"
)

// observe tells report what became of each webhook request: what the
// handlers said (stored, duplicate, ignored), or else what its status
// says. It is outermost, so that a request refused for want of room (503)
// is counted too.
func observe(report func(event, outcome string, took time.Duration), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var handled string
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(handlers.WithOutcome(r.Context(), &handled)))
		report(r.Header.Get("X-GitHub-Event"), outcomeOf(sw.status, handled), time.Since(start))
	})
}

func outcomeOf(status int, handled string) string {
	switch {
	case handled != "":
		return handled
	case status < 300:
		return handlers.OutcomeIgnored // an event no handler takes, a ping
	case status == http.StatusBadRequest:
		return OutcomeBadRequest
	case status == http.StatusUnauthorized:
		return OutcomeUnauthorized
	case status == http.StatusRequestEntityTooLarge:
		return OutcomeTooLarge
	case status == http.StatusServiceUnavailable:
		return OutcomeBusy
	}
	return OutcomeError
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the server's own writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unwrap is the server's own ResponseWriter under observe's: the one
// http.MaxBytesReader tells to close the connection after a body too large.
func unwrap(w http.ResponseWriter) http.ResponseWriter {
	if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		return u.Unwrap()
	}
	return w
}
