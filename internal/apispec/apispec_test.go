package apispec

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type recorded struct {
	status int
	msg    string
}

// serve runs one request through a fresh validator of spec and reports what
// the handler behind it saw (route and params) or the error written.
func serve(t *testing.T, spec *Spec, method, target, body string, header http.Header) (rec recorded, route string, params func(string) string) {
	t.Helper()
	v := spec.Validator()
	var seenRoute string
	var seenReq *http.Request
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenRoute = Route(r.Context())
		seenReq = r
		w.WriteHeader(http.StatusNoContent)
	}), func(w http.ResponseWriter, r *http.Request, status int, msg string) {
		rec = recorded{status, msg}
		w.WriteHeader(status)
	})
	var req *http.Request
	if body != "" {
		req = httptest.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	if header == nil {
		req.Header.Set("Authorization", "Bearer test-token")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if rec.status == 0 {
		rec.status = w.Code
	}
	return rec, seenRoute, func(name string) string {
		if seenReq == nil {
			return ""
		}
		return PathParam(seenReq.Context(), name)
	}
}

func TestNeonValidRequestReachesHandler(t *testing.T) {
	spec := MustLoad("neon")
	body := `{"branch":{"name":"pr-7","parent_id":"br-aged-salad-637688","init_source":"schema-only"},
	          "endpoints":[{"type":"read_write"}],
	          "annotation_value":{"deploybot/repo":"o/r"}}`
	rec, route, param := serve(t, spec, "POST", "/projects/shiny-wind-028834/branches", body, nil)
	if rec.status != http.StatusNoContent {
		t.Fatalf("valid create branch rejected: %d %s", rec.status, rec.msg)
	}
	if route != "POST /projects/{project_id}/branches" {
		t.Errorf("route = %q", route)
	}
	if got := param("project_id"); got != "shiny-wind-028834" {
		t.Errorf("project_id = %q", got)
	}

	// The server's base path (/api/v2) is accepted too, as real clients use it.
	rec, route, _ = serve(t, spec, "GET", "/api/v2/projects/p-1/branches/br-1", "", nil)
	if rec.status != http.StatusNoContent || route != "GET /projects/{project_id}/branches/{branch_id}" {
		t.Fatalf("GET branch under /api/v2: %d %s route %q", rec.status, rec.msg, route)
	}
}

func TestNeonInvalidRequestsNameTheField(t *testing.T) {
	spec := MustLoad("neon")
	cases := []struct {
		name, method, target, body string
		status                     int
		want                       []string // substrings of the message
	}{
		{"wrong type", "POST", "/projects/p-1/branches", `{"branch":{"name":5}}`, 400,
			[]string{"request body", "branch.name", "string"}},
		{"unknown enum value", "POST", "/projects/p-1/branches", `{"endpoints":[{"type":"read_maybe"}]}`, 400,
			[]string{"endpoints.0.type", "read_write"}},
		{"missing required body field", "POST", "/projects/p-1/branches/br-1/restore", `{"preserve_under_name":"x"}`, 400,
			[]string{"source_branch_id"}},
		{"missing required query parameter", "GET", "/projects/p-1/connection_uri?role_name=r", "", 400,
			[]string{"database_name"}},
		{"query parameter of wrong type", "GET", "/projects/p-1/connection_uri?role_name=r&database_name=d&pooled=maybe", "", 400,
			[]string{"pooled"}},
		{"path parameter breaking its pattern", "GET", "/projects/P_UPPER/branches", "", 400,
			[]string{"project_id"}},
		{"annotation value not a string", "POST", "/projects/p-1/branches", `{"annotation_value":{"pr":7}}`, 400,
			[]string{"annotation_value.pr"}},
		{"unknown route", "GET", "/projects/p-1/nonsense", "", 404, []string{"no route"}},
		{"unknown method", "PUT", "/projects/p-1/branches", "", 404, []string{"PUT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, route, _ := serve(t, spec, c.method, c.target, c.body, nil)
			if rec.status != c.status {
				t.Fatalf("status = %d (%s), want %d", rec.status, rec.msg, c.status)
			}
			if route != "" {
				t.Errorf("handler ran for an invalid request (route %q)", route)
			}
			t.Logf("%d %s", rec.status, rec.msg)
			for _, w := range c.want {
				if !strings.Contains(rec.msg, w) {
					t.Errorf("message %q does not mention %q", rec.msg, w)
				}
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	spec := MustLoad("neon")
	rec, _, _ := serve(t, spec, "GET", "/projects/p-1/branches", "", http.Header{})
	if rec.status != http.StatusUnauthorized || !strings.Contains(rec.msg, "Bearer") {
		t.Fatalf("no credentials: %d %q, want 401 naming Bearer", rec.status, rec.msg)
	}
	// Any one accepted form is enough, e.g. Neon's console cookie.
	rec, _, _ = serve(t, spec, "GET", "/projects/p-1/branches", "", http.Header{"Cookie": {"zenith=abc"}})
	if rec.status != http.StatusNoContent {
		t.Fatalf("cookie credential rejected: %d %s", rec.status, rec.msg)
	}
}

func TestCounts(t *testing.T) {
	spec := MustLoad("neon")
	v := spec.Validator()
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		func(w http.ResponseWriter, r *http.Request, status int, msg string) { w.WriteHeader(status) })
	for _, target := range []string{"/projects/p-1/branches", "/projects/p-1/branches", "/projects/BAD!/branches", "/nope"} {
		req := httptest.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer x")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	got := v.Counts()
	if got["GET /projects/{project_id}/branches"] != 3 || got[Unmatched] != 1 {
		t.Fatalf("counts = %v", got)
	}
	if n := spec.Validator().Counts(); len(n) != 0 {
		t.Fatalf("a new validator must start with fresh counters, got %v", n)
	}
}

// A tiny GitHub-like description: the contents path's final parameter and
// the check-runs ref may contain '/', which kin-openapi's routers cannot match.
const slashSpec = `{
 "openapi": "3.0.3",
 "info": {"title": "t", "version": "1"},
 "paths": {
  "/repos/{owner}/{repo}": {"get": {"parameters": [
     {"name": "owner", "in": "path", "required": true, "schema": {"type": "string"}},
     {"name": "repo", "in": "path", "required": true, "schema": {"type": "string"}}],
     "responses": {"200": {"description": "ok"}}}},
  "/repos/{owner}/{repo}/contents/{path}": {"put": {"parameters": [
     {"name": "owner", "in": "path", "required": true, "schema": {"type": "string"}},
     {"name": "repo", "in": "path", "required": true, "schema": {"type": "string"}},
     {"name": "path", "in": "path", "required": true, "schema": {"type": "string"}}],
     "requestBody": {"required": true, "content": {"application/json": {"schema": {
        "type": "object", "required": ["message", "content"],
        "properties": {"message": {"type": "string"}, "content": {"type": "string"}}}}}},
     "responses": {"200": {"description": "ok"}}}},
  "/repos/{owner}/{repo}/commits/{ref}/check-runs": {"get": {"parameters": [
     {"name": "owner", "in": "path", "required": true, "schema": {"type": "string"}},
     {"name": "repo", "in": "path", "required": true, "schema": {"type": "string"}},
     {"name": "ref", "in": "path", "required": true, "schema": {"type": "string"}}],
     "responses": {"200": {"description": "ok"}}}},
  "/repos/{owner}/{repo}/compare/{base}...{head}": {"get": {"parameters": [
     {"name": "owner", "in": "path", "required": true, "schema": {"type": "string"}},
     {"name": "repo", "in": "path", "required": true, "schema": {"type": "string"}},
     {"name": "base", "in": "path", "required": true, "schema": {"type": "string"}},
     {"name": "head", "in": "path", "required": true, "schema": {"type": "string"}}],
     "responses": {"200": {"description": "ok"}}}}
 }
}`

func TestSlashContainingParameters(t *testing.T) {
	spec, err := Parse("gh-test", []byte(slashSpec))
	if err != nil {
		t.Fatal(err)
	}
	rec, route, param := serve(t, spec, "PUT", "/repos/octo/app/contents/docs/deep/README.md", `{"message":"m","content":"Yg=="}`, http.Header{})
	if rec.status != http.StatusNoContent {
		t.Fatalf("contents PUT: %d %s", rec.status, rec.msg)
	}
	if route != "PUT /repos/{owner}/{repo}/contents/{path}" || param("path") != "docs/deep/README.md" || param("repo") != "app" {
		t.Fatalf("route %q path %q repo %q", route, param("path"), param("repo"))
	}
	// The body is still validated on such routes.
	rec, _, _ = serve(t, spec, "PUT", "/repos/octo/app/contents/a/b.txt", `{"message":"m"}`, http.Header{})
	if rec.status != http.StatusBadRequest || !strings.Contains(rec.msg, "content") {
		t.Fatalf("missing content: %d %q", rec.status, rec.msg)
	}
	// A slash in the middle, followed by a literal.
	rec, route, param = serve(t, spec, "GET", "/repos/octo/app/commits/feature/x/check-runs", "", http.Header{})
	if rec.status != http.StatusNoContent || param("ref") != "feature/x" {
		t.Fatalf("check-runs: %d %s route %q ref %q", rec.status, rec.msg, route, param("ref"))
	}
	// Mixed segment.
	rec, _, param = serve(t, spec, "GET", "/repos/octo/app/compare/main...feature", "", http.Header{})
	if rec.status != http.StatusNoContent || param("base") != "main" || param("head") != "feature" {
		t.Fatalf("compare: %d %s base %q head %q", rec.status, rec.msg, param("base"), param("head"))
	}
	// Parameters that may not contain '/' do not swallow extra segments.
	rec, _, _ = serve(t, spec, "GET", "/repos/octo/app/extra/segments", "", http.Header{})
	if rec.status != http.StatusNotFound {
		t.Fatalf("/repos/octo/app/extra/segments: %d, want 404", rec.status)
	}
	// An escaped slash stays inside one segment.
	rec, _, param = serve(t, spec, "GET", "/repos/octo/a%2Fb", "", http.Header{})
	if rec.status != http.StatusNoContent || param("repo") != "a/b" {
		t.Fatalf("escaped slash: %d repo %q", rec.status, param("repo"))
	}
}

func TestLoosenRepeats(t *testing.T) {
	const neonIDs = `^([a-z0-9-]{1,60}(,[a-z0-9-]{1,60}){0,99})?$`
	re, err := CompileRegex(neonIDs)
	if err != nil {
		t.Fatalf("CompileRegex(%s): %v", neonIDs, err)
	}
	if !re.MatchString("a-1,b-2") || re.MatchString("A,b") {
		t.Fatal("loosened pattern must keep the character classes")
	}
	if _, err := CompileRegex(`(`); err == nil {
		t.Fatal("a broken pattern must still fail")
	}
}

func TestLoadUnknown(t *testing.T) {
	if _, err := Load("nope"); err == nil || !strings.Contains(err.Error(), "neon") {
		t.Fatalf("Load(nope) = %v, want an error listing the known descriptions", err)
	}
}

func TestCheckResponse(t *testing.T) {
	v := MustLoad("neon").Validator()
	req := httptest.NewRequest("GET", "/projects/p-1/branches/br-1/databases", nil)
	good := `{"databases":[{"id":1,"branch_id":"br-1","name":"neondb","owner_name":"o","created_at":"2025-01-16T21:02:03Z","updated_at":"2025-01-16T21:02:03Z"}]}`
	h := http.Header{"Content-Type": {"application/json"}}
	if err := v.CheckResponse(req, 200, h, []byte(good)); err != nil {
		t.Fatalf("valid answer rejected: %v", err)
	}
	bad := `{"databases":[{"id":"one","branch_id":"br-1","name":"neondb"}]}`
	if err := v.CheckResponse(req, 200, h, []byte(bad)); err == nil {
		t.Fatal("answer with a string id and missing required fields accepted")
	}
}

// Every committed subset must load: a broken one would fail its simulator
// only at run time.
func TestEmbeddedSpecsLoad(t *testing.T) {
	entries, err := specFiles.ReadDir("specs")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		s, err := Load(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(s.routes) == 0 {
			t.Errorf("%s: no routes", name)
		}
		t.Logf("%s: %d routes", name, len(s.routes))
	}
}
