package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"
	"riverqueue.com/riverui"

	"github.com/revelations-studio/deploybot/internal/logging"
)

// River UI (riverqueue.com/riverui), River's own operator interface, under
// /river/: every job with its arguments, attempts and errors, and buttons
// to retry, cancel or delete jobs and pause queues. Its job arguments are
// the bot's intents (delivery ids, repository, PR, commit), which carry no
// credential (package intent).
//
// It can change the queue, so only signed-in admins reach it; without
// sign-in (Options.Login nil) it is not served at all, and anyone else
// gets a 404 as for any page that does not exist for them.

// PathRiver is where River UI is served.
const PathRiver = "/river"

// NewRiverUI returns River UI over client's database, to pass as
// Options.River. Its background services run until ctx ends.
func NewRiverUI(ctx context.Context, client *river.Client[pgx.Tx], logger zerolog.Logger) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logging.Slog(logger, slog.LevelWarn),
		Prefix:    PathRiver,
		// A job's arguments show on its own page, not in every list.
		JobListHideArgsByDefault: true,
	})
	if err != nil {
		return nil, fmt.Errorf("web: River UI: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("web: start River UI: %w", err)
	}
	return h, nil
}

// riverCSP is River UI's Content-Security-Policy: its scripts and styles
// come from its own embedded files, its configuration is a JSON script
// element (not run), and React sets inline styles.
const riverCSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// adminOnly serves next to signed-in admins, and answers 404 to everyone
// else. A request that changes something must come from the bot's own
// pages: the session cookie is SameSite=Lax, and the Origin, when sent,
// must be this host.
func (h *Handler) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := Viewer(r.Context())
		if h.opts.Login == nil || u == nil || !u.Admin {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if o := r.Header.Get("Origin"); o != "" {
				ou, err := url.Parse(o)
				if err != nil || ou.Host != r.Host {
					http.Error(w, "River UI: the request comes from "+o+", not from this site", http.StatusForbidden)
					return
				}
			}
		}
		w.Header().Set("Content-Security-Policy", riverCSP)
		next.ServeHTTP(w, r)
	})
}
