// Package cfsim simulates the parts of the Cloudflare v4 API deploybot uses:
// Workers scripts (multipart upload, versions, deployments, secrets, static
// assets upload sessions), Workers Custom Domains, DNS records and Worker
// routes.
//
// Requests pass through fault injection, then validation against the official
// OpenAPI description (apispec "cloudflare"), then the simulator's own checks
// of what the description cannot express (the multipart upload, references
// between resources, conflicts). Answers use Cloudflare's envelope
// {success, errors, messages, result, result_info}.
//
// Three routes the bot needs (script secrets and the two assets upload
// steps) are missing from the 2024-08 description snapshot; cfsim validates
// those requests by hand instead.
package cfsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/revelations-studio/deploybot/internal/apispec"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
)

// Zone is a DNS zone of the simulated account.
type Zone struct {
	ID   string `json:"id"`   // 32 hex digits
	Name string `json:"name"` // e.g. "revelations.studio"
}

// Options configures a simulator.
type Options struct {
	// AccountID is the only account the simulator knows (32 hex digits).
	AccountID string
	// APIToken, when set, is the only API token accepted; otherwise any bearer
	// token is.
	APIToken string
	// Zones the account owns.
	Zones []Zone
	// Seed makes fault injection and generated ids reproducible.
	Seed int64
	// Now is the simulator's clock (timestamps, the compatibility date
	// check). Defaults to time.Now.
	Now func() time.Time
	// AssetBucketSize is how many files the API asks for per upload request
	// (default 5).
	AssetBucketSize int
	// Plan holds the account plan's limits; zero fields take Workers
	// Free's (CONFORMANCE.md).
	Plan Plan
	// OnResponseViolation, when set, receives every successful answer of a
	// described route that breaks the description's response schema (tests
	// fail on it; the sandbox may log it). Validation costs time; leave nil
	// outside tests.
	OnResponseViolation func(method, path string, err error)
}

// Plan is what an account's Workers plan allows
// (developers.cloudflare.com/workers/platform/limits/#account-plan-limits).
type Plan struct {
	// Workers is how many Workers the account may have (Free 100, Paid
	// 500); an upload that would create one more is refused with 10037.
	Workers int
	// EnvVars is how many environment variables and secrets one Worker
	// may have (Free 64, Paid 128; 10055), each at most EnvVarBytes (5 KB;
	// 10054).
	EnvVars     int
	EnvVarBytes int
	// ScriptBytes is the most a Worker's modules may weigh after gzip
	// compression (Free 3 MB, Paid 10 MB; 10027).
	ScriptBytes int
}

// FreePlan is Workers Free's limits.
var FreePlan = Plan{Workers: 100, EnvVars: 64, EnvVarBytes: 5 << 10, ScriptBytes: 3 << 20}

// Server is one simulated Cloudflare account. It is safe for concurrent use.
type Server struct {
	accountID string
	apiToken  string
	now       func() time.Time
	bucket    int
	plan      Plan

	faults    *fault.Injector
	validator *apispec.Validator
	mux       *http.ServeMux
	handler   http.Handler
	// unlisted are the mux patterns of routes missing from the description.
	unlisted map[string]bool

	mu            sync.Mutex
	rng           *mrand.Rand
	zones         map[string]*Zone // by id
	scripts       map[string]*script
	domains       map[string]*customDomain // by id
	records       map[string]*dnsRecord    // by id
	routes        map[string]*route        // by id
	assetStore    map[string][]byte        // uploaded asset content by hash
	assetTypes    map[string]string        // the Content-Type each was uploaded with
	assetUploads  []string                 // hashes in the order they were uploaded
	uploadTokens  map[string]*assetSession // by upload JWT
	completions   map[string]*assetSession // by completion JWT
	unlistedCount map[string]int
}

