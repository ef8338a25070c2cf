package setup

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// simulatedGitHub serves the sandbox's GitHub (web pages and REST API) at
// one address, as a GitHub Enterprise Server would be.
func simulatedGitHub(t *testing.T) (*ghsim.Server, string) {
	t.Helper()
	sim, err := ghsim.New(ghsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	return sim, srv.URL
}

// flow is a registration running on a local port, and a browser for it.
type flow struct {
	t       *testing.T
	reg     *Registration
	local   string
	out     *bytes.Buffer
	result  chan result
	browser *http.Client
}

func start(t *testing.T, opts Options) *flow {
	t.Helper()
	out := &bytes.Buffer{}
	opts.Out = out
	reg, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &flow{t: t, reg: reg, local: "http://" + ln.Addr().String(), out: out, result: make(chan result, 1)}
	go func() {
		app, err := reg.Run(ctx, ln)
		f.result <- result{app, err}
	}()
	t.Cleanup(cancel)
	jar, _ := cookiejar.New(nil)
	f.browser = &http.Client{Jar: jar}
	return f
}

// form is the page's form as a browser reads it.
type form struct {
	action, method string
	fields         url.Values
}

// openPage GETs the setup page and reads its one form.
func (f *flow) openPage() form {
	f.t.Helper()
	resp, err := f.browser.Get(f.local + "/")
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("setup page: %d", resp.StatusCode)
	}
	doc, err := html.Parse(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	fm := form{fields: url.Values{}}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		attr := func(k string) string {
			for _, a := range n.Attr {
				if a.Key == k {
					return a.Val
				}
			}
			return ""
		}
		switch n.Data {
		case "form":
			fm.action, fm.method = attr("action"), attr("method")
		case "input":
			fm.fields.Add(attr("name"), attr("value"))
		}
	}
	if fm.action == "" {
		f.t.Fatal("the setup page has no form")
	}
	return fm
}

