package cfsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	testAccount = "023e105f4ecef8ad9ca31a8372d0c353"
	testZone    = "593c9c94de529bbbfaac7c53ced0447d"
	testToken   = "sim-token"
)

type client struct {
	t   *testing.T
	sim *Server
	h   http.Handler
}

func newClient(t *testing.T, now func() time.Time) *client {
	t.Helper()
	sim, err := New(Options{
		AccountID: testAccount, APIToken: testToken, Zones: []Zone{{ID: testZone, Name: "example.com"}}, Now: now, AssetBucketSize: 2,
		OnResponseViolation: func(method, path string, err error) { t.Errorf("%s %s: %v", method, path, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, sim: sim, h: sim.Handler()}
}

type answer struct {
	Status int
	Body   map[string]any
	Raw    []byte
}

func (a answer) result() map[string]any {
	m, _ := a.Body["result"].(map[string]any)
	return m
}

func (a answer) errMsg() string {
	errs, _ := a.Body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	e, _ := errs[0].(map[string]any)
	return fmt.Sprintf("[%v] %v", e["code"], e["message"])
}

func (c *client) do(method, path, contentType string, body io.Reader, hdr ...string) answer {
	c.t.Helper()
	r := httptest.NewRequest(method, path, body)
	r.Header.Set("Authorization", "Bearer "+testToken)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	a := answer{Status: w.Code, Raw: w.Body.Bytes()}
	_ = json.Unmarshal(a.Raw, &a.Body)
	return a
}

func (c *client) json(method, path string, v any) answer {
	c.t.Helper()
	b, _ := json.Marshal(v)
	return c.do(method, path, "application/json", bytes.NewReader(b))
}

type part struct {
	name, filename, contentType, body string
}

func multipartBody(parts ...part) (string, *bytes.Buffer) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		cd := fmt.Sprintf(`form-data; name=%q`, p.name)
		if p.filename != "" {
			cd += fmt.Sprintf(`; filename=%q`, p.filename)
		}
		h.Set("Content-Disposition", cd)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, _ := mw.CreatePart(h)
		_, _ = io.WriteString(w, p.body)
	}
	_ = mw.Close()
	return mw.FormDataContentType(), &buf
}

// upload sends a module Worker the way cloudflare-go does: a JSON metadata
// part and module parts named "files" with the module name as file name.
func (c *client) upload(name, metadata string, modules ...part) answer {
	c.t.Helper()
	parts := append([]part{{name: "metadata", contentType: "application/json", body: metadata}}, modules...)
	ct, body := multipartBody(parts...)
	return c.do("PUT", "/client/v4/accounts/"+testAccount+"/workers/scripts/"+name, ct, body)
}

var indexJS = part{name: "files", filename: "index.js", contentType: "application/javascript+module", body: "export default {fetch(){return new Response('ok')}}"}

func (c *client) mustUpload(name, commit string) {
	c.t.Helper()
	md := fmt.Sprintf(`{"main_module":"index.js","compatibility_date":"2024-09-23","bindings":[{"type":"plain_text","name":"DEPLOYBOT_COMMIT","text":%q},{"type":"secret_text","name":"DATABASE_URL","text":"postgres://secret@db"}]}`, commit)
	if a := c.upload(name, md, indexJS); a.Status != 200 {
		c.t.Fatalf("upload %s: %d %s", name, a.Status, a.Raw)
	}
}

func TestUploadChecksTheMultipartBody(t *testing.T) {
	c := newClient(t, nil)
	good := `{"main_module":"index.js","bindings":[]}`
	cases := []struct {
		name    string
		ctype   string
		body    func() (string, *bytes.Buffer)
		wantMsg string
	}{
		{"not multipart", "", func() (string, *bytes.Buffer) {
			return "application/javascript", bytes.NewBufferString("addEventListener('fetch', e => {})")
		}, ""},
		{"no metadata part", "", func() (string, *bytes.Buffer) { return multipartBody(indexJS) }, "missing metadata"},
		{"metadata not JSON", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: "{main_module: index.js"}, indexJS)
		}, "not valid JSON"},
		{"main module not sent", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: `{"main_module":"worker.js"}`}, indexJS)
		}, `No such module "worker.js"`},
		{"neither main_module nor body_part", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: `{}`}, indexJS)
		}, "main_module"},
		{"main module not an ES module", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: good}, part{name: "files", filename: "index.js", contentType: "application/octet-stream", body: "x"})
		}, "application/javascript+module"},
		{"module of unknown type", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: good}, indexJS, part{name: "files", filename: "x.png", contentType: "image/png", body: "x"})
		}, "unsupported content type"},
		{"binding without name", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: `{"main_module":"index.js","bindings":[{"type":"plain_text","text":"x"}]}`}, indexJS)
		}, "name and type"},
		{"secret without text", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: `{"main_module":"index.js","bindings":[{"type":"secret_text","name":"S"}]}`}, indexJS)
		}, `"text"`},
		{"service binding without service", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: `{"main_module":"index.js","bindings":[{"type":"service","name":"AUTH"}]}`}, indexJS)
		}, `"service"`},
		{"duplicate binding names", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: `{"main_module":"index.js","bindings":[{"type":"plain_text","name":"A","text":"1"},{"type":"secret_text","name":"A","text":"2"}]}`}, indexJS)
		}, "more than once"},
		{"unknown binding type", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: `{"main_module":"index.js","bindings":[{"type":"telepathy","name":"A"}]}`}, indexJS)
		}, "unknown binding type"},
		{"assets binding without assets", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: `{"main_module":"index.js","bindings":[{"type":"assets","name":"ASSETS"}]}`}, indexJS)
		}, "metadata.assets"},
		{"bad assets token", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: `{"main_module":"index.js","assets":{"jwt":"forged"}}`}, indexJS)
		}, "completion token"},
		{"compatibility date malformed", "", func() (string, *bytes.Buffer) {
			return multipartBody(part{name: "metadata", body: `{"main_module":"index.js","compatibility_date":"23/09/2024"}`}, indexJS)
		}, "YYYY-MM-DD"},
	}
	for _, tc := range cases {
		ct, body := tc.body()
		a := c.do("PUT", "/accounts/"+testAccount+"/workers/scripts/w", ct, body)
		if a.Status != 400 || a.Body["success"] != false || !strings.Contains(a.errMsg(), tc.wantMsg) {
			t.Errorf("%s: %d %s, want 400 mentioning %q", tc.name, a.Status, a.errMsg(), tc.wantMsg)
		}
	}
	if _, ok := c.sim.Script("w"); ok {
		t.Fatal("a rejected upload created the script")
	}

	// The module may also be named by its part name (wrangler's form), and
	// body_part (service-worker syntax) works with a classic script.
	ct, body := multipartBody(part{name: "metadata", body: `{"main_module":"worker.mjs"}`}, part{name: "worker.mjs", contentType: "application/javascript+module", body: "export default {}"})
	if a := c.do("PUT", "/accounts/"+testAccount+"/workers/scripts/w", ct, body); a.Status != 200 {
		t.Fatalf("module named by part name: %d %s", a.Status, a.errMsg())
	}
	ct, body = multipartBody(part{name: "metadata", body: `{"body_part":"script"}`}, part{name: "script", contentType: "application/javascript", body: "addEventListener('fetch', e => {})"})
	if a := c.do("PUT", "/accounts/"+testAccount+"/workers/scripts/sw", ct, body); a.Status != 200 {
		t.Fatalf("service-worker upload: %d %s", a.Status, a.errMsg())
	}
}

