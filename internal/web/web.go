// Package web is the bot's web interface, served by `bot serve` beside the
// webhook at server.public_url: server-rendered pages (html/template), with
// their templates, style sheet and the little JavaScript they use embedded
// in the binary, so there is no front-end build and no external asset.
//
// Today it has the run page, /runs/{id}: what a run did, step by step, with
// each step's whole log, streamed live while the run goes on
// (/runs/{id}/events, Server-Sent Events). Check runs, deployments and the
// status comment link to it when server.public_url is set.
//
// A page reads the bot's state through Reader and asks Access whether the
// viewer may see a repository's runs. Later pages (a repository's runs,
// the overview, actions) register their routes in Handler.routes and follow
// the same pattern: a thin handler that reads, checks Access, and renders
// one template.
//
// Nothing on a page comes from the bot's configuration: a step's output is
// stored with its secrets already masked (internal/runner), and every value
// is escaped by html/template.
package web

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/login"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Reader is what the pages read of the bot's state; StateReader is the
// bot's, over its database.
type Reader interface {
	// Run returns run id with its steps (found false when there is none).
	Run(ctx context.Context, id int64) (run state.Detail, found bool, err error)
	// Log returns up to limit chunks of run's log after chunk after.
	Log(ctx context.Context, run, after int64, limit int) ([]state.LogChunk, error)
	// Tails returns the last 8 KiB of the output of run's steps names, for
	// steps whose whole output was not kept.
	Tails(ctx context.Context, run int64, steps []string) (map[string]string, error)
	// Preview returns pull request pr's preview as stored.
	Preview(ctx context.Context, repo string, pr int) (state.Preview, bool, error)
	// What the repository page and the overview read (repo.go).
	ListReader
}

// StateReader reads the pages' data from the pipelines' state.
func StateReader(st *state.Store) Reader { return stateReader{st} }

type stateReader struct{ st *state.Store }

func (r stateReader) Run(ctx context.Context, id int64) (state.Detail, bool, error) {
	return r.st.Runs.Get(ctx, id)
}

func (r stateReader) Log(ctx context.Context, run, after int64, limit int) ([]state.LogChunk, error) {
	return r.st.Steps.LogSince(ctx, run, after, limit)
}

func (r stateReader) Tails(ctx context.Context, run int64, steps []string) (map[string]string, error) {
	return r.st.Steps.Tails(ctx, run, steps)
}

func (r stateReader) Preview(ctx context.Context, repo string, pr int) (state.Preview, bool, error) {
	return r.st.Previews.Find(ctx, repo, pr)
}

// Access decides who may read a repository's runs.
//
// The bot has no login yet: AllowAll lets whoever reaches the pages read
// every run, which is what the demo and the sandbox want. The GitHub login
// of issue 17 implements Access from the viewer's session (the request's
// cookie) and the repository's permissions; until then, a bot whose
// public_url is reachable by others shows them its runs' logs (secrets
// masked). A viewer who may not read a repository is answered as if its
// runs did not exist.
type Access interface {
	CanRead(ctx context.Context, r *http.Request, repo string) (bool, error)
}

// AllowAll is the Access that lets everyone read everything.
type AllowAll struct{}

// CanRead says yes.
func (AllowAll) CanRead(context.Context, *http.Request, string) (bool, error) { return true, nil }

// Options configure New.
type Options struct {
	Reader Reader
	// Hub wakes the live streams when a run changes (fed by
	// state.ListenRuns); nil: streams only poll, every PollEvery.
	Hub *Hub
	// Access decides who may read what; nil is AllowAll, or, with Login,
	// what GitHub lets the signed-in viewer read.
	Access Access
	// Login, when set, signs viewers in with GitHub before any page
	// (signin.go); nil serves the pages to whoever reaches them.
	Login *login.Service
	// Actions, when set with Login, gives runs' pages their buttons
	// (actions.go); nil: the pages only show.
	Actions Actions
	// GitHubURL is where the pages link pull requests, commits and check
	// runs (github.WebURL; default https://github.com).
	GitHubURL string
	// PreviewScheme is the scheme of preview hostnames' links (default
	// https; the sandbox's edge is http).
	PreviewScheme string
	// PollEvery is how often a live stream reads the run even when the hub
	// says nothing, and keeps the connection open (default 10 s).
	PollEvery time.Duration
	Logger    zerolog.Logger
	// Budget, when set, says what GitHub last reported of each
	// installation's rate limit, for the overview (overview.go).
	Budget func() []BudgetRow
	// River, when set, is River's operator UI (riverui.go), served to
	// signed-in admins under /river/.
	River http.Handler
	// Now is the clock (default time.Now): a running run's duration.
	Now func() time.Time
}

