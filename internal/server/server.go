// Package server is the bot's HTTP front: the GitHub webhook endpoint and
// the health probes.
//
// The webhook endpoint checks size and signature before anything is parsed,
// then hands the delivery to go-githubapp's dispatcher and the event
// handlers, which store it and queue its job. Status codes tell GitHub (and
// whoever reads the App's delivery log) what happened:
//
//	200  stored and queued, or a redelivery of a stored delivery
//	202  an event or action the bot does not act on
//	400  malformed: no event or delivery header, not JSON
//	401  missing or wrong X-Hub-Signature-256
//	413  body over MaxBodyBytes
//	500  the database could not store it: GitHub shows it failed, redeliver
package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/palantir/go-githubapp/githubapp"
	"github.com/rs/zerolog"

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
}

// New returns the bot's HTTP handler.
func New(opts Options) http.Handler {
	dispatcher := githubapp.NewEventDispatcher(opts.Handlers, opts.WebhookSecret,
		githubapp.WithErrorCallback(onError),
	)
	mux := http.NewServeMux()
	mux.Handle("POST "+WebhookPath, verify(opts.WebhookSecret, dispatcher))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if opts.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			defer cancel()
			if err := opts.Ready(ctx); err != nil {
				zerolog.Ctx(r.Context()).Warn().Err(err).Msg("not ready")
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	return withLogger(opts.Logger, mux)
}

// withLogger gives every request a context logger: go-githubapp and the
// handlers log through zerolog.Ctx, which discards without one.
func withLogger(logger zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(logger.WithContext(r.Context())))
	})
}

// verify reads the body within MaxBodyBytes and checks its HMAC-SHA256
// signature before the dispatcher sees it. The dispatcher checks again, but
// reports every failure alike as 400; answering 401 here tells an operator
// at a glance that the secret is wrong.
func verify(secret string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger := zerolog.Ctx(r.Context()).With().
			Str(githubapp.LogKeyEventType, r.Header.Get("X-GitHub-Event")).
			Str(githubapp.LogKeyDeliveryID, r.Header.Get("X-GitHub-Delivery")).
			Logger()
		if r.ContentLength > MaxBodyBytes {
			logger.Warn().Int64("bytes", r.ContentLength).Msg("webhook body too large")
			http.Error(w, "payload larger than 25 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				logger.Warn().Msg("webhook body too large")
				http.Error(w, "payload larger than 25 MiB", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "could not read body", http.StatusBadRequest)
			return
		}
		if !validSignature(secret, body, r.Header.Get("X-Hub-Signature-256")) {
			logger.Warn().Bool("signed", r.Header.Get("X-Hub-Signature-256") != "").Msg("webhook signature missing or wrong")
			http.Error(w, "missing or invalid X-Hub-Signature-256", http.StatusUnauthorized)
			return
		}
		if r.Header.Get("X-GitHub-Delivery") == "" {
			http.Error(w, "missing X-GitHub-Delivery header", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func validSignature(secret string, body []byte, header string) bool {
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || secret == "" {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
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