func TestUploadRefusesFutureCompatibilityDates(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newClient(t, func() time.Time { return now })
	if a := c.upload("w", `{"main_module":"index.js","compatibility_date":"2025-03-05"}`, indexJS); a.Status != 400 || !strings.Contains(a.errMsg(), "future") {
		t.Fatalf("future date: %d %s", a.Status, a.errMsg())
	}
	if a := c.upload("w", `{"main_module":"index.js","compatibility_date":"2025-03-01"}`, indexJS); a.Status != 200 {
		t.Fatalf("today's date: %d %s", a.Status, a.errMsg())
	}
}

func TestKeepBindingsCarriesSecretsOver(t *testing.T) {
	c := newClient(t, nil)
	c.mustUpload("w", "a")
	if a := c.upload("w", `{"main_module":"index.js","keep_bindings":["secret_text"],"bindings":[{"type":"plain_text","name":"DEPLOYBOT_COMMIT","text":"b"}]}`, indexJS); a.Status != 200 {
		t.Fatalf("upload: %d %s", a.Status, a.errMsg())
	}
	if v, ok := c.sim.SecretValue("w", "DATABASE_URL"); !ok || v != "postgres://secret@db" {
		t.Fatalf("kept secret = %q %v", v, ok)
	}
	if a := c.upload("w", `{"main_module":"index.js","bindings":[]}`, indexJS); a.Status != 200 {
		t.Fatal(a.errMsg())
	}
	if _, ok := c.sim.SecretValue("w", "DATABASE_URL"); ok {
		t.Fatal("an upload without keep_bindings kept the secret")
	}
}

