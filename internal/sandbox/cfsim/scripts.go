package cfsim

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
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
	s.handle("GET "+one, false, s.getScriptContent)
	s.handle("DELETE "+one, false, s.deleteScript)
	s.handle("GET "+one+"/versions", false, s.listVersions)
	s.handle("GET "+one+"/versions/{version_id}", false, s.getVersion)
	s.handle("GET "+one+"/deployments", false, s.listDeployments)
	s.handle("POST "+one+"/deployments", false, s.createDeployment)
	s.handle("PUT "+one+"/secrets", true, s.putSecret)
	s.handle("GET "+one+"/secrets", true, s.listSecrets)
	s.handle("GET "+one+"/secrets/{secret_name}", true, s.getSecret)
	s.handle("DELETE "+one+"/secrets/{secret_name}", true, s.deleteSecret)
	s.handle("POST "+one+"/assets-upload-session", true, s.createAssetSession)
	s.handle("POST /accounts/{account_id}/workers/assets/upload", true, s.uploadAssets)

	s.handle("GET /accounts/{account_id}/workers/domains", false, s.listDomains)
	s.handle("PUT /accounts/{account_id}/workers/domains", false, s.attachDomain)
	s.handle("GET /accounts/{account_id}/workers/domains/{domain_id}", false, s.getDomain)
	s.handle("DELETE /accounts/{account_id}/workers/domains/{domain_id}", false, s.detachDomain)

	s.handle("GET /zones/{zone_id}/dns_records", false, s.listRecords)
	s.handle("POST /zones/{zone_id}/dns_records", false, s.createRecord)
	s.handle("GET /zones/{zone_id}/dns_records/{dns_record_id}", false, s.getRecord)
	s.handle("PUT /zones/{zone_id}/dns_records/{dns_record_id}", false, s.replaceRecord)
	s.handle("PATCH /zones/{zone_id}/dns_records/{dns_record_id}", false, s.patchRecord)
	s.handle("DELETE /zones/{zone_id}/dns_records/{dns_record_id}", false, s.deleteRecord)

	s.handle("GET /zones/{zone_id}/workers/routes", false, s.listRoutes)
	s.handle("POST /zones/{zone_id}/workers/routes", false, s.createRoute)
	s.handle("GET /zones/{zone_id}/workers/routes/{route_id}", false, s.getRoute)
	s.handle("PUT /zones/{zone_id}/workers/routes/{route_id}", false, s.updateRoute)
	s.handle("DELETE /zones/{zone_id}/workers/routes/{route_id}", false, s.deleteRoute)
}

// scriptFor returns the script named in the path, answering 404 for a
// missing one. The caller holds s.mu.
func (s *Server) scriptFor(w http.ResponseWriter, r *http.Request) (*script, bool) {
	sc := s.scripts[r.PathValue("script_name")]
	if sc == nil {
		writeAPIError(w, http.StatusNotFound, codeNotFound, "This Worker does not exist on your account.")
		return nil, false
	}
	return sc, true
}

// Content types a module part may have (the description's encoding list).
var moduleTypes = map[string]bool{
	"application/javascript+module": true,
	"text/javascript+module":        true,
	"application/javascript":        true,
	"text/javascript":               true,
	"text/x-python":                 true,
	"text/x-python-requirement":     true,
	"application/wasm":              true,
	"text/plain":                    true,
	"application/octet-stream":      true,
	"application/source-map":        true,
}

// staticImportRE finds the specifiers of static imports and re-exports
// ("import x from './a.js'", "import './a.js'", "export * from './a.js'").
// A sketch of JavaScript's grammar, enough for bundler output.
var staticImportRE = regexp.MustCompile(`(?m)(?:^|[;\s])(?:import|export)\s*(?:[\w*{}\s,$]+\s*from\s*)?["']([^"']+)["']`)

// partFileName is the part's filename parameter as sent, path included.
func partFileName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

