// Package setup registers deploybot's GitHub App with GitHub's App-manifest
// flow and writes the configuration that runs it.
//
// The flow (docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest)
// has three steps, all within an hour:
//
//  1. A page served here POSTs the manifest — name, webhook URL,
//     permissions, events — to GitHub's new-App page, with a random state.
//  2. Once the person clicks "Create GitHub App", GitHub sends the browser
//     back here with a code and the state.
//  3. The code is traded, once, for the App's id, private key and webhook
//     secret (POST /app-manifests/{code}/conversions, no credentials).
//
// The key and the webhook secret go to files readable by their owner only,
// and a new config.yml names them; nothing is printed but their paths.
package setup

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/login"
	"github.com/revelations-studio/deploybot/internal/server"
)

// DefaultGitHubURL is GitHub.com's web address.
const DefaultGitHubURL = "https://github.com"

// Options say which App to register, where, and where to write it down.
type Options struct {
	// PublicURL is where GitHub reaches the bot: webhooks go to
	// PublicURL + /api/github/hook. Required.
	PublicURL string
	// GitHubURL is GitHub's web address: https://github.com (default) or a
	// GitHub Enterprise Server's https://HOST.
	GitHubURL string
	// APIURL is GitHub's REST API. Empty: https://api.github.com/ for
	// github.com, GitHubURL + /api/v3/ for GitHub Enterprise Server.
	APIURL string
	// Org registers the App in this organization rather than in the
	// account of the person who opens the page.
	Org string
	// Name is the App's name, which GitHub lets the person change before
	// creating it (default "deploybot"; names are unique across GitHub).
	Name string
	// Teams asks for the organization permission Members: read, which PR
	// commands allowed to teams ("@org/team-slug") need.
	Teams bool
	// ConfigPath is the config file to write (default config.yml). An
	// existing file is never overwritten.
	ConfigPath string
	// KeyFile and SecretFile receive the App's private key and webhook
	// secret (default: github-app.pem and github-webhook-secret beside the
	// config file). Existing files are replaced only when Force is set.
	KeyFile    string
	SecretFile string
	// ClientSecretFile receives the App's OAuth client secret, with which
	// the web interface signs people in (default: github-client-secret
	// beside the config file).
	ClientSecretFile string
	// MasterKeyFile receives a new master_key: 32 random bytes, hex (default
	// master-key beside the config file). It derives the per-PR generated
	// secrets and seals the sign-in sessions' tokens.
	MasterKeyFile string
	Force         bool
	// Client makes the conversion request (default: 30 s timeout).
	Client *http.Client
	// Out receives what the person should do and what was written.
	Out io.Writer
}

// App is the registered App and where its configuration was written.
type App struct {
	ID      int64
	Slug    string
	HTMLURL string
	// InstallURL is where the App is installed on accounts and repositories.
	InstallURL string
	ConfigPath string
	KeyFile    string
	SecretFile string
	// ClientID is the App's OAuth client (sign-in to the web interface);
	// its secret is in ClientSecretFile.
	ClientID         string
	ClientSecretFile string
	// MasterKeyFile holds the config's master_key, made by setup.
	MasterKeyFile string
}

// Registration is one run of the manifest flow.
type Registration struct {
	opts       Options
	webURL     string // GitHub's web root, without trailing slash
	apiURL     string // REST base, with trailing slash
	hookURL    string
	formAction string // the new-App page, with the state
	state      string // CSRF: only GitHub's redirect of our form carries it

	mu       sync.Mutex
	finished bool
	manifest Manifest
	done     chan result
}

type result struct {
	app *App
	err error
}

