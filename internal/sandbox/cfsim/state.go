package cfsim

import (
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/sandbox/edge"
)

// Redacted replaces secret values in State.
const Redacted = "[REDACTED]"

// State is a JSON-serialisable snapshot of the simulated account. Secret
// values are redacted.
type State struct {
	AccountID      string         `json:"account_id"`
	Zones          []Zone         `json:"zones"`
	Scripts        []ScriptState  `json:"scripts"`
	CustomDomains  []CustomDomain `json:"custom_domains"`
	DNSRecords     []DNSRecord    `json:"dns_records"`
	Routes         []Route        `json:"routes"`
	Assets         AssetsState    `json:"assets"`
	Requests       map[string]int `json:"requests"` // per route template, valid or not
	FaultsInjected int            `json:"faults_injected"`
}

// ScriptState is one Worker.
type ScriptState struct {
	Name              string            `json:"name"`
	Tags              []string          `json:"tags,omitempty"`
	CreatedOn         time.Time         `json:"created_on"`
	ModifiedOn        time.Time         `json:"modified_on"`
	CurrentVersion    string            `json:"current_version"` // "" without deployment
	MainModule        string            `json:"main_module"`
	Modules           []string          `json:"modules"`
	CompatibilityDate string            `json:"compatibility_date,omitempty"`
	Bindings          []Binding         `json:"bindings"`
	Assets            []string          `json:"assets,omitempty"` // asset paths of the live version
	Versions          []VersionState    `json:"versions"`         // oldest first
	Deployments       []DeploymentState `json:"deployments"`      // oldest first
}

// Binding is a binding of a Worker's live version; secret_text values are
// Redacted.
type Binding struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Text    string `json:"text,omitempty"`
	Service string `json:"service,omitempty"`
}

// VersionState is one version of a Worker.
type VersionState struct {
	ID        string    `json:"id"`
	Number    int       `json:"number"`
	CreatedOn time.Time `json:"created_on"`
}

// DeploymentState is one deployment of a Worker.
type DeploymentState struct {
	ID        string            `json:"id"`
	CreatedOn time.Time         `json:"created_on"`
	Versions  []DeployedVersion `json:"versions"`
}

// DeployedVersion is a version's share of a deployment.
type DeployedVersion struct {
	VersionID  string  `json:"version_id"`
	Percentage float64 `json:"percentage"`
}

// CustomDomain is a Workers Custom Domain.
type CustomDomain struct {
	ID          string    `json:"id"`
	ZoneID      string    `json:"zone_id"`
	ZoneName    string    `json:"zone_name"`
	Hostname    string    `json:"hostname"`
	Service     string    `json:"service"`
	Environment string    `json:"environment"`
	CreatedOn   time.Time `json:"created_on"`
}

// DNSRecord is a DNS record.
type DNSRecord struct {
	ID      string  `json:"id"`
	ZoneID  string  `json:"zone_id"`
	Name    string  `json:"name"`
	Type    string  `json:"type"`
	Content string  `json:"content"`
	Proxied bool    `json:"proxied"`
	TTL     float64 `json:"ttl"`
	Comment string  `json:"comment,omitempty"`
}

// Route is a Worker route.
type Route struct {
	ID      string `json:"id"`
	ZoneID  string `json:"zone_id"`
	Pattern string `json:"pattern"`
	Script  string `json:"script"`
}

// AssetsState summarises static assets.
type AssetsState struct {
	Stored  int      `json:"stored"`  // distinct files held
	Uploads []string `json:"uploads"` // hashes in the order first uploaded
}

// State returns a snapshot (a State value) for the sandbox's state endpoint.
func (s *Server) State() any { return s.Snapshot() }

// Snapshot returns the simulated account's state, secrets redacted.
func (s *Server) Snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{
		AccountID:     s.accountID,
		Zones:         []Zone{},
		Scripts:       []ScriptState{},
		CustomDomains: []CustomDomain{},
		DNSRecords:    []DNSRecord{},
		Routes:        []Route{},
		Assets:        AssetsState{Stored: len(s.assetStore), Uploads: append([]string{}, s.assetUploads...)},
		Requests:      s.validator.Counts(),
	}
	for pattern, n := range s.unlistedCount {
		st.Requests[pattern] += n
	}
	for _, id := range sortedKeys(s.zones) {
		st.Zones = append(st.Zones, *s.zones[id])
	}
	for _, n := range sortedKeys(s.scripts) {
		st.Scripts = append(st.Scripts, scriptState(s.scripts[n]))
	}
	for _, d := range s.sortedDomains() {
		st.CustomDomains = append(st.CustomDomains, domainState(d))
	}
	for _, rec := range s.sortedRecords() {
		st.DNSRecords = append(st.DNSRecords, recordState(rec))
	}
	for _, rt := range s.sortedRoutes() {
		st.Routes = append(st.Routes, Route{ID: rt.ID, ZoneID: rt.ZoneID, Pattern: rt.Pattern, Script: rt.Script})
	}
	st.FaultsInjected = s.faults.Injected()
	return st
}

