package cfsim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"
)

type module struct {
	Name        string
	ContentType string
	Content     []byte
}

type binding struct {
	Type        string
	Name        string
	Text        string // plain_text, secret_text
	Service     string // service
	Environment string // service
	Entrypoint  string // service
	raw         map[string]any
}

type version struct {
	ID                 string
	Number             int
	CreatedOn          time.Time
	Source             string
	MainModule         string
	Modules            []module
	Bindings           []binding
	CompatibilityDate  string
	CompatibilityFlags []string
	Assets             map[string]string // path → hash
	Etag               string
}

type deployedVersion struct {
	VersionID  string  `json:"version_id"`
	Percentage float64 `json:"percentage"`
}

type deployment struct {
	ID        string
	CreatedOn time.Time
	Source    string
	Versions  []deployedVersion
	Message   string
}

type script struct {
	Name        string
	Tag         string
	Tags        []string // the owner's labels (metadata.tags), replaced on each upload
	CreatedOn   time.Time
	ModifiedOn  time.Time
	Versions    []*version    // oldest first
	Deployments []*deployment // oldest first
}

func (sc *script) version(id string) *version {
	for _, v := range sc.Versions {
		if v.ID == id {
			return v
		}
	}
	return nil
}

// live is the version receiving most of the traffic, nil without deployments.
func (sc *script) live() *version {
	if len(sc.Deployments) == 0 {
		return nil
	}
	d := sc.Deployments[len(sc.Deployments)-1]
	best := deployedVersion{}
	for _, v := range d.Versions {
		if v.Percentage > best.Percentage {
			best = v
		}
	}
	return sc.version(best.VersionID)
}

func (s *Server) routesInit() {
	const scripts = "/accounts/{account_id}/workers/scripts"
	const one = scripts + "/{script_name}"
	s.handle("GET "+scripts, false, s.listScripts)
	s.handle("PUT "+one, false, s.uploadScript)
	s.handle("GET "+one, false, s.onScript(s.getScriptContent))
	s.handle("DELETE "+one, false, s.onScript(s.deleteScript))
	s.handle("GET "+one+"/versions", false, s.onScript(s.listVersions))
	s.handle("GET "+one+"/versions/{version_id}", false, s.onScript(s.getVersion))
	s.handle("GET "+one+"/deployments", false, s.onScript(s.listDeployments))
	s.handle("POST "+one+"/deployments", false, s.onScript(s.createDeployment))
	s.handle("PUT "+one+"/secrets", true, s.onScript(s.putSecret))
	s.handle("GET "+one+"/secrets", true, s.onScript(s.listSecrets))
	s.handle("GET "+one+"/secrets/{secret_name}", true, s.onScript(s.getSecret))
	s.handle("DELETE "+one+"/secrets/{secret_name}", true, s.onScript(s.deleteSecret))
	s.handle("POST "+one+"/assets-upload-session", true, s.createAssetSession)
	s.handle("POST /accounts/{account_id}/workers/assets/upload", true, s.uploadAssets)

	const domains = "/accounts/{account_id}/workers/domains"
	s.handle("GET "+domains, false, s.onAccount(s.listDomains))
	s.handle("PUT "+domains, false, s.onAccount(s.attachDomain))
	s.handle("GET "+domains+"/{domain_id}", false, s.onDomain(func(w http.ResponseWriter, _ *http.Request, d *customDomain) {
		writeResult(w, http.StatusOK, d.json())
	}))
	s.handle("DELETE "+domains+"/{domain_id}", false, s.onDomain(s.detachDomain))

	const records = "/zones/{zone_id}/dns_records"
	s.handle("GET "+records, false, s.onZone(s.listRecords))
	s.handle("POST "+records, false, s.onZone(s.createRecord))
	s.handle("GET "+records+"/{dns_record_id}", false, s.onRecord(func(w http.ResponseWriter, _ *http.Request, _ *Zone, rec *dnsRecord) {
		writeResult(w, http.StatusOK, rec.json())
	}))
	s.handle("PUT "+records+"/{dns_record_id}", false, s.onRecord(s.replaceRecord))
	s.handle("PATCH "+records+"/{dns_record_id}", false, s.onRecord(s.patchRecord))
	s.handle("DELETE "+records+"/{dns_record_id}", false, s.onRecord(s.deleteRecord))

	const routes = "/zones/{zone_id}/workers/routes"
	s.handle("GET "+routes, false, s.onZone(s.listRoutes))
	s.handle("POST "+routes, false, s.onZone(s.createRoute))
	s.handle("GET "+routes+"/{route_id}", false, s.onRoute(func(w http.ResponseWriter, _ *http.Request, _ *Zone, rt *route) {
		writeResult(w, http.StatusOK, rt.json())
	}))
	s.handle("PUT "+routes+"/{route_id}", false, s.onRoute(s.updateRoute))
	s.handle("DELETE "+routes+"/{route_id}", false, s.onRoute(s.deleteRoute))
}

