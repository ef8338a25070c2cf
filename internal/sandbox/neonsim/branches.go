package neonsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Branches: list, create (a copy of the parent's database), change,
// delete, restore, and their endpoints.

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
	p, b, now, done, err := s.changeBranch(pid, bid)
	if err != nil {
		return 0, nil, err
	}
	defer done()
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