// Handler serves the pages.
type Handler struct {
	opts  Options
	pages *template.Template
	mux   *http.ServeMux
	// closed ends the live streams (Close).
	closed    chan struct{}
	closeOnce sync.Once
}

// Close ends the live streams: an HTTP server's graceful shutdown waits for
// every request to end, and a stream would not until its run does.
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.closed) })
}

// New parses the embedded templates and returns the pages' handler.
func New(opts Options) (*Handler, error) {
	if opts.Reader == nil {
		return nil, fmt.Errorf("web: no Reader given")
	}
	if opts.Access == nil {
		opts.Access = AllowAll{}
		if opts.Login != nil {
			opts.Access = signedIn{opts.Login}
		}
	}
	if opts.GitHubURL == "" {
		opts.GitHubURL = "https://github.com"
	}
	if opts.PreviewScheme == "" {
		opts.PreviewScheme = "https"
	}
	if opts.PollEvery <= 0 {
		opts.PollEvery = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pages, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	h := &Handler{opts: opts, pages: pages, mux: http.NewServeMux(), closed: make(chan struct{})}
	h.routes(h.mux)
	return h, nil
}

// routes registers every page. Later pages add theirs here.
func (h *Handler) routes(mux *http.ServeMux) {
	assets, _ := fs.Sub(assetFS, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	mux.HandleFunc("GET /runs/{id}", h.runPage)
	mux.HandleFunc("GET /runs/{id}/events", h.runEvents)
	mux.HandleFunc("POST /runs/{id}/actions/{action}", h.runAction)
	mux.HandleFunc("GET /repos/{owner}/{name}", h.repoPage)
	mux.HandleFunc("GET /{$}", h.overview)
	if h.opts.River != nil {
		mux.Handle("/river/", h.adminOnly(h.opts.River))
		mux.Handle("/river", h.adminOnly(h.opts.River))
	}
	if h.opts.Login != nil {
		h.opts.Login.Register(mux)
	}
}

// ServeHTTP serves a page, with headers that keep it from running or
// loading anything it did not bring itself.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	// Timeline bars are placed by style attributes; scripts and styles
	// come only from /assets.
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	r = h.signIn(w, r.WithContext(h.opts.Logger.WithContext(r.Context())))
	if r == nil {
		return
	}
	h.mux.ServeHTTP(w, r)
}

// run reads run {id} of the request if the viewer may read it; otherwise
// it answers (404 for a run that does not exist or is not theirs) and
// returns found false.
func (h *Handler) run(w http.ResponseWriter, r *http.Request) (state.Detail, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, fmt.Sprintf("no run %q: a run's id is a positive number", r.PathValue("id")), http.StatusNotFound)
		return state.Detail{}, false
	}
	d, found, err := h.opts.Reader.Run(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return d, false
	}
	if found {
		ok, err := h.opts.Access.CanRead(r.Context(), r, d.Repo)
		if err != nil {
			h.fail(w, r, err)
			return d, false
		}
		found = ok
	}
	if !found {
		http.Error(w, fmt.Sprintf("run %d not found", id), http.StatusNotFound)
	}
	return d, found
}

// fail answers a failure to read: the reason (a database error may name
// hosts and users) goes to the log, not to the page.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	zerolog.Ctx(r.Context()).Error().Err(err).Str("path", r.URL.Path).Msg("web: page failed")
	http.Error(w, "the page could not be read; try again", http.StatusInternalServerError)
}
