package neonsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// apiError is a failure to answer in Neon's error shape.
type apiError struct {
	status int
	msg    string
	code   string // Neon's error code, e.g. "ROOT_BRANCHES_LIMIT_EXCEEDED" ("" for most)
}

func (e *apiError) Error() string { return e.msg }

func errf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// lockedMsg is Neon's answer while conflicting operations run.
const lockedMsg = "project already has running conflicting operations, scheduling of new ones is prohibited"

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.opts.APIKey != "" {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token != s.opts.APIKey {
			writeError(w, r, http.StatusUnauthorized, "authentication required")
			return
		}
	}
	ctx := r.Context()
	pid := apispec.PathParam(ctx, "project_id")
	var (
		status int
		body   any
		err    *apiError
	)
	switch apispec.Route(ctx) {
	case "GET /projects/{project_id}":
		status, body, err = s.getProject(pid)
	case "GET /projects/{project_id}/branches":
		status, body, err = s.listBranches(pid, r.URL.Query())
	case "POST /projects/{project_id}/branches":
		status, body, err = s.createBranch(r, pid)
	case "GET /projects/{project_id}/branches/{branch_id}":
		status, body, err = s.getBranch(pid, apispec.PathParam(ctx, "branch_id"))
	case "PATCH /projects/{project_id}/branches/{branch_id}":
		status, body, err = s.patchBranch(r, pid, apispec.PathParam(ctx, "branch_id"))
	case "DELETE /projects/{project_id}/branches/{branch_id}":
		status, body, err = s.deleteBranch(r, pid, apispec.PathParam(ctx, "branch_id"))
	case "POST /projects/{project_id}/branches/{branch_id}/restore":
		status, body, err = s.restoreBranch(r, pid, apispec.PathParam(ctx, "branch_id"))
	case "GET /projects/{project_id}/branches/{branch_id}/endpoints":
		status, body, err = s.branchEndpoints(pid, apispec.PathParam(ctx, "branch_id"))
	case "GET /projects/{project_id}/branches/{branch_id}/databases":
		status, body, err = s.databases(pid, apispec.PathParam(ctx, "branch_id"))
	case "GET /projects/{project_id}/branches/{branch_id}/roles":
		status, body, err = s.roles(pid, apispec.PathParam(ctx, "branch_id"))
	case "POST /projects/{project_id}/branches/{branch_id}/roles/{role_name}/reset_password":
		status, body, err = s.resetPassword(pid, apispec.PathParam(ctx, "branch_id"), apispec.PathParam(ctx, "role_name"))
	case "GET /projects/{project_id}/branches/{branch_id}/roles/{role_name}/reveal_password":
		status, body, err = s.revealPassword(pid, apispec.PathParam(ctx, "branch_id"), apispec.PathParam(ctx, "role_name"))
	case "GET /projects/{project_id}/endpoints":
		status, body, err = s.listEndpoints(pid)
	case "POST /projects/{project_id}/endpoints":
		status, body, err = s.createEndpoint(r, pid)
	case "GET /projects/{project_id}/endpoints/{endpoint_id}":
		status, body, err = s.getEndpoint(pid, apispec.PathParam(ctx, "endpoint_id"))
	case "DELETE /projects/{project_id}/endpoints/{endpoint_id}":
		status, body, err = s.deleteEndpoint(pid, apispec.PathParam(ctx, "endpoint_id"))
	case "GET /projects/{project_id}/operations":
		status, body, err = s.listOperations(pid, r.URL.Query())
	case "GET /projects/{project_id}/operations/{operation_id}":
		status, body, err = s.getOperation(pid, apispec.PathParam(ctx, "operation_id"))
	case "GET /projects/{project_id}/connection_uri":
		status, body, err = s.connectionURI(pid, r.URL.Query())
	default:
		err = errf(http.StatusNotImplemented, "neonsim: %s is in the API description but not simulated", apispec.Route(ctx))
	}
	if err != nil {
		writeCodedError(w, r, err.status, err.code, err.msg)
		return
	}
	if body == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

// decode reads an optional JSON body into v (already validated against the
// description).
func decode(r *http.Request, v any) *apiError {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return errf(http.StatusBadRequest, "read body: %v", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errf(http.StatusBadRequest, "invalid request: decode application/json: %v", err)
	}
	return nil
}

// --- lookups; callers hold s.mu ---

func (s *Server) project(pid string) (*project, *apiError) {
	p := s.projects[pid]
	if p == nil {
		return nil, errf(http.StatusNotFound, "project not found")
	}
	return p, nil
}

func (s *Server) branchOf(pid, bid string) (*project, *branch, *apiError) {
	p, err := s.project(pid)
	if err != nil {
		return nil, nil, err
	}
	b := p.branches[bid]
	if b == nil {
		return p, nil, errf(http.StatusNotFound, "branch not found")
	}
	return p, b, nil
}

// changeBranch takes the locks a change of a branch holds (mutate, which
// serialises changes touching PostgreSQL, then mu) and finds the branch;
// done releases them.
func (s *Server) changeBranch(pid, bid string) (p *project, b *branch, now time.Time, done func(), err *apiError) {
	s.mutate.Lock()
	s.mu.Lock()
	done = func() {
		s.mu.Unlock()
		s.mutate.Unlock()
	}
	p, b, err = s.branchOf(pid, bid)
	if err != nil {
		done()
		return nil, nil, time.Time{}, nil, err
	}
	return p, b, time.Now().UTC(), done, nil
}

func (p *project) busy(branchID string, now time.Time) bool {
	for _, o := range p.operations {
		if o.BranchID == branchID && now.Before(o.Done) {
			return true
		}
	}
	return false
}

func (p *project) byName(name string) *branch {
	for _, b := range p.branches {
		if b.Name == name {
			return b
		}
	}
	return nil
}

func (p *project) defaultBranch() *branch {
	for _, b := range p.branches {
		if b.Default {
			return b
		}
	}
	return nil
}

// roots counts the project's root branches: its first branch and every
// schema-only branch (they keep no parent).
func (p *project) roots() int {
	n := 0
	for _, b := range p.branches {
		if b.ParentID == "" {
			n++
		}
	}
	return n
}

func (p *project) hasChildren(branchID string) bool {
	for _, b := range p.branches {
		if b.ParentID == branchID {
			return true
		}
	}
	return false
}

func (p *project) readWrite(branchID string) *endpoint {
	for _, e := range p.endpoints {
		if e.BranchID == branchID && e.Type == "read_write" {
			return e
		}
	}
	return nil
}

// op records an operation that runs for the configured delay. Callers hold s.mu.
func (s *Server) op(p *project, branchID, endpointID, action string, now time.Time) *operation {
	o := &operation{ID: s.uuid(), BranchID: branchID, EndpointID: endpointID, Action: action, CreatedAt: now, Done: now.Add(s.opts.OperationDelay)}
	p.operations = append(p.operations, o)
	return o
}

// --- handlers ---

func (s *Server) getProject(pid string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.project(pid)
	if err != nil {
		return 0, nil, err
	}
	return 200, map[string]any{"project": s.projectJSON(p)}, nil
}
