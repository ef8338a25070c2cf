package ghsim

import (
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// The App-manifest flow (docs.github.com/apps/sharing-github-apps/
// registering-a-github-app-from-a-manifest): a page POSTs a JSON manifest
// to GitHub's new-App page, GitHub registers the App and sends the browser
// back to the manifest's redirect_url with a one-hour code, and
// POST /app-manifests/{code}/conversions trades the code, once, for the
// App's id, private key and webhook secret. The rules and their sources are
// in internal/sandbox/CONFORMANCE.md.

const (
	// routeManifestConversion takes no credentials: the code is one.
	routeManifestConversion = "POST /app-manifests/{code}/conversions"
	// manifestCodeTTL: "You must complete all three steps in the GitHub
	// App Manifest flow within one hour."
	manifestCodeTTL = time.Hour
	// maxAppName is GitHub's limit on an App's name.
	maxAppName = 34
	// maxCallbackURLs: "You can provide up to 10 callback URLs."
	maxCallbackURLs = 10
	// invalidManifest heads GitHub's page for a manifest it refuses.
	invalidManifest = "Invalid GitHub App configuration. The configuration does not appear to be a valid GitHub App manifest."
)

// registeredApp is an App registered through the manifest flow. It can
// authenticate (GET /app answers it) but has no installation.
type registeredApp struct {
	id            int64
	slug, name    string
	owner         string
	key           *rsa.PrivateKey
	webhookSecret string
	clientID      string
	clientSecret  string
	hookURL       string
	callbacks     []string // the sign-in flow's redirect URLs (oauth.go)
	homepage      string
	permissions   map[string]string
	events        []string
	created       time.Time
	// code trades for the credentials once, until codeExpires.
	code        string
	codeExpires time.Time
	converted   bool
}

// manifest is what GitHub reads from the form's manifest parameter.
type manifest struct {
	Name           string `json:"name"`
	URL            string `json:"url"`
	Description    string `json:"description"`
	HookAttributes *struct {
		URL    string `json:"url"`
		Active *bool  `json:"active"`
	} `json:"hook_attributes"`
	RedirectURL           string            `json:"redirect_url"`
	CallbackURLs          []string          `json:"callback_urls"`
	SetupURL              string            `json:"setup_url"`
	Public                bool              `json:"public"`
	DefaultEvents         []string          `json:"default_events"`
	DefaultPermissions    map[string]string `json:"default_permissions"`
	RequestOAuthOnInstall bool              `json:"request_oauth_on_install"`
	SetupOnUpdate         bool              `json:"setup_on_update"`
}

// isNewAppPage reports whether path is GitHub's page for registering an
// App: /settings/apps/new (a personal account's) or
// /organizations/{org}/settings/apps/new; org is "" for the former.
func isNewAppPage(path string) (org string, ok bool) {
	if path == "/settings/apps/new" {
		return "", true
	}
	rest, found := strings.CutPrefix(path, "/organizations/")
	if !found {
		return "", false
	}
	org, found = strings.CutSuffix(rest, "/settings/apps/new")
	if !found || org == "" || strings.Contains(org, "/") {
		return "", false
	}
	return org, true
}

// manifestOwner is who registers an App from a personal account's page:
// the simulated GitHub's one signed-in person.
const manifestOwner = "deploybot-owner"

// serveNewAppPage registers an App from a posted manifest and redirects to
// its redirect_url with the code and the caller's state. GitHub first shows
// the person a page to confirm (and rename) the App; ghsim registers it at
// once, as if they had clicked "Create GitHub App".
func (s *Server) serveNewAppPage(w http.ResponseWriter, r *http.Request, org string) {
	const route = "POST /settings/apps/new"
	if r.Method != http.MethodPost {
		// A GET shows GitHub's empty form, which no client here reads.
		s.record(route, http.StatusMethodNotAllowed)
		http.Error(w, "ghsim serves the new-App page to POSTed manifests only", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		s.refuseManifest(w, route, "the form could not be read: "+err.Error())
		return
	}
	raw := r.PostForm.Get("manifest")
	if raw == "" {
		s.refuseManifest(w, route, "Error: no manifest parameter was posted")
		return
	}
	var m manifest
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		s.refuseManifest(w, route, "Error: the manifest is not a JSON object of GitHub App Manifest parameters: "+err.Error())
		return
	}
	owner := manifestOwner
	if org != "" {
		owner = org
	}

	s.mu.Lock()
	problems := s.checkManifest(m)
	var app *registeredApp
	if len(problems) == 0 {
		var err error
		if app, err = s.registerApp(m, owner); err != nil {
			problems = append(problems, err.Error())
		}
	}
	s.mu.Unlock()
	if len(problems) > 0 {
		s.refuseManifest(w, route, "Error: "+strings.Join(problems, "; "))
		return
	}

	var target string
	if m.RedirectURL == "" {
		// Nobody to hand the code to: GitHub shows the App's settings.
		target = s.opts.WebURL + "/settings/apps/" + app.slug
	} else {
		u, _ := url.Parse(m.RedirectURL) // checked by checkManifest
		q := u.Query()
		q.Set("code", app.code)
		if state := r.Form.Get("state"); state != "" {
			q.Set("state", state)
		}
		u.RawQuery = q.Encode()
		target = u.String()
	}
	s.record(route, http.StatusFound)
	http.Redirect(w, r, target, http.StatusFound)
}

// refuseManifest answers GitHub's page for a manifest it cannot use.
func (s *Server) refuseManifest(w http.ResponseWriter, route, why string) {
	s.record(route, http.StatusUnprocessableEntity)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusUnprocessableEntity)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<title>Invalid GitHub App configuration</title>\n<p>%s</p>\n<p>%s</p>\n",
		html.EscapeString(invalidManifest), html.EscapeString(why))
}

