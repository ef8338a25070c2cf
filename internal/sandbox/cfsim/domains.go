package cfsim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

type customDomain struct {
	ID          string
	ZoneID      string
	ZoneName    string
	Hostname    string
	Service     string
	Environment string
	CreatedOn   time.Time
}

// json is the workers_domain shape (and the recorded responses').
func (d *customDomain) json() map[string]any {
	return map[string]any{
		"id":          d.ID,
		"zone_id":     d.ZoneID,
		"zone_name":   d.ZoneName,
		"hostname":    d.Hostname,
		"service":     d.Service,
		"environment": d.Environment,
	}
}

// inZone reports whether hostname is the zone's apex or below it.
func inZone(hostname, zone string) bool {
	return hostname == zone || strings.HasSuffix(hostname, "."+zone)
}

func (s *Server) listDomains(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []map[string]any{}
	for _, d := range s.sortedDomains() {
		if (q.Get("hostname") != "" && !strings.EqualFold(q.Get("hostname"), d.Hostname)) ||
			(q.Get("zone_id") != "" && q.Get("zone_id") != d.ZoneID) ||
			(q.Get("zone_name") != "" && !strings.EqualFold(q.Get("zone_name"), d.ZoneName)) ||
			(q.Get("service") != "" && q.Get("service") != d.Service) ||
			(q.Get("environment") != "" && q.Get("environment") != d.Environment) {
			continue
		}
		out = append(out, d.json())
	}
	writeResult(w, http.StatusOK, out)
}

func (s *Server) sortedDomains() []*customDomain {
	out := make([]*customDomain, 0, len(s.domains))
	for _, d := range s.domains {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out
}

// attachDomain implements PUT .../workers/domains: attach (or re-point) a
// hostname. Cloudflare refuses hostnames that already have DNS records it
// did not create for the domain.
func (s *Server) attachDomain(w http.ResponseWriter, r *http.Request) {
	body, ok := body[domainInput](w, r, codeBadRequest)
	if !ok {
		return
	}
	host := strings.ToLower(strings.TrimSuffix(body.Hostname, "."))
	z := s.zones[body.ZoneID]
	if z == nil {
		writeAPIError(w, http.StatusBadRequest, codeZoneUnknown, fmt.Sprintf("zone %q is not a zone of this account", body.ZoneID))
		return
	}
	if !inZone(host, z.Name) {
		writeAPIError(w, http.StatusBadRequest, codeDomainZone, fmt.Sprintf("hostname %q is not in zone %s", body.Hostname, z.Name))
		return
	}
	if s.scripts[body.Service] == nil {
		writeAPIError(w, http.StatusNotFound, codeNotFound, fmt.Sprintf("Worker %q does not exist on your account.", body.Service))
		return
	}
	for _, rec := range s.records {
		if rec.ZoneID == z.ID && rec.Name == host {
			writeAPIError(w, http.StatusConflict, codeDomainDNSRecord, "Hostname already has externally managed DNS records (A, CNAME, etc). Either delete them, try a different hostname, or use the option 'override_existing_dns_record' to override.")
			return
		}
	}
	for _, d := range s.domains {
		if d.Hostname == host {
			d.Service, d.Environment, d.ZoneID, d.ZoneName = body.Service, body.Environment, z.ID, z.Name
			writeResult(w, http.StatusOK, d.json())
			return
		}
	}
	d := &customDomain{ID: s.newID(), ZoneID: z.ID, ZoneName: z.Name, Hostname: host, Service: body.Service, Environment: body.Environment, CreatedOn: s.now()}
	s.domains[d.ID] = d
	writeResult(w, http.StatusOK, d.json())
}

type domainInput struct {
	ZoneID      string `json:"zone_id"`
	ZoneName    string `json:"zone_name"`
	Hostname    string `json:"hostname"`
	Service     string `json:"service"`
	Environment string `json:"environment"`
}

// onDomain wraps a handler of one Custom Domain: the account's preamble,
// then the domain named in the path (404 when there is none).
func (s *Server) onDomain(h func(w http.ResponseWriter, r *http.Request, d *customDomain)) func(http.ResponseWriter, *http.Request) {
	return s.onAccount(func(w http.ResponseWriter, r *http.Request) {
		if d, ok := lookup(w, s.domains, r.PathValue("domain_id"), nil, codeDomainNotFound, "Domain not found"); ok {
			h(w, r, d)
		}
	})
}

func (s *Server) detachDomain(w http.ResponseWriter, _ *http.Request, d *customDomain) {
	delete(s.domains, d.ID)
	// The recorded answer echoes the detached domain.
	writeResult(w, http.StatusOK, d.json())
}
