package neonsim

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

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

type cursor struct {
	Offset int `json:"offset"`
}

func encodeCursor(off int) string {
	b, _ := json.Marshal(cursor{Offset: off})
	return base64.StdEncoding.EncodeToString(b)
}

func decodeCursor(c string) (int, *apiError) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.StdEncoding.DecodeString(c)
	var cur cursor
	if err != nil || json.Unmarshal(b, &cur) != nil || cur.Offset < 0 {
		return 0, errf(http.StatusBadRequest, "invalid cursor")
	}
	return cur.Offset, nil
}

func (s *Server) listBranches(pid string, q url.Values) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.project(pid)
	if err != nil {
		return 0, nil, err
	}
	search := q.Get("search")
	var list []*branch
	for _, b := range p.branches {
		if search == "" || strings.Contains(b.Name, search) || strings.Contains(b.ID, search) {
			list = append(list, b)
		}
	}
	sortBy := q.Get("sort_by")
	if sortBy == "" {
		sortBy = "updated_at"
	}
	desc := !strings.EqualFold(q.Get("sort_order"), "asc")
	key := func(b *branch) string {
		switch sortBy {
		case "name":
			return b.Name
		case "created_at":
			return b.CreatedAt.Format(time.RFC3339Nano)
		}
		return b.UpdatedAt.Format(time.RFC3339Nano)
	}
	sort.Slice(list, func(i, j int) bool {
		ki, kj := key(list[i]), key(list[j])
		if ki == kj {
			return list[i].ID < list[j].ID
		}
		return (ki < kj) != desc
	})
	off, cerr := decodeCursor(q.Get("cursor"))
	if cerr != nil {
		return 0, nil, cerr
	}
	off = min(off, len(list))
	list = list[off:]
	pagination := map[string]any{"sort_by": sortBy, "sort_order": strings.ToUpper(map[bool]string{true: "desc", false: "asc"}[desc])}
	if l := q.Get("limit"); l != "" {
		n, _ := strconv.Atoi(l) // validated: 1..10000
		if n < len(list) {
			list = list[:n]
			pagination["next"] = encodeCursor(off + n)
		}
	}
	now := time.Now()
	branches := make([]any, 0, len(list))
	annotations := map[string]any{}
	for _, b := range list {
		branches = append(branches, s.branchJSON(p, b, now))
		if len(b.Annotations) > 0 {
			annotations[b.ID] = annotationJSON(b)
		}
	}
	return 200, map[string]any{"branches": branches, "annotations": annotations, "pagination": pagination}, nil
}

