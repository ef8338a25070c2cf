// Package ghsim simulates the parts of GitHub's REST API that deploybot
// uses, for tests and the sandbox: App authentication (RS256 JWT →
// installation tokens), pull requests, collaborator permissions, file
// contents and tarballs of sandbox repositories, check runs, issue comments
// and their reactions, deployments and deployment statuses. It also builds
// and delivers signed webhooks for what happens in those repositories.
//
// Every request passes, in order, fault injection (package fault),
// validation against GitHub's official OpenAPI description (package
// apispec: a request GitHub would reject as malformed gets GitHub's 422),
// then the simulator's own checks, which add what the description cannot
// say: credentials, existence of commits and refs, GitHub's behavioural
// rules (a completed check run needs a conclusion, required_contexts,
// auto_inactive, …). Errors have GitHub's shape {"message",
// "documentation_url"}. GET answers carry ETags and honour If-None-Match,
// and a per-installation primary rate limit is kept like GitHub's, as is
// the content-creation secondary limit (secondary.go).
//
// To point the bot at a simulator served at URL: REST API URL URL+"/",
// App ID AppID(), private key AppPrivateKeyPEM(), webhook secret
// Options.WebhookSecret; call SetBaseURL(URL) so that links and the tarball
// redirect point back at it. Set up repositories with CreateRepo, Commit,
// OpenPR, PushPR, ClosePR, SetPermission and AddComment (and organisations'
// teams with CreateOrg, CreateTeam and AddTeamMember), then send what
// happened with PullRequestEvent, PushEvent, IssueCommentEvent or
// CheckRunEvent and Deliver.
package ghsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/revelations-studio/deploybot/internal/apispec"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	AppID          int64  // default 1
	AppSlug        string // default "deploybot"; comments are by "<slug>[bot]"
	InstallationID int64  // default 1; the one installation, on every repository
	// PrivateKey is the App's key; nil generates one (see AppPrivateKeyPEM).
	PrivateKey *rsa.PrivateKey
	// WebhookSecret signs deliveries (X-Hub-Signature-256).
	WebhookSecret string
	// BaseURL is where the simulator is reachable, used in the URLs of
	// answers and payloads (default "http://ghsim.invalid"; see SetBaseURL).
	BaseURL string
	// WebURL is the root of html_url links (default "https://github.com").
	WebURL string
	// RateLimit is the primary limit per installation and window (default
	// 5000), RateLimitWindow the window (default an hour, as on GitHub).
	RateLimit       int
	RateLimitWindow time.Duration
	// ContentPerMinute and ContentPerHour are the content-creation
	// secondary limit per installation (defaults 80 and 500, as GitHub
	// documents them; see secondary.go). ContentMinute is the length of
	// its minute (default a minute); the hour is 60 of them, so a test
	// shortens both windows without changing the rule.
	ContentPerMinute int
	ContentPerHour   int
	ContentMinute    time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// FaultSeed seeds fault injection.
	FaultSeed int64
	// HTTPClient delivers webhooks (default: a client with a 10 s timeout).
	HTTPClient *http.Client
}

// Server is one simulated GitHub. It is safe for concurrent use.
type Server struct {
	opts      Options
	key       *rsa.PrivateKey
	faults    *fault.Injector
	validator *apispec.Validator
	routes    map[string]handlerFunc
	handler   http.Handler

	mu         sync.Mutex
	baseURL    string
	repos      map[string]*repo // by lower-case full name
	repoOrder  []*repo
	nextID     int64
	tokens     map[string]token
	tokensMade int
	windows    map[int64]*window    // primary rate limit per installation
	content    map[int64]contentLog // content-creation limit per installation
	// contentRefusals counts the writes the content-creation limit refused.
	contentRefusals int
	// realNow is the clock of the content-creation windows (secondary.go).
	realNow     func() time.Time
	responses   map[string]map[int]int
	grants      map[string]grant // codeload download tokens
	deliveries  []Delivery
	deliverySeq int
	orgs        orgs       // organisations and their teams (orgs.go)
	oauth       oauthState // the user login flow (oauth.go)
	// apps are the Apps registered through the manifest flow (manifest.go).
	apps map[int64]*registeredApp
	// installation is the state of the App's installation (installation.go).
	installation InstallationState
}

