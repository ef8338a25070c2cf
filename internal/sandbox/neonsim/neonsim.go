// Package neonsim simulates the Neon API v2 for tests and the sandbox.
//
// Branches are real PostgreSQL databases on the server given by
// Options.AdminURL: creating a branch copies its parent's database
// (CREATE DATABASE … TEMPLATE), a schema-only branch is a copy with every
// table emptied, a reset copies the parent again and a delete drops it. So
// migrations run by the bot against a preview branch really change that
// branch and nothing else, and connection_uri returns a URL that works.
//
// Each branch's role (Options.Role) has a password of its own, as on Neon:
// a new branch starts with its parent's, and reset_password gives it a new
// one. The connection URIs point at a small proxy in front of the server
// (see proxy.go) that checks user, database and password, so a URI with a
// stale password, or one branch's password used on another branch's
// database, is refused at connect time.
//
// Every request is validated against Neon's official API description
// (package apispec) behind a fault injector: fault → validation → handlers.
// Operations stay "running" for Options.OperationDelay, and while a branch
// has running operations, conflicting changes answer 423 Locked, as Neon
// does.
package neonsim

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/revelations-studio/deploybot/internal/apispec"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
)

// Options configure a simulator.
type Options struct {
	// AdminURL is a superuser URL of a maintenance database of the
	// PostgreSQL server holding the branches (it needs CREATE DATABASE).
	AdminURL string
	// APIKey, when set, is the only bearer token accepted; otherwise any
	// token is.
	APIKey string
	// OperationDelay is how long operations report "running" (0: finished
	// at once).
	OperationDelay time.Duration
	// DefaultBranch names the default branch of new projects ("production").
	DefaultBranch string
	// Database and Role name each branch's database and its owner ("neondb",
	// "neondb_owner").
	Database, Role string
	// Seed makes generated ids and injected faults repeatable.
	Seed int64
	// RootBranches is how many root branches (the project's first branch
	// and each schema-only branch) a project may have: Neon's Free plan
	// allows 3 (the default), Launch 5, Scale 10, Business 25.
	RootBranches int
}

// Server is a simulated Neon API. It is safe for concurrent use.
type Server struct {
	opts      Options
	pg        *physical
	proxy     *proxy
	faults    *fault.Injector
	validator *apispec.Validator
	handler   http.Handler

	// mutate serialises changes that touch PostgreSQL: database copies need
	// their template to be unused, and a Neon project does one thing at a time.
	mutate sync.Mutex

	mu       sync.Mutex
	rng      *rand.Rand
	projects map[string]*project
	order    []string // project ids in creation order
}

type project struct {
	ID, Name   string
	RegionID   string
	CreatedAt  time.Time
	branches   map[string]*branch
	endpoints  map[string]*endpoint
	operations []*operation
}

type branch struct {
	ID, Name, ParentID string
	InitSource         string
	Default, Protected bool
	ExpiresAt          *time.Time
	Annotations        map[string]string
	CreatedAt          time.Time
	UpdatedAt          time.Time
	LastResetAt        *time.Time
	Database           string // physical database name
	DBID               int64

	// Password is the password of the branch's role (Options.Role), which
	// a reset made the one in force at PasswordFrom, when the reset's
	// operations finish: until then PrevPassword still is, as Neon says
	// ("The old password remains valid until last operation finishes").
	Password, PrevPassword string
	PasswordFrom           time.Time
	RoleUpdatedAt          time.Time
}

// livePassword is the role password that opens the branch at now.
func (b *branch) livePassword(now time.Time) string {
	if now.Before(b.PasswordFrom) {
		return b.PrevPassword
	}
	return b.Password
}

type endpoint struct {
	ID, BranchID, Type string
	CreatedAt          time.Time
}

type operation struct {
	ID, BranchID, EndpointID, Action string
	CreatedAt                        time.Time
	Done                             time.Time
}

