// Package sandbox puts the simulated GitHub, Neon and Cloudflare APIs and
// Cloudflare's edge behind one HTTP handler, so that the bot, its tests, the
// demo and a curious person can use all of them at one address:
//
//	/github/…        GitHub REST (ghsim)
//	/neon/api/v2/…   Neon API v2 (neonsim; branches are real PostgreSQL databases)
//	/cloudflare/client/v4/…  Cloudflare API v4 (cfsim)
//	/state           everything the simulators hold, as JSON
//	/faults/{service}, /health/{hostname}  make an API fail, a hostname unhealthy (control.go)
//	/hooks, /repos/…, /installation, /deliveries/…  act on GitHub as a person would, and
//	                 deliver the webhooks to the bot (control.go, repos.go)
//	any other Host   the edge: deployed Workers by hostname
//
// Requests to a hostname (anything but an IP address or localhost in the
// Host header) go to the edge, the way a browser would reach a Worker's
// custom domain.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/revelations-studio/deploybot/internal/sandbox/cfsim"
	"github.com/revelations-studio/deploybot/internal/sandbox/edge"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
	"github.com/revelations-studio/deploybot/internal/sandbox/neonsim"
)

// Options configures New.
type Options struct {
	// AdminURL is a superuser URL of the PostgreSQL server that holds the
	// simulated Neon branches.
	AdminURL string
	// WebhookSecret signs the webhooks the simulated GitHub delivers.
	WebhookSecret string
	// Zone is the DNS zone of the simulated Cloudflare account
	// (default "revelations.studio").
	Zone string
	// NeonOperationDelay is how long Neon operations stay running.
	NeonOperationDelay time.Duration
	// Seed makes fault injection and generated ids reproducible.
	Seed int64
	// GitHubNow is the simulated GitHub's clock (default time.Now): a test
	// moves it to say "a minute later" without waiting.
	GitHubNow func() time.Time
	// GitHubContentMinute shortens the minute (and so the hour) of the
	// simulated GitHub's content-creation limit (ghsim.Options.ContentMinute):
	// a test of a burst scales it with the bot's own pacing.
	GitHubContentMinute time.Duration
	// CloudflarePlan is the simulated account's plan limits (default
	// Workers Free's).
	CloudflarePlan cfsim.Plan
}

// Sandbox is the set of simulators. Its fields give tests the simulators'
// Go APIs for setting up repositories, PRs, faults and health.
type Sandbox struct {
	GitHub     *ghsim.Server
	Neon       *neonsim.Server
	Cloudflare *cfsim.Server
	Edge       *edge.Server

	// NeonProject is the project created at start, with its default
	// branch "production".
	NeonProject neonsim.Project
	// Zone and ZoneID name the Cloudflare zone of the account.
	Zone, ZoneID string
	// Sample returns the files of the sample repository that
	// POST /repos {"sample": true} starts a repository with; nil: there is
	// none. The demo's sample lives above this package, so the command
	// that serves the sandbox hands it in.
	Sample func() (map[string]string, error)

	mu      sync.Mutex
	hookURL string // where the control endpoints deliver webhooks (repos.go)
}

// Path prefixes of the APIs.
const (
	GitHubPrefix     = "/github"
	NeonPrefix       = "/neon"
	CloudflarePrefix = "/cloudflare"
)