// New checks opts and prepares a registration; nothing is registered and
// nothing written until Run.
func New(opts Options) (*Registration, error) {
	if opts.GitHubURL == "" {
		opts.GitHubURL = DefaultGitHubURL
	}
	if opts.Name == "" {
		opts.Name = "deploybot"
	}
	if opts.ConfigPath == "" {
		opts.ConfigPath = "config.yml"
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	// Run and the page handlers both report to Out.
	opts.Out = &lockedWriter{w: opts.Out}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 30 * time.Second}
	}
	public, err := httpURL("--public-url", opts.PublicURL)
	if err != nil {
		return nil, err
	}
	web, err := httpURL("--github-url", opts.GitHubURL)
	if err != nil {
		return nil, err
	}
	api := opts.APIURL
	if api == "" {
		api = apiURLFor(web)
	} else if _, err := httpURL("--api-url", api); err != nil {
		return nil, err
	}
	if opts.Org != "" && !isLogin(opts.Org) {
		return nil, fmt.Errorf("setup: --org %q is not an organization's login (letters, digits and single hyphens)", opts.Org)
	}
	if n := len([]rune(opts.Name)); n > 34 {
		return nil, fmt.Errorf("setup: --name %q is %d characters long; GitHub allows 34", opts.Name, n)
	}
	cfgDir := filepath.Dir(opts.ConfigPath)
	if opts.KeyFile == "" {
		opts.KeyFile = filepath.Join(cfgDir, "github-app.pem")
	}
	if opts.ClientSecretFile == "" {
		opts.ClientSecretFile = filepath.Join(cfgDir, "github-client-secret")
	}
	if opts.MasterKeyFile == "" {
		opts.MasterKeyFile = filepath.Join(cfgDir, "master-key")
	}
	if opts.SecretFile == "" {
		opts.SecretFile = filepath.Join(cfgDir, "github-webhook-secret")
	}
	// Refuse before anything is registered: an App whose key could not be
	// written would have to be given a new key by hand.
	if _, err := os.Lstat(opts.ConfigPath); err == nil {
		return nil, fmt.Errorf("setup: %s already exists; setup writes a new config and never overwrites one (move it away, or pass --config NEW.yml)", opts.ConfigPath)
	}
	if !opts.Force {
		for _, f := range []struct{ flag, path string }{{"--key-file", opts.KeyFile}, {"--secret-file", opts.SecretFile}, {"--client-secret-file", opts.ClientSecretFile}, {"--master-key-file", opts.MasterKeyFile}} {
			if _, err := os.Lstat(f.path); err == nil {
				return nil, fmt.Errorf("setup: %s (%s) already exists; pass --force to replace it", f.path, f.flag)
			}
		}
	}
	for _, dir := range []string{cfgDir, filepath.Dir(opts.KeyFile), filepath.Dir(opts.SecretFile), filepath.Dir(opts.ClientSecretFile), filepath.Dir(opts.MasterKeyFile)} {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("setup: directory %s does not exist", dir)
		}
	}

	state := make([]byte, 32)
	if _, err := rand.Read(state); err != nil {
		return nil, fmt.Errorf("setup: state: %w", err)
	}
	r := &Registration{
		opts:    opts,
		webURL:  strings.TrimSuffix(web.String(), "/"),
		apiURL:  strings.TrimSuffix(api, "/") + "/",
		hookURL: strings.TrimSuffix(public.String(), "/") + server.WebhookPath,
		state:   hex.EncodeToString(state),
		done:    make(chan result, 1),
	}
	page := r.webURL + "/settings/apps/new"
	if opts.Org != "" {
		page = r.webURL + "/organizations/" + url.PathEscape(opts.Org) + "/settings/apps/new"
	}
	r.formAction = page + "?state=" + url.QueryEscape(r.state)
	r.opts.PublicURL = strings.TrimSuffix(public.String(), "/")
	return r, nil
}

// APIURL is the REST API the code is converted with and the config names.
func (r *Registration) APIURL() string { return r.apiURL }

// apiURLFor is GitHub's REST API for its web address: api.github.com for
// github.com, HOST/api/v3 on GitHub Enterprise Server.
func apiURLFor(web *url.URL) string {
	if strings.EqualFold(web.Hostname(), "github.com") || strings.EqualFold(web.Hostname(), "www.github.com") {
		return github.DefaultV3URL
	}
	return strings.TrimSuffix(web.String(), "/") + "/api/v3/"
}

