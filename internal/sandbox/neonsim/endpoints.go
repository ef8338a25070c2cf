package neonsim

import (
	"net/http"
	"time"
)

// Compute endpoints.

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
	p, b, now, done, err := s.changeBranch(pid, req.Endpoint.BranchID)
	if err != nil {
		return 0, nil, err
	}
	defer done()
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
	p, e, err := s.endpointOf(pid, eid)
	if err != nil {
		return 0, nil, err
	}
	return 200, map[string]any{"endpoint": s.endpointJSON(p, e, time.Now())}, nil
}

func (s *Server) deleteEndpoint(pid, eid string) (int, any, *apiError) {
	s.mutate.Lock()
	defer s.mutate.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	p, e, err := s.endpointOf(pid, eid)
	if err != nil {
		return 0, nil, err
	}
	if p.busy(e.BranchID, now) {
		return 0, nil, errf(http.StatusLocked, lockedMsg)
	}
	op := s.op(p, e.BranchID, e.ID, "suspend_compute", now)
	body := map[string]any{"endpoint": s.endpointJSON(p, e, now), "operations": []any{s.opJSON(p, op, now)}}
	delete(p.endpoints, eid)
	return 200, body, nil
}

// endpointOf finds a project's endpoint. The caller holds s.mu.
func (s *Server) endpointOf(pid, eid string) (*project, *endpoint, *apiError) {
	p, err := s.project(pid)
	if err != nil {
		return nil, nil, err
	}
	e := p.endpoints[eid]
	if e == nil {
		return nil, nil, errf(http.StatusNotFound, "endpoint not found")
	}
	return p, e, nil
}