func TestVersionDetailNeverShowsSecretValues(t *testing.T) {
	c := newClient(t, nil)
	c.mustUpload("w", "abc")
	st, _ := c.sim.Script("w")
	a := c.do("GET", "/accounts/"+testAccount+"/workers/scripts/w/versions/"+st.CurrentVersion, "", nil)
	if a.Status != 200 {
		t.Fatalf("%d %s", a.Status, a.Raw)
	}
	if bytes.Contains(a.Raw, []byte("postgres://secret@db")) {
		t.Fatalf("version detail leaks the secret: %s", a.Raw)
	}
	if !bytes.Contains(a.Raw, []byte(`"DATABASE_URL"`)) || !bytes.Contains(a.Raw, []byte(`"abc"`)) {
		t.Fatalf("version detail lacks the bindings: %s", a.Raw)
	}
	state, _ := json.Marshal(c.sim.State())
	if bytes.Contains(state, []byte("postgres://secret@db")) {
		t.Fatal("State() leaks the secret")
	}
}

func TestDeploymentsValidateVersionsAndPercentages(t *testing.T) {
	c := newClient(t, nil)
	c.mustUpload("w", "1")
	c.mustUpload("w", "2")
	c.mustUpload("other", "x")
	st, _ := c.sim.Script("w")
	other, _ := c.sim.Script("other")
	v1, v2 := st.Versions[0].ID, st.Versions[1].ID
	path := "/accounts/" + testAccount + "/workers/scripts/w/deployments"
	bad := []any{
		map[string]any{"strategy": "percentage", "versions": []any{map[string]any{"version_id": v1, "percentage": 50}}},
		map[string]any{"strategy": "percentage", "versions": []any{map[string]any{"version_id": other.CurrentVersion, "percentage": 100}}},
		map[string]any{"strategy": "immediate", "versions": []any{map[string]any{"version_id": v1, "percentage": 100}}},
	}
	for _, b := range bad {
		if a := c.json("POST", path, b); a.Status != 400 {
			t.Errorf("deployment %v accepted: %d", b, a.Status)
		}
	}
	a := c.json("POST", path, map[string]any{"strategy": "percentage", "versions": []any{
		map[string]any{"version_id": v1, "percentage": 90}, map[string]any{"version_id": v2, "percentage": 10}}})
	if a.Status != 200 {
		t.Fatalf("gradual deployment: %d %s", a.Status, a.errMsg())
	}
	if st, _ := c.sim.Script("w"); st.CurrentVersion != v1 {
		t.Fatalf("live version = %s, want the 90%% one %s", st.CurrentVersion, v1)
	}
	list := c.do("GET", path, "", nil)
	deps := list.result()["deployments"].([]any)
	if len(deps) != 3 || deps[0].(map[string]any)["id"] != a.result()["id"] {
		t.Fatalf("deployments are not newest first: %s", list.Raw)
	}
}

func TestVersionsArePaginatedNewestFirst(t *testing.T) {
	c := newClient(t, nil)
	for i := range 5 {
		c.mustUpload("w", fmt.Sprint(i))
	}
	var numbers []float64
	for page := 1; ; page++ {
		a := c.do("GET", fmt.Sprintf("/accounts/%s/workers/scripts/w/versions?page=%d&per_page=2", testAccount, page), "", nil)
		items := a.result()["items"].([]any)
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			numbers = append(numbers, it.(map[string]any)["number"].(float64))
		}
	}
	if fmt.Sprint(numbers) != "[5 4 3 2 1]" {
		t.Fatalf("version numbers = %v", numbers)
	}
}