// unresolvedImport checks that every relative import of an ES module names
// a module of the upload, resolved against the importing module's own name
// as Cloudflare does: parts keep their paths ("chunks/a.js"), so a module
// uploaded under its base name alone is not found. Cloudflare runs the
// Worker at upload and refuses it: 400, code 10021, `Uncaught Error: No
// such module "chunks/a.js". imported from "index.js"` (CONFORMANCE.md).
func unresolvedImport(modules []module) string {
	names := map[string]bool{}
	for _, m := range modules {
		names[m.Name] = true
	}
	for _, m := range modules {
		if !esModuleTypes[m.ContentType] || m.ContentType == "text/x-python" {
			continue
		}
		for _, sub := range staticImportRE.FindAllSubmatch(m.Content, -1) {
			spec := string(sub[1])
			if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
				continue // "cloudflare:workers", "node:buffer": built in
			}
			target := path.Clean(path.Join(path.Dir(m.Name), spec))
			if !names[target] {
				return fmt.Sprintf("Uncaught Error: No such module %q.\n  imported from %q", target, m.Name)
			}
		}
	}
	return ""
}

var esModuleTypes = map[string]bool{"application/javascript+module": true, "text/javascript+module": true, "text/x-python": true}

type uploadMetadata struct {
	MainModule         *string           `json:"main_module"`
	BodyPart           *string           `json:"body_part"`
	CompatibilityDate  string            `json:"compatibility_date"`
	CompatibilityFlags []string          `json:"compatibility_flags"`
	Bindings           []json.RawMessage `json:"bindings"`
	KeepBindings       []string          `json:"keep_bindings"`
	KeepAssets         bool              `json:"keep_assets"`
	Tags               []string          `json:"tags"`
	Assets             *struct {
		JWT    string         `json:"jwt"`
		Config map[string]any `json:"config"`
	} `json:"assets"`
}

const maxUploadBytes = 64 << 20

var compatDateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// uploadScript implements PUT .../workers/scripts/{script_name}: the
// multipart upload the description cannot check (NOTES.md). It verifies the
// metadata part, that main_module (or body_part) names a module that was
// sent, the modules' content types and the bindings, then stores a new
// version and deploys it to 100%, as Cloudflare does.
func (s *Server) uploadScript(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	name := r.PathValue("script_name")
	md, modules, err := parseUpload(r)
	if err != nil {
		var ue *uploadError
		if errors.As(err, &ue) {
			writeAPIError(w, http.StatusBadRequest, ue.code, ue.msg)
		} else {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		}
		return
	}

	var main string
	switch {
	case md.MainModule != nil && md.BodyPart != nil:
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "metadata: only one of main_module and body_part may be set")
		return
	case md.MainModule != nil:
		main = *md.MainModule
	case md.BodyPart != nil:
		main = *md.BodyPart
	default:
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "metadata: main_module (module syntax) or body_part (service worker syntax) is required")
		return
	}
	var mainMod *module
	for i := range modules {
		if modules[i].Name == main {
			mainMod = &modules[i]
		}
	}
	if mainMod == nil {
		names := make([]string, 0, len(modules))
		for _, m := range modules {
			names = append(names, m.Name)
		}
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("No such module %q: metadata names it as the main module but the upload holds only %v", main, names))
		return
	}
	if md.MainModule != nil && !esModuleTypes[mainMod.ContentType] {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("main module %q has content type %q; a module-syntax Worker's main module must be application/javascript+module", main, mainMod.ContentType))
		return
	}
	if msg := unresolvedImport(modules); msg != "" {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, msg)
		return
	}
	if md.CompatibilityDate != "" {
		d, err := time.Parse("2006-01-02", md.CompatibilityDate)
		if !compatDateRE.MatchString(md.CompatibilityDate) || err != nil {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("compatibility_date %q is not a date of the form YYYY-MM-DD", md.CompatibilityDate))
			return
		}
		if d.After(s.now().UTC().Add(24 * time.Hour)) {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("Can't set compatibility date in the future: %s", md.CompatibilityDate))
			return
		}
	}
	bindings, err := parseBindings(md)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	if err := checkTags(md.Tags); err != nil {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	if code, msg := s.checkEnvVars(bindings); code != 0 {
		writeAPIError(w, http.StatusBadRequest, code, msg)
		return
	}
	if n := compressedSize(modules); n > s.plan.ScriptBytes {
		writeAPIError(w, http.StatusBadRequest, codeScriptTooLarge, fmt.Sprintf("Your Worker exceeded the size limit of %d bytes after compression: its modules compress to %d bytes.", s.plan.ScriptBytes, n))
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.scripts[name] == nil && len(s.scripts) >= s.plan.Workers {
		writeAPIError(w, http.StatusBadRequest, codeTooManyWorkers, fmt.Sprintf("You have exceeded the limit of %d Workers on your account. Delete unused Workers or upgrade your plan.", s.plan.Workers))
		return
	}
	// Cloudflare refuses a service binding to a Worker that does not exist
	// (error 10143): a Worker's dependencies must be uploaded first.
	for _, b := range bindings {
		if b.Type == "service" && s.scripts[b.Service] == nil {
			writeAPIError(w, http.StatusBadRequest, codeServiceNotFound, fmt.Sprintf("Service binding '%s' references Worker '%s' which was not found.", b.Name, b.Service))
			return
		}
	}
	now := s.now()
	sc := s.scripts[name]
	var prev *version
	if sc != nil {
		prev = sc.live()
	}
	v := &version{
		Source:             "api",
		MainModule:         main,
		Modules:            modules,
		Bindings:           bindings,
		CompatibilityDate:  md.CompatibilityDate,
		CompatibilityFlags: md.CompatibilityFlags,
		CreatedOn:          now,
	}
	if prev != nil && len(md.KeepBindings) > 0 {
		keep := map[string]bool{}
		for _, t := range md.KeepBindings {
			keep[t] = true
		}
		have := map[string]bool{}
		for _, b := range v.Bindings {
			have[b.Name] = true
		}
		for _, b := range prev.Bindings {
			if keep[b.Type] && !have[b.Name] {
				v.Bindings = append(v.Bindings, b)
			}
		}
	}
	switch {
	case md.Assets != nil && md.Assets.JWT != "":
		sess := s.completions[md.Assets.JWT]
		if sess == nil || sess.script != name {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, "assets.jwt is not a completion token of an assets upload session of this Worker")
			return
		}
		v.Assets = sess.manifest
	case md.Assets != nil && md.KeepAssets && prev != nil:
		v.Assets = prev.Assets
	case md.KeepAssets && prev != nil:
		v.Assets = prev.Assets
	}
	for _, b := range v.Bindings {
		if b.Type == "assets" && v.Assets == nil {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("binding %q of type assets needs assets: upload them (assets.jwt) or keep the previous ones (keep_assets)", b.Name))
			return
		}
	}
	v.Etag = etag(v)
	if sc == nil {
		sc = &script{Name: name, Tag: s.newID(), CreatedOn: now}
		s.scripts[name] = sc
	}
	sc.Tags = append([]string{}, md.Tags...)
	s.addVersion(sc, v, "")
	writeResult(w, http.StatusOK, scriptJSON(sc, true))
}

// maxTags is Cloudflare's limit of tags per Worker.
const maxTags = 8

// checkTags applies what Cloudflare documents for Worker tags: at most
// eight, and no "," or "&" (tags are filtered as comma-separated lists).
func checkTags(tags []string) error {
	if len(tags) > maxTags {
		return fmt.Errorf("metadata.tags: %d tags, at most %d are allowed", len(tags), maxTags)
	}
	for _, t := range tags {
		if t == "" || strings.ContainsAny(t, ",&") {
			return fmt.Errorf("metadata.tags: %q is not a valid tag (empty, or contains ',' or '&')", t)
		}
	}
	return nil
}