// New starts a simulator without projects; add them with CreateProject.
func New(opts Options) (*Server, error) {
	if opts.AdminURL == "" {
		return nil, fmt.Errorf("neonsim: Options.AdminURL is required (a superuser URL of the server that holds the branches)")
	}
	if opts.DefaultBranch == "" {
		opts.DefaultBranch = "production"
	}
	if opts.RootBranches <= 0 {
		opts.RootBranches = 3
	}
	if opts.Database == "" {
		opts.Database = "neondb"
	}
	if opts.Role == "" {
		opts.Role = "neondb_owner"
	}
	spec, err := apispec.Load("neon")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pg, err := newPhysical(ctx, opts.AdminURL)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:      opts,
		pg:        pg,
		faults:    fault.New(opts.Seed),
		validator: spec.Validator(),
		rng:       rand.New(rand.NewPCG(uint64(opts.Seed), 0x6e656f6e)),
		projects:  map[string]*project{},
	}
	if s.proxy, err = startProxy(s.authenticate, pg.sessionConfig); err != nil {
		pg.close()
		return nil, err
	}
	s.handler = s.faults.Middleware(s.validator.Middleware(http.HandlerFunc(s.serve), writeError), writeError)
	return s, nil
}

// Handler serves the whole API (fault injection and validation included),
// with or without the /api/v2 prefix.
func (s *Server) Handler() http.Handler { return s.handler }

// Faults is the fault injector in front of the API.
func (s *Server) Faults() *fault.Injector { return s.faults }

// Close ends the connections made through its URIs and drops every
// database the simulator created.
func (s *Server) Close(ctx context.Context) error {
	s.proxy.close()
	s.mutate.Lock()
	defer s.mutate.Unlock()
	s.mu.Lock()
	var dbs []string
	for _, p := range s.projects {
		for _, b := range p.branches {
			dbs = append(dbs, b.Database)
		}
	}
	s.projects = map[string]*project{}
	s.order = nil
	s.mu.Unlock()
	var first error
	for _, db := range dbs {
		if err := s.pg.drop(ctx, db); err != nil && first == nil {
			first = err
		}
	}
	s.pg.close()
	return first
}

// Project is what CreateProject made.
type Project struct {
	ID              string
	Name            string
	DefaultBranchID string
}