func TestAssetsSessionProtocol(t *testing.T) {
	c := newClient(t, nil)
	files := map[string]string{"/a.html": "<a>", "/b.css": "b{}", "/c.js": "c()"}
	manifest := map[string]any{}
	for p, content := range files {
		manifest[p] = map[string]any{"hash": hashOf(content), "size": len(content)}
	}
	path := "/accounts/" + testAccount + "/workers/scripts/w/assets-upload-session"
	s := c.json("POST", path, map[string]any{"manifest": manifest})
	if s.Status != 200 {
		t.Fatalf("session: %d %s", s.Status, s.Raw)
	}
	jwt := s.result()["jwt"].(string)
	buckets := s.result()["buckets"].([]any)
	if len(buckets) != 2 { // bucket size 2 for 3 files
		t.Fatalf("buckets = %v", buckets)
	}
	byHash := map[string]string{}
	typeOf := map[string]string{}
	types := map[string]string{"/a.html": "text/html; charset=utf-8", "/b.css": "text/css; charset=utf-8", "/c.js": "application/null"}
	for p, content := range files {
		byHash[hashOf(content)] = content
		typeOf[hashOf(content)] = types[p]
	}
	uploadPath := "/accounts/" + testAccount + "/workers/assets/upload?base64=true"
	// As wrangler sends them: file parts named and filed under the hash,
	// typed with the Content-Type to serve the file with.
	send := func(token string, fields map[string]string) answer {
		var parts []part
		for h, content := range fields {
			parts = append(parts, part{name: h, filename: h, contentType: typeOf[h], body: content})
		}
		ct, body := multipartBody(parts...)
		return c.do("POST", uploadPath, ct, body, "Authorization", "Bearer "+token)
	}
	first := buckets[0].([]any)
	if a := send(testToken, map[string]string{first[0].(string): "x"}); a.Status != 401 {
		t.Errorf("upload with the API token instead of the session's: %d", a.Status)
	}
	if a := send(jwt, map[string]string{hashOf("zzz"): b64("zzz")}); a.Status != 400 {
		t.Errorf("upload of a file outside the manifest: %d", a.Status)
	}
	h0 := first[0].(string)
	if a := send(jwt, map[string]string{h0: b64(byHash[h0] + "extra")}); a.Status != 400 || !strings.Contains(a.errMsg(), "manifest says") {
		t.Errorf("upload with the wrong size: %d %s", a.Status, a.errMsg())
	}
	// A plain form field (what cloudflare-go's own params send) carries no
	// type: Cloudflare would serve the file untyped.
	ct, body := multipartBody(part{name: h0, body: b64(byHash[h0])})
	if a := c.do("POST", uploadPath, ct, body, "Authorization", "Bearer "+jwt); a.Status != 400 || !strings.Contains(a.errMsg(), "Content-Type") {
		t.Errorf("an asset sent as a plain field: %d %s", a.Status, a.errMsg())
	}
	var completion string
	for i, bk := range buckets {
		fields := map[string]string{}
		for _, h := range bk.([]any) {
			fields[h.(string)] = b64(byHash[h.(string)])
		}
		a := send(jwt, fields)
		last := i == len(buckets)-1
		if (last && a.Status != 201) || (!last && a.Status != 202) {
			t.Fatalf("bucket %d: %d %s", i, a.Status, a.Raw)
		}
		if last {
			completion = a.result()["jwt"].(string)
		}
	}
	// Use the completion token in an upload; the edge then serves the files.
	md := fmt.Sprintf(`{"main_module":"index.js","assets":{"jwt":%q},"bindings":[{"type":"assets","name":"ASSETS"}]}`, completion)
	if a := c.upload("w", md, indexJS); a.Status != 200 || a.result()["has_assets"] != true {
		t.Fatalf("upload with assets: %d %s", a.Status, a.Raw)
	}
	// Another Worker cannot use this session's token.
	if a := c.upload("x", fmt.Sprintf(`{"main_module":"index.js","assets":{"jwt":%q}}`, completion), indexJS); a.Status != 400 {
		t.Fatalf("completion token reused by another Worker: %d", a.Status)
	}
	// A new session for the same files needs no upload.
	s2 := c.json("POST", path, map[string]any{"manifest": manifest})
	if b := s2.result()["buckets"].([]any); len(b) != 0 {
		t.Fatalf("second session asks for %v", b)
	}
	if got := c.sim.AssetUploads(); len(got) != 3 {
		t.Fatalf("uploads = %v", got)
	}
}