// handlerFunc serves one route; the installation is already authenticated.
// It runs with s.mu held and must not write to the connection: the answer
// is written by dispatch once the lock is released.
type handlerFunc func(r *http.Request) reply

// New returns a simulator without repositories.
func New(opts Options) (*Server, error) {
	if opts.AppID == 0 {
		opts.AppID = 1
	}
	if opts.AppSlug == "" {
		opts.AppSlug = "deploybot"
	}
	if opts.InstallationID == 0 {
		opts.InstallationID = 1
	}
	if opts.BaseURL == "" {
		opts.BaseURL = "http://ghsim.invalid"
	}
	if opts.WebURL == "" {
		opts.WebURL = "https://github.com"
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = 5000
	}
	if opts.RateLimitWindow <= 0 {
		opts.RateLimitWindow = time.Hour
	}
	if opts.ContentPerMinute <= 0 {
		opts.ContentPerMinute = 80
	}
	if opts.ContentPerHour <= 0 {
		opts.ContentPerHour = 500
	}
	if opts.ContentMinute <= 0 {
		opts.ContentMinute = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	key := opts.PrivateKey
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("ghsim: generate app key: %w", err)
		}
	}
	spec, err := apispec.Load("github")
	if err != nil {
		return nil, fmt.Errorf("ghsim: %w", err)
	}
	s := &Server{
		opts:      opts,
		key:       key,
		faults:    fault.New(opts.FaultSeed),
		validator: spec.Validator(),
		baseURL:   strings.TrimSuffix(opts.BaseURL, "/"),
		repos:     map[string]*repo{},
		nextID:    1000,
		tokens:    map[string]token{},
		windows:   map[int64]*window{},
		content:   map[int64]contentLog{},
		realNow:   time.Now,
		responses: map[string]map[int]int{},
		grants:    map[string]grant{},
		oauth:     newOAuthState(),

		installation: InstallationActive,
	}
	s.routes = s.routeTable()
	api := s.validator.Middleware(http.HandlerFunc(s.dispatch), writeInvalid)
	s.handler = s.faults.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, codeloadPrefix) {
			// The download host is not part of the REST API description.
			s.serveCodeload(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, oauthPrefix) {
			// The login pages are github.com's, not the REST API's.
			s.serveOAuth(w, r)
			return
		}
		if org, ok := isNewAppPage(r.URL.Path); ok {
			// A web page, not the REST API: the manifest flow's first step.
			s.serveNewAppPage(w, r, org)
			return
		}
		api.ServeHTTP(w, acceptNullTokenBody(r))
	}), writeFault)
	return s, nil
}

// acceptNullTokenBody lets a JSON null body through to the token route as
// no body. ghinstallation (and so go-githubapp) sends "null" when asking
// for a token without options; GitHub accepts it, but the description's
// schema (an object, not nullable) would not.
func acceptNullTokenBody(r *http.Request) *http.Request {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/app/installations/") || r.Body == nil {
		return r
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = r.Body.Close()
	if err == nil && strings.TrimSpace(string(data)) == "null" {
		data = nil
		r.Header.Del("Content-Type")
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data))
	return r
}

// Handler is the whole API: fault injection, validation, the simulator.
func (s *Server) Handler() http.Handler { return s.handler }

// Faults is the fault injector in front of the API.
func (s *Server) Faults() *fault.Injector { return s.faults }

// SetBaseURL sets where the simulator is reachable (e.g. an httptest
// server's URL, known only once it listens). Answers use it in their URLs
// and the tarball redirect points there.
func (s *Server) SetBaseURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.baseURL = strings.TrimSuffix(u, "/")
}

// AppID is the App's ID, for the bot's configuration.
func (s *Server) AppID() int64 { return s.opts.AppID }