// checkManifest returns what GitHub would refuse in m, each naming the
// parameter. Callers hold s.mu.
func (s *Server) checkManifest(m manifest) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	switch {
	case m.Name == "":
		// GitHub asks the person for a name; ghsim has no such page.
		add("name is required (ghsim has no page to type one in)")
	case len([]rune(m.Name)) > maxAppName:
		add("name %q is too long (maximum is %d characters)", m.Name, maxAppName)
	case s.appSlugTaken(slugify(m.Name)):
		add("Name %q is already in use", m.Name)
	}
	if slugify(m.Name) == "" && m.Name != "" {
		add("name %q has no letter or digit", m.Name)
	}
	if m.URL == "" {
		add("url is required (the App's homepage)")
	} else if err := absoluteURL(m.URL); err != nil {
		add("url %v", err)
	}
	if m.HookAttributes != nil {
		if m.HookAttributes.URL == "" {
			add("hook_attributes.url is required")
		} else if err := absoluteURL(m.HookAttributes.URL); err != nil {
			add("hook_attributes.url %v", err)
		}
	}
	for key, u := range map[string]string{"redirect_url": m.RedirectURL, "setup_url": m.SetupURL} {
		if u != "" {
			if err := absoluteURL(u); err != nil {
				add("%s %v", key, err)
			}
		}
	}
	if len(m.CallbackURLs) > maxCallbackURLs {
		add("callback_urls has %d URLs (at most %d)", len(m.CallbackURLs), maxCallbackURLs)
	}
	for i, u := range m.CallbackURLs {
		if err := absoluteURL(u); err != nil {
			add("callback_urls[%d] %v", i, err)
		}
	}
	known := permissionLevels()
	for _, name := range slices.Sorted(maps.Keys(m.DefaultPermissions)) {
		level := m.DefaultPermissions[name]
		levels, ok := known[name]
		switch {
		case !ok:
			add("Default permission records invalid: %s is not a GitHub App permission", name)
		case !slices.Contains(levels, level):
			add("Default permission records invalid: %s: %q is not one of %s", name, level, strings.Join(levels, ", "))
		}
	}
	var unsupported, unbacked []string
	subscribable := eventPermissions()
	for _, ev := range m.DefaultEvents {
		needs, ok := subscribable[ev]
		if !ok {
			unsupported = append(unsupported, ev)
			continue
		}
		if !slices.ContainsFunc(needs, func(p string) bool { return m.DefaultPermissions[p] != "" }) {
			unbacked = append(unbacked, ev)
		}
	}
	if len(unsupported) > 0 {
		add("Default events unsupported: %s", strings.Join(unsupported, ", "))
	}
	if len(unbacked) > 0 {
		add("Default events are not supported by permissions: %s", strings.Join(unbacked, ", "))
	}
	return problems
}