// addVersion stores v as the script's newest version and deploys it to 100%.
// The caller holds s.mu.
func (s *Server) addVersion(sc *script, v *version, message string) {
	v.ID = s.newUUID()
	v.Number = len(sc.Versions) + 1
	sc.Versions = append(sc.Versions, v)
	sc.ModifiedOn = v.CreatedOn
	sc.Deployments = append(sc.Deployments, &deployment{
		ID: s.newUUID(), CreatedOn: v.CreatedOn, Source: v.Source, Message: message,
		Versions: []deployedVersion{{VersionID: v.ID, Percentage: 100}},
	})
}

type uploadError struct {
	code int
	msg  string
}

func (e *uploadError) Error() string { return e.msg }

func parseUpload(r *http.Request) (*uploadMetadata, []module, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return nil, nil, &uploadError{codeContentType, fmt.Sprintf("Unsupported or unexpected Content Type %q: upload modules as multipart/form-data with a metadata part", r.Header.Get("Content-Type"))}
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, &uploadError{codeContentType, "malformed multipart body: " + err.Error()}
	}
	var (
		md      *uploadMetadata
		modules []module
		seen    = map[string]bool{}
		total   int
	)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, &uploadError{codeContentType, "malformed multipart body: " + err.Error()}
		}
		content, err := io.ReadAll(io.LimitReader(p, maxUploadBytes+1))
		if err != nil {
			return nil, nil, &uploadError{codeContentType, "malformed multipart body: " + err.Error()}
		}
		total += len(content)
		if total > maxUploadBytes {
			return nil, nil, &uploadError{codeScriptTooLarge, "Script body was too large"}
		}
		if p.FormName() == "metadata" && p.FileName() == "" {
			if md != nil {
				return nil, nil, errors.New("more than one metadata part")
			}
			var m uploadMetadata
			if err := json.Unmarshal(content, &m); err != nil {
				return nil, nil, fmt.Errorf("metadata part is not valid JSON metadata: %v", err)
			}
			md = &m
			continue
		}
		// Not p.FileName(): Go keeps only the base name, and Cloudflare
		// keeps the whole path ("lib/status.js"), which imports resolve to.
		name := partFileName(p)
		if name == "" {
			name = p.FormName()
		}
		if name == "" {
			return nil, nil, errors.New("a module part has neither a name nor a filename")
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("module %q was sent twice", name)
		}
		seen[name] = true
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if !moduleTypes[ct] {
			return nil, nil, fmt.Errorf("module %q has unsupported content type %q", name, p.Header.Get("Content-Type"))
		}
		modules = append(modules, module{Name: name, ContentType: ct, Content: content})
	}
	if md == nil {
		return nil, nil, errors.New("missing metadata part: a multipart upload needs a JSON part named \"metadata\"")
	}
	if len(modules) == 0 {
		return nil, nil, errors.New("no modules: at least one module part is required")
	}
	return md, modules, nil
}

// bindingFields lists, per binding type the simulator knows, the fields a
// binding of that type must carry (as strings unless noted).
var bindingFields = map[string][]string{
	"plain_text":               {"text"},
	"secret_text":              {"text"},
	"service":                  {"service"},
	"json":                     {}, // "json" may be any JSON value; checked below
	"assets":                   {},
	"kv_namespace":             {"namespace_id"},
	"r2_bucket":                {"bucket_name"},
	"d1":                       {},
	"durable_object_namespace": {"class_name"},
	"queue":                    {"queue_name"},
	"analytics_engine":         {"dataset"},
	"hyperdrive":               {"id"},
	"ai":                       {},
	"browser":                  {},
	"version_metadata":         {},
	"vectorize":                {"index_name"},
	"mtls_certificate":         {"certificate_id"},
	"dispatch_namespace":       {"namespace"},
	"send_email":               {},
	"secrets_store_secret":     {"store_id", "secret_name"},
	"workflow":                 {"workflow_name"},
	"inherit":                  {},
}