func hashOf(s string) string { return fmt.Sprintf("%032x", len(s)*7919+int(s[0])) }
func b64(s string) string    { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestDNSSemantics(t *testing.T) {
	c := newClient(t, nil)
	path := "/zones/" + testZone + "/dns_records"
	a := c.json("POST", path, map[string]any{"type": "CNAME", "name": "app", "content": "example.com", "proxied": true, "ttl": 1})
	if a.Status != 200 || a.result()["name"] != "app.example.com" || a.result()["proxiable"] != true {
		t.Fatalf("create: %d %s", a.Status, a.Raw)
	}
	cases := []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"type": "CNAME", "name": "app.example.com", "content": "example.com", "proxied": true, "ttl": 1}, "81058"},
		{map[string]any{"type": "A", "name": "app.example.com", "content": "198.51.100.1", "ttl": 1}, "81053"},
		{map[string]any{"type": "A", "name": "v4", "content": "not-an-ip", "ttl": 1}, "1004"},
		{map[string]any{"type": "TXT", "name": "t", "content": "hello", "proxied": true, "ttl": 1}, "9004"},
		{map[string]any{"type": "NOPE", "name": "t", "content": "hello", "ttl": 1}, "1004"},
	}
	for _, tc := range cases {
		if a := c.json("POST", path, tc.body); a.Status != 400 || !strings.Contains(a.errMsg(), tc.code) {
			t.Errorf("%v: %d %s, want code %s", tc.body, a.Status, a.errMsg(), tc.code)
		}
	}
	// Unknown zone.
	if a := c.json("GET", "/zones/ffffffffffffffffffffffffffffffff/dns_records", nil); a.Status != 400 {
		t.Errorf("unknown zone: %d", a.Status)
	}
	// Filters.
	c.json("POST", path, map[string]any{"type": "A", "name": "api", "content": "198.51.100.2", "ttl": 1})
	list := c.do("GET", path+"?name.startswith=ap&type=A", "", nil)
	items := list.Body["result"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["name"] != "api.example.com" {
		t.Fatalf("filtered list: %s", list.Raw)
	}
}

func TestEdgeResolutionNeedsAProxiedRecordForRoutes(t *testing.T) {
	c := newClient(t, nil)
	c.mustUpload("w", "c0ffee")
	route := c.json("POST", "/zones/"+testZone+"/workers/routes", map[string]any{"pattern": "app.example.com/*", "script": "w"})
	if route.Status != 200 {
		t.Fatalf("route: %d %s", route.Status, route.Raw)
	}
	if _, ok := c.sim.ResolveHost("app.example.com", "/"); ok {
		t.Fatal("a route without a DNS record serves traffic")
	}
	rec := c.json("POST", "/zones/"+testZone+"/dns_records", map[string]any{"type": "CNAME", "name": "app", "content": "example.com", "proxied": false, "ttl": 1})
	if _, ok := c.sim.ResolveHost("app.example.com", "/"); ok {
		t.Fatal("a DNS-only (unproxied) record sends traffic to the Worker")
	}
	id := rec.result()["id"].(string)
	// The description makes PATCH bodies carry type, name and content too.
	if a := c.json("PATCH", "/zones/"+testZone+"/dns_records/"+id, map[string]any{"type": "CNAME", "name": "app", "content": "example.com", "proxied": true}); a.Status != 200 {
		t.Fatalf("patch: %d %s", a.Status, a.Raw)
	}
	site, ok := c.sim.ResolveHost("APP.example.com.", "/x")
	if !ok || site.Script != "w" || site.Vars["DEPLOYBOT_COMMIT"] != "c0ffee" || site.Via != "route" {
		t.Fatalf("site = %+v %v", site, ok)
	}
	if _, secret := site.Vars["DATABASE_URL"]; secret {
		t.Fatal("secrets reach the edge's vars")
	}
	// Duplicate pattern.
	if a := c.json("POST", "/zones/"+testZone+"/workers/routes", map[string]any{"pattern": "app.example.com/*", "script": "w"}); a.Status != 409 {
		t.Fatalf("duplicate route: %d", a.Status)
	}
	// Patterns outside the zone.
	if a := c.json("POST", "/zones/"+testZone+"/workers/routes", map[string]any{"pattern": "evil.org/*", "script": "w"}); a.Status != 400 {
		t.Fatalf("route outside the zone: %d", a.Status)
	}
	// Deleting the script stops the edge.
	c.do("DELETE", "/accounts/"+testAccount+"/workers/scripts/w", "", nil)
	if _, ok := c.sim.ResolveHost("app.example.com", "/"); ok {
		t.Fatal("a deleted Worker still serves")
	}
}