// New returns a simulator for one account.
func New(opts Options) (*Server, error) {
	if opts.AccountID == "" || len(opts.AccountID) > 32 {
		return nil, fmt.Errorf("cfsim: account id %q: 1 to 32 characters required (the description's limit)", opts.AccountID)
	}
	spec, err := loadSpec()
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AssetBucketSize <= 0 {
		opts.AssetBucketSize = 5
	}
	if opts.Plan.Workers <= 0 {
		opts.Plan.Workers = FreePlan.Workers
	}
	if opts.Plan.EnvVars <= 0 {
		opts.Plan.EnvVars = FreePlan.EnvVars
	}
	if opts.Plan.EnvVarBytes <= 0 {
		opts.Plan.EnvVarBytes = FreePlan.EnvVarBytes
	}
	if opts.Plan.ScriptBytes <= 0 {
		opts.Plan.ScriptBytes = FreePlan.ScriptBytes
	}
	s := &Server{
		accountID:     opts.AccountID,
		apiToken:      opts.APIToken,
		now:           opts.Now,
		bucket:        opts.AssetBucketSize,
		plan:          opts.Plan,
		faults:        fault.New(opts.Seed),
		validator:     spec.Validator(),
		mux:           http.NewServeMux(),
		unlisted:      map[string]bool{},
		rng:           mrand.New(mrand.NewPCG(uint64(opts.Seed), 0x5eed)),
		zones:         map[string]*Zone{},
		scripts:       map[string]*script{},
		domains:       map[string]*customDomain{},
		records:       map[string]*dnsRecord{},
		routes:        map[string]*route{},
		assetStore:    map[string][]byte{},
		assetTypes:    map[string]string{},
		uploadTokens:  map[string]*assetSession{},
		completions:   map[string]*assetSession{},
		unlistedCount: map[string]int{},
	}
	for _, z := range opts.Zones {
		if err := s.AddZone(z); err != nil {
			return nil, err
		}
	}
	s.routesInit()
	var inner http.Handler = s.mux
	if opts.OnResponseViolation != nil {
		inner = checkResponses(s.mux, opts.OnResponseViolation)
	}
	validated := s.validator.Middleware(inner, writeError)
	faulty := s.faults.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			writeAPIError(w, http.StatusForbidden, codeAuth, "Authentication error")
			return
		}
		if _, pattern := s.mux.Handler(r); s.unlisted[pattern] {
			s.mu.Lock()
			s.unlistedCount[pattern]++
			s.mu.Unlock()
			// The description's credential check does not run for these.
			if !strings.HasSuffix(r.URL.Path, "/workers/assets/upload") && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				writeAPIError(w, http.StatusUnauthorized, codeAuth, "missing credentials: send Authorization: Bearer <token>")
				return
			}
			s.mux.ServeHTTP(w, r)
			return
		}
		validated.ServeHTTP(w, r)
	}), writeError)
	// The base path goes first so that fault rules name paths the same way
	// whether clients use it or not ("/accounts/…", "/zones/…").
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		faulty.ServeHTTP(w, stripBasePath(r))
	})
	return s, nil
}

// AddZone adds a zone to the account.
func (s *Server) AddZone(z Zone) error {
	if len(z.ID) == 0 || len(z.ID) > 32 || z.Name == "" {
		return fmt.Errorf("cfsim: zone %+v: id (≤32 characters) and name are required", z)
	}
	z.Name = strings.ToLower(strings.TrimSuffix(z.Name, "."))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[z.ID] = &z
	return nil
}

// Handler is the whole API: fault injection, validation, simulation.
func (s *Server) Handler() http.Handler { return s.handler }

// Faults controls the failures injected in front of the API. Rule paths are
// API paths without the /client/v4 base ("/accounts/…", "/zones/…").
func (s *Server) Faults() *fault.Injector { return s.faults }

// AccountID is the simulated account's id.
func (s *Server) AccountID() string { return s.accountID }

func (s *Server) handle(pattern string, unlisted bool, h func(w http.ResponseWriter, r *http.Request)) {
	s.mux.HandleFunc(pattern, h)
	if unlisted {
		s.unlisted[pattern] = true
	}
}