// absoluteURL accepts an http(s) URL with a host.
func absoluteURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// permissionLevels are the App permissions and the levels each accepts, as
// the official description's app-permissions schema lists them (the
// permissions an installation token can be asked for: the same set an App
// is registered with).
func permissionLevels() map[string][]string {
	out := map[string][]string{}
	schema := apispec.MustLoad("github").Doc().Components.Schemas["app-permissions"]
	for name, p := range schema.Value.Properties {
		for _, v := range p.Value.Enum {
			if s, ok := v.(string); ok {
				out[name] = append(out[name], s)
			}
		}
	}
	return out
}

// eventPermissions maps each event an App may subscribe to onto the
// permissions (any one of them, at read level or more) it needs: "To
// subscribe to this event, a GitHub App must have at least read-level
// access for the … permission", in each event's description in the
// official description's x-webhooks. TestManifestEventsFollowTheDescription
// checks this table against that text. Events GitHub sends every App
// (installation, installation_repositories) and global ones (meta,
// security_advisory, …) cannot be subscribed to ("Default events
// unsupported"), and neither, here, can events not in the table.
func eventPermissions() map[string][]string {
	return map[string][]string{
		"branch_protection_rule":      {"administration"},
		"check_run":                   {"checks"},
		"check_suite":                 {"checks"},
		"commit_comment":              {"contents"},
		"create":                      {"contents"},
		"delete":                      {"contents"},
		"deployment":                  {"deployments"},
		"deployment_status":           {"deployments"},
		"discussion":                  {"discussions"},
		"discussion_comment":          {"discussions"},
		"fork":                        {"contents"},
		"gollum":                      {"contents"},
		"issue_comment":               {"issues"},
		"issues":                      {"issues"},
		"label":                       {"metadata"},
		"member":                      {"members"},
		"membership":                  {"members"},
		"merge_group":                 {"merge_queues"},
		"milestone":                   {"issues", "pull_requests"},
		"organization":                {"members"},
		"page_build":                  {"pages"},
		"public":                      {"metadata"},
		"pull_request":                {"pull_requests"},
		"pull_request_review":         {"pull_requests"},
		"pull_request_review_comment": {"pull_requests"},
		"pull_request_review_thread":  {"pull_requests"},
		"push":                        {"contents"},
		"release":                     {"contents"},
		"repository":                  {"metadata"},
		"repository_dispatch":         {"contents"},
		"star":                        {"metadata"},
		"status":                      {"statuses"},
		"team":                        {"members"},
		"team_add":                    {"members"},
		"watch":                       {"metadata"},
		"workflow_dispatch":           {"contents"},
		"workflow_job":                {"actions"},
		"workflow_run":                {"actions"},
	}
}

// slugify makes an App's slug from its name the way GitHub does: lower
// case, every run of other characters one hyphen, none at the ends.
func slugify(name string) string {
	var b strings.Builder
	hyphen := false
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if hyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			hyphen = false
			b.WriteRune(c)
			continue
		}
		hyphen = true
	}
	return b.String()
}

// appSlugTaken: App names are unique across GitHub. Callers hold s.mu.
func (s *Server) appSlugTaken(slug string) bool {
	if slug == s.opts.AppSlug {
		return true
	}
	for _, a := range s.apps {
		if a.slug == slug {
			return true
		}
	}
	return false
}