func httpURL(flag, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if s == "" {
		return nil, fmt.Errorf("setup: %s is required", flag)
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("setup: %s %q is not an http(s) URL without query (e.g. https://deploybot.example.com)", flag, s)
	}
	return u, nil
}

// isLogin is GitHub's rule for account logins.
func isLogin(s string) bool {
	if s == "" || len(s) > 39 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Run serves the page that starts the flow on ln and waits until GitHub's
// redirect comes back and the App is written down, or ctx ends. The page's
// address must be reachable from the browser that opens it.
func (r *Registration) Run(ctx context.Context, ln net.Listener) (*App, error) {
	local := localURL(ln.Addr())
	r.mu.Lock()
	r.manifest = newManifest(r.opts.Name, r.opts.PublicURL, r.hookURL, local+"/callback", strings.TrimSuffix(r.opts.PublicURL, "/")+login.PathCallback, r.opts.Teams)
	r.mu.Unlock()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", r.servePage)
	mux.HandleFunc("GET /callback", r.serveCallback)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	where := "your account"
	if r.opts.Org != "" {
		where = "the organization " + r.opts.Org
	}
	fmt.Fprintf(r.opts.Out, "Open %s/ in a browser to register the GitHub App %q in %s on %s.\nIts webhooks will go to %s. Waiting for GitHub (the flow must end within an hour)…\n",
		local, r.opts.Name, where, r.webURL, r.hookURL)

	var res result
	select {
	case <-ctx.Done():
		res.err = fmt.Errorf("setup: stopped before GitHub sent the App back: %w", ctx.Err())
	case err := <-served:
		res.err = fmt.Errorf("setup: serving %s: %w", local, err)
	case res = <-r.done:
	}
	// Let the last page reach the browser before the server goes.
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if res.err != nil {
		return nil, res.err
	}
	a := res.app
	secrets := "the webhook secret to " + a.SecretFile
	if a.ClientSecretFile != "" {
		secrets += ", the sign-in client's secret to " + a.ClientSecretFile
	}
	secrets += " and a new master key to " + a.MasterKeyFile
	fmt.Fprintf(r.opts.Out, "\nRegistered the GitHub App %s (App ID %d): %s\nWrote %s, the private key to %s and %s (each readable by you only).\n\nNext:\n  1. Install the App on the repositories it deploys: %s\n  2. Map each repository to its Cloudflare account under repositories: in %s (config.example.yml documents every key).\n  3. Start the bot: bot serve --config %s\n",
		a.Slug, a.ID, a.HTMLURL, a.ConfigPath, a.KeyFile, secrets, a.InstallURL, a.ConfigPath, a.ConfigPath)
	return a, nil
}

// localURL is the address a browser on this machine opens: an unspecified
// listen address (0.0.0.0, ::) is reached as 127.0.0.1.
func localURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><meta charset="utf-8"><title>deploybot setup</title>
<h1>Register deploybot's GitHub App</h1>
<p>This creates the GitHub App <b>{{.Name}}</b> in {{.Where}} on {{.Web}}. GitHub shows it to you first, and you may rename it there.</p>
<ul>
<li>Webhooks go to <code>{{.Hook}}</code>.</li>
<li>Permissions: {{range $i, $p := .Permissions}}{{if $i}}, {{end}}{{$p}}{{end}}.</li>
<li>Events: {{range $i, $e := .Events}}{{if $i}}, {{end}}{{$e}}{{end}}.</li>
</ul>
<form action="{{.Action}}" method="post">
<input type="hidden" name="manifest" value="{{.Manifest}}">
<button type="submit">Create the App on GitHub</button>
</form>
</html>
`))

// servePage is step 1: the form that posts the manifest to GitHub.
func (r *Registration) servePage(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	m := r.manifest
	r.mu.Unlock()
	raw, err := json.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var perms []string
	for _, k := range slices.Sorted(maps.Keys(m.DefaultPermissions)) {
		perms = append(perms, k+": "+m.DefaultPermissions[k])
	}
	where := "your personal account"
	if r.opts.Org != "" {
		where = "the organization " + r.opts.Org
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The page posts to GitHub; nobody else should frame it.
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Cache-Control", "no-store")
	_ = pageTemplate.Execute(w, map[string]any{
		"Name": m.Name, "Where": where, "Web": r.webURL, "Hook": m.HookAttributes.URL,
		"Permissions": perms, "Events": m.DefaultEvents,
		"Action": template.URL(r.formAction), "Manifest": string(raw),
	})
}

var donePage = template.Must(template.New("done").Parse(`<!DOCTYPE html>
<html lang="en"><meta charset="utf-8"><title>deploybot setup</title>
{{if .Err}}<h1>The App could not be set up</h1><p>{{.Err}}</p>
{{else}}<h1>Registered {{.App.Slug}}</h1>
<p>The configuration is written to <code>{{.App.ConfigPath}}</code>; this page can be closed.</p>
<p>Now <a href="{{.App.InstallURL}}">install the App</a> on the repositories it deploys.</p>{{end}}
</html>
`))

// serveCallback is step 2 and 3: GitHub's redirect with the code.
func (r *Registration) serveCallback(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	q := req.URL.Query()
	// Only GitHub's redirect of the form served here knows the state: any
	// other request (a link on another site, a stale tab) is refused
	// before its code is used.
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(r.state)) != 1 {
		fmt.Fprintf(r.opts.Out, "Refused a request to /callback without this setup's state (not GitHub's answer to its form).\n")
		w.WriteHeader(http.StatusBadRequest)
		_ = donePage.Execute(w, map[string]any{"Err": "This answer does not carry the state of the form this setup served, so it is not GitHub's answer to it. Nothing was registered by this request; open the setup page again."})
		return
	}
	code := q.Get("code")
	if code == "" {
		w.WriteHeader(http.StatusBadRequest)
		_ = donePage.Execute(w, map[string]any{"Err": "GitHub's answer carries no code."})
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		w.WriteHeader(http.StatusConflict)
		_ = donePage.Execute(w, map[string]any{"Err": "This setup has already finished."})
		return
	}
	r.finished = true
	app, err := r.complete(req.Context(), code)
	r.done <- result{app: app, err: err}
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		_ = donePage.Execute(w, map[string]any{"Err": err.Error()})
		return
	}
	_ = donePage.Execute(w, map[string]any{"App": app})
}

// complete converts the code and writes the key, the secret and the config.
func (r *Registration) complete(ctx context.Context, code string) (*App, error) {
	reg, err := github.ConvertManifestCode(ctx, r.opts.Client, r.apiURL, code)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	app := &App{
		ID:            reg.ID,
		Slug:          reg.Slug,
		HTMLURL:       reg.HTMLURL,
		InstallURL:    strings.TrimSuffix(reg.HTMLURL, "/") + "/installations/new",
		ConfigPath:    r.opts.ConfigPath,
		KeyFile:       r.opts.KeyFile,
		SecretFile:    r.opts.SecretFile,
		ClientID:      reg.ClientID,
		MasterKeyFile: r.opts.MasterKeyFile,
	}
	if reg.ClientSecret != "" {
		app.ClientSecretFile = r.opts.ClientSecretFile
	}
	// From here on the App exists on GitHub: a failure says how to finish
	// by hand rather than leave an App nobody can use.
	lost := func(what string, err error) error {
		return fmt.Errorf("setup: the App %s (App ID %d) is registered, but %s: %w; finish on its settings page (%s): generate a new private key and webhook secret there, and write the config by hand (README, \"Running it for real\")",
			app.Slug, app.ID, what, err, settingsURL(r.webURL, r.opts.Org, app.Slug))
	}
	if err := writePrivate(app.KeyFile, reg.PrivateKey, r.opts.Force); err != nil {
		return nil, lost("its private key could not be written", err)
	}
	if err := writePrivate(app.SecretFile, []byte(reg.WebhookSecret+"\n"), r.opts.Force); err != nil {
		return nil, lost("its webhook secret could not be written", err)
	}
	if app.ClientSecretFile != "" {
		if err := writePrivate(app.ClientSecretFile, []byte(reg.ClientSecret+"\n"), r.opts.Force); err != nil {
			return nil, lost("its client secret could not be written", err)
		}
	}
	key := make([]byte, config.MinMasterKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, lost("no master key could be made", err)
	}
	if err := writePrivate(app.MasterKeyFile, []byte(hex.EncodeToString(key)+"\n"), r.opts.Force); err != nil {
		return nil, lost("its master key could not be written", err)
	}
	body, err := r.configFile(app)
	if err != nil {
		return nil, lost("its config could not be made", err)
	}
	if err := writePrivate(app.ConfigPath, body, false); err != nil {
		return nil, lost("the config could not be written", err)
	}
	return app, nil
}

func settingsURL(web, org, slug string) string {
	if org != "" {
		return web + "/organizations/" + org + "/settings/apps/" + slug
	}
	return web + "/settings/apps/" + slug
}

// configFile is the config that runs the App: its id, the files holding
// its secrets, GitHub's API and the bot's public URL. Paths are absolute,
// so the bot finds them from any working directory.
func (r *Registration) configFile(app *App) ([]byte, error) {
	keyFile, err := filepath.Abs(app.KeyFile)
	if err != nil {
		return nil, err
	}
	secretFile, err := filepath.Abs(app.SecretFile)
	if err != nil {
		return nil, err
	}
	type fileRef struct {
		File string `yaml:"file"`
	}
	var doc struct {
		Server struct {
			PublicURL string `yaml:"public_url"`
		} `yaml:"server"`
		GitHub struct {
			V3APIURL string `yaml:"v3_api_url"`
			V4APIURL string `yaml:"v4_api_url"`
			App      struct {
				IntegrationID int64    `yaml:"integration_id"`
				WebhookSecret fileRef  `yaml:"webhook_secret"`
				PrivateKey    fileRef  `yaml:"private_key"`
				ClientID      string   `yaml:"client_id,omitempty"`
				ClientSecret  *fileRef `yaml:"client_secret,omitempty"`
			} `yaml:"app"`
			WebURL string `yaml:"web_url"`
		} `yaml:"github"`
		MasterKey fileRef `yaml:"master_key"`
	}
	doc.Server.PublicURL = r.opts.PublicURL
	doc.GitHub.V3APIURL = r.apiURL
	doc.GitHub.V4APIURL = github.DefaultV4URL(r.apiURL)
	doc.GitHub.App.IntegrationID = app.ID
	doc.GitHub.App.WebhookSecret = fileRef{File: secretFile}
	doc.GitHub.App.PrivateKey = fileRef{File: keyFile}
	doc.GitHub.WebURL = r.webURL
	masterKeyFile, err := filepath.Abs(app.MasterKeyFile)
	if err != nil {
		return nil, err
	}
	doc.MasterKey = fileRef{File: masterKeyFile}
	if app.ClientSecretFile != "" && app.ClientID != "" {
		clientSecretFile, err := filepath.Abs(app.ClientSecretFile)
		if err != nil {
			return nil, err
		}
		doc.GitHub.App.ClientID = app.ClientID
		doc.GitHub.App.ClientSecret = &fileRef{File: clientSecretFile}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `bot setup` for the GitHub App %s (%s).\n", app.Slug, app.HTMLURL)
	b.WriteString("# config.example.yml documents every other key: add the repositories the\n# bot deploys under repositories:, Neon and Cloudflare credentials and a\n# database (without one the bot runs a private PostgreSQL under data_dir).\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// writePrivate writes data to path readable and writable by its owner only
// (0600). An existing file is refused unless replace is set; a replaced
// file is swapped in whole (a temporary file renamed over it), so a reader
// never sees half of it and it never keeps the old file's mode.
func writePrivate(path string, data []byte, replace bool) error {
	if !replace {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		return finish(f, data, path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if err := finish(f, data, path); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

func finish(f *os.File, data []byte, path string) error {
	// The umask can only take bits away; set the mode explicitly anyway,
	// as CreateTemp's 0600 is an implementation detail.
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// lockedWriter serializes writes from Run and the request handlers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