// stripBasePath lets clients use either the API root or Cloudflare's
// /client/v4 base path.
func stripBasePath(r *http.Request) *http.Request {
	rest, ok := strings.CutPrefix(r.URL.Path, "/client/v4")
	if !ok || (rest != "" && rest[0] != '/') {
		return r
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = rest
	r2.URL.RawPath = ""
	return r2
}

// authorized checks the API token. The assets upload route is authenticated
// with an upload session's token instead, checked by its handler.
func (s *Server) authorized(r *http.Request) bool {
	if s.apiToken == "" || strings.HasSuffix(r.URL.Path, "/workers/assets/upload") {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		// An email+key pair cannot be right: the account only has the token.
		// No credential at all is for the description's check to answer.
		return r.Header.Get("X-Auth-Key") == "" && r.Header.Get("X-Auth-Email") == ""
	}
	return tok == s.apiToken
}

// Cloudflare error codes used by the simulator. Where Cloudflare documents
// the code for the situation (the description's x-cfLinkErrors, DNS's 81xxx
// family) it is used; the others are the closest documented code.
const (
	codeNoRoute          = 7003  // "No route for the URI"
	codeAuth             = 10000 // "Authentication error"
	codeContentType      = 10001 // "Unsupported or unexpected Content Type"
	codeInternal         = 10002 // "Unexpected internal server error"
	codeBadRequest       = 10021 // script upload failed validation
	codeNotFound         = 10007 // workers resource not found
	codeRateLimited      = 971   // "Please wait and consider throttling your request speed"
	codeLocked           = 10043 // resource locked; best effort
	codeRouteExists      = 10020 // route pattern already in use
	codeBindingInUse     = 10053 // secret name used by another binding
	codeScriptTooLarge   = 10027 // the Worker is over the plan's size limit
	codeTooManyWorkers   = 10037 // the account has as many Workers as its plan allows
	codeEnvVarTooLarge   = 10054 // an environment variable or secret over the size limit
	codeTooManyEnvVars   = 10055 // more environment variables and secrets than the plan allows
	codeServiceNotFound  = 10143 // service binding to a Worker that does not exist (CONFORMANCE.md)
	codeScriptBound      = 10144 // delete of a Worker others bind, without force (code uncertain: CONFORMANCE.md)
	codeDomainNotFound   = 100100
	codeDomainZone       = 100102 // hostname not in the zone
	codeDomainDNSRecord  = 100117 // hostname has externally managed DNS records
	codeDNSValidation    = 1004   // "DNS Validation Error"
	codeDNSNotProxiable  = 9004
	codeDNSRecordMissing = 81044 // "Record does not exist."
	codeDNSHostConflict  = 81053 // "An A, AAAA, or CNAME record with that host already exists."
	codeDNSIdentical     = 81058 // "An identical record already exists."
	codeZoneUnknown      = 7003
)

type apiMessage struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

type envelope struct {
	Success    bool         `json:"success"`
	Errors     []apiMessage `json:"errors"`
	Messages   []apiMessage `json:"messages"`
	Result     any          `json:"result"`
	ResultInfo *resultInfo  `json:"result_info,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cf-Ray", "8d1c0ffee0000000-SIM")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeResult(w http.ResponseWriter, status int, result any) {
	writeJSON(w, status, envelope{Success: true, Errors: []apiMessage{}, Messages: []apiMessage{}, Result: result})
}

func writeList(w http.ResponseWriter, result any, info *resultInfo) {
	writeJSON(w, http.StatusOK, envelope{Success: true, Errors: []apiMessage{}, Messages: []apiMessage{}, Result: result, ResultInfo: info})
}

func writeAPIError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, envelope{Errors: []apiMessage{{Code: code, Message: msg}}, Messages: []apiMessage{}})
}

// writeError renders failures of the fault injector and the validator.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	code := codeBadRequest
	switch {
	case status == http.StatusNotFound:
		code = codeNoRoute
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		code = codeAuth
	case status == http.StatusTooManyRequests:
		code = codeRateLimited
	case status == http.StatusLocked:
		code = codeLocked
	case status >= 500:
		code = codeInternal
	case strings.Contains(r.URL.Path, "/dns_records"):
		code = codeDNSValidation
	}
	writeAPIError(w, status, code, msg)
}

// checkAccount answers for requests naming another account; the token can
// only see its own.
func (s *Server) checkAccount(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("account_id") != s.accountID {
		writeAPIError(w, http.StatusForbidden, codeAuth, "Authentication error")
		return false
	}
	return true
}

// zoneFor returns the zone named in the path, answering for unknown ones.
// The caller holds s.mu.
func (s *Server) zoneFor(w http.ResponseWriter, r *http.Request) (*Zone, bool) {
	z := s.zones[r.PathValue("zone_id")]
	if z == nil {
		writeAPIError(w, http.StatusBadRequest, codeZoneUnknown, fmt.Sprintf("Could not route to %s, perhaps your object identifier is invalid?", r.URL.Path))
		return nil, false
	}
	return z, true
}

// onAccount wraps a handler of account-level resources with what each of
// them does first: check the account, hold the lock.
func (s *Server) onAccount(h func(w http.ResponseWriter, r *http.Request)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.checkAccount(w, r) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		h(w, r)
	}
}

// onZone wraps a handler of a zone's resources (DNS records, Worker
// routes) with what each of them does first: hold the lock, find the zone
// named in the path.
func (s *Server) onZone(h func(w http.ResponseWriter, r *http.Request, z *Zone)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if z, ok := s.zoneFor(w, r); ok {
			h(w, r, z)
		}
	}
}

// lookup returns items[id] when it exists and belongs (nil: wherever it
// is), answering 404 with code and msg otherwise. The caller holds s.mu.
func lookup[T any](w http.ResponseWriter, items map[string]*T, id string, belongs func(*T) bool, code int, msg string) (*T, bool) {
	it := items[id]
	if it == nil || (belongs != nil && !belongs(it)) {
		writeAPIError(w, http.StatusNotFound, code, msg)
		return nil, false
	}
	return it, true
}

// body decodes a request's JSON body, answering 400 with code when it
// does not decode.
func body[T any](w http.ResponseWriter, r *http.Request, code int) (T, bool) {
	var in T
	if err := decodeJSON(r, &in); err != nil {
		writeAPIError(w, http.StatusBadRequest, code, "request body: "+err.Error())
		return in, false
	}
	return in, true
}

// newID returns 32 hex digits, Cloudflare's usual identifier shape. The
// caller holds s.mu.
func (s *Server) newID() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(s.rng.UintN(256))
	}
	return hex.EncodeToString(b[:])
}

// newUUID returns a version-4 UUID (versions and deployments use UUIDs).
// The caller holds s.mu.
func (s *Server) newUUID() string {
	id := s.newID()
	return id[0:8] + "-" + id[8:12] + "-4" + id[13:16] + "-a" + id[17:20] + "-" + id[20:32]
}

// newToken returns an unguessable JWT-shaped token (upload sessions).
func newToken(kind string) string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + hex.EncodeToString([]byte(`{"k":"`+kind+`"}`)) + "." + hex.EncodeToString(b[:])
}

func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	return dec.Decode(v)
}
