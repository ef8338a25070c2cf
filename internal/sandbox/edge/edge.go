// Package edge simulates Cloudflare's edge for deployed Workers: it answers
// HTTP requests by Host header with a page naming the Worker, the version
// serving it and the commit it was built from, so health checks and people
// can see what is live.
//
// Whether a hostname is served, and by what, is asked of a Resolver (the
// Cloudflare API simulator implements it). How healthy each hostname is can
// be set per hostname, to model certificate provisioning or a broken deploy.
package edge

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Site is what serves a hostname: the Worker and its live version.
type Site struct {
	Script    string
	VersionID string
	// Vars are the version's plain_text bindings (never secrets).
	Vars map[string]string
	// Since is when the hostname was attached (custom domain or route
	// created); health delays count from it.
	Since time.Time
	// Via says how the hostname reaches the Worker ("custom_domain", "route").
	Via string
	// Asset returns a static asset of the version by request path, if
	// any, with the Content-Type it was uploaded with ("application/null":
	// none).
	Asset func(path string) (body []byte, contentType string, ok bool)
}

// Resolver finds the Site serving a hostname and path.
type Resolver interface {
	ResolveHost(host, path string) (Site, bool)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(host, path string) (Site, bool)

// ResolveHost calls f.
func (f ResolverFunc) ResolveHost(host, path string) (Site, bool) { return f(host, path) }

// Health says how a hostname answers. The zero value is always healthy.
type Health struct {
	// Status, when non-zero, is the status of every answer (e.g. 500 for a
	// broken deploy). It overrides the other fields.
	Status int
	// HealthyAfterRequests fails the first N requests (counted from when the
	// health was set).
	HealthyAfterRequests int
	// HealthyAfter fails requests until this long after the hostname was
	// attached (Site.Since, or the first request when unknown).
	HealthyAfter time.Duration
	// Never fails every request.
	Never bool
	// FailStatus is the status of failing requests; default 526 (Cloudflare's
	// "Invalid SSL certificate", what a browser meets before the edge
	// certificate is ready).
	FailStatus int
}

// Options configures the edge.
type Options struct {
	Resolver Resolver
	// Now is the edge's clock; defaults to time.Now.
	Now func() time.Time
	// DefaultHealth applies to hostnames without their own.
	DefaultHealth Health
	// CommitVars are the plain_text bindings holding the commit, tried in
	// order. Default: DEPLOYBOT_COMMIT, COMMIT_SHA, GIT_COMMIT.
	CommitVars []string
}

// Server is the simulated edge. It is safe for concurrent use.
type Server struct {
	resolver   Resolver
	now        func() time.Time
	commitVars []string

	mu        sync.Mutex
	def       Health
	health    map[string]Health
	requests  map[string]int // since the health was set
	firstSeen map[string]time.Time
	served    map[string]int // all requests per host, for tests
}

// New returns an edge answering with what opts.Resolver says.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.CommitVars) == 0 {
		opts.CommitVars = []string{"DEPLOYBOT_COMMIT", "COMMIT_SHA", "GIT_COMMIT"}
	}
	return &Server{
		resolver:   opts.Resolver,
		now:        opts.Now,
		commitVars: opts.CommitVars,
		def:        opts.DefaultHealth,
		health:     map[string]Health{},
		requests:   map[string]int{},
		firstSeen:  map[string]time.Time{},
		served:     map[string]int{},
	}
}

// SetHealth sets how host answers from now on and restarts its request count.
func (s *Server) SetHealth(host string, h Health) {
	host = normalizeHost(host)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health[host] = h
	s.requests[host] = 0
}

// ClearHealth returns host to the default health.
func (s *Server) ClearHealth(host string) {
	host = normalizeHost(host)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.health, host)
	s.requests[host] = 0
}

// Requests returns how many requests host received.
func (s *Server) Requests(host string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[normalizeHost(host)]
}

func normalizeHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// ServeHTTP answers like Cloudflare's edge for the request's Host.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := normalizeHost(r.Host)
	w.Header().Set("Server", "cloudflare")
	w.Header().Set("Cf-Ray", "8d1c0ffee0000000-SIM")
	site, ok := s.resolver.ResolveHost(host, r.URL.Path)

	s.mu.Lock()
	s.served[host]++
	if !ok {
		s.mu.Unlock()
		// Cloudflare would not even resolve a hostname nothing serves; a 404
		// with its error page is the closest an HTTP answer gets.
		writeError(w, http.StatusNotFound, 1001, "DNS resolution error", fmt.Sprintf("%s is not served by any Worker.", host))
		return
	}
	h, own := s.health[host]
	if !own {
		h = s.def
	}
	s.requests[host]++
	n := s.requests[host]
	if _, seen := s.firstSeen[host]; !seen {
		s.firstSeen[host] = s.now()
	}
	since := site.Since
	if since.IsZero() {
		since = s.firstSeen[host]
	}
	now := s.now()
	s.mu.Unlock()

	fail := h.FailStatus
	if fail == 0 {
		fail = 526
	}
	switch {
	case h.Status != 0 && (h.Status < 200 || h.Status > 299):
		writeError(w, h.Status, 0, http.StatusText(h.Status), fmt.Sprintf("Worker %s answered %d.", site.Script, h.Status))
		return
	case h.Never, n <= h.HealthyAfterRequests, h.HealthyAfter > 0 && now.Before(since.Add(h.HealthyAfter)):
		code, title := 0, http.StatusText(fail)
		if t, ok := edgeErrors[fail]; ok {
			code, title = fail, t
		}
		writeError(w, fail, code, title, fmt.Sprintf("%s is not healthy yet.", host))
		return
	}
	status := http.StatusOK
	if h.Status != 0 {
		status = h.Status
	}
	commit := ""
	for _, k := range s.commitVars {
		if v := site.Vars[k]; v != "" {
			commit = v
			break
		}
	}
	w.Header().Set("X-Deploybot-Script", site.Script)
	w.Header().Set("X-Deploybot-Version", site.VersionID)
	if commit != "" {
		w.Header().Set("X-Deploybot-Commit", commit)
	}
	if site.Asset != nil {
		p := r.URL.Path
		if strings.HasSuffix(p, "/") {
			p += "index.html"
		}
		if body, ct, ok := site.Asset(p); ok {
			// Served with the type it was uploaded with, as Cloudflare
			// does; none at all for application/null (a nil value also
			// stops net/http from sniffing one).
			if ct == "" || ct == "application/null" {
				w.Header()["Content-Type"] = nil
			} else {
				w.Header().Set("Content-Type", ct)
			}
			w.WriteHeader(status)
			_, _ = w.Write(body)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<!doctype html>
<html><head><title>%[1]s</title></head>
<body>
<h1>%[1]s</h1>
<dl>
<dt>script</dt><dd id="script">%[1]s</dd>
<dt>version</dt><dd id="version">%[2]s</dd>
<dt>commit</dt><dd id="commit">%[3]s</dd>
<dt>host</dt><dd id="host">%[4]s</dd>
</dl>
</body></html>
`, html.EscapeString(site.Script), html.EscapeString(site.VersionID), html.EscapeString(commit), html.EscapeString(host))
}

// edgeErrors are Cloudflare's own 52x statuses.
var edgeErrors = map[int]string{
	520: "Web server is returning an unknown error",
	521: "Web server is down",
	522: "Connection timed out",
	523: "Origin is unreachable",
	524: "A timeout occurred",
	525: "SSL handshake failed",
	526: "Invalid SSL certificate",
}

// writeError writes an error page shaped like Cloudflare's ("error code: N").
func writeError(w http.ResponseWriter, status, code int, title, detail string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if code != 0 {
		fmt.Fprintf(w, "<!doctype html><title>Error %d: %s</title><h1>Error %d</h1><p>%s</p><p>%s</p>\nerror code: %d\n",
			code, html.EscapeString(title), code, html.EscapeString(title), html.EscapeString(detail), code)
		return
	}
	fmt.Fprintf(w, "<!doctype html><title>%d %s</title><h1>%d %s</h1><p>%s</p>\n",
		status, html.EscapeString(title), status, html.EscapeString(title), html.EscapeString(detail))
}