// compressedSize is how much a Worker's modules weigh gzipped, which is
// what the plan's size limit counts.
func compressedSize(modules []module) int {
	var n countWriter
	zw := gzip.NewWriter(&n)
	for _, m := range modules {
		_, _ = zw.Write(m.Content)
	}
	_ = zw.Close()
	return int(n)
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// checkEnvVars applies the plan's limits on environment variables and
// secrets (plain_text, secret_text and json bindings): how many one Worker
// has, and the size of each value.
func (s *Server) checkEnvVars(bindings []binding) (code int, msg string) {
	n := 0
	for _, b := range bindings {
		var size int
		switch b.Type {
		case "plain_text", "secret_text":
			size = len(b.Text)
		case "json":
			raw, _ := json.Marshal(b.raw["json"])
			size = len(raw)
		default:
			continue
		}
		n++
		if size > s.plan.EnvVarBytes {
			return codeEnvVarTooLarge, fmt.Sprintf("binding %q: environment variable or secret is %d bytes, over the limit of %d", b.Name, size, s.plan.EnvVarBytes)
		}
	}
	if n > s.plan.EnvVars {
		return codeTooManyEnvVars, fmt.Sprintf("%d environment variables and secrets, over the limit of %d per Worker", n, s.plan.EnvVars)
	}
	return 0, ""
}

func parseBindings(md *uploadMetadata) ([]binding, error) {
	var out []binding
	names := map[string]bool{}
	for i, raw := range md.Bindings {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return nil, fmt.Errorf("metadata.bindings[%d] is not an object", i)
		}
		name, _ := m["name"].(string)
		typ, _ := m["type"].(string)
		if name == "" || typ == "" {
			return nil, fmt.Errorf("metadata.bindings[%d]: name and type are required strings", i)
		}
		if names[name] {
			return nil, fmt.Errorf("metadata.bindings[%d]: binding name %q is used more than once", i, name)
		}
		names[name] = true
		fields, known := bindingFields[typ]
		if !known {
			return nil, fmt.Errorf("metadata.bindings[%d] (%s): unknown binding type %q", i, name, typ)
		}
		for _, f := range fields {
			if v, ok := m[f].(string); !ok || v == "" {
				return nil, fmt.Errorf("metadata.bindings[%d] (%s): binding of type %s needs a non-empty string %q", i, name, typ, f)
			}
		}
		if typ == "json" {
			if _, ok := m["json"]; !ok {
				return nil, fmt.Errorf("metadata.bindings[%d] (%s): binding of type json needs \"json\"", i, name)
			}
		}
		if typ == "d1" && m["id"] == nil && m["database_id"] == nil {
			return nil, fmt.Errorf("metadata.bindings[%d] (%s): binding of type d1 needs \"database_id\"", i, name)
		}
		if typ == "assets" && md.Assets == nil && !md.KeepAssets {
			return nil, fmt.Errorf("metadata.bindings[%d] (%s): an assets binding needs metadata.assets", i, name)
		}
		b := binding{Type: typ, Name: name, raw: m}
		b.Text, _ = m["text"].(string)
		b.Service, _ = m["service"].(string)
		b.Environment, _ = m["environment"].(string)
		b.Entrypoint, _ = m["entrypoint"].(string)
		out = append(out, b)
	}
	return out, nil
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
func (s *Server) getScriptContent(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scriptFor(w, r)
	if !ok {
		return
	}
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

func (s *Server) deleteScript(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scriptFor(w, r)
	if !ok {
		return
	}
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

func versionShort(v *version) map[string]any {
	return map[string]any{
		"id":     v.ID,
		"number": v.Number,
		"metadata": map[string]any{
			"author_email": "deploybot@example.com",
			"author_id":    "0123456789abcdef0123456789abcdef",
			"created_on":   timestamp(v.CreatedOn),
			"modified_on":  timestamp(v.CreatedOn),
			"source":       v.Source,
			"hasPreview":   false,
		},
	}
}

// bindingJSON is a binding as the API shows it: secret values never leave.
func bindingJSON(b binding) map[string]any {
	out := map[string]any{}
	for k, v := range b.raw {
		out[k] = v
	}
	if b.Type == "secret_text" {
		delete(out, "text")
	}
	out["name"], out["type"] = b.Name, b.Type
	return out
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	page, perPage, ok := pageParams(w, r, 10, 100)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scriptFor(w, r)
	if !ok {
		return
	}
	all := make([]map[string]any, 0, len(sc.Versions))
	for i := len(sc.Versions) - 1; i >= 0; i-- {
		all = append(all, versionShort(sc.Versions[i]))
	}
	if r.URL.Query().Get("deployable") == "true" {
		// "Ignores pagination."
		writeList(w, map[string]any{"items": all}, &resultInfo{Page: 1, PerPage: len(all), Count: len(all), TotalCount: len(all), TotalPages: 1})
		return
	}
	items, info := paginate(all, page, perPage)
	writeList(w, map[string]any{"items": items}, info)
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scriptFor(w, r)
	if !ok {
		return
	}
	v := sc.version(r.PathValue("version_id"))
	if v == nil {
		writeAPIError(w, http.StatusNotFound, codeNotFound, "Version not found.")
		return
	}
	out := versionShort(v)
	bs := make([]map[string]any, 0, len(v.Bindings))
	for _, b := range v.Bindings {
		bs = append(bs, bindingJSON(b))
	}
	flags := v.CompatibilityFlags
	if flags == nil {
		flags = []string{}
	}
	out["resources"] = map[string]any{
		"bindings": bs,
		"script": map[string]any{
			"etag":               v.Etag,
			"handlers":           []string{"fetch"},
			"last_deployed_from": "api",
		},
		"script_runtime": map[string]any{
			"compatibility_date":  v.CompatibilityDate,
			"compatibility_flags": flags,
			"usage_model":         "bundled",
		},
	}
	writeResult(w, http.StatusOK, out)
}

func deploymentJSON(d *deployment) map[string]any {
	out := map[string]any{
		"id":           d.ID,
		"created_on":   timestamp(d.CreatedOn),
		"source":       d.Source,
		"strategy":     "percentage",
		"author_email": "deploybot@example.com",
		"versions":     d.Versions,
	}
	if d.Message != "" {
		out["annotations"] = map[string]any{"workers/message": d.Message}
	}
	return out
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scriptFor(w, r)
	if !ok {
		return
	}
	// "The first deployment in the list is the latest deployment actively
	// serving traffic."
	out := make([]map[string]any, 0, len(sc.Deployments))
	for i := len(sc.Deployments) - 1; i >= 0; i-- {
		out = append(out, deploymentJSON(sc.Deployments[i]))
	}
	writeResult(w, http.StatusOK, map[string]any{"deployments": out})
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	var body struct {
		Strategy    string            `json:"strategy"`
		Versions    []deployedVersion `json:"versions"`
		Annotations struct {
			Message string `json:"workers/message"`
		} `json:"annotations"`
	}
	if err := decodeJSON(r, &body); err != nil {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "request body: "+err.Error())
		return
	}
	if len(body.Versions) == 0 || len(body.Versions) > 2 {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "a deployment has one or two versions")
		return
	}
	sum := 0.0
	for _, v := range body.Versions {
		sum += v.Percentage
	}
	if math.Abs(sum-100) > 0.001 {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("version percentages must add up to 100, not %g", sum))
		return
	}
	if len(body.Versions) == 2 && body.Versions[0].VersionID == body.Versions[1].VersionID {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "a version appears twice in the deployment")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scriptFor(w, r)
	if !ok {
		return
	}
	for _, v := range body.Versions {
		if sc.version(v.VersionID) == nil {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("version %s does not belong to Worker %s", v.VersionID, sc.Name))
			return
		}
	}
	d := &deployment{ID: s.newUUID(), CreatedOn: s.now(), Source: "api", Versions: body.Versions, Message: body.Annotations.Message}
	sc.Deployments = append(sc.Deployments, d)
	sc.ModifiedOn = d.CreatedOn
	writeResult(w, http.StatusOK, deploymentJSON(d))
}

