package cfsim

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

// A Worker's upload (PUT …/workers/scripts/{name}): the multipart body,
// its metadata and modules, bindings, and the account plan's limits.

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
