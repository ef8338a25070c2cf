package neonsim

import (
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Operations, which run for Options.OperationDelay.

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