func scriptState(sc *script) ScriptState {
	out := ScriptState{Name: sc.Name, Tags: sc.Tags, CreatedOn: sc.CreatedOn, ModifiedOn: sc.ModifiedOn, Modules: []string{}, Bindings: []Binding{}}
	if v := sc.live(); v != nil {
		out.CurrentVersion = v.ID
		out.MainModule = v.MainModule
		out.CompatibilityDate = v.CompatibilityDate
		for _, m := range v.Modules {
			out.Modules = append(out.Modules, m.Name)
		}
		for _, b := range v.Bindings {
			sb := Binding{Name: b.Name, Type: b.Type, Text: b.Text, Service: b.Service}
			if b.Type == "secret_text" {
				sb.Text = Redacted
			}
			out.Bindings = append(out.Bindings, sb)
		}
		out.Assets = sortedKeys(v.Assets)
	}
	for _, v := range sc.Versions {
		out.Versions = append(out.Versions, VersionState{ID: v.ID, Number: v.Number, CreatedOn: v.CreatedOn})
	}
	for _, d := range sc.Deployments {
		ds := DeploymentState{ID: d.ID, CreatedOn: d.CreatedOn}
		for _, v := range d.Versions {
			ds.Versions = append(ds.Versions, DeployedVersion(v))
		}
		out.Deployments = append(out.Deployments, ds)
	}
	return out
}

func domainState(d *customDomain) CustomDomain {
	return CustomDomain{ID: d.ID, ZoneID: d.ZoneID, ZoneName: d.ZoneName, Hostname: d.Hostname, Service: d.Service, Environment: d.Environment, CreatedOn: d.CreatedOn}
}

func recordState(rec *dnsRecord) DNSRecord {
	out := DNSRecord{ID: rec.ID, ZoneID: rec.ZoneID, Name: rec.Name, Type: rec.Type, Content: rec.Content, Proxied: rec.Proxied, TTL: rec.TTL}
	if rec.Comment != nil {
		out.Comment = *rec.Comment
	}
	return out
}

// Script returns one Worker's state (secrets redacted).
func (s *Server) Script(name string) (ScriptState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scripts[name]
	if sc == nil {
		return ScriptState{}, false
	}
	return scriptState(sc), true
}

// SecretValue returns the value of a secret_text binding of a Worker's live
// version, for tests checking that a secret arrived intact. The API itself
// never returns secret values.
func (s *Server) SecretValue(script, name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scripts[script]
	if sc == nil {
		return "", false
	}
	v := sc.live()
	if v == nil {
		return "", false
	}
	for _, b := range v.Bindings {
		if b.Type == "secret_text" && b.Name == name {
			return b.Text, true
		}
	}
	return "", false
}

// CustomDomain returns the Custom Domain of a hostname.
func (s *Server) CustomDomain(hostname string) (CustomDomain, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.domains {
		if strings.EqualFold(d.Hostname, hostname) {
			return domainState(d), true
		}
	}
	return CustomDomain{}, false
}

// DNSRecords returns the records named name, in any zone.
func (s *Server) DNSRecords(name string) []DNSRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []DNSRecord
	for _, rec := range s.sortedRecords() {
		if strings.EqualFold(rec.Name, name) {
			out = append(out, recordState(rec))
		}
	}
	return out
}

// Routes returns all Worker routes.
func (s *Server) Routes() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Route
	for _, rt := range s.sortedRoutes() {
		out = append(out, Route{ID: rt.ID, ZoneID: rt.ZoneID, Pattern: rt.Pattern, Script: rt.Script})
	}
	return out
}

// AssetUploads returns the hashes of the asset files received, in the order
// they were first uploaded.
func (s *Server) AssetUploads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.assetUploads...)
}

// ResolveHost says which Worker version Cloudflare's edge would run for a
// request to host and path: a Custom Domain wins; otherwise the most
// specific route of the hostname's zone, provided a proxied DNS record
// brings the hostname's traffic to Cloudflare. It implements edge.Resolver.
func (s *Server) ResolveHost(host, path string) (edge.Site, bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if path == "" {
		path = "/"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.domains {
		if d.Hostname == host {
			return s.site(d.Service, d.CreatedOn, "custom_domain")
		}
	}
	var best *route
	bestLen := -1
	for _, rt := range s.routes {
		z := s.zones[rt.ZoneID]
		if z == nil || !inZone(host, z.Name) {
			continue
		}
		if ok, n := matchRoute(rt.Pattern, host, path); ok && n > bestLen {
			best, bestLen = rt, n
		}
	}
	if best == nil || best.Script == "" || !s.proxied(best.ZoneID, host) {
		return edge.Site{}, false
	}
	return s.site(best.Script, best.CreatedOn, "route")
}

// proxied reports whether a proxied record (exact or wildcard) covers host.
// The caller holds s.mu.
func (s *Server) proxied(zoneID, host string) bool {
	for _, rec := range s.records {
		if rec.ZoneID != zoneID || !rec.Proxied {
			continue
		}
		if rec.Name == host {
			return true
		}
		if rest, ok := strings.CutPrefix(rec.Name, "*."); ok && strings.HasSuffix(host, "."+rest) {
			return true
		}
	}
	return false
}

// site builds the edge's view of a Worker's live version. The caller holds s.mu.
func (s *Server) site(name string, since time.Time, via string) (edge.Site, bool) {
	sc := s.scripts[name]
	if sc == nil {
		return edge.Site{}, false
	}
	v := sc.live()
	if v == nil {
		return edge.Site{}, false
	}
	vars := map[string]string{}
	for _, b := range v.Bindings {
		if b.Type == "plain_text" {
			vars[b.Name] = b.Text
		}
	}
	manifest := v.Assets
	return edge.Site{
		Script:    name,
		VersionID: v.ID,
		Vars:      vars,
		Since:     since,
		Via:       via,
		Asset: func(path string) ([]byte, string, bool) {
			h, ok := manifest[path]
			if !ok {
				return nil, "", false
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			b, ok := s.assetStore[h]
			return b, s.assetTypes[h], ok
		},
	}, true
}