// InstallationID is the App's installation, present on every repository.
func (s *Server) InstallationID() int64 { return s.opts.InstallationID }

// BotLogin is the login of the App's bot account, the author of its comments.
func (s *Server) BotLogin() string { return s.opts.AppSlug + "[bot]" }

// AppPrivateKeyPEM is the App's private key as GitHub hands it out
// (PKCS#1 PEM), for the bot's configuration.
func (s *Server) AppPrivateKeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(s.key)})
}

func (s *Server) now() time.Time { return s.opts.Now().UTC().Truncate(time.Second) }

// newID hands out IDs for comments, check runs, deployments, … in creation
// order, so that "oldest" is "smallest ID" as on GitHub. Callers hold s.mu.
func (s *Server) newID() int64 {
	s.nextID++
	return s.nextID
}

// dispatch serves a validated request by its route template.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	route := apispec.Route(r.Context())
	rec := &recorder{ResponseWriter: w}
	defer func() { s.record(route, rec.status) }()
	h, ok := s.routes[route]
	if !ok {
		// In the description but not simulated: the bot does not use it.
		s.write(rec, r, fail(http.StatusNotFound, "Not Found (ghsim does not simulate "+route+")", ""))
		return
	}
	if login, isUser, denied := s.userOf(r); isUser {
		// A person's user access token (oauth.go): no installation.
		if denied != nil {
			s.write(rec, r, *denied)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userKey{}, login))
	} else if route != routeAccessTokens && route != routeApp && route != routeManifestConversion {
		// The App's routes take its JWT; the manifest conversion no credentials.
		inst, denied := s.authenticate(r)
		if denied != nil {
			s.write(rec, r, *denied)
			return
		}
		if !s.allowRate(rec, r, inst) || !s.allowContent(rec, r, inst) {
			return
		}
	}
	s.mu.Lock()
	rep := h(r)
	s.mu.Unlock()
	s.write(rec, r, rep)
}

func (s *Server) record(route string, status int) {
	if status == 0 {
		status = http.StatusOK
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.responses[route]
	if m == nil {
		m = map[int]int{}
		s.responses[route] = m
	}
	m[status]++
}

// recorder remembers the status written.
type recorder struct {
	http.ResponseWriter
	status int
	// onHeader runs just before the status is written (rate-limit headers).
	onHeader func(status int)
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
		if r.onHeader != nil {
			r.onHeader(status)
		}
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Errors in GitHub's shape.

const docsRoot = "https://docs.github.com/rest"

type apiError struct {
	Message          string `json:"message"`
	DocumentationURL string `json:"documentation_url"`
	Status           string `json:"status,omitempty"`
	Errors           []any  `json:"errors,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg, doc string, errs ...any) {
	if doc == "" {
		doc = docsRoot
	}
	writeJSONStatus(w, status, apiError{Message: msg, DocumentationURL: doc, Status: fmt.Sprint(status), Errors: errs})
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeInvalid renders apispec's verdicts the way GitHub does: a request
// that breaks the description is "422 Invalid request".
func writeInvalid(w http.ResponseWriter, r *http.Request, status int, msg string) {
	switch status {
	case http.StatusBadRequest:
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n"+msg, docsRoot)
	case http.StatusNotFound:
		writeError(w, http.StatusNotFound, "Not Found ("+msg+")", docsRoot)
	default:
		writeError(w, status, msg, docsRoot)
	}
}

// GitHub's answer to a request past a secondary rate limit.
const (
	secondaryLimitMessage = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
	secondaryLimitDocs    = "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)

// writeFault renders injected failures; 403/429 with Retry-After are
// GitHub's secondary rate limit.
func writeFault(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if (status == http.StatusForbidden || status == http.StatusTooManyRequests) && w.Header().Get("Retry-After") != "" {
		writeError(w, status, secondaryLimitMessage, secondaryLimitDocs)
		return
	}
	writeError(w, status, msg, docsRoot)
}
