package cloudflare_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/sandbox/cfsim"
	"github.com/revelations-studio/deploybot/internal/sandbox/edge"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
)

const (
	accountID = "023e105f4ecef8ad9ca31a8372d0c353"
	zoneID    = "593c9c94de529bbbfaac7c53ced0447d"
	zoneName  = "revelations.studio"
	token     = "cf-test-token-5c1e7"
)

type env struct {
	sim  *cfsim.Server
	api  *httptest.Server
	cf   *cloudflare.Client
	edge *edge.Server
}

func newEnv(t *testing.T, options ...func(*cfsim.Options)) *env {
	t.Helper()
	opts := cfsim.Options{
		AccountID: accountID,
		APIToken:  token,
		Zones:     []cfsim.Zone{{ID: zoneID, Name: zoneName}},
		Seed:      1,
		OnResponseViolation: func(method, path string, err error) {
			t.Errorf("simulator answer to %s %s: %v", method, path, err)
		},
	}
	for _, o := range options {
		o(&opts)
	}
	sim, err := cfsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(sim.Handler())
	t.Cleanup(api.Close)
	cf, err := cloudflare.New(cloudflare.Options{
		AccountID:      accountID,
		APIToken:       token,
		BaseURL:        api.URL + "/client/v4/",
		HTTPClient:     api.Client(),
		RetryBaseDelay: 5 * time.Millisecond,
		RetryMaxDelay:  20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// webScript binds this Worker, and Cloudflare refuses a binding to a
	// Worker that does not exist.
	if _, err := cf.UploadWorker(context.Background(), cloudflare.Script{Name: boundWorker, MainModule: "index.js",
		Modules: []cloudflare.Module{{Name: "index.js", Content: []byte(`export default { fetch() { return new Response("auth") } }`)}}}); err != nil {
		t.Fatal(err)
	}
	return &env{sim: sim, api: api, cf: cf, edge: edge.New(edge.Options{Resolver: sim})}
}

// boundWorker is the Worker webScript's AUTH service binding names.
const boundWorker = "auth-worker-preview-7"

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// visit asks the edge for https://host/path as a browser would.
func (e *env) visit(t *testing.T, host, path string) (int, http.Header, string) {
	t.Helper()
	r := httptest.NewRequest("GET", "https://"+host+path, nil)
	w := httptest.NewRecorder()
	e.edge.ServeHTTP(w, r)
	return w.Code, w.Header(), w.Body.String()
}

func webScript(name, commit string) cloudflare.Script {
	return cloudflare.Script{
		Name:       name,
		MainModule: "index.js",
		Modules: []cloudflare.Module{
			{Name: "index.js", Content: []byte(`import {h} from "./lib.js"; export default { fetch() { return new Response(h()) } }`)},
			{Name: "lib.js", Content: []byte(`export function h() { return "hi" }`)},
		},
		CompatibilityDate:  "2024-09-23",
		CompatibilityFlags: []string{"nodejs_compat"},
		Vars:               map[string]string{"DEPLOYBOT_COMMIT": commit, "PUBLIC_ENV": "preview"},
		Secrets:            map[string]string{"DATABASE_URL": "postgres://u:hunter2-" + commit + "@db/pr", "BETTER_AUTH_SECRET": "s3cr3t-" + commit},
		ServiceBindings:    []cloudflare.ServiceBinding{{Binding: "AUTH", Service: boundWorker}},
	}
}

func TestUploadWorkerTwiceKeepsOneScriptWithNewVersions(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	v1, err := e.cf.UploadWorker(c, webScript("codex-web-preview-7", "aaa111"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := e.cf.UploadWorker(c, webScript("codex-web-preview-7", "aaa111"))
	if err != nil {
		t.Fatal(err)
	}
	if v1 == "" || v2 == "" || v1 == v2 {
		t.Fatalf("versions %q then %q: want two distinct ids", v1, v2)
	}
	scripts, err := e.cf.ListScripts(c, "codex-web-preview-")
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) != 1 || scripts[0].Name != "codex-web-preview-7" {
		t.Fatalf("scripts = %+v, want just codex-web-preview-7", scripts)
	}
	versions, err := e.cf.ListVersions(c, "codex-web-preview-7")
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 2 || versions[0].ID != v2 || versions[1].ID != v1 || versions[0].Number != 2 {
		t.Fatalf("versions = %+v, want [%s (2), %s (1)]", versions, v2, v1)
	}
	st, _ := e.sim.Script("codex-web-preview-7")
	if st.CurrentVersion != v2 || st.MainModule != "index.js" || strings.Join(st.Modules, ",") != "index.js,lib.js" {
		t.Fatalf("simulated script = %+v", st)
	}
	d, err := e.cf.CurrentDeployment(c, "codex-web-preview-7")
	if err != nil || d.VersionID() != v2 {
		t.Fatalf("current deployment = %+v, %v; want version %s", d, err, v2)
	}
}

// TestTagsMarkTheBotsWorkers: tags sent with an upload come back when the
// Workers are listed, are replaced by the next upload, and a tag Cloudflare
// would refuse is refused with the reason.
func TestTagsMarkTheBotsWorkers(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	s := webScript("codex-web-preview-9", "ccc333")
	s.Tags = []string{"deploybot", "deploybot-repo:acme/app", "deploybot-pr:9"}
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cf.UploadWorker(c, webScript("someone-elses-worker", "ddd444")); err != nil {
		t.Fatal(err)
	}
	scripts, err := e.cf.ListScripts(c, "")
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, sc := range scripts {
		tags[sc.Name] = strings.Join(sc.Tags, " ")
	}
	if tags["codex-web-preview-9"] != "deploybot deploybot-repo:acme/app deploybot-pr:9" || tags["someone-elses-worker"] != "" {
		t.Fatalf("listed tags %q", tags)
	}
	s.Tags = []string{"deploybot"}
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.sim.Script("codex-web-preview-9"); strings.Join(st.Tags, " ") != "deploybot" {
		t.Errorf("tags after a second upload: %q, want them replaced", st.Tags)
	}
	s.Tags = []string{"a,b"}
	if _, err := e.cf.UploadWorker(c, s); err == nil || !strings.Contains(err.Error(), `"a,b" is not a valid tag`) {
		t.Errorf("a tag with a comma: %v", err)
	}
}

func TestSecretsLandAsSecretTextAndStayOutOfStateAndErrors(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	s := webScript("codex-web-preview-8", "bbb222")
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	st, _ := e.sim.Script("codex-web-preview-8")
	kinds := map[string]cfsim.Binding{}
	for _, b := range st.Bindings {
		kinds[b.Name] = b
	}
	for name, want := range s.Secrets {
		b := kinds[name]
		if b.Type != "secret_text" || b.Text != cfsim.Redacted {
			t.Errorf("binding %s = %+v, want secret_text shown as %s", name, b, cfsim.Redacted)
		}
		if got, _ := e.sim.SecretValue("codex-web-preview-8", name); got != want {
			t.Errorf("secret %s arrived as %q", name, got)
		}
	}
	if b := kinds["DEPLOYBOT_COMMIT"]; b.Type != "plain_text" || b.Text != "bbb222" {
		t.Errorf("var binding = %+v", b)
	}
	if b := kinds["AUTH"]; b.Type != "service" || b.Service != "auth-worker-preview-7" {
		t.Errorf("service binding = %+v", b)
	}
	state, _ := json.Marshal(e.sim.State())
	for _, v := range s.Secrets {
		if strings.Contains(string(state), v) {
			t.Errorf("State() contains secret value %q", v)
		}
		if strings.Contains(printed(s), v) {
			t.Errorf("Script's string form contains secret value %q", v)
		}
	}

	// A rejected upload (compatibility date in the future) names the problem
	// but neither the secrets nor the token.
	s.CompatibilityDate = "2999-01-01"
	_, err := e.cf.UploadWorker(c, s)
	var ae *cloudflare.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "compatibility date") {
		t.Fatalf("upload with future date: %v", err)
	}
	for _, v := range append([]string{token}, s.Secrets["DATABASE_URL"], s.Secrets["BETTER_AUTH_SECRET"]) {
		if strings.Contains(err.Error(), v) || strings.Contains(printed(err), v) {
			t.Errorf("error %q leaks %q", err, v)
		}
	}

	// Rotating one secret creates a new live version carrying it.
	if err := e.cf.PutSecret(c, "codex-web-preview-8", "STRIPE_SECRET_KEY", "sk_test_123"); err != nil {
		t.Fatal(err)
	}
	names, err := e.cf.ListSecrets(c, "codex-web-preview-8")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "BETTER_AUTH_SECRET,DATABASE_URL,STRIPE_SECRET_KEY" {
		t.Fatalf("secrets = %v", names)
	}
	if got, _ := e.sim.SecretValue("codex-web-preview-8", "STRIPE_SECRET_KEY"); got != "sk_test_123" {
		t.Fatalf("rotated secret = %q", got)
	}
	// A secret cannot take over a plain var's name.
	err = e.cf.PutSecret(c, "codex-web-preview-8", "PUBLIC_ENV", "x-secret-value")
	if err == nil || strings.Contains(err.Error(), "x-secret-value") {
		t.Fatalf("secret over a var: %v", err)
	}
}

// printed is every way a value may end up in a log line.
func printed(v any) string { return fmt.Sprintf("%v|%+v|%#v", v, v, v) }

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAssetsSessionUploadsOnlyMissingFiles(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	dir := t.TempDir()
	files := map[string]string{"index.html": "<h1>home</h1>", "app/style.css": "body{}", "_headers": "/*\n  X-Frame-Options: DENY\n"}
	for i := range 6 { // more files than one bucket holds
		files["img/"+string(rune('a'+i))+".svg"] = "<svg>" + string(rune('a'+i)) + "</svg>"
	}
	writeFiles(t, dir, files)
	s := webScript("codex-web-preview-9", "ccc333")
	s.AssetsDir, s.AssetsBinding = dir, "ASSETS"
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	first := e.sim.AssetUploads()
	if len(first) != 8 {
		t.Fatalf("first upload sent %d files, want 8 (_headers goes to the config)", len(first))
	}
	st, _ := e.sim.Script("codex-web-preview-9")
	if strings.Join(st.Assets, ",") != "/app/style.css,/img/a.svg,/img/b.svg,/img/c.svg,/img/d.svg,/img/e.svg,/img/f.svg,/index.html" {
		t.Fatalf("live assets = %v", st.Assets)
	}

	// A second deploy with one changed and one new file uploads just those.
	writeFiles(t, dir, map[string]string{"index.html": "<h1>home v2</h1>", "new.js": "console.log(1)"})
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.AssetUploads(); len(got) != 10 {
		t.Fatalf("after the second deploy %d files were uploaded in total, want 10 (8 + 2 changed)", len(got))
	}
	// A third identical deploy uploads nothing.
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.AssetUploads(); len(got) != 10 {
		t.Fatalf("an unchanged deploy uploaded %d files", len(got)-10)
	}

	if err := e.cf.AttachHostname(c, cloudflare.ModeCustomDomain, cloudflare.Hostname{ZoneID: zoneID, Name: "codex-preview-9.revelations.studio", Script: "codex-web-preview-9"}); err != nil {
		t.Fatal(err)
	}
	code, hdr, body := e.visit(t, "codex-preview-9.revelations.studio", "/index.html")
	if code != 200 || body != "<h1>home v2</h1>" || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /index.html = %d %q (%s)", code, body, hdr.Get("Content-Type"))
	}
}

// TestAssetsServedAsWranglerUploadsThem: each asset part carries the
// file's Content-Type, which Cloudflare serves it with (none for
// application/null); .assetsignore leaves files out by gitignore's rules;
// a Pages _worker.js is refused unless an .assetsignore says what to do
// with it (wrangler's rules, CONFORMANCE.md).
func TestAssetsServedAsWranglerUploadsThem(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"index.html": "<h1>home</h1>", "css/site.css": "body{}", "js/app.js": "run()", "js/app.js.map": "{}",
		"LICENSE": "MIT", "drafts/wip.html": "<p>wip</p>", ".assetsignore": "# source maps stay home\n*.map\ndrafts/\n",
	})
	s := webScript("codex-web-preview-4", "ddd444")
	s.AssetsDir, s.AssetsBinding = dir, "ASSETS"
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	st, _ := e.sim.Script("codex-web-preview-4")
	if got := strings.Join(st.Assets, ","); got != "/LICENSE,/css/site.css,/index.html,/js/app.js" {
		t.Fatalf("live assets = %s, want what .assetsignore leaves", got)
	}
	if err := e.cf.AttachHostname(c, cloudflare.ModeCustomDomain, cloudflare.Hostname{ZoneID: zoneID, Name: "codex-preview-4.revelations.studio", Script: "codex-web-preview-4"}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/index.html":   "text/html; charset=utf-8",
		"/css/site.css": "text/css; charset=utf-8",
		"/js/app.js":    "text/javascript; charset=utf-8",
		"/LICENSE":      "",
	} {
		code, hdr, _ := e.visit(t, "codex-preview-4.revelations.studio", path)
		if code != 200 || hdr.Get("Content-Type") != want {
			t.Errorf("GET %s = %d, Content-Type %q, want %q", path, code, hdr.Get("Content-Type"), want)
		}
	}

	pages := t.TempDir()
	writeFiles(t, pages, map[string]string{"index.html": "<h1>hi</h1>", "_worker.js": "export default {}"})
	s = webScript("codex-web-preview-5", "eee555")
	s.AssetsDir, s.AssetsBinding = pages, "ASSETS"
	_, err := e.cf.UploadWorker(c, s)
	if err == nil || !strings.Contains(err.Error(), "_worker.js") || !strings.Contains(err.Error(), ".assetsignore") {
		t.Fatalf("a _worker.js among the assets: %v, want a refusal that says how to choose", err)
	}
	writeFiles(t, pages, map[string]string{".assetsignore": "_worker.js\n"})
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatalf("with _worker.js ignored: %v", err)
	}
	if st, _ := e.sim.Script("codex-web-preview-5"); strings.Join(st.Assets, ",") != "/index.html" {
		t.Fatalf("live assets = %v", st.Assets)
	}
}