// onScript wraps a handler of one Worker's subresources with what each of
// them does first: check the account, hold the lock, find the Worker
// (404 when there is none).
func (s *Server) onScript(h func(w http.ResponseWriter, r *http.Request, sc *script)) func(http.ResponseWriter, *http.Request) {
	return s.onAccount(func(w http.ResponseWriter, r *http.Request) {
		if sc, ok := s.scriptFor(w, r); ok {
			h(w, r, sc)
		}
	})
}

// scriptFor returns the script named in the path, answering 404 for a
// missing one. The caller holds s.mu.
func (s *Server) scriptFor(w http.ResponseWriter, r *http.Request) (*script, bool) {
	return lookup(w, s.scripts, r.PathValue("script_name"), nil, codeNotFound, "This Worker does not exist on your account.")
}

func etag(v *version) string {
	h := sha256.New()
	for _, m := range v.Modules {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00", m.Name, m.ContentType, len(m.Content))
		h.Write(m.Content)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// scriptJSON is a script as the API shows it (workers_script-response, plus
// the newer fields the SDK reads).
func scriptJSON(sc *script, upload bool) map[string]any {
	out := map[string]any{
		"id":                  sc.Name,
		"tag":                 sc.Tag,
		"created_on":          timestamp(sc.CreatedOn),
		"modified_on":         timestamp(sc.ModifiedOn),
		"etag":                "",
		"handlers":            []string{"fetch"},
		"logpush":             false,
		"usage_model":         "bundled",
		"has_modules":         true,
		"has_assets":          false,
		"compatibility_date":  "",
		"compatibility_flags": []string{},
		"last_deployed_from":  "api",
		"tags":                sc.Tags,
	}
	if v := sc.live(); v != nil {
		out["etag"] = v.Etag
		out["has_assets"] = v.Assets != nil
		out["compatibility_date"] = v.CompatibilityDate
		if v.CompatibilityFlags != nil {
			out["compatibility_flags"] = v.CompatibilityFlags
		}
	}
	if upload {
		out["startup_time_ms"] = 1
	}
	return out
}

func (s *Server) listScripts(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := sortedKeys(s.scripts)
	out := make([]map[string]any, 0, len(names))
	for _, n := range names {
		out = append(out, scriptJSON(s.scripts[n], false))
	}
	writeResult(w, http.StatusOK, out)
}

// getScriptContent answers with the main module's source, as the API does.
func (s *Server) getScriptContent(w http.ResponseWriter, r *http.Request, sc *script) {
	v := sc.live()
	if v == nil {
		writeAPIError(w, http.StatusNotFound, codeNotFound, "This Worker has no deployed version.")
		return
	}
	for _, m := range v.Modules {
		if m.Name == v.MainModule {
			w.Header().Set("Content-Type", "application/javascript")
			_, _ = w.Write(m.Content)
			return
		}
	}
}

func (s *Server) deleteScript(w http.ResponseWriter, r *http.Request, sc *script) {
	// A Worker that another binds is deleted only with force=true, which
	// leaves the dependants' bindings dangling (CONFORMANCE.md).
	if r.URL.Query().Get("force") != "true" {
		for _, other := range s.scripts {
			if v := other.live(); other != sc && v != nil {
				for _, b := range v.Bindings {
					if b.Type == "service" && b.Service == sc.Name {
						writeAPIError(w, http.StatusBadRequest, codeScriptBound, fmt.Sprintf("Cannot delete Worker '%s': Worker '%s' binds it as the service '%s'. Delete with force=true to delete it anyway.", sc.Name, other.Name, b.Name))
						return
					}
				}
			}
		}
	}
	// Custom domains and routes naming the script are left in place: the bot
	// must remove them itself, and the edge stops serving them.
	delete(s.scripts, sc.Name)
	writeResult(w, http.StatusOK, nil)
}

// pageParams reads page and per_page, answering 400 for malformed ones.
func pageParams(w http.ResponseWriter, r *http.Request, defPer, maxPer int) (page, perPage int, ok bool) {
	page, perPage = 1, defPer
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		dst  *int
	}{{"page", &page}, {"per_page", &perPage}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 1 || f != math.Trunc(f) {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("query parameter %q must be a positive integer, not %q", p.name, v))
			return 0, 0, false
		}
		*p.dst = int(f)
	}
	return page, min(perPage, maxPer), true
}

func paginate[T any](all []T, page, perPage int) ([]T, *resultInfo) {
	total := len(all)
	start := min((page-1)*perPage, total)
	end := min(start+perPage, total)
	items := all[start:end]
	pages := (total + perPage - 1) / perPage
	return items, &resultInfo{Page: page, PerPage: perPage, Count: len(items), TotalCount: total, TotalPages: pages}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