// registerApp creates the App a checked manifest describes, with a fresh
// key and secrets. Callers hold s.mu.
func (s *Server) registerApp(m manifest, owner string) (*registeredApp, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate the App's key: %w", err)
	}
	app := &registeredApp{
		id:            s.newID(),
		slug:          slugify(m.Name),
		name:          m.Name,
		owner:         owner,
		key:           key,
		webhookSecret: randomHex(20),
		clientID:      "Iv23" + randomHex(8),
		clientSecret:  randomHex(20),
		permissions:   map[string]string{},
		events:        slices.Clone(m.DefaultEvents),
		callbacks:     slices.Clone(m.CallbackURLs),
		homepage:      m.URL,
		created:       s.now(),
		code:          randomHex(20),
		codeExpires:   s.now().Add(manifestCodeTTL),
	}
	if m.HookAttributes != nil {
		app.hookURL = m.HookAttributes.URL
	}
	maps.Copy(app.permissions, m.DefaultPermissions)
	// Every App can read metadata, asked for or not.
	if app.permissions["metadata"] == "" {
		app.permissions["metadata"] = "read"
	}
	if s.apps == nil {
		s.apps = map[int64]*registeredApp{}
	}
	s.apps[app.id] = app
	return app, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// convertManifest is POST /app-manifests/{code}/conversions: the App's
// credentials, once per code, within the hour.
func (s *Server) convertManifest(r *http.Request) reply {
	const doc = "https://docs.github.com/rest/apps/apps#create-a-github-app-from-a-manifest"
	code := apispec.PathParam(r.Context(), "code")
	now := s.now()
	for _, app := range s.apps {
		if app.code != code || code == "" {
			continue
		}
		if app.converted || !now.Before(app.codeExpires) {
			break // spent or expired: as unknown
		}
		app.converted = true
		body := s.registeredAppObject(app)
		body["client_id"] = app.clientID
		body["client_secret"] = app.clientSecret
		body["webhook_secret"] = app.webhookSecret
		body["pem"] = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(app.key)}))
		return created(body)
	}
	return fail(http.StatusNotFound, "Not Found", doc)
}

// registeredAppObject is GitHub's integration object for app.
func (s *Server) registeredAppObject(app *registeredApp) map[string]any {
	perms := map[string]any{}
	for k, v := range app.permissions {
		perms[k] = v
	}
	return map[string]any{
		"id":           app.id,
		"slug":         app.slug,
		"client_id":    app.clientID,
		"node_id":      nodeID("Integration", app.id),
		"owner":        s.userObject(app.owner),
		"name":         app.name,
		"description":  nil,
		"external_url": app.homepage,
		"html_url":     s.opts.WebURL + "/apps/" + app.slug,
		"created_at":   timestamp(app.created),
		"updated_at":   timestamp(app.created),
		"permissions":  perms,
		"events":       slices.Clone(app.events),
	}
}

// AppState is an App registered through the manifest flow, without its
// secrets.
type AppState struct {
	ID          int64             `json:"id"`
	Slug        string            `json:"slug"`
	Owner       string            `json:"owner"`
	WebhookURL  string            `json:"webhook_url"`
	Permissions map[string]string `json:"permissions"`
	Events      []string          `json:"events"`
	// Converted says whether its code was traded for its credentials.
	Converted bool `json:"converted"`
}

// RegisteredApps lists the Apps registered through the manifest flow, by id.
func (s *Server) RegisteredApps() []AppState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.registeredApps()
}

// registeredApps is RegisteredApps for callers holding s.mu.
func (s *Server) registeredApps() []AppState {
	out := make([]AppState, 0, len(s.apps))
	for _, a := range s.apps {
		out = append(out, AppState{ID: a.id, Slug: a.slug, Owner: a.owner, WebhookURL: a.hookURL,
			Permissions: maps.Clone(a.permissions), Events: slices.Clone(a.events), Converted: a.converted})
	}
	slices.SortFunc(out, func(a, b AppState) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// appKeyFor returns the public key that signs iss's JWTs: the sandbox's own
// App's or a registered one's. Callers hold s.mu.
func (s *Server) appKeyFor(iss string) (*rsa.PublicKey, int64, bool) {
	id, err := strconv.ParseInt(iss, 10, 64)
	if err != nil {
		return nil, 0, false
	}
	if id == s.opts.AppID {
		return &s.key.PublicKey, id, true
	}
	if a, ok := s.apps[id]; ok {
		return &a.key.PublicKey, id, true
	}
	return nil, 0, false
}
