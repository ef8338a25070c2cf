package cfsim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

type route struct {
	ID        string
	ZoneID    string
	Pattern   string
	Script    string // "" disables Workers on the pattern
	CreatedOn time.Time
}

func (rt *route) json() map[string]any {
	return map[string]any{"id": rt.ID, "pattern": rt.Pattern, "script": rt.Script}
}

// splitPattern splits a route pattern "host/path" into its host and path
// parts ("*.example.com/*" → "*.example.com", "/*").
func splitPattern(p string) (host, path string) {
	p = strings.TrimPrefix(strings.TrimPrefix(p, "https://"), "http://")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return strings.ToLower(p[:i]), p[i:]
	}
	return strings.ToLower(p), ""
}

// checkPattern applies Cloudflare's rules for route patterns: a host part in
// the zone (optionally starting with a * wildcard) and a path, where * may
// only end the path.
func checkPattern(pattern string, z *Zone) string {
	host, path := splitPattern(pattern)
	switch {
	case host == "" || path == "":
		return fmt.Sprintf("route pattern %q must be of the form hostname/path, e.g. example.com/*", pattern)
	case strings.Contains(strings.TrimPrefix(host, "*"), "*"):
		return fmt.Sprintf("route pattern %q: a wildcard may only start the hostname", pattern)
	case strings.Contains(strings.TrimSuffix(path, "*"), "*"):
		return fmt.Sprintf("route pattern %q: a wildcard may only end the path", pattern)
	}
	h := strings.TrimPrefix(strings.TrimPrefix(host, "*"), ".")
	if !inZone(h, z.Name) {
		return fmt.Sprintf("route pattern %q is not in zone %s", pattern, z.Name)
	}
	return ""
}

// matchRoute reports whether a route pattern covers host and path, and how
// specific the match is (longer patterns win, as on Cloudflare).
func matchRoute(pattern, host, path string) (bool, int) {
	ph, pp := splitPattern(pattern)
	if rest, ok := strings.CutPrefix(ph, "*"); ok {
		if !strings.HasSuffix(host, rest) {
			return false, 0
		}
	} else if ph != host {
		return false, 0
	}
	if prefix, ok := strings.CutSuffix(pp, "*"); ok {
		if !strings.HasPrefix(path, prefix) {
			return false, 0
		}
	} else if pp != path {
		return false, 0
	}
	return true, len(pattern)
}

func (s *Server) listRoutes(w http.ResponseWriter, _ *http.Request, z *Zone) {
	out := []map[string]any{}
	for _, rt := range s.sortedRoutes() {
		if rt.ZoneID == z.ID {
			out = append(out, rt.json())
		}
	}
	writeResult(w, http.StatusOK, out)
}

func (s *Server) sortedRoutes() []*route {
	out := make([]*route, 0, len(s.routes))
	for _, rt := range s.routes {
		out = append(out, rt)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pattern != out[j].Pattern {
			return out[i].Pattern < out[j].Pattern
		}
		return out[i].ID < out[j].ID
	})
	return out
}

type routeInput struct {
	Pattern string `json:"pattern"`
	Script  string `json:"script"`
}

// saveRoute validates in and stores it as rt (new or existing). The caller
// holds s.mu.
func (s *Server) saveRoute(w http.ResponseWriter, z *Zone, rt *route, in routeInput) bool {
	if msg := checkPattern(in.Pattern, z); msg != "" {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, msg)
		return false
	}
	for _, o := range s.routes {
		if o.ZoneID == z.ID && o.ID != rt.ID && o.Pattern == in.Pattern {
			writeAPIError(w, http.StatusConflict, codeRouteExists, "A route with the same pattern already exists.")
			return false
		}
	}
	rt.Pattern, rt.Script = in.Pattern, in.Script
	s.routes[rt.ID] = rt
	return true
}

func (s *Server) createRoute(w http.ResponseWriter, r *http.Request, z *Zone) {
	in, ok := body[routeInput](w, r, codeBadRequest)
	if !ok {
		return
	}
	rt := &route{ID: s.newID(), ZoneID: z.ID, CreatedOn: s.now()}
	if s.saveRoute(w, z, rt, in) {
		writeResult(w, http.StatusOK, rt.json())
	}
}

// onRoute wraps a handler of one Worker route: the zone's preamble, then
// the route named in the path (404 when the zone has none).
func (s *Server) onRoute(h func(w http.ResponseWriter, r *http.Request, z *Zone, rt *route)) func(http.ResponseWriter, *http.Request) {
	return s.onZone(func(w http.ResponseWriter, r *http.Request, z *Zone) {
		belongs := func(rt *route) bool { return rt.ZoneID == z.ID }
		if rt, ok := lookup(w, s.routes, r.PathValue("route_id"), belongs, codeNotFound, "Route not found."); ok {
			h(w, r, z, rt)
		}
	})
}

func (s *Server) updateRoute(w http.ResponseWriter, r *http.Request, z *Zone, rt *route) {
	in, ok := body[routeInput](w, r, codeBadRequest)
	if !ok {
		return
	}
	next := *rt
	if s.saveRoute(w, z, &next, in) {
		*rt = next
		s.routes[rt.ID] = rt
		writeResult(w, http.StatusOK, rt.json())
	}
}

func (s *Server) deleteRoute(w http.ResponseWriter, _ *http.Request, _ *Zone, rt *route) {
	delete(s.routes, rt.ID)
	writeResult(w, http.StatusOK, map[string]any{"id": rt.ID})
}