// submit posts the form to GitHub. With follow, the browser follows
// GitHub's redirect back to the setup server and returns that answer;
// otherwise it returns GitHub's redirect.
func (f *flow) submit(fm form, follow bool) *http.Response {
	f.t.Helper()
	if !strings.EqualFold(fm.method, "post") {
		f.t.Fatalf("form method %q, want post", fm.method)
	}
	client := *f.browser
	if !follow {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	resp, err := client.PostForm(fm.action, fm.fields)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (f *flow) wait() (*App, error) {
	r := <-f.result
	return r.app, r.err
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestSetupRegistersAnAppTheBotCanRun runs the whole manifest flow against
// the simulated GitHub with an HTTP client as the browser: the written
// config loads, and a GitHub client built from it authenticates as the new
// App.
func TestSetupRegistersAnAppTheBotCanRun(t *testing.T) {
	sim, gh := simulatedGitHub(t)
	dir := t.TempDir()
	f := start(t, Options{
		PublicURL: "https://bot.example.com/", GitHubURL: gh, APIURL: gh + "/",
		Name: "Preview Bot", ConfigPath: filepath.Join(dir, "config.yml"),
	})
	fm := f.openPage()
	if !strings.HasPrefix(fm.action, gh+"/settings/apps/new?state=") {
		t.Errorf("the form posts to %s, want GitHub's new-App page", fm.action)
	}
	resp := f.submit(fm, true)
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "/apps/preview-bot/installations/new") {
		t.Fatalf("the page GitHub's redirect came back to: %d %s", resp.StatusCode, page)
	}
	app, err := f.wait()
	if err != nil {
		t.Fatalf("setup: %v\n%s", err, f.out)
	}

	for _, p := range []string{app.ConfigPath, app.KeyFile, app.SecretFile, app.ClientSecretFile, app.MasterKeyFile} {
		if m := mode(t, p); m != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, m)
		}
	}
	cfg, err := config.Load(app.ConfigPath, func(string) string { return "" })
	if err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	if err := cfg.RequireApp(); err != nil {
		t.Fatalf("the written config cannot run the App: %v", err)
	}
	if cfg.GitHub.App.IntegrationID != app.ID || cfg.Server.PublicURL != "https://bot.example.com" || cfg.GitHub.V3APIURL != gh+"/" {
		t.Errorf("config: id %d public_url %q v3 %q; want %d, https://bot.example.com, %s/", cfg.GitHub.App.IntegrationID, cfg.Server.PublicURL, cfg.GitHub.V3APIURL, app.ID, gh)
	}
	// The App's OAuth client signs people in to the web interface: GitHub
	// knows the bot's callback, and the config holds the client.
	if cfg.GitHub.App.ClientID == "" || cfg.GitHub.App.ClientSecret.Value() == "" || cfg.GitHub.WebURL != gh {
		t.Errorf("config: client_id %q, client secret set %v, web_url %q; want the App's client and %s", cfg.GitHub.App.ClientID, cfg.GitHub.App.ClientSecret.Value() != "", cfg.GitHub.WebURL, gh)
	}
	authorize, err := http.Get(gh + "/login/oauth/authorize?" + url.Values{"client_id": {cfg.GitHub.App.ClientID}, "redirect_uri": {"https://bot.example.com/login/callback"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	authorize.Body.Close()
	if authorize.StatusCode != http.StatusOK {
		t.Errorf("GitHub's sign-in page for the App and the bot's callback: %d, want 200 (callback_urls in the manifest)", authorize.StatusCode)
	}
	creator, err := github.NewClientCreator(github.Config{V3APIURL: cfg.GitHub.V3APIURL, V4APIURL: cfg.GitHub.V4APIURL, AppID: cfg.GitHub.App.IntegrationID, PrivateKey: []byte(cfg.GitHub.App.PrivateKey.Value())})
	if err != nil {
		t.Fatal(err)
	}
	login, err := github.AppLogin(context.Background(), creator, cfg.GitHub.App.IntegrationID)
	if err != nil || login != "preview-bot[bot]" {
		t.Fatalf("GET /app as the configured App: %q, %v; want preview-bot[bot]", login, err)
	}

	// GitHub registered what the manifest asked for.
	apps := sim.RegisteredApps()
	if len(apps) != 1 {
		t.Fatalf("registered Apps: %+v", apps)
	}
	if apps[0].WebhookURL != "https://bot.example.com/api/github/hook" || apps[0].Owner != "deploybot-owner" {
		t.Errorf("registered %+v; want webhooks at https://bot.example.com/api/github/hook", apps[0])
	}
	if !maps.Equal(apps[0].Permissions, repositoryPermissions()) || !slices.Equal(apps[0].Events, events()) {
		t.Errorf("registered permissions %v events %v; want %v %v", apps[0].Permissions, apps[0].Events, repositoryPermissions(), events())
	}

	out := f.out.String()
	for _, want := range []string{app.HTMLURL + "/installations/new", app.ConfigPath, "App ID"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if secret := cfg.GitHub.App.WebhookSecret.Value(); secret == "" || strings.Contains(out+string(page), secret) || strings.Contains(out+string(page), "PRIVATE KEY") {
		t.Errorf("the output or the page shows a secret:\n%s\n%s", out, page)
	}
}

// TestWrongStateIsRefused: a request to the callback that does not carry
// the state of the form served (another site's link, a forged redirect)
// spends no code and writes nothing; GitHub's own redirect still works.
func TestWrongStateIsRefused(t *testing.T) {
	sim, gh := simulatedGitHub(t)
	dir := t.TempDir()
	// Files left from an earlier App are replaced with --force, and end
	// up private whatever they were.
	key := filepath.Join(dir, "old.pem")
	if err := os.WriteFile(key, []byte("old key"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := start(t, Options{
		PublicURL: "https://bot.example.com", GitHubURL: gh, APIURL: gh + "/", Name: "State Bot",
		ConfigPath: filepath.Join(dir, "config.yml"), KeyFile: key, Force: true, Teams: true,
	})
	resp := f.submit(f.openPage(), false)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GitHub answered the form with %d", resp.StatusCode)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	for _, forged := range []string{"", "not-the-state"} {
		q := back.Query()
		if forged == "" {
			q.Del("state")
		} else {
			q.Set("state", forged)
		}
		u := *back
		u.RawQuery = q.Encode()
		resp, err := f.browser.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("callback with state %q answered %d, want 400", forged, resp.StatusCode)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "config.yml")); !os.IsNotExist(err) {
		t.Fatalf("a forged callback wrote the config: %v", err)
	}
	if apps := sim.RegisteredApps(); len(apps) != 1 || apps[0].Converted {
		t.Fatalf("a forged callback spent the code: %+v", apps)
	}

	resp, err = f.browser.Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	app, err := f.wait()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GitHub's own redirect: %d, %v\n%s", resp.StatusCode, err, f.out)
	}
	pem, _ := os.ReadFile(key)
	if m := mode(t, key); m != 0o600 || !bytes.Contains(pem, []byte("PRIVATE KEY")) {
		t.Errorf("the replaced key file has mode %v and %.20q", m, pem)
	}
	if apps := sim.RegisteredApps(); apps[0].Permissions["members"] != "read" {
		t.Errorf("--teams did not ask for members: read: %v", apps[0].Permissions)
	}
	if !strings.Contains(f.out.String(), "Refused a request to /callback") || app.ID != sim.RegisteredApps()[0].ID {
		t.Errorf("output:\n%s", f.out)
	}
}

// TestExistingFilesAreKept: setup refuses, before registering anything, to
// overwrite a config, and to replace a key or secret file without --force.
func TestExistingFilesAreKept(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte("# mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{PublicURL: "https://bot.example.com", ConfigPath: cfg, Force: true})
	if err == nil || !strings.Contains(err.Error(), cfg+" already exists") {
		t.Errorf("an existing config: %v", err)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "# mine\n" {
		t.Errorf("the config changed: %q", b)
	}

	fresh := filepath.Join(dir, "new.yml")
	secret := filepath.Join(dir, "github-webhook-secret")
	if err := os.WriteFile(secret, []byte("s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{PublicURL: "https://bot.example.com", ConfigPath: fresh})
	if err == nil || !strings.Contains(err.Error(), secret+" (--secret-file) already exists; pass --force") {
		t.Errorf("an existing secret file without --force: %v", err)
	}
	if _, err := New(Options{PublicURL: "https://bot.example.com", ConfigPath: fresh, Force: true}); err != nil {
		t.Errorf("--force: %v", err)
	}

	// And when the config appears while the person is on GitHub, the App
	// is registered but the config stays as it is; the error says how to
	// finish.
	_, gh := simulatedGitHub(t)
	late := filepath.Join(dir, "late.yml")
	f := start(t, Options{PublicURL: "https://bot.example.com", GitHubURL: gh, APIURL: gh + "/", Name: "Late Bot",
		ConfigPath: late, KeyFile: filepath.Join(dir, "late.pem"), SecretFile: filepath.Join(dir, "late-secret")})
	fm := f.openPage()
	if err := os.WriteFile(late, []byte("# written meanwhile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.submit(fm, true)
	if _, err := f.wait(); err == nil || !strings.Contains(err.Error(), "the config could not be written") || !strings.Contains(err.Error(), "settings/apps/late-bot") {
		t.Errorf("config written meanwhile: %v", err)
	}
	if b, _ := os.ReadFile(late); string(b) != "# written meanwhile\n" {
		t.Errorf("the config changed: %q", b)
	}
}

// TestGitHubEnterpriseServer: on GitHub Enterprise Server the form posts to
// https://HOST/settings/apps/new (or the organization's page) and the API
// is https://HOST/api/v3; on github.com, api.github.com.
func TestGitHubEnterpriseServer(t *testing.T) {
	for _, tc := range []struct {
		web, org        string
		action, api, v4 string
	}{
		{"", "", "https://github.com/settings/apps/new?state=", "https://api.github.com/", "https://api.github.com/graphql"},
		{"https://github.com/", "acme", "https://github.com/organizations/acme/settings/apps/new?state=", "https://api.github.com/", "https://api.github.com/graphql"},
		{"https://ghe.example.com", "", "https://ghe.example.com/settings/apps/new?state=", "https://ghe.example.com/api/v3/", "https://ghe.example.com/api/graphql"},
		{"https://ghe.example.com/", "acme", "https://ghe.example.com/organizations/acme/settings/apps/new?state=", "https://ghe.example.com/api/v3/", "https://ghe.example.com/api/graphql"},
	} {
		t.Run(tc.web+" "+tc.org, func(t *testing.T) {
			f := start(t, Options{PublicURL: "https://bot.example.com", GitHubURL: tc.web, Org: tc.org, ConfigPath: filepath.Join(t.TempDir(), "config.yml")})
			if fm := f.openPage(); !strings.HasPrefix(fm.action, tc.action) || len(fm.action) != len(tc.action)+64 {
				t.Errorf("the page's form posts to %s, want %s + the state", fm.action, tc.action)
			}
			if f.reg.APIURL() != tc.api {
				t.Errorf("API %s, want %s", f.reg.APIURL(), tc.api)
			}
			dir := t.TempDir()
			app := &App{ID: 7, Slug: "deploybot", HTMLURL: "https://x/apps/deploybot", KeyFile: filepath.Join(dir, "k.pem"), SecretFile: filepath.Join(dir, "s"), MasterKeyFile: filepath.Join(dir, "m")}
			for _, p := range []string{app.KeyFile, app.SecretFile, app.MasterKeyFile} {
				if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			body, err := f.reg.configFile(app)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse("config.yml", body, func(string) string { return "" })
			if err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			if cfg.GitHub.V3APIURL != tc.api || cfg.GitHub.V4APIURL != tc.v4 {
				t.Errorf("config's APIs %s %s, want %s %s", cfg.GitHub.V3APIURL, cfg.GitHub.V4APIURL, tc.api, tc.v4)
			}
		})
	}
}

// TestBadOptionsAreNamed: each refusal names the flag and what is wrong.
func TestBadOptionsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{}, "--public-url is required"},
		{Options{PublicURL: "bot.example.com"}, `--public-url "bot.example.com" is not an http(s) URL`},
		{Options{PublicURL: "https://bot.example.com", GitHubURL: "ghe.example.com"}, `--github-url "ghe.example.com"`},
		{Options{PublicURL: "https://bot.example.com", APIURL: "/api/v3"}, `--api-url "/api/v3"`},
		{Options{PublicURL: "https://bot.example.com", Org: "acme/dev"}, `--org "acme/dev" is not`},
		{Options{PublicURL: "https://bot.example.com", Name: strings.Repeat("x", 35)}, "GitHub allows 34"},
		{Options{PublicURL: "https://bot.example.com", ConfigPath: "/no/such/dir/config.yml"}, "directory /no/such/dir does not exist"},
	} {
		if tc.opts.ConfigPath == "" {
			tc.opts.ConfigPath = filepath.Join(t.TempDir(), "config.yml")
		}
		if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want an error with %q", tc.opts, err, tc.want)
		}
	}
}

// TestREADMEListsWhatTheManifestAsks: README's "Running it for real" lists
// the permissions and events for people who register the App by hand; they
// must be exactly what bot setup asks for.
func TestREADMEListsWhatTheManifestAsks(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(data), "## Running it for real")
	section, _, _ = strings.Cut(section, "\n## ")
	section = strings.Join(strings.Fields(section), " ") // the list wraps
	between := func(from, to string) string {
		_, rest, ok := strings.Cut(section, from)
		if !ok {
			t.Fatalf("README's Running it for real lacks %q", from)
		}
		rest, _, _ = strings.Cut(rest, to)
		return rest
	}
	key := func(name string) string {
		return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), " ", "_")
	}
	level := regexp.MustCompile(`^\s*([A-Za-z ]+): (read & write|read-only)`)
	perms := func(list string) map[string]string {
		out := map[string]string{}
		for _, item := range strings.Split(list, "·") {
			m := level.FindStringSubmatch(item)
			if m == nil {
				t.Fatalf("README permission %q is not \"Name: read & write|read-only\"", item)
			}
			out[key(m[1])] = map[string]string{"read & write": "write", "read-only": "read"}[m[2]]
		}
		return out
	}
	if got := perms(between("**Repository permissions**:", ";")); !maps.Equal(got, repositoryPermissions()) {
		t.Errorf("README lists repository permissions %v; bot setup asks for %v", got, repositoryPermissions())
	}
	if got := perms(between("**Organization permissions**:", ",")); !maps.Equal(got, teamPermissions()) {
		t.Errorf("README lists organization permissions %v; bot setup --teams asks for %v", got, teamPermissions())
	}
	var listed []string
	for _, item := range strings.Split(between("**Subscribe to events**:", "("), "·") {
		if strings.TrimSpace(item) != "" {
			listed = append(listed, key(item))
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(listed)), slices.Sorted(slices.Values(events()))) {
		t.Errorf("README lists events %v; bot setup subscribes to %v", listed, events())
	}
}
