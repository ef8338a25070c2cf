package ghsim

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// goodManifest is a manifest GitHub accepts, as a JSON-ready map.
func goodManifest(name string) map[string]any {
	return map[string]any{
		"name":                name,
		"url":                 "https://bot.example.com",
		"hook_attributes":     map[string]any{"url": "https://bot.example.com/api/github/hook", "active": true},
		"redirect_url":        "http://127.0.0.1:9999/callback",
		"public":              false,
		"default_permissions": map[string]string{"checks": "write", "contents": "read", "pull_requests": "write", "issues": "write", "metadata": "read"},
		"default_events":      []string{"check_run", "pull_request", "push", "issue_comment"},
	}
}

// postManifest submits the new-App form the way a browser does, without
// following the redirect.
func (s *sim) postManifest(page, state string, m any) *http.Response {
	s.t.Helper()
	raw, err := json.Marshal(m)
	must(s.t, err)
	action := s.url + page
	if state != "" {
		action += "?state=" + url.QueryEscape(state)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(action, url.Values{"manifest": {string(raw)}})
	must(s.t, err)
	s.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestManifestFlow walks GitHub's three steps: the form registers the App
// and sends the browser back with a code and the state; the code converts
// once into the App's credentials; the App's key then authenticates it.
func TestManifestFlow(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newSim(t, Options{Now: clock.Now})

	resp := s.postManifest("/settings/apps/new", "st4te", goodManifest("Preview Bot"))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("new-App page answered %d, want a 302 redirect", resp.StatusCode)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	must(t, err)
	if back.Host != "127.0.0.1:9999" || back.Path != "/callback" || back.Query().Get("state") != "st4te" {
		t.Fatalf("redirected to %s, want the redirect_url with state st4te", back)
	}
	code := back.Query().Get("code")
	if code == "" {
		t.Fatalf("redirect %s carries no code", back)
	}

	resp2, body := s.do("POST", "/app-manifests/"+code+"/conversions", "", nil)
	if resp2.StatusCode != http.StatusCreated {
		t.Fatalf("conversion: %d %s", resp2.StatusCode, body)
	}
	validateResponse(t, "POST /app-manifests/{code}/conversions", http.StatusCreated, body)
	var app struct {
		ID            int64             `json:"id"`
		Slug          string            `json:"slug"`
		PEM           string            `json:"pem"`
		WebhookSecret string            `json:"webhook_secret"`
		HTMLURL       string            `json:"html_url"`
		Permissions   map[string]string `json:"permissions"`
		Events        []string          `json:"events"`
		Owner         struct{ Login string }
	}
	must(t, json.Unmarshal(body, &app))
	if app.Slug != "preview-bot" || app.HTMLURL != "https://github.com/apps/preview-bot" || app.WebhookSecret == "" || app.Owner.Login != manifestOwner {
		t.Errorf("converted App = %+v", app)
	}
	if app.Permissions["checks"] != "write" || !slices.Contains(app.Events, "push") {
		t.Errorf("the App lost its manifest's permissions or events: %v %v", app.Permissions, app.Events)
	}

	// The pem is the App's key: a JWT it signs reads the App.
	block, _ := pem.Decode([]byte(app.PEM))
	if block == nil {
		t.Fatalf("pem is not PEM: %.40q", app.PEM)
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	must(t, err)
	now := clock.Now()
	jwt := "Bearer " + signJWT(t, key, app.ID, now.Add(-30*time.Second), now.Add(5*time.Minute))
	resp3, body := s.do("GET", "/app", jwt, nil)
	if resp3.StatusCode != http.StatusOK || decode(t, body)["slug"] != "preview-bot" {
		t.Fatalf("GET /app as the new App: %d %s", resp3.StatusCode, body)
	}
	validateResponse(t, "GET /app", http.StatusOK, body)
	// Signed by the sandbox's own key, the new App's id is refused.
	if resp, body := s.do("GET", "/app", "Bearer "+signJWT(t, appKey(), app.ID, now.Add(-30*time.Second), now.Add(5*time.Minute)), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a JWT for the new App signed with another key: %d %s", resp.StatusCode, body)
	}
	// Registered, not installed: no installation token.
	if resp, body := s.do("POST", fmt.Sprintf("/app/installations/%d/access_tokens", s.InstallationID()), jwt, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the new App got a token for an installation it does not have: %d %s", resp.StatusCode, body)
	}

	// A code converts once.
	if resp, body := s.do("POST", "/app-manifests/"+code+"/conversions", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("second conversion of a code: %d %s, want 404", resp.StatusCode, body)
	}
	if resp, _ := s.do("POST", "/app-manifests/not-a-code/conversions", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown code: %d, want 404", resp.StatusCode)
	}
	// And only within the hour.
	resp = s.postManifest("/organizations/acme/settings/apps/new", "", goodManifest("Late Bot"))
	late, _ := url.Parse(resp.Header.Get("Location"))
	if late.Query().Has("state") {
		t.Errorf("a form without state came back with one: %s", late)
	}
	clock.Advance(time.Hour)
	if resp, _ := s.do("POST", "/app-manifests/"+late.Query().Get("code")+"/conversions", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a code an hour old: %d, want 404", resp.StatusCode)
	}
	apps := s.RegisteredApps()
	if len(apps) != 2 || apps[1].Owner != "acme" || !apps[0].Converted || apps[1].Converted {
		t.Errorf("registered apps = %+v; want preview-bot (converted) and late-bot owned by acme", apps)
	}
}

// TestManifestRefusals: a manifest GitHub would refuse registers nothing,
// and the page says which parameter is wrong.
func TestManifestRefusals(t *testing.T) {
	s := newSim(t, Options{})
	with := func(change func(m map[string]any)) map[string]any {
		m := goodManifest("Refused Bot")
		change(m)
		return m
	}
	for _, tc := range []struct {
		name     string
		manifest any
		want     string
	}{
		{"no name", with(func(m map[string]any) { delete(m, "name") }), "name is required"},
		{"long name", with(func(m map[string]any) { m["name"] = strings.Repeat("n", 35) }), "too long (maximum is 34"},
		{"taken name", with(func(m map[string]any) { m["name"] = "Deploybot" }), "already in use"},
		{"no homepage", with(func(m map[string]any) { delete(m, "url") }), "url is required"},
		{"relative hook", with(func(m map[string]any) { m["hook_attributes"] = map[string]any{"url": "/api/github/hook"} }), "hook_attributes.url \"/api/github/hook\" is not an absolute"},
		{"hook without url", with(func(m map[string]any) { m["hook_attributes"] = map[string]any{"active": true} }), "hook_attributes.url is required"},
		{"bad redirect", with(func(m map[string]any) { m["redirect_url"] = "callback" }), "redirect_url \"callback\""},
		{"unknown permission", with(func(m map[string]any) { m["default_permissions"] = map[string]string{"checkz": "write"} }), "checkz is not a GitHub App permission"},
		{"bad level", with(func(m map[string]any) {
			m["default_permissions"] = map[string]string{"checks": "admin", "contents": "read", "pull_requests": "write", "issues": "write"}
		}), `checks: "admin" is not one of read, write`},
		{"installation event", with(func(m map[string]any) { m["default_events"] = []string{"installation", "pull_request"} }), "Default events unsupported: installation"},
		{"event without its permission", with(func(m map[string]any) {
			m["default_permissions"] = map[string]string{"checks": "write", "pull_requests": "write"}
		}), "Default events are not supported by permissions: push, issue_comment"},
		{"unknown parameter", with(func(m map[string]any) { m["hook_attribute"] = map[string]any{} }), `unknown field "hook_attribute"`},
		{"not an object", []string{"name"}, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.postManifest("/settings/apps/new", "x", tc.manifest)
			body, err := io.ReadAll(resp.Body)
			must(t, err)
			page := html.UnescapeString(string(body)) // GitHub's answer is an HTML page
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, tc.want) {
				t.Errorf("answered %d %q; want 422 naming %q", resp.StatusCode, page, tc.want)
			}
		})
	}
	if apps := s.RegisteredApps(); len(apps) != 0 {
		t.Errorf("refused manifests registered Apps: %+v", apps)
	}
}

// TestManifestEventsFollowTheDescription checks the events ghsim lets an
// App subscribe to, and the permission each needs, against GitHub's own
// words in the official description's x-webhooks ("To subscribe to this
// event, a GitHub App must have at least read-level access for the
// "Checks" repository permission"). The full description is read when it
// is on this machine (the embedded subset has no webhooks).
func TestManifestEventsFollowTheDescription(t *testing.T) {
	const src = "/work/shared/fixtures/openapi/github-api.github.com.json"
	data, err := os.ReadFile(src)
	if err != nil {
		t.Skip("the official description is not on this machine:", err)
	}
	var doc struct {
		Webhooks map[string]struct {
			Post struct {
				Summary     string `json:"summary"`
				Description string `json:"description"`
				Parameters  []struct {
					Name    string `json:"name"`
					Example any    `json:"example"`
				} `json:"parameters"`
			} `json:"post"`
		} `json:"x-webhooks"`
	}
	must(t, json.Unmarshal(data, &doc))
	// The permissions' names as the descriptions write them.
	keys := map[string]string{
		"Administration": "administration", "Checks": "checks", "Contents": "contents", "Deployments": "deployments",
		"Discussions": "discussions", "Issues": "issues", "Metadata": "metadata", "Members": "members",
		"Merge queues": "merge_queues", "Pages": "pages", "Pull requests": "pull_requests",
		"Commit statuses": "statuses", "Actions": "actions",
	}
	sentence := regexp.MustCompile(`To subscribe to this event, a GitHub App must have at least read-level access for the ([^.]*)\.`)
	quoted := regexp.MustCompile(`"([^"]+)"`)
	described := map[string]map[string]bool{}
	for _, hook := range doc.Webhooks {
		var event string
		for _, p := range hook.Post.Parameters {
			if strings.EqualFold(p.Name, "X-GitHub-Event") {
				event, _ = p.Example.(string)
			}
		}
		for _, m := range sentence.FindAllStringSubmatch(hook.Post.Summary+hook.Post.Description, -1) {
			for _, q := range quoted.FindAllStringSubmatch(m[1], -1) {
				if described[event] == nil {
					described[event] = map[string]bool{}
				}
				described[event][keys[q[1]]] = true
			}
		}
	}
	for event, needs := range eventPermissions() {
		want := described[event]
		if len(want) == 0 {
			t.Errorf("%s: the description names no permission for it", event)
			continue
		}
		for _, p := range needs {
			if !want[p] {
				t.Errorf("%s: ghsim accepts %s for it; the description says %v", event, p, want)
			}
		}
		if len(needs) != len(want) {
			t.Errorf("%s: ghsim accepts %v; the description says %v", event, needs, want)
		}
	}
	for _, global := range []string{"installation", "installation_repositories"} {
		if _, ok := eventPermissions()[global]; ok || len(described[global]) != 0 {
			t.Errorf("%s is sent to every App and cannot be subscribed to", global)
		}
	}
}