func TestStateCountsRequestsPerRoute(t *testing.T) {
	c := newClient(t, nil)
	c.mustUpload("w", "1")
	c.json("PUT", "/accounts/"+testAccount+"/workers/scripts/w/secrets", map[string]any{"name": "K", "text": "v", "type": "secret_text"})
	c.do("GET", "/accounts/"+testAccount+"/workers/nope", "", nil)
	st := c.sim.Snapshot()
	for route, want := range map[string]int{
		"PUT /accounts/{account_id}/workers/scripts/{script_name}":         1,
		"PUT /accounts/{account_id}/workers/scripts/{script_name}/secrets": 1,
		"unmatched": 1,
	} {
		if st.Requests[route] != want {
			t.Errorf("requests[%q] = %d, want %d (all: %v)", route, st.Requests[route], want, st.Requests)
		}
	}
	if len(st.Scripts) != 1 || len(st.Scripts[0].Versions) != 2 {
		t.Fatalf("scripts = %+v", st.Scripts)
	}
}

// TestAnswersHaveTheRecordedShapes compares the simulator's answers with
// responses recorded in cloudflare-go's tests (testdata/recorded, see
// SOURCES.md): every key of a recorded answer, recursively, must be present
// in the simulator's with the same JSON kind.
func TestAnswersHaveTheRecordedShapes(t *testing.T) {
	c := newClient(t, nil)
	acct := "/accounts/" + testAccount
	zone := "/zones/" + testZone
	c.mustUpload("foo", "1")

	rec := c.json("POST", zone+"/dns_records", map[string]any{"type": "A", "name": "xn--138h", "content": "198.51.100.4", "ttl": 120, "comment": "This is a comment", "tags": []string{"tag1:x"}})
	recID, _ := rec.result()["id"].(string)
	route := c.json("POST", zone+"/workers/routes", map[string]any{"pattern": "app1.example.com/*", "script": "foo"})
	routeID, _ := route.result()["id"].(string)
	domain := c.json("PUT", acct+"/workers/domains", map[string]any{"zone_id": testZone, "hostname": "foo.example.com", "service": "foo", "environment": "production"})
	domainID, _ := domain.result()["id"].(string)
	secret := c.json("PUT", acct+"/workers/scripts/foo/secrets", map[string]any{"name": "my-secret", "text": "v", "type": "secret_text"})
	c.mustUpload("doomed", "1")
	st, _ := c.sim.Script("foo")

	checks := []struct {
		file string
		got  answer
		// path inside both bodies to compare (e.g. a binding of one type).
		pick func(v any) any
	}{
		{"dns__TestCreateDNSRecord.json", rec, nil},
		{"dns__TestGetDNSRecord.json", c.do("GET", zone+"/dns_records/"+recID, "", nil), nil},
		{"dns__TestListDNSRecords.json", c.do("GET", zone+"/dns_records", "", nil), nil},
		{"dns_list_page_1.json", c.do("GET", zone+"/dns_records?per_page=3", "", nil), nil},
		{"dns__TestUpdateDNSRecord.json", c.json("PUT", zone+"/dns_records/"+recID, map[string]any{"type": "A", "name": "example.com", "content": "198.51.100.4", "ttl": 120}), nil},
		{"dns__TestUpdateDNSRecord_ClearComment.json", c.json("PATCH", zone+"/dns_records/"+recID, map[string]any{"type": "A", "name": "example.com", "content": "198.51.100.4", "comment": "", "tags": []string{}}), nil},
		{"workers__toplevel__createWorkerRouteResponse.json", route, nil},
		{"workers__toplevel__getRouteResponseData.json", c.do("GET", zone+"/workers/routes/"+routeID, "", nil), nil},
		{"workers__toplevel__updateWorkerRouteEntResponse.json", c.json("PUT", zone+"/workers/routes/"+routeID, map[string]any{"pattern": "app3.example.com/*", "script": "foo"}), nil},
		{"workers__toplevel__listWorkerRouteResponse.json", c.do("GET", zone+"/workers/routes", "", nil), nil},
		{"workers__toplevel__listWorkersResponseData.json", c.do("GET", acct+"/workers/scripts", "", nil), nil},
		{"workers__toplevel__deleteWorkerResponseData.json", c.do("DELETE", acct+"/workers/scripts/doomed", "", nil), nil},
		{"workers_domain__TestWorkersDomain_AttachDomain.json", domain, nil},
		{"workers_domain__TestWorkersDomain_GetDomain.json", c.do("GET", acct+"/workers/domains/"+domainID, "", nil), nil},
		{"workers_domain__TestWorkersDomain_ListDomains.json", c.do("GET", acct+"/workers/domains", "", nil), nil},
		{"workers_secrets__TestSetWorkersSecret__response.json", secret, nil},
		{"workers_secrets__TestListWorkersSecret__response.json", c.do("GET", acct+"/workers/scripts/foo/secrets", "", nil), nil},
		{"workers_secrets__TestDeleteWorkersSecret__response.json", c.do("DELETE", acct+"/workers/scripts/foo/secrets/my-secret", "", nil), nil},
		{"workers_domain__TestWorkersDomain_DetachDomain.json", c.do("DELETE", acct+"/workers/domains/"+domainID, "", nil), nil},
		{"dns__TestDeleteDNSRecord.json", c.do("DELETE", zone+"/dns_records/"+recID, "", nil), nil},
		{"workers__toplevel__listBindingsResponseData.json", c.do("GET", acct+"/workers/scripts/foo/versions/"+st.CurrentVersion, "", nil), bindingsByType},
	}
	for _, ck := range checks {
		raw, err := os.ReadFile(filepath.Join("testdata", "recorded", ck.file))
		if err != nil {
			t.Fatal(err)
		}
		var want any
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("%s: %v", ck.file, err)
		}
		if ck.got.Status != 200 {
			t.Errorf("%s: simulator answered %d %s", ck.file, ck.got.Status, ck.got.Raw)
			continue
		}
		var got any = ck.got.Body
		if ck.pick != nil {
			want, got = ck.pick(want), ck.pick(got)
		}
		for _, problem := range shapeDiff("", want, got) {
			t.Errorf("%s: %s", ck.file, problem)
		}
	}
}