// New starts the simulators.
func New(ctx context.Context, opts Options) (*Sandbox, error) {
	if opts.AdminURL == "" {
		return nil, errors.New("sandbox: an admin URL of a PostgreSQL server is required (Neon branches are real databases)")
	}
	if opts.Zone == "" {
		opts.Zone = "revelations.studio"
	}
	gh, err := ghsim.New(ghsim.Options{WebhookSecret: opts.WebhookSecret, FaultSeed: opts.Seed, Now: opts.GitHubNow, ContentMinute: opts.GitHubContentMinute})
	if err != nil {
		return nil, err
	}
	neon, err := neonsim.New(neonsim.Options{AdminURL: opts.AdminURL, OperationDelay: opts.NeonOperationDelay, Seed: opts.Seed})
	if err != nil {
		return nil, err
	}
	project, err := neon.CreateProject(ctx, "codex")
	if err != nil {
		_ = neon.Close(ctx)
		return nil, err
	}
	zoneID := hexID(16)
	cf, err := cfsim.New(cfsim.Options{
		AccountID: hexID(16),
		Zones:     []cfsim.Zone{{ID: zoneID, Name: opts.Zone}},
		Seed:      opts.Seed,
		Plan:      opts.CloudflarePlan,
	})
	if err != nil {
		_ = neon.Close(ctx)
		return nil, err
	}
	return &Sandbox{
		GitHub:      gh,
		Neon:        neon,
		Cloudflare:  cf,
		Edge:        edge.New(edge.Options{Resolver: edge.ResolverFunc(cf.ResolveHost)}),
		NeonProject: project,
		Zone:        opts.Zone,
		ZoneID:      zoneID,
	}, nil
}

// Close drops the databases the simulated Neon created.
func (s *Sandbox) Close(ctx context.Context) error { return s.Neon.Close(ctx) }

// URLs are the API base URLs of a sandbox served at some address.
type URLs struct {
	GitHub     string // REST v3 base, with trailing slash, as go-github wants
	Neon       string // e.g. http://127.0.0.1:8900/neon/api/v2
	Cloudflare string // e.g. http://127.0.0.1:8900/cloudflare/client/v4
	State      string
}

// URLsAt returns the base URLs when the sandbox is served at base
// (e.g. "http://127.0.0.1:8900"), and tells the simulated GitHub its address
// for the links it hands out (tarball redirects, html_url).
func (s *Sandbox) URLsAt(base string) URLs {
	base = strings.TrimSuffix(base, "/")
	s.GitHub.SetBaseURL(base + GitHubPrefix)
	return URLs{
		GitHub:     base + GitHubPrefix + "/",
		Neon:       base + NeonPrefix + "/api/v2",
		Cloudflare: base + CloudflarePrefix + "/client/v4",
		State:      base + "/state",
	}
}

// Handler serves the three APIs, the state endpoint and the edge.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(GitHubPrefix+"/", http.StripPrefix(GitHubPrefix, s.GitHub.Handler()))
	mux.Handle(NeonPrefix+"/", http.StripPrefix(NeonPrefix, s.Neon.Handler()))
	mux.Handle(CloudflarePrefix+"/", http.StripPrefix(CloudflarePrefix, s.Cloudflare.Handler()))
	s.handleControl(mux)
	s.handleGitHubControl(mux)
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.State())
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isHostname(r.Host) {
			s.Edge.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// State is everything the simulators hold, with secret values redacted.
func (s *Sandbox) State() map[string]any {
	return map[string]any{
		"github":     s.GitHub.State(),
		"neon":       s.Neon.State(),
		"cloudflare": s.Cloudflare.State(),
	}
}

// isHostname reports whether host (from a Host header) names a site rather
// than the sandbox itself (an IP address or localhost).
func isHostname(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	return host != "" && host != "localhost" && net.ParseIP(host) == nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func hexID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Describe is a short text of where things are, for people.
func (s *Sandbox) Describe(u URLs) string {
	return fmt.Sprintf(`GitHub REST   %s   (App id %d, installation %d)
Neon API v2   %s   (project %s, default branch "production")
Cloudflare v4 %s   (account %s, zone %s)
State         %s
Faults        curl -X PUT %s/faults/neon -d '[{"rate":0.2,"status":503}]'   (github, neon, cloudflare; DELETE clears)
Health        curl -X PUT %s/health/codex-preview-1.%s -d '{"never":true}'
Edge          any other Host header, e.g. curl -H 'Host: codex-preview-1.%s' …`,
		u.GitHub, s.GitHub.AppID(), s.GitHub.InstallationID(),
		u.Neon, s.NeonProject.ID,
		u.Cloudflare, s.Cloudflare.AccountID(), s.ZoneID,
		u.State, strings.TrimSuffix(u.State, "/state"), strings.TrimSuffix(u.State, "/state"), s.Zone, s.Zone)
}