// CreateProject creates a project whose default branch (Options.DefaultBranch)
// is a new empty database with a read-write endpoint.
func (s *Server) CreateProject(ctx context.Context, name string) (Project, error) {
	s.mutate.Lock()
	defer s.mutate.Unlock()
	db := newName()
	if err := s.pg.createEmpty(ctx, db); err != nil {
		return Project{}, fmt.Errorf("neonsim: create database for project %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	p := &project{
		ID: s.projectID(), Name: name, RegionID: "aws-us-east-2", CreatedAt: now,
		branches: map[string]*branch{}, endpoints: map[string]*endpoint{},
	}
	b := &branch{
		ID: s.id("br"), Name: s.opts.DefaultBranch, Default: true, InitSource: "parent-data",
		CreatedAt: now, UpdatedAt: now, Database: db, DBID: s.rng.Int64N(90000000) + 10000000,
		Password: newPassword(), RoleUpdatedAt: now,
	}
	p.branches[b.ID] = b
	ep := &endpoint{ID: s.id("ep"), BranchID: b.ID, Type: "read_write", CreatedAt: now}
	p.endpoints[ep.ID] = ep
	s.projects[p.ID] = p
	s.order = append(s.order, p.ID)
	return Project{ID: p.ID, Name: name, DefaultBranchID: b.ID}, nil
}

// DatabaseURL returns a connection URL of the branch's database, for test
// setup and inspection ("" when there is no such branch). It holds the
// admin's credentials and goes straight to the server, past the password
// checks: ConnectionURL is what a Neon user gets.
func (s *Server) DatabaseURL(projectID, branchName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.branchNamed(projectID, branchName); b != nil {
		return s.pg.url(b.Database, nil)
	}
	return ""
}

// ConnectionURL returns the direct connection URI the API hands out for
// the branch's database as its role, with the role's current password
// ("" when there is no such branch): for tests that compare passwords or
// try one branch's credentials on another.
func (s *Server) ConnectionURL(projectID, branchName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.branchNamed(projectID, branchName); b != nil {
		return s.uri(b, false)
	}
	return ""
}

// branchNamed finds a branch by name. Callers hold s.mu.
func (s *Server) branchNamed(projectID, name string) *branch {
	p := s.projects[projectID]
	if p == nil {
		return nil
	}
	return p.byName(name)
}

// State is a JSON-serialisable snapshot of the simulator.
type State struct {
	Projects       []ProjectState `json:"projects"`
	Requests       map[string]int `json:"requests"`
	FaultsInjected int            `json:"faults_injected"`
}

// ProjectState is one project in State.
type ProjectState struct {
	ID         string           `json:"id"`
	Name       string           `json:"name"`
	Branches   []BranchState    `json:"branches"`
	Endpoints  []EndpointState  `json:"endpoints"`
	Operations []OperationState `json:"operations"`
}

// BranchState is one branch in State.
type BranchState struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	ParentID    string            `json:"parent_id,omitempty"`
	Default     bool              `json:"default"`
	InitSource  string            `json:"init_source"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Database    string            `json:"database"`
	ExpiresAt   *time.Time        `json:"expires_at,omitempty"`
}

// EndpointState is one endpoint in State.
type EndpointState struct {
	ID       string `json:"id"`
	BranchID string `json:"branch_id"`
	Type     string `json:"type"`
}

// OperationState is one operation in State.
type OperationState struct {
	ID       string `json:"id"`
	BranchID string `json:"branch_id,omitempty"`
	Action   string `json:"action"`
	Status   string `json:"status"`
}

// State returns a snapshot of all projects, branches, endpoints, operations
// and the requests seen per route.
func (s *Server) State() any { return s.Snapshot() }

// Snapshot is State with its concrete type.
func (s *Server) Snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	st := State{Requests: s.validator.Counts(), FaultsInjected: s.faults.Injected()}
	for _, id := range s.order {
		p := s.projects[id]
		ps := ProjectState{ID: p.ID, Name: p.Name}
		for _, b := range sortedBranches(p) {
			ps.Branches = append(ps.Branches, BranchState{
				ID: b.ID, Name: b.Name, ParentID: b.ParentID, Default: b.Default, InitSource: b.InitSource,
				Annotations: copyMap(b.Annotations), Database: b.Database, ExpiresAt: b.ExpiresAt,
			})
		}
		for _, e := range sortedEndpoints(p) {
			ps.Endpoints = append(ps.Endpoints, EndpointState{ID: e.ID, BranchID: e.BranchID, Type: e.Type})
		}
		for _, o := range p.operations {
			ps.Operations = append(ps.Operations, OperationState{ID: o.ID, BranchID: o.BranchID, Action: o.Action, Status: o.status(now)})
		}
		st.Projects = append(st.Projects, ps)
	}
	return st
}

func (o *operation) status(now time.Time) string {
	if now.Before(o.Done) {
		return "running"
	}
	return "finished"
}

func sortedBranches(p *project) []*branch {
	out := make([]*branch, 0, len(p.branches))
	for _, b := range p.branches {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func sortedEndpoints(p *project) []*endpoint {
	out := make([]*endpoint, 0, len(p.endpoints))
	for _, e := range p.endpoints {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var (
	adjectives = []string{"aged", "bold", "calm", "dawn", "green", "late", "misty", "noisy", "quiet", "shiny", "sweet", "wispy"}
	nouns      = []string{"breeze", "cell", "forest", "frost", "hill", "meadow", "rice", "salad", "sea", "smoke", "union", "wind"}
)

const idChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// id returns a Neon-style id such as br-misty-sea-a5833nbi. Callers hold s.mu.
func (s *Server) id(prefix string) string {
	b := make([]byte, 8)
	for i := range b {
		b[i] = idChars[s.rng.IntN(len(idChars))]
	}
	return fmt.Sprintf("%s-%s-%s-%s", prefix, adjectives[s.rng.IntN(len(adjectives))], nouns[s.rng.IntN(len(nouns))], b)
}

// projectID returns an id such as old-violet-32930710. Callers hold s.mu.
func (s *Server) projectID() string {
	return fmt.Sprintf("%s-%s-%08d", adjectives[s.rng.IntN(len(adjectives))], nouns[s.rng.IntN(len(nouns))], s.rng.IntN(100000000))
}

func (s *Server) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(s.rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// writeError answers in Neon's error shape.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	writeCodedError(w, r, status, "", msg)
}

func writeCodedError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]string{"code": code, "message": msg}
	if id := r.Header.Get("X-Request-ID"); id != "" {
		body["request_id"] = id
	}
	_ = json.NewEncoder(w).Encode(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