// bindingsByType keys the bindings of the types the simulator supports by
// type, from either the recorded bindings list or a version detail.
func bindingsByType(v any) any {
	m, _ := v.(map[string]any)
	list, ok := m["result"].([]any)
	if !ok {
		res, _ := m["result"].(map[string]any)
		resources, _ := res["resources"].(map[string]any)
		list, _ = resources["bindings"].([]any)
	}
	out := map[string]any{}
	for _, b := range list {
		bm, _ := b.(map[string]any)
		if t, _ := bm["type"].(string); t == "plain_text" || t == "secret_text" {
			out[t] = bm
		}
	}
	return out
}

// shapeDiff lists the keys of want (recursively; arrays by their first
// element) missing from got or holding another JSON kind there. A key
// recorded as null may be absent.
func shapeDiff(path string, want, got any) []string {
	var out []string
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %T", path, got)}
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok && w[k] == nil {
				continue // recorded as null: absent says the same
			}
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			out = append(out, shapeDiff(path+"."+k, w[k], gv)...)
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an array, got %T", path, got)}
		}
		if len(w) > 0 && len(g) > 0 {
			out = append(out, shapeDiff(path+"[0]", w[0], g[0])...)
		}
	case nil:
		// null in the recording: any value (or null) is fine.
	default:
		if got != nil && fmt.Sprintf("%T", want) != fmt.Sprintf("%T", got) {
			out = append(out, fmt.Sprintf("%s: want a %T, got %T", path, want, got))
		}
	}
	return out
}