func (s *Server) getBranch(pid, bid string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, b, err := s.branchOf(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	return 200, map[string]any{"branch": s.branchJSON(p, b, time.Now()), "annotation": annotationJSON(b)}, nil
}

type createBranchBody struct {
	Endpoints []struct {
		Type string `json:"type"`
	} `json:"endpoints"`
	Branch struct {
		ParentID        string     `json:"parent_id"`
		Name            string     `json:"name"`
		ParentLSN       string     `json:"parent_lsn"`
		ParentTimestamp *time.Time `json:"parent_timestamp"`
		Protected       bool       `json:"protected"`
		Archived        bool       `json:"archived"`
		InitSource      string     `json:"init_source"`
		ExpiresAt       *time.Time `json:"expires_at"`
	} `json:"branch"`
	AnnotationValue map[string]string `json:"annotation_value"`
}

func (s *Server) createBranch(r *http.Request, pid string) (int, any, *apiError) {
	var req createBranchBody
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	s.mutate.Lock()
	defer s.mutate.Unlock()

	s.mu.Lock()
	now := time.Now().UTC()
	p, err := s.project(pid)
	if err != nil {
		s.mu.Unlock()
		return 0, nil, err
	}
	var parent *branch
	if req.Branch.ParentID == "" {
		parent = p.defaultBranch()
	} else if parent = p.branches[req.Branch.ParentID]; parent == nil {
		s.mu.Unlock()
		return 0, nil, errf(http.StatusNotFound, "parent branch %s not found", req.Branch.ParentID)
	}
	apiErr := func() *apiError {
		switch {
		case req.Branch.ParentLSN != "" || req.Branch.ParentTimestamp != nil:
			return errf(http.StatusNotImplemented, "neonsim: branching from a point in time (parent_lsn, parent_timestamp) is not simulated")
		case req.Branch.InitSource != "" && req.Branch.InitSource != "parent-data" && req.Branch.InitSource != "schema-only":
			return errf(http.StatusBadRequest, "invalid init_source %q: valid values are parent-data and schema-only", req.Branch.InitSource)
		case req.Branch.ExpiresAt != nil && !req.Branch.ExpiresAt.After(now):
			return errf(http.StatusBadRequest, "expires_at must be in the future")
		case req.Branch.Name != "" && p.byName(req.Branch.Name) != nil:
			return errf(http.StatusConflict, "branch with the provided name %q already exists", req.Branch.Name)
		case p.busy(parent.ID, now):
			return errf(http.StatusLocked, lockedMsg)
		case req.Branch.InitSource == "schema-only" && p.roots() >= s.opts.RootBranches:
			// A schema-only branch is a new root, and a project has only
			// so many (its first branch counts): CONFORMANCE.md.
			e := errf(http.StatusUnprocessableEntity, "root branches limit of %d exceeded, got %d", s.opts.RootBranches, p.roots())
			e.code = "ROOT_BRANCHES_LIMIT_EXCEEDED"
			return e
		}
		rw := 0
		for _, e := range req.Endpoints {
			if e.Type == "read_write" {
				rw++
			}
		}
		if rw > 1 {
			return errf(http.StatusBadRequest, "a branch supports only one read_write endpoint")
		}
		return nil
	}()
	if apiErr != nil {
		s.mu.Unlock()
		return 0, nil, apiErr
	}
	b := &branch{
		ID: s.id("br"), Name: req.Branch.Name, ParentID: parent.ID, InitSource: req.Branch.InitSource,
		Protected: req.Branch.Protected, ExpiresAt: req.Branch.ExpiresAt, Annotations: copyMap(req.AnnotationValue),
		CreatedAt: now, UpdatedAt: now, Database: newName(), DBID: s.rng.Int64N(90000000) + 10000000,
		// A child starts with copies of its parent's roles, passwords
		// included (schema-only branches too): whoever knows the parent's
		// password can connect to the child until its role is reset.
		Password: parent.livePassword(now), RoleUpdatedAt: now,
	}
	if b.Name == "" {
		b.Name = b.ID
	}
	if b.InitSource == "" {
		b.InitSource = "parent-data"
	}
	if b.InitSource == "schema-only" {
		// A schema-only branch is a new root: it copies the parent's schema
		// but keeps no parent link.
		b.ParentID = ""
	}
	template := parent.Database
	s.mu.Unlock()

	if err := s.pg.copy(r.Context(), b.Database, template); err != nil {
		return 0, nil, errf(http.StatusInternalServerError, "neonsim: copy database of branch %s: %v", parent.ID, err)
	}
	if b.InitSource == "schema-only" {
		if err := s.pg.truncateAll(r.Context(), b.Database); err != nil {
			_ = s.pg.drop(r.Context(), b.Database)
			return 0, nil, errf(http.StatusInternalServerError, "neonsim: empty schema-only branch: %v", err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Operations start now that the copy is done, so they run for the full
	// configured delay however long the copy took.
	now = time.Now().UTC()
	p.branches[b.ID] = b
	ops := []any{}
	ops = append(ops, s.opJSON(p, s.op(p, b.ID, "", "create_timeline", now), now))
	endpoints := []any{}
	for _, e := range req.Endpoints {
		ep := &endpoint{ID: s.id("ep"), BranchID: b.ID, Type: e.Type, CreatedAt: now}
		p.endpoints[ep.ID] = ep
		ops = append(ops, s.opJSON(p, s.op(p, b.ID, ep.ID, "start_compute", now), now))
		endpoints = append(endpoints, s.endpointJSON(p, ep, now))
	}
	resp := map[string]any{
		"branch":     s.branchJSON(p, b, now),
		"endpoints":  endpoints,
		"operations": ops,
		"roles":      []any{s.roleJSON(b)},
		"databases":  []any{s.databaseJSON(b)},
	}
	if rw := p.readWrite(b.ID); rw != nil {
		resp["connection_uris"] = []any{s.connectionDetails(p, b, rw)}
	}
	return http.StatusCreated, resp, nil
}

func (s *Server) patchBranch(r *http.Request, pid, bid string) (int, any, *apiError) {
	var req struct {
		Branch struct {
			Name      *string         `json:"name"`
			Protected *bool           `json:"protected"`
			ExpiresAt json.RawMessage `json:"expires_at"`
		} `json:"branch"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	s.mutate.Lock()
	defer s.mutate.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	p, b, err := s.branchOf(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	if p.busy(b.ID, now) {
		return 0, nil, errf(http.StatusLocked, lockedMsg)
	}
	if n := req.Branch.Name; n != nil && *n != b.Name {
		if p.byName(*n) != nil {
			return 0, nil, errf(http.StatusConflict, "branch with the provided name %q already exists", *n)
		}
		b.Name = *n
	}
	if req.Branch.Protected != nil {
		b.Protected = *req.Branch.Protected
	}
	switch raw := strings.TrimSpace(string(req.Branch.ExpiresAt)); raw {
	case "":
	case "null":
		b.ExpiresAt = nil
	default:
		var t time.Time
		if json.Unmarshal(req.Branch.ExpiresAt, &t) != nil || !t.After(now) {
			return 0, nil, errf(http.StatusBadRequest, "expires_at must be a timestamp in the future")
		}
		b.ExpiresAt = &t
	}
	b.UpdatedAt = now
	return 200, map[string]any{"branch": s.branchJSON(p, b, now), "operations": []any{}}, nil
}

func (s *Server) deleteBranch(r *http.Request, pid, bid string) (int, any, *apiError) {
	s.mutate.Lock()
	defer s.mutate.Unlock()
	s.mu.Lock()
	now := time.Now().UTC()
	p, b, err := s.branchOf(pid, bid)
	if err != nil {
		s.mu.Unlock()
		if err.status == http.StatusNotFound && p != nil {
			// "Returned if the branch doesn't exist or has already been deleted"
			return http.StatusNoContent, nil, nil
		}
		return 0, nil, err
	}
	switch {
	case b.Default:
		s.mu.Unlock()
		return 0, nil, errf(http.StatusBadRequest, "cannot delete the project's default branch")
	case p.hasChildren(b.ID):
		s.mu.Unlock()
		return 0, nil, errf(http.StatusBadRequest, "cannot delete a branch that has child branches")
	case p.busy(b.ID, now):
		s.mu.Unlock()
		return 0, nil, errf(http.StatusLocked, lockedMsg)
	}
	db := b.Database
	s.mu.Unlock()

	if err := s.pg.drop(r.Context(), db); err != nil {
		return 0, nil, errf(http.StatusInternalServerError, "neonsim: drop database of branch %s: %v", bid, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now = time.Now().UTC()
	ops := []any{}
	for id, e := range p.endpoints {
		if e.BranchID == b.ID {
			ops = append(ops, s.opJSON(p, s.op(p, b.ID, e.ID, "suspend_compute", now), now))
			delete(p.endpoints, id)
		}
	}
	ops = append(ops, s.opJSON(p, s.op(p, b.ID, "", "delete_timeline", now), now))
	body := map[string]any{"branch": s.branchJSON(p, b, now), "operations": ops}
	delete(p.branches, b.ID)
	return 200, body, nil
}

func (s *Server) restoreBranch(r *http.Request, pid, bid string) (int, any, *apiError) {
	var req struct {
		SourceBranchID    string     `json:"source_branch_id"`
		SourceLSN         string     `json:"source_lsn"`
		SourceTimestamp   *time.Time `json:"source_timestamp"`
		PreserveUnderName string     `json:"preserve_under_name"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	s.mutate.Lock()
	defer s.mutate.Unlock()
	s.mu.Lock()
	now := time.Now().UTC()
	p, b, err := s.branchOf(pid, bid)
	if err != nil {
		s.mu.Unlock()
		return 0, nil, err
	}
	src := p.branches[req.SourceBranchID]
	apiErr := func() *apiError {
		switch {
		case src == nil:
			return errf(http.StatusNotFound, "source branch %s not found", req.SourceBranchID)
		case req.SourceLSN != "" || req.SourceTimestamp != nil:
			return errf(http.StatusNotImplemented, "neonsim: restoring to a point in time (source_lsn, source_timestamp) is not simulated")
		case src.ID == b.ID:
			return errf(http.StatusBadRequest, "source_timestamp or source_lsn is required when restoring a branch from its own history")
		case p.hasChildren(b.ID) && req.PreserveUnderName == "":
			return errf(http.StatusBadRequest, "preserve_under_name is required when the branch has children")
		case req.PreserveUnderName != "" && p.byName(req.PreserveUnderName) != nil:
			return errf(http.StatusConflict, "branch with the provided name %q already exists", req.PreserveUnderName)
		case p.busy(b.ID, now) || p.busy(src.ID, now):
			return errf(http.StatusLocked, lockedMsg)
		}
		return nil
	}()
	if apiErr != nil {
		s.mu.Unlock()
		return 0, nil, apiErr
	}
	db, template := b.Database, src.Database
	var preserved *branch
	if req.PreserveUnderName != "" {
		preserved = &branch{
			ID: s.id("br"), Name: req.PreserveUnderName, ParentID: b.ParentID, InitSource: b.InitSource,
			Annotations: copyMap(b.Annotations), CreatedAt: now, UpdatedAt: now, Database: newName(), DBID: b.DBID,
			Password: b.livePassword(now), RoleUpdatedAt: now,
		}
	}
	s.mu.Unlock()

	ctx := r.Context()
	if preserved != nil {
		if err := s.pg.rename(ctx, db, preserved.Database); err != nil {
			return 0, nil, errf(http.StatusInternalServerError, "neonsim: preserve branch %s: %v", bid, err)
		}
	} else if err := s.pg.drop(ctx, db); err != nil {
		return 0, nil, errf(http.StatusInternalServerError, "neonsim: drop database of branch %s: %v", bid, err)
	}
	if err := s.pg.copy(ctx, db, template); err != nil {
		return 0, nil, errf(http.StatusInternalServerError, "neonsim: copy database of branch %s: %v", src.ID, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now = time.Now().UTC()
	if preserved != nil {
		p.branches[preserved.ID] = preserved
		for _, c := range p.branches {
			if c.ParentID == b.ID && c != preserved {
				c.ParentID = preserved.ID
			}
		}
	}
	b.ParentID = src.ID
	b.UpdatedAt = now
	b.LastResetAt = &now
	ops := []any{s.opJSON(p, s.op(p, b.ID, "", "create_timeline", now), now)}
	if rw := p.readWrite(b.ID); rw != nil {
		ops = append(ops, s.opJSON(p, s.op(p, b.ID, rw.ID, "start_compute", now), now))
	}
	return 200, map[string]any{"branch": s.branchJSON(p, b, now), "operations": ops}, nil
}

func (s *Server) branchEndpoints(pid, bid string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, b, err := s.branchOf(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	now := time.Now()
	eps := []any{}
	for _, e := range sortedEndpoints(p) {
		if e.BranchID == b.ID {
			eps = append(eps, s.endpointJSON(p, e, now))
		}
	}
	return 200, map[string]any{"endpoints": eps}, nil
}

func (s *Server) databases(pid, bid string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOf(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	return 200, map[string]any{"databases": []any{s.databaseJSON(b)}}, nil
}

func (s *Server) roles(pid, bid string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOf(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	return 200, map[string]any{"roles": []any{s.roleJSON(b)}}, nil
}

// role checks that name is the branch's role: the simulator has one per
// branch (Options.Role).
func (s *Server) role(name string) *apiError {
	if name != s.opts.Role {
		return errf(http.StatusNotFound, "role %q not found", name)
	}
	return nil
}

// resetPassword gives the branch's role a new password. Like Neon, it
// answers the new password at once and puts it in force when the answer's
// operation finishes (the old one works until then); meanwhile the branch
// is busy, and the sessions on the branch are dropped, as a compute
// applying new settings drops them.
func (s *Server) resetPassword(pid, bid, roleName string) (int, any, *apiError) {
	s.mutate.Lock()
	defer s.mutate.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	p, b, err := s.branchOf(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	if err := s.role(roleName); err != nil {
		return 0, nil, err
	}
	if p.busy(b.ID, now) {
		return 0, nil, errf(http.StatusLocked, lockedMsg)
	}
	epID := ""
	if rw := p.readWrite(b.ID); rw != nil {
		epID = rw.ID
	}
	op := s.op(p, b.ID, epID, "apply_config", now)
	b.PrevPassword, b.Password = b.livePassword(now), newPassword()
	b.PasswordFrom, b.RoleUpdatedAt = op.Done, now
	s.proxy.dropBranch(b.ID)
	role := s.roleJSON(b)
	role["password"] = b.Password
	return 200, map[string]any{"role": role, "operations": []any{s.opJSON(p, op, now)}}, nil
}

// revealPassword answers the role's stored password (the new one as soon
// as a reset was answered, as Neon stores it).
func (s *Server) revealPassword(pid, bid, roleName string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOf(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	if err := s.role(roleName); err != nil {
		return 0, nil, err
	}
	return 200, map[string]any{"password": b.Password}, nil
}

func (s *Server) listEndpoints(pid string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.project(pid)
	if err != nil {
		return 0, nil, err
	}
	now := time.Now()
	eps := []any{}
	for _, e := range sortedEndpoints(p) {
		eps = append(eps, s.endpointJSON(p, e, now))
	}
	return 200, map[string]any{"endpoints": eps}, nil
}

func (s *Server) createEndpoint(r *http.Request, pid string) (int, any, *apiError) {
	var req struct {
		Endpoint struct {
			BranchID string `json:"branch_id"`
			Type     string `json:"type"`
		} `json:"endpoint"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	s.mutate.Lock()
	defer s.mutate.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	p, b, err := s.branchOf(pid, req.Endpoint.BranchID)
	if err != nil {
		return 0, nil, err
	}
	if req.Endpoint.Type == "read_write" && p.readWrite(b.ID) != nil {
		return 0, nil, errf(http.StatusConflict, "read-write endpoint already exists for branch %s", b.ID)
	}
	if p.busy(b.ID, now) {
		return 0, nil, errf(http.StatusLocked, lockedMsg)
	}
	ep := &endpoint{ID: s.id("ep"), BranchID: b.ID, Type: req.Endpoint.Type, CreatedAt: now}
	p.endpoints[ep.ID] = ep
	op := s.op(p, b.ID, ep.ID, "start_compute", now)
	return http.StatusCreated, map[string]any{"endpoint": s.endpointJSON(p, ep, now), "operations": []any{s.opJSON(p, op, now)}}, nil
}

func (s *Server) getEndpoint(pid, eid string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.project(pid)
	if err != nil {
		return 0, nil, err
	}
	e := p.endpoints[eid]
	if e == nil {
		return 0, nil, errf(http.StatusNotFound, "endpoint not found")
	}
	return 200, map[string]any{"endpoint": s.endpointJSON(p, e, time.Now())}, nil
}

func (s *Server) deleteEndpoint(pid, eid string) (int, any, *apiError) {
	s.mutate.Lock()
	defer s.mutate.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	p, err := s.project(pid)
	if err != nil {
		return 0, nil, err
	}
	e := p.endpoints[eid]
	if e == nil {
		return 0, nil, errf(http.StatusNotFound, "endpoint not found")
	}
	if p.busy(e.BranchID, now) {
		return 0, nil, errf(http.StatusLocked, lockedMsg)
	}
	op := s.op(p, e.BranchID, e.ID, "suspend_compute", now)
	body := map[string]any{"endpoint": s.endpointJSON(p, e, now), "operations": []any{s.opJSON(p, op, now)}}
	delete(p.endpoints, eid)
	return 200, body, nil
}

func (s *Server) listOperations(pid string, q url.Values) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.project(pid)
	if err != nil {
		return 0, nil, err
	}
	off, cerr := decodeCursor(q.Get("cursor"))
	if cerr != nil {
		return 0, nil, cerr
	}
	now := time.Now()
	// Newest first, as Neon lists them.
	all := make([]*operation, 0, len(p.operations))
	for i := len(p.operations) - 1; i >= 0; i-- {
		all = append(all, p.operations[i])
	}
	off = min(off, len(all))
	all = all[off:]
	n := len(all)
	if l := q.Get("limit"); l != "" {
		if v, _ := strconv.Atoi(l); v < n {
			n = v
		}
	}
	ops := []any{}
	for _, o := range all[:n] {
		ops = append(ops, s.opJSON(p, o, now))
	}
	body := map[string]any{"operations": ops}
	if n < len(all) {
		body["pagination"] = map[string]any{"cursor": encodeCursor(off + n)}
	}
	return 200, body, nil
}

func (s *Server) getOperation(pid, oid string) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.project(pid)
	if err != nil {
		return 0, nil, err
	}
	for _, o := range p.operations {
		if o.ID == oid {
			return 200, map[string]any{"operation": s.opJSON(p, o, time.Now())}, nil
		}
	}
	return 0, nil, errf(http.StatusNotFound, "operation not found")
}

func (s *Server) connectionURI(pid string, q url.Values) (int, any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.project(pid)
	if err != nil {
		return 0, nil, err
	}
	var b *branch
	if bid := q.Get("branch_id"); bid != "" {
		if b = p.branches[bid]; b == nil {
			return 0, nil, errf(http.StatusNotFound, "branch not found")
		}
	} else {
		b = p.defaultBranch()
	}
	var ep *endpoint
	if eid := q.Get("endpoint_id"); eid != "" {
		if ep = p.endpoints[eid]; ep == nil || ep.BranchID != b.ID {
			return 0, nil, errf(http.StatusNotFound, "endpoint not found")
		}
	} else if ep = p.readWrite(b.ID); ep == nil {
		return 0, nil, errf(http.StatusNotFound, "branch %s has no read_write endpoint", b.ID)
	}
	if q.Get("database_name") != s.opts.Database {
		return 0, nil, errf(http.StatusNotFound, "database %q not found", q.Get("database_name"))
	}
	if err := s.role(q.Get("role_name")); err != nil {
		return 0, nil, err
	}
	pooled, _ := strconv.ParseBool(q.Get("pooled"))
	return 200, map[string]any{"uri": s.uri(b, pooled)}, nil
}

// uri is a working connection URL of the branch: the branch's role and its
// stored password, at the proxy, for the branch's database (its physical
// name: the proxy has one address for all endpoints, so the database
// tells the branch, where Neon uses the endpoint's host name). The pooled
// one differs only by application_name (there is no PgBouncer here), so a
// test can tell which one the bot used. Callers hold s.mu.
func (s *Server) uri(b *branch, pooled bool) string {
	app := "neonsim-direct"
	if pooled {
		app = "neonsim-pooler"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(s.opts.Role, b.Password),
		Host:     s.proxy.addr(),
		Path:     "/" + b.Database,
		RawQuery: url.Values{"sslmode": {"disable"}, "application_name": {app}}.Encode(),
	}
	return u.String()
}

// authenticate is the proxy's check: user must be the role of the branch
// whose database is database, and password the one in force. The answers
// are PostgreSQL's, so clients report them as a server would.
func (s *Server) authenticate(user, database, password string) (string, *pgproto3.ErrorResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b *branch
	for _, p := range s.projects {
		for _, c := range p.branches {
			if c.Database == database {
				b = c
			}
		}
	}
	if b == nil {
		return "", fatal("3D000", fmt.Sprintf("database %q does not exist", database))
	}
	live := b.livePassword(time.Now())
	if user != s.opts.Role || live == "" || subtle.ConstantTimeCompare([]byte(password), []byte(live)) != 1 {
		return "", fatal("28P01", fmt.Sprintf("password authentication failed for user %q", user))
	}
	return b.ID, nil
}