// putSecret implements PUT .../secrets (absent from the description): the
// secret is set on a copy of the live version, which is deployed.
func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	var body struct {
		Name *string `json:"name"`
		Text *string `json:"text"`
		Type *string `json:"type"`
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeAPIError(w, http.StatusBadRequest, codeContentType, "request body must be application/json")
		return
	}
	if err := decodeJSON(r, &body); err != nil {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "request body: "+err.Error())
		return
	}
	switch {
	case body.Name == nil || *body.Name == "":
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, `request body: required field "name" is missing`)
		return
	case body.Type == nil || *body.Type != "secret_text":
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, `request body: field "type" must be "secret_text"`)
		return
	case body.Text == nil:
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, `request body: required field "text" is missing`)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scriptFor(w, r)
	if !ok {
		return
	}
	live := sc.live()
	if live == nil {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "the Worker has no deployed version to add a secret to")
		return
	}
	nv := cloneVersion(live, s.now())
	replaced := false
	for i, b := range nv.Bindings {
		if b.Name != *body.Name {
			continue
		}
		if b.Type != "secret_text" {
			writeAPIError(w, http.StatusBadRequest, codeBindingInUse, fmt.Sprintf("Binding name '%s' already in use by a %s binding", b.Name, b.Type))
			return
		}
		nv.Bindings[i] = secretBinding(*body.Name, *body.Text)
		replaced = true
	}
	if !replaced {
		nv.Bindings = append(nv.Bindings, secretBinding(*body.Name, *body.Text))
	}
	if code, msg := s.checkEnvVars(nv.Bindings); code != 0 {
		writeAPIError(w, http.StatusBadRequest, code, msg)
		return
	}
	s.addVersion(sc, nv, "Secret Change")
	writeResult(w, http.StatusOK, map[string]any{"name": *body.Name, "type": "secret_text"})
}