func TestCredentials(t *testing.T) {
	c := newClient(t, nil)
	path := "/accounts/" + testAccount + "/workers/scripts"
	for _, tc := range []struct {
		hdr  []string
		want int
	}{
		{[]string{"Authorization", ""}, 401},
		{[]string{"Authorization", "Bearer not-the-token"}, 403},
		{[]string{"Authorization", "", "X-Auth-Email", "a@example.com", "X-Auth-Key", "k"}, 403},
		{nil, 200},
	} {
		if a := c.do("GET", path, "", nil, tc.hdr...); a.Status != tc.want {
			t.Errorf("%v: %d, want %d", tc.hdr, a.Status, tc.want)
		}
	}
	// Another account's resources are out of reach.
	if a := c.do("GET", "/accounts/ffffffffffffffffffffffffffffffff/workers/scripts", "", nil); a.Status != 403 {
		t.Errorf("other account: %d", a.Status)
	}
	// Routes missing from the description check credentials too.
	if a := c.do("GET", path+"/w/secrets", "", nil, "Authorization", ""); a.Status != 401 {
		t.Errorf("secrets without a token: %d", a.Status)
	}
}

// TestServiceBindingRules: an upload bound to a Worker that does not exist
// is refused with 10143, and a Worker another binds is deleted only with
// force=true (CONFORMANCE.md).
func TestServiceBindingRules(t *testing.T) {
	c := newClient(t, nil)
	web := `{"main_module":"index.js","compatibility_date":"2024-09-23","bindings":[{"type":"service","name":"API","service":"api"}]}`
	if a := c.upload("web", web, indexJS); a.Status != 400 || !strings.Contains(string(a.Raw), "10143") || !strings.Contains(a.errMsg(), "'api' which was not found") {
		t.Fatalf("binding a missing Worker: %d %s", a.Status, a.Raw)
	}
	c.mustUpload("api", "abc")
	if a := c.upload("web", web, indexJS); a.Status != 200 {
		t.Fatalf("binding an existing Worker: %d %s", a.Status, a.Raw)
	}
	path := "/client/v4/accounts/" + testAccount + "/workers/scripts/api"
	if a := c.do("DELETE", path, "", nil); a.Status != 400 || !strings.Contains(a.errMsg(), "binds it") {
		t.Fatalf("deleting a bound Worker without force: %d %s", a.Status, a.Raw)
	}
	if a := c.do("DELETE", path+"?force=true", "", nil); a.Status != 200 {
		t.Fatalf("deleting a bound Worker with force: %d %s", a.Status, a.Raw)
	}
}

// TestImportsResolveToPartNames: a relative import resolves against the
// importing part's own name, whole paths kept, as Cloudflare resolves it
// when it runs the Worker at upload (CONFORMANCE.md).
func TestImportsResolveToPartNames(t *testing.T) {
	c := newClient(t, nil)
	md := `{"main_module":"index.js","compatibility_date":"2024-09-23"}`
	main := part{name: "files", filename: "index.js", contentType: "application/javascript+module",
		body: "import { a } from \"./chunks/a.js\";\nimport \"cloudflare:workers\";\nexport default {fetch(){return new Response(a)}}"}
	chunk := func(filename string) part {
		return part{name: "files", filename: filename, contentType: "application/javascript+module", body: "export * from '../util/b.js'; export const a = 'a';"}
	}
	util := part{name: "files", filename: "util/b.js", contentType: "application/javascript+module", body: "export const b = 1;"}
	if a := c.upload("w", md, main, chunk("a.js"), util); a.Status != 400 || !strings.Contains(a.errMsg(), `No such module "chunks/a.js"`) || !strings.Contains(a.errMsg(), `imported from "index.js"`) {
		t.Fatalf("a part uploaded under its base name: %d %s", a.Status, a.Raw)
	}
	if a := c.upload("w", md, main, chunk("chunks/a.js")); a.Status != 400 || !strings.Contains(a.errMsg(), `No such module "util/b.js"`) {
		t.Fatalf("a missing module imported from a subfolder: %d %s", a.Status, a.Raw)
	}
	if a := c.upload("w", md, main, chunk("chunks/a.js"), util); a.Status != 200 {
		t.Fatalf("parts named by their paths: %d %s", a.Status, a.Raw)
	}
}