// A build writes the assets folder, and can leave symlinks in it. One that
// stays inside the root is followed; one that leads out of it (or the
// folder itself being such a symlink) fails the upload with the file's
// name, before the session starts: nothing is uploaded, no script appears.
func TestAssetsNeverLeaveTheRoot(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(secretFile, []byte("-----BEGIN RSA PRIVATE KEY-----host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T, workspace string)
		wantErr string // "" for success
	}{
		{"a relative symlink inside the workspace is followed", func(t *testing.T, ws string) {
			writeFiles(t, ws, map[string]string{"src/logo.svg": "<svg/>"})
			mustSymlink(t, "../../src/logo.svg", filepath.Join(ws, "web/public/logo.svg"))
		}, ""},
		{"an absolute symlink to a host file", func(t *testing.T, ws string) {
			mustSymlink(t, secretFile, filepath.Join(ws, "web/public/leak.txt"))
		}, "asset leak.txt"},
		{"a relative symlink out of the workspace", func(t *testing.T, ws string) {
			mustSymlink(t, strings.Repeat("../", 20)+strings.TrimPrefix(secretFile, "/"), filepath.Join(ws, "web/public/leak.txt"))
		}, "asset leak.txt"},
		{"_headers as a symlink to a host file", func(t *testing.T, ws string) {
			mustSymlink(t, secretFile, filepath.Join(ws, "web/public/_headers"))
		}, "asset _headers"},
		{"the assets folder is a symlink out of the workspace", func(t *testing.T, ws string) {
			if err := os.RemoveAll(filepath.Join(ws, "web/public")); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, filepath.Dir(secretFile), filepath.Join(ws, "web/public"))
		}, "assets folder web/public"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ws := t.TempDir()
			writeFiles(t, ws, map[string]string{"web/public/index.html": "<h1>home</h1>"})
			c.prepare(t, ws)
			s := webScript(fmt.Sprintf("codex-web-preview-%d", 20+i), "ddd444")
			s.AssetsRoot, s.AssetsDir, s.AssetsBinding = ws, filepath.Join("web", "public"), "ASSETS"
			_, err := e.cf.UploadWorker(ctx(t), s)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if st, _ := e.sim.Script(s.Name); !slices.Contains(st.Assets, "/logo.svg") {
					t.Fatalf("live assets = %v, want the symlinked /logo.svg among them", st.Assets)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "outside the workspace") {
				t.Fatalf("upload error = %v, want one naming %q and saying it leads outside the workspace", err, c.wantErr)
			}
			if got := e.sim.AssetUploads(); len(got) != 0 {
				t.Errorf("assets were uploaded anyway: %v", got)
			}
			if _, ok := e.sim.Script(s.Name); ok {
				t.Errorf("worker %s was created anyway", s.Name)
			}
		})
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestCustomDomainAttachTwiceMakesOneDomain(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cf.UploadWorker(c, webScript("codex-web-preview-10", "ddd444")); err != nil {
		t.Fatal(err)
	}
	h := cloudflare.Hostname{ZoneID: zoneID, Name: "codex-preview-10.revelations.studio", Script: "codex-web-preview-10"}
	for range 2 {
		if err := e.cf.AttachHostname(c, cloudflare.ModeCustomDomain, h); err != nil {
			t.Fatal(err)
		}
	}
	domains, err := e.cf.ListCustomDomains(c, "codex-preview-")
	if err != nil {
		t.Fatal(err)
	}
	if len(domains) != 1 || domains[0].Hostname != h.Name || domains[0].Service != h.Script || domains[0].ZoneName != zoneName {
		t.Fatalf("domains = %+v", domains)
	}
	if got := len(e.sim.Snapshot().CustomDomains); got != 1 {
		t.Fatalf("simulator holds %d custom domains", got)
	}
	code, hdr, body := e.visit(t, h.Name, "/")
	if code != 200 || hdr.Get("X-Deploybot-Commit") != "ddd444" || !strings.Contains(body, "codex-web-preview-10") {
		t.Fatalf("edge answered %d %v %q", code, hdr, body)
	}

	for range 2 {
		if err := e.cf.DetachHostname(c, cloudflare.ModeCustomDomain, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := e.sim.CustomDomain(h.Name); ok {
		t.Fatal("custom domain still attached after detach")
	}
	if code, _, _ := e.visit(t, h.Name, "/"); code != http.StatusNotFound {
		t.Fatalf("edge answers %d for a detached hostname", code)
	}
}

func TestDNSRouteModeCreatesOneProxiedCNAMEAndOneRoute(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cf.UploadWorker(c, webScript("codex-web-preview-11", "eee555")); err != nil {
		t.Fatal(err)
	}
	h := cloudflare.Hostname{ZoneID: zoneID, Name: "codex-preview-11.revelations.studio", Script: "codex-web-preview-11", Target: zoneName}
	for range 2 {
		if err := e.cf.AttachHostname(c, cloudflare.ModeDNSRoute, h); err != nil {
			t.Fatal(err)
		}
	}
	recs := e.sim.DNSRecords(h.Name)
	if len(recs) != 1 || recs[0].Type != "CNAME" || !recs[0].Proxied || recs[0].Content != zoneName || recs[0].Comment != cloudflare.ManagedComment {
		t.Fatalf("records = %+v, want one proxied CNAME to %s", recs, zoneName)
	}
	routes := e.sim.Routes()
	if len(routes) != 1 || routes[0].Pattern != h.Name+"/*" || routes[0].Script != h.Script {
		t.Fatalf("routes = %+v", routes)
	}
	listed, err := e.cf.ListDNSRecords(c, zoneID, "codex-preview-")
	if err != nil || len(listed) != 1 || !listed[0].Managed() {
		t.Fatalf("ListDNSRecords = %+v, %v", listed, err)
	}
	code, hdr, _ := e.visit(t, h.Name, "/some/page")
	if code != 200 || hdr.Get("X-Deploybot-Script") != h.Script {
		t.Fatalf("edge answered %d %v", code, hdr)
	}

	// The hostname serves a Worker: another cannot take it, nor detach it.
	if _, err := e.cf.UploadWorker(c, webScript("codex-web-preview-11b", "fff666")); err != nil {
		t.Fatal(err)
	}
	h2 := h
	h2.Script = "codex-web-preview-11b"
	var taken *cloudflare.HostnameTakenError
	if err := e.cf.AttachHostname(c, cloudflare.ModeDNSRoute, h2); !errors.As(err, &taken) || taken.Worker != h.Script {
		t.Fatalf("attaching a hostname another Worker serves: %v", err)
	}
	if err := e.cf.DetachHostname(c, cloudflare.ModeDNSRoute, h2); err != nil {
		t.Fatal(err)
	}
	if routes := e.sim.Routes(); len(routes) != 1 || routes[0].Script != h.Script || len(e.sim.DNSRecords(h.Name)) != 1 {
		t.Fatalf("another Worker's detach changed the hostname: routes %+v", routes)
	}

	if err := e.cf.DetachHostname(c, cloudflare.ModeDNSRoute, h); err != nil {
		t.Fatal(err)
	}
	if n := len(e.sim.DNSRecords(h.Name)) + len(e.sim.Routes()); n != 0 {
		t.Fatalf("%d records/routes left after detach", n)
	}
	if err := e.cf.DetachHostname(c, cloudflare.ModeDNSRoute, h); err != nil {
		t.Fatalf("second detach: %v", err)
	}
}

func TestDNSRouteModeLeavesOthersRecordsAlone(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	// Someone created an A record for the hostname by hand.
	req, _ := http.NewRequest("POST", e.api.URL+"/zones/"+zoneID+"/dns_records", strings.NewReader(`{"type":"A","name":"codex-preview-12","content":"198.51.100.4","ttl":1,"proxied":true}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("create record by hand: %v %v", res, err)
	}
	res.Body.Close()
	h := cloudflare.Hostname{ZoneID: zoneID, Name: "codex-preview-12.revelations.studio", Script: "codex-web-preview-12", Target: zoneName}
	err = e.cf.AttachHostname(c, cloudflare.ModeDNSRoute, h)
	if err == nil || !strings.Contains(err.Error(), "not created by deploybot") {
		t.Fatalf("attach over a foreign record: %v", err)
	}
	if err := e.cf.DetachHostname(c, cloudflare.ModeDNSRoute, h); err != nil {
		t.Fatal(err)
	}
	if recs := e.sim.DNSRecords(h.Name); len(recs) != 1 || recs[0].Type != "A" {
		t.Fatalf("foreign record was touched: %+v", recs)
	}
	// Cloudflare refuses a Custom Domain over existing DNS records too.
	if _, err := e.cf.UploadWorker(c, webScript("codex-web-preview-12", "ggg777")); err != nil {
		t.Fatal(err)
	}
	err = e.cf.AttachHostname(c, cloudflare.ModeCustomDomain, h)
	var ae *cloudflare.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !ae.HasCode(100117) {
		t.Fatalf("custom domain over a DNS record: %v", err)
	}
}

func TestDeleteMissingScriptSucceeds(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if err := e.cf.DeleteScript(c, "codex-web-preview-404"); err != nil {
		t.Fatalf("delete missing script: %v", err)
	}
	if _, err := e.cf.UploadWorker(c, webScript("codex-web-preview-13", "hhh888")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := e.cf.DeleteScript(c, "codex-web-preview-13"); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := e.sim.Script("codex-web-preview-13"); ok {
		t.Fatal("script still exists")
	}
	_, err := e.cf.CurrentDeployment(c, "codex-web-preview-13")
	if !cloudflare.IsNotFound(err) {
		t.Fatalf("deployment of a deleted script: %v", err)
	}
}

func TestRollbackServesThePreviousVersion(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	const name, host = "codex-web-production", "codex.revelations.studio"
	v1, err := e.cf.UploadWorker(c, webScript(name, "1111111"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cf.AttachHostname(c, cloudflare.ModeCustomDomain, cloudflare.Hostname{ZoneID: zoneID, Name: host, Script: name}); err != nil {
		t.Fatal(err)
	}
	prev, err := e.cf.CurrentDeployment(c, name)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := e.cf.UploadWorker(c, webScript(name, "2222222"))
	if err != nil {
		t.Fatal(err)
	}
	if _, hdr, _ := e.visit(t, host, "/"); hdr.Get("X-Deploybot-Version") != v2 || hdr.Get("X-Deploybot-Commit") != "2222222" {
		t.Fatalf("after deploy the edge serves %v", hdr)
	}
	d, err := e.cf.Deploy(c, name, prev.VersionID())
	if err != nil {
		t.Fatal(err)
	}
	if d.VersionID() != v1 {
		t.Fatalf("rollback deployed %s, want %s", d.VersionID(), v1)
	}
	code, hdr, body := e.visit(t, host, "/")
	if code != 200 || hdr.Get("X-Deploybot-Version") != v1 || !strings.Contains(body, "1111111") {
		t.Fatalf("after rollback the edge serves %d %v", code, hdr)
	}
	cur, err := e.cf.CurrentDeployment(c, name)
	if err != nil || cur.VersionID() != v1 {
		t.Fatalf("current deployment after rollback = %+v, %v", cur, err)
	}
	// Deploying what is already live adds no deployment.
	before := len(mustScript(t, e, name).Deployments)
	if _, err := e.cf.Deploy(c, name, v1); err != nil {
		t.Fatal(err)
	}
	if after := len(mustScript(t, e, name).Deployments); after != before {
		t.Fatalf("redeploying the live version added %d deployments", after-before)
	}
	// A version of another worker is refused.
	if _, err := e.cf.Deploy(c, name, "00000000-0000-4000-a000-000000000000"); err == nil {
		t.Fatal("deploying an unknown version succeeded")
	}
}

func mustScript(t *testing.T, e *env, name string) cfsim.ScriptState {
	t.Helper()
	st, ok := e.sim.Script(name)
	if !ok {
		t.Fatalf("no script %s", name)
	}
	return st
}

func TestRetriesRateLimitsAndServerErrors(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	scripts := "/accounts/" + accountID + "/workers/scripts/"

	// 429 with Retry-After: waited for, then the upload goes through once.
	e.sim.Faults().Set(fault.Rule{Method: "PUT", Path: scripts, Times: 1, Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	start := time.Now()
	if _, err := e.cf.UploadWorker(c, webScript("codex-web-preview-14", "iii999")); err != nil {
		t.Fatalf("upload under one 429: %v", err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("Retry-After: 1 was not honoured (took %v)", waited)
	}
	if st := mustScript(t, e, "codex-web-preview-14"); len(st.Versions) != 1 {
		t.Errorf("%d versions after one retried upload, want 1", len(st.Versions))
	}

	// 503, 502 and 423 without Retry-After: retried with our short backoff.
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusLocked} {
		e.sim.Faults().Set(fault.Rule{Path: "/zones/", Times: 2, Status: status})
		if err := e.cf.AttachHostname(c, cloudflare.ModeDNSRoute, cloudflare.Hostname{ZoneID: zoneID, Name: "codex-preview-14.revelations.studio", Script: "codex-web-preview-14", Target: zoneName}); err != nil {
			t.Fatalf("attach under two %d: %v", status, err)
		}
	}
	if got := e.sim.Faults().Injected(); got != 7 {
		t.Errorf("%d faults injected, want 7", got)
	}
	if n := len(e.sim.DNSRecords("codex-preview-14.revelations.studio")); n != 1 {
		t.Errorf("%d records after retried creates", n)
	}

	// A dropped connection is retried too.
	e.sim.Faults().Set(fault.Rule{Method: "GET", Path: scripts, Times: 1, Reset: true})
	if _, err := e.cf.ListVersions(c, "codex-web-preview-14"); err != nil {
		t.Fatalf("list versions after a reset connection: %v", err)
	}

	// A 400 is not retried.
	e.sim.Faults().Set()
	before := e.sim.Snapshot().Requests["PUT /accounts/{account_id}/workers/scripts/{script_name}"]
	bad := webScript("codex-web-preview-14", "jjj000")
	bad.CompatibilityDate = "2999-12-31"
	if _, err := e.cf.UploadWorker(c, bad); err == nil {
		t.Fatal("upload with a future date succeeded")
	}
	if after := e.sim.Snapshot().Requests["PUT /accounts/{account_id}/workers/scripts/{script_name}"]; after != before+1 {
		t.Errorf("a 400 was sent %d times", after-before)
	}
}

func TestRetryStopsAtTheDeadline(t *testing.T) {
	e := newEnv(t)
	e.sim.Faults().Set(fault.Rule{Rate: 1, Status: http.StatusTooManyRequests, RetryAfter: 30 * time.Second})
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := e.cf.ListScripts(c, "")
	var ae *cloudflare.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
		t.Fatalf("err = %v, want the API's 429", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("gave up after %v; a 30s Retry-After cannot fit a 2s deadline, so no wait was needed", took)
	}
	if got := e.sim.Faults().Injected(); got != 1 {
		t.Errorf("%d attempts, want 1", got)
	}
}

func TestSpecRejectsInvalidRequests(t *testing.T) {
	e := newEnv(t)
	send := func(method, path, contentType, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, e.api.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var env map[string]any
		_ = json.Unmarshal(b, &env)
		return res.StatusCode, env
	}
	cases := []struct {
		name, method, path, ctype, body string
		want                            string
	}{
		{"DNS record of an unknown type", "POST", "/zones/" + zoneID + "/dns_records", "application/json", `{"type":"BOGUS","name":"x.revelations.studio","content":"1.2.3.4","ttl":1}`, `"type"`},
		{"DNS record TTL out of range", "POST", "/zones/" + zoneID + "/dns_records", "application/json", `{"type":"A","name":"x","content":"1.2.3.4","ttl":5}`, `"ttl"`},
		{"route without pattern", "POST", "/zones/" + zoneID + "/workers/routes", "application/json", `{"script":"x"}`, "pattern"},
		{"custom domain without service", "PUT", "/accounts/" + accountID + "/workers/domains", "application/json", `{"zone_id":"` + zoneID + `","hostname":"a.revelations.studio","environment":"production"}`, "service"},
		{"deployment without versions", "POST", "/accounts/" + accountID + "/workers/scripts/w/deployments", "application/json", `{"strategy":"percentage"}`, "versions"},
		{"script name with capitals", "GET", "/accounts/" + accountID + "/workers/scripts/Bad_Name/versions", "", "", "script_name"},
		{"unknown route", "GET", "/accounts/" + accountID + "/workers/nothing", "", "", "no route"},
	}
	for _, tc := range cases {
		status, env := send(tc.method, tc.path, tc.ctype, tc.body)
		errs, _ := env["errors"].([]any)
		if status < 400 || env["success"] != false || len(errs) == 0 {
			t.Errorf("%s: %d %v, want a Cloudflare error envelope", tc.name, status, env)
			continue
		}
		msg, _ := errs[0].(map[string]any)["message"].(string)
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s: message %q does not mention %q", tc.name, msg, tc.want)
		}
	}
	// A valid record passes the same route.
	if status, env := send("POST", "/zones/"+zoneID+"/dns_records", "application/json", `{"type":"CNAME","name":"ok","content":"revelations.studio","proxied":true,"ttl":1}`); status != 200 {
		t.Fatalf("valid record refused: %d %v", status, env)
	}
	// Missing credentials.
	req, _ := http.NewRequest("GET", e.api.URL+"/accounts/"+accountID+"/workers/scripts", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("request without token: %d", res.StatusCode)
	}
	// A wrong token.
	wrong, _ := cloudflare.New(cloudflare.Options{AccountID: accountID, APIToken: "wrong", BaseURL: e.api.URL})
	_, err = wrong.ListScripts(ctx(t), "")
	var ae *cloudflare.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong token: %v", err)
	}
}

// loseResponses lets matching requests reach the server and then drops the
// answer, as a connection cut after the server committed would.
type loseResponses struct {
	base  http.RoundTripper
	match func(*http.Request) bool
	left  int
	lost  []string
}

func (l *loseResponses) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := l.base.RoundTrip(r)
	if err == nil && l.left > 0 && l.match(r) {
		l.left--
		l.lost = append(l.lost, r.Method+" "+r.URL.Path)
		res.Body.Close()
		return nil, errors.New("connection reset by peer (answer lost)")
	}
	return res, err
}

func TestCreatesAreSafeAfterALostAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the SDK's transport-error backoff (about 2s per lost answer)")
	}
	e := newEnv(t)
	lose := &loseResponses{base: e.api.Client().Transport, left: 2, match: func(r *http.Request) bool {
		return r.Method == "POST" && (strings.HasSuffix(r.URL.Path, "/dns_records") || strings.HasSuffix(r.URL.Path, "/workers/routes"))
	}}
	cf, err := cloudflare.New(cloudflare.Options{
		AccountID: accountID, APIToken: token, BaseURL: e.api.URL + "/client/v4/",
		HTTPClient: &http.Client{Transport: lose}, RetryBaseDelay: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	if _, err := cf.UploadWorker(c, webScript("codex-web-preview-15", "kkk111")); err != nil {
		t.Fatal(err)
	}
	h := cloudflare.Hostname{ZoneID: zoneID, Name: "codex-preview-15.revelations.studio", Script: "codex-web-preview-15", Target: zoneName}
	if err := cf.AttachHostname(c, cloudflare.ModeDNSRoute, h); err != nil {
		t.Fatalf("attach with both creates' answers lost: %v", err)
	}
	if len(lose.lost) != 2 {
		t.Fatalf("lost answers: %v", lose.lost)
	}
	if recs, routes := e.sim.DNSRecords(h.Name), e.sim.Routes(); len(recs) != 1 || len(routes) != 1 {
		t.Fatalf("after lost answers: records %+v, routes %+v", recs, routes)
	}
	if code, _, _ := e.visit(t, h.Name, "/"); code != 200 {
		t.Fatalf("edge answered %d", code)
	}
}

// TestCustomDomainIsNeverMoved: a hostname attached to one Worker (say
// production's) is neither moved to another by AttachHostname nor detached
// on another's behalf; the error names both Workers.
func TestCustomDomainIsNeverMoved(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	for _, name := range []string{"codex-web", "codex-web-preview-3"} {
		if _, err := e.cf.UploadWorker(c, webScript(name, "abc123")); err != nil {
			t.Fatal(err)
		}
	}
	prod := cloudflare.Hostname{ZoneID: zoneID, Name: "app.revelations.studio", Script: "codex-web"}
	if err := e.cf.AttachHostname(c, cloudflare.ModeCustomDomain, prod); err != nil {
		t.Fatal(err)
	}
	preview := prod
	preview.Script = "codex-web-preview-3"
	err := e.cf.AttachHostname(c, cloudflare.ModeCustomDomain, preview)
	var taken *cloudflare.HostnameTakenError
	if !errors.As(err, &taken) || !strings.Contains(err.Error(), `"codex-web"`) || !strings.Contains(err.Error(), `"codex-web-preview-3"`) {
		t.Fatalf("moving production's hostname: %v", err)
	}
	if err := e.cf.DetachHostname(c, cloudflare.ModeCustomDomain, preview); err != nil {
		t.Fatal(err)
	}
	domains, err := e.cf.ListCustomDomains(c, "app.")
	if err != nil || len(domains) != 1 || domains[0].Service != "codex-web" {
		t.Fatalf("production's hostname after a preview's attach and detach: %+v, %v", domains, err)
	}
	if code, hdr, _ := e.visit(t, prod.Name, "/"); code != 200 || hdr.Get("X-Deploybot-Script") != "codex-web" {
		t.Fatalf("production's hostname serves %d %v", code, hdr)
	}
}

// TestLookupScript: the bot reads one Worker's tags to know whether it is
// its own; an absent Worker is not found; the account's count (the
// bound Worker newEnv made, and this one) is known.
func TestLookupScript(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	s := webScript("api-preview-5", "abc123")
	s.Tags = []string{"deploybot", "deploybot-repo:acme/app", "deploybot-env:pr-5"}
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	got, err := e.cf.LookupScript(c, "api-preview-5")
	if err != nil || !got.Found || strings.Join(got.Tags, ",") != "deploybot,deploybot-repo:acme/app,deploybot-env:pr-5" || got.Workers != 2 {
		t.Fatalf("LookupScript = %+v, %v", got, err)
	}
	if got, err := e.cf.LookupScript(c, "api-preview-"); err != nil || got.Found || got.Workers != 2 {
		t.Fatalf("a prefix of a name is not the Worker: %+v %v", got, err)
	}
}

// TestServiceBindingsNeedTheirWorker: Cloudflare refuses an upload bound
// to a Worker that does not exist (10143), and deleting a Worker another
// binds needs force, which DeleteScript always sends.
func TestServiceBindingsNeedTheirWorker(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	s := webScript("codex-web-preview-8", "abc123")
	s.ServiceBindings = []cloudflare.ServiceBinding{{Binding: "API", Service: "ecom-api-preview-8"}}
	_, err := e.cf.UploadWorker(c, s)
	var ae *cloudflare.APIError
	if !errors.As(err, &ae) || len(ae.Errors) == 0 || ae.Errors[0].Code != 10143 {
		t.Fatalf("upload bound to a missing Worker: %v, want error 10143", err)
	}
	if _, err := e.cf.UploadWorker(c, webScript("codex-web-preview-7", "abc123")); err != nil {
		t.Fatal(err)
	}
	// The bound Worker goes although codex-web-preview-7 binds it.
	if err := e.cf.DeleteScript(c, boundWorker); err != nil {
		t.Fatalf("deleting a bound Worker: %v", err)
	}
	if l, err := e.cf.LookupScript(c, boundWorker); err != nil || l.Found {
		t.Fatalf("the bound Worker is still there: %v %v", l.Found, err)
	}
}

// TestPlanLimits: the account's plan caps its Workers (10037) and each
// Worker's environment variables and secrets (10055 for how many, 10054
// for the size of one). The refusals reach the user with what to do.
func TestPlanLimits(t *testing.T) {
	e := newEnv(t, func(o *cfsim.Options) {
		o.Plan = cfsim.Plan{Workers: 3, EnvVars: 6, EnvVarBytes: 100, ScriptBytes: 4 << 10}
	})
	c := ctx(t)
	// newEnv made the bound Worker: two more fit.
	for _, name := range []string{"codex-web-preview-1", "codex-web-preview-2"} {
		if _, err := e.cf.UploadWorker(c, webScript(name, "abc123")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.cf.UploadWorker(c, webScript("codex-web-preview-3", "abc123"))
	var ae *cloudflare.APIError
	if !errors.As(err, &ae) || !ae.HasCode(10037) || !strings.Contains(err.Error(), "as many Workers as its plan allows") {
		t.Fatalf("a Worker over the plan's number: %v, want 10037 with what to do", err)
	}
	// A new version of an existing Worker is no new Worker.
	if _, err := e.cf.UploadWorker(c, webScript("codex-web-preview-2", "def456")); err != nil {
		t.Fatalf("updating a Worker at the limit: %v", err)
	}
	if l, err := e.cf.LookupScript(c, "codex-web-preview-3"); err != nil || l.Found || l.Workers != 3 {
		t.Fatalf("after the refusal: %+v, %v", l, err)
	}

	s := webScript("codex-web-preview-2", "def456")
	for i := range 3 { // 4 + 3 = 7 environment variables and secrets
		s.Vars[fmt.Sprintf("EXTRA_%d", i)] = "x"
	}
	if _, err := e.cf.UploadWorker(c, s); !errors.As(err, &ae) || !ae.HasCode(10055) {
		t.Fatalf("7 variables on a plan allowing 6: %v, want 10055", err)
	}
	s = webScript("codex-web-preview-2", "def456")
	s.Secrets["BIG"] = strings.Repeat("k", 101)
	_, err = e.cf.UploadWorker(c, s)
	if !errors.As(err, &ae) || !ae.HasCode(10054) {
		t.Fatalf("a 101-byte secret on a plan allowing 100: %v, want 10054", err)
	}
	if strings.Contains(err.Error(), strings.Repeat("k", 101)) {
		t.Fatalf("the refusal shows the secret: %v", err)
	}

	// The size limit counts the modules gzipped: 64 KiB of one letter
	// compress to almost nothing, 8 KiB of random text do not.
	s = webScript("codex-web-preview-2", "def456")
	s.Modules[1].Content = append([]byte("export function h() { return \"hi\" }\n// "), bytes.Repeat([]byte("a"), 64<<10)...)
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatalf("64 KiB that compress well: %v", err)
	}
	noise := make([]byte, 8<<10)
	_, _ = rand.Read(noise)
	s.Modules[1].Content = fmt.Appendf(nil, "export function h() { return \"hi\" }\n// %x", noise)
	_, err = e.cf.UploadWorker(c, s)
	if !errors.As(err, &ae) || !ae.HasCode(10027) || !strings.Contains(err.Error(), "larger than the plan allows") {
		t.Fatalf("a Worker over the plan's compressed size: %v, want 10027 with what to do", err)
	}
}

// putSecret sets a Worker's secret the way `wrangler secret put` does, outside
// the bot.
func (e *env) putSecret(t *testing.T, script, name, value string) {
	t.Helper()
	body := strings.NewReader(fmt.Sprintf(`{"name":%q,"text":%q,"type":"secret_text"}`, name, value))
	req, err := http.NewRequest(http.MethodPut, e.api.URL+"/client/v4/accounts/"+accountID+"/workers/scripts/"+script+"/secrets", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := e.api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("put secret: %s", res.Status)
	}
}

// TestKeepSecretsKeepsTheTeamsOwn: a production deploy keeps the secrets the
// team set on the Worker itself (wrangler secret put, the dashboard), as
// wrangler deploy does; the ones the upload names are replaced; without
// KeepSecrets an upload replaces every binding.
func TestKeepSecretsKeepsTheTeamsOwn(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	s := webScript("codex-web", "aaa111")
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	e.putSecret(t, "codex-web", "SESSION_KEY", "the-teams-own")
	e.putSecret(t, "codex-web", "DATABASE_URL", "postgres://old")

	s = webScript("codex-web", "bbb222")
	s.KeepSecrets = true
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	if v, ok := e.sim.SecretValue("codex-web", "SESSION_KEY"); v != "the-teams-own" {
		t.Errorf("SESSION_KEY after a deploy with KeepSecrets = %q (%v), want the team's own value", v, ok)
	}
	if v, _ := e.sim.SecretValue("codex-web", "DATABASE_URL"); v != s.Secrets["DATABASE_URL"] {
		t.Errorf("DATABASE_URL = %q: a secret the upload names must take the uploaded value", v)
	}

	s = webScript("codex-web", "ccc333")
	if _, err := e.cf.UploadWorker(c, s); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sim.SecretValue("codex-web", "SESSION_KEY"); ok {
		t.Error("an upload without KeepSecrets kept SESSION_KEY")
	}
}