func secretBinding(name, text string) binding {
	return binding{Type: "secret_text", Name: name, Text: text, raw: map[string]any{"name": name, "type": "secret_text", "text": text}}
}

func cloneVersion(v *version, now time.Time) *version {
	nv := *v
	nv.Bindings = append([]binding(nil), v.Bindings...)
	nv.CreatedOn = now
	nv.Source = "api"
	return &nv
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scriptFor(w, r)
	if !ok {
		return
	}
	out := []map[string]any{}
	if v := sc.live(); v != nil {
		for _, b := range v.Bindings {
			if b.Type == "secret_text" {
				out = append(out, map[string]any{"name": b.Name, "type": b.Type})
			}
		}
	}
	writeResult(w, http.StatusOK, out)
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scriptFor(w, r)
	if !ok {
		return
	}
	if v := sc.live(); v != nil {
		for _, b := range v.Bindings {
			if b.Type == "secret_text" && b.Name == r.PathValue("secret_name") {
				writeResult(w, http.StatusOK, map[string]any{"name": b.Name, "type": b.Type})
				return
			}
		}
	}
	writeAPIError(w, http.StatusNotFound, codeNotFound, "Secret not found.")
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	if !s.checkAccount(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scriptFor(w, r)
	if !ok {
		return
	}
	live := sc.live()
	name := r.PathValue("secret_name")
	if live != nil {
		nv := cloneVersion(live, s.now())
		for i, b := range nv.Bindings {
			if b.Type == "secret_text" && b.Name == name {
				nv.Bindings = append(nv.Bindings[:i], nv.Bindings[i+1:]...)
				s.addVersion(sc, nv, "Secret Change")
				writeResult(w, http.StatusOK, map[string]any{"name": name, "type": "secret_text"})
				return
			}
		}
	}
	writeAPIError(w, http.StatusNotFound, codeNotFound, "Secret not found.")
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
