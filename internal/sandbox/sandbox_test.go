package sandbox_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/internal/sandbox"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func start(t *testing.T) (*sandbox.Sandbox, sandbox.URLs, string) {
	t.Helper()
	ctx := context.Background()
	sb, err := sandbox.New(ctx, sandbox.Options{AdminURL: pgtest.ServerURL(t), WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close(context.Background()) })
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return sb, sb.URLsAt(srv.URL), srv.URL
}

// TestClientsThroughOneAddress drives the real Neon and Cloudflare clients
// against the sandbox served at one address, with faults on, and checks that
// the state endpoint and the edge show what they did.
func TestClientsThroughOneAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, urls, base := start(t)

	// A lost create response must not leave two branches.
	sb.Neon.Faults().Set(fault.Rule{Method: http.MethodPost, Times: 1, Status: http.StatusServiceUnavailable, AfterServe: true})
	nc := neon.New(urls.Neon, "neon-key", nil)
	for range 2 { // a retried job asks twice
		if _, err := nc.EnsureBranch(ctx, sb.NeonProject.ID, neon.BranchOptions{
			Name: "pr-1", Parent: "production",
			Tags: neon.Tags{Repo: "revelations-studio/codex", Purpose: neon.PurposePreview, PR: 1},
		}); err != nil {
			t.Fatal(err)
		}
	}

	sb.Cloudflare.Faults().Set(fault.Rule{Method: http.MethodPut, Times: 1, Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	cf, err := cloudflare.New(cloudflare.Options{AccountID: sb.Cloudflare.AccountID(), APIToken: "cf-token", BaseURL: urls.Cloudflare, RetryBaseDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cf.UploadWorker(ctx, cloudflare.Script{
		Name:              "codex-web-preview-1",
		MainModule:        "index.js",
		Modules:           []cloudflare.Module{{Name: "index.js", Content: []byte(`export default { fetch() { return new Response("hi") } }`)}},
		CompatibilityDate: "2025-01-01",
		Vars:              map[string]string{cloudflare.CommitVar: "0123abc"},
		Secrets:           map[string]string{"BETTER_AUTH_SECRET": "very-secret-value"},
	}); err != nil {
		t.Fatal(err)
	}
	host := cloudflare.Hostname{ZoneID: sb.ZoneID, Name: "codex-preview-1." + sb.Zone, Script: "codex-web-preview-1"}
	if err := cf.AttachHostname(ctx, cloudflare.ModeCustomDomain, host); err != nil {
		t.Fatal(err)
	}

	// GitHub: the App authenticates with its key, and the bot's check run
	// and status comment land on the simulated repository.
	if err := sb.GitHub.CreateRepo("revelations-studio", "codex", "main"); err != nil {
		t.Fatal(err)
	}
	sha, err := sb.GitHub.Commit("revelations-studio/codex", "main", map[string]string{"README.md": "# codex\n"}, "first")
	if err != nil {
		t.Fatal(err)
	}
	sha, err = sb.GitHub.Commit("revelations-studio/codex", "feature/login", map[string]string{"login.js": "export {}\n"}, "login")
	if err != nil {
		t.Fatal(err)
	}
	pr, err := sb.GitHub.OpenPR("revelations-studio/codex", "feature/login", "main", "Add login", false, false)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := github.NewClientCreator(github.Config{V3APIURL: urls.GitHub, AppID: sb.GitHub.AppID(), PrivateKey: sb.GitHub.AppPrivateKeyPEM()})
	if err != nil {
		t.Fatal(err)
	}
	client, err := cc.NewInstallationClient(sb.GitHub.InstallationID())
	if err != nil {
		t.Fatal(err)
	}
	rep := github.NewReporter(client, "revelations-studio", "codex", github.WithBotLogin(sb.GitHub.BotLogin()))
	if _, err := rep.CreateCheckRun(ctx, github.CheckRun{Name: "deploybot/preview", HeadSHA: sha, Status: github.StatusInProgress}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second, identical update changes nothing
		if _, err := rep.UpsertStatusComment(ctx, pr, "Preview: building", 0); err != nil {
			t.Fatal(err)
		}
	}

	// The edge serves the Worker at its hostname.
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.Host = host.Name
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "codex-web-preview-1") || !strings.Contains(string(page), "0123abc") {
		t.Fatalf("edge answered %d: %s", resp.StatusCode, page)
	}

	// The state endpoint shows it all, and no secret.
	resp, err = http.Get(urls.State)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(raw), "very-secret-value") || strings.Contains(string(raw), "cf-token") {
		t.Fatal("state shows a secret")
	}
	var state struct {
		Neon struct {
			Projects []struct {
				Branches []struct{ Name string } `json:"branches"`
			} `json:"projects"`
		} `json:"neon"`
		GitHub struct {
			CheckRuns []struct {
				Name   string `json:"name"`
				Status string `json:"status"`
			} `json:"check_runs"`
			Comments []struct{ Body string } `json:"comments"`
		} `json:"github"`
		Cloudflare struct {
			Scripts       []struct{ Name string }     `json:"scripts"`
			CustomDomains []struct{ Hostname string } `json:"custom_domains"`
			Requests      map[string]int              `json:"requests"`
		} `json:"cloudflare"`
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		t.Fatal(err)
	}
	var prBranches int
	for _, p := range state.Neon.Projects {
		for _, b := range p.Branches {
			if b.Name == "pr-1" {
				prBranches++
			}
		}
	}
	if prBranches != 1 {
		t.Errorf("%d branches named pr-1 after a lost response and a retry, want 1:\n%s", prBranches, raw)
	}
	if len(state.Cloudflare.Scripts) != 1 || state.Cloudflare.Scripts[0].Name != "codex-web-preview-1" {
		t.Errorf("scripts: %+v", state.Cloudflare.Scripts)
	}
	if len(state.Cloudflare.CustomDomains) != 1 || state.Cloudflare.CustomDomains[0].Hostname != host.Name {
		t.Errorf("custom domains: %+v", state.Cloudflare.CustomDomains)
	}
	if len(state.GitHub.CheckRuns) != 1 || state.GitHub.CheckRuns[0].Name != "deploybot/preview" || state.GitHub.CheckRuns[0].Status != "in_progress" {
		t.Errorf("check runs: %+v", state.GitHub.CheckRuns)
	}
	if len(state.GitHub.Comments) != 1 || !strings.Contains(state.GitHub.Comments[0].Body, "Preview: building") {
		t.Errorf("comments: %+v", state.GitHub.Comments)
	}
	if len(state.Cloudflare.Requests) == 0 {
		t.Error("no request counts in the state")
	}
}

// TestRejectsWhatTheRealAPIWould sends requests that break the official API
// descriptions straight to the sandbox.
func TestRejectsWhatTheRealAPIWould(t *testing.T) {
	sb, urls, _ := start(t)
	cases := []struct {
		name, method, url, body string
		want                    int
	}{
		{"neon branch name of the wrong type", http.MethodPost, urls.Neon + "/projects/" + sb.NeonProject.ID + "/branches", `{"branch":{"name":5}}`, http.StatusBadRequest},
		{"neon unknown route", http.MethodGet, urls.Neon + "/nowhere", "", http.StatusNotFound},
		{"github check run without head_sha", http.MethodPost, urls.GitHub + "repos/o/r/check-runs", `{"name":"x"}`, http.StatusUnprocessableEntity},
		{"cloudflare DNS record of an unknown type", http.MethodPost, urls.Cloudflare + "/zones/" + sb.ZoneID + "/dns_records", `{"type":"BOGUS","name":"x","content":"y"}`, http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
			req.Header.Set("Authorization", "Bearer token")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, c.want)
			}
		})
	}
}

// TestControlEndpoints: a person trying the bot against `bot sandbox` can
// make an API fail and a hostname unhealthy over HTTP, and a misspelt rule
// is refused rather than ignored.
func TestControlEndpoints(t *testing.T) {
	sb, urls, base := start(t)
	do := func(method, url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	branches := urls.Neon + "/projects/" + sb.NeonProject.ID + "/branches"
	if code, body := do(http.MethodPut, base+"/faults/neon", `[{"method":"GET","path":"/api/v2/projects/","times":1,"status":503,"latency":"1ms"}]`); code != http.StatusNoContent {
		t.Fatalf("setting a fault: %d %s", code, body)
	}
	if code, _ := do(http.MethodGet, branches, ""); code != http.StatusServiceUnavailable {
		t.Errorf("the first read after the fault was set: %d, want 503", code)
	}
	if code, _ := do(http.MethodGet, branches, ""); code != http.StatusOK {
		t.Errorf("the second read (the rule was for one request): %d, want 200", code)
	}
	if code, body := do(http.MethodPut, base+"/faults/neon", `[{"rate":0.5,"stauts":503}]`); code != http.StatusBadRequest || !strings.Contains(body, "stauts") {
		t.Errorf("a misspelt key: %d %s, want 400 naming it", code, body)
	}
	if code, _ := do(http.MethodPut, base+"/faults/gitlab", `[]`); code != http.StatusNotFound {
		t.Errorf("an unknown service: %d, want 404", code)
	}
	if code, _ := do(http.MethodDelete, base+"/faults/neon", ""); code != http.StatusNoContent {
		t.Errorf("clearing the faults: %d", code)
	}

	ctx := context.Background()
	cf, err := cloudflare.New(cloudflare.Options{AccountID: sb.Cloudflare.AccountID(), APIToken: "cf-token", BaseURL: urls.Cloudflare})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cf.UploadWorker(ctx, cloudflare.Script{Name: "codex-web-preview-1", MainModule: "index.js",
		Modules: []cloudflare.Module{{Name: "index.js", Content: []byte(`export default { fetch() { return new Response("hi") } }`)}}}); err != nil {
		t.Fatal(err)
	}
	host := "codex-preview-1." + sb.Zone
	if err := cf.AttachHostname(ctx, cloudflare.ModeCustomDomain, cloudflare.Hostname{ZoneID: sb.ZoneID, Name: host, Script: "codex-web-preview-1"}); err != nil {
		t.Fatal(err)
	}
	if code, body := do(http.MethodPut, base+"/health/"+host, `{"never":true,"fail_status":502}`); code != http.StatusNoContent {
		t.Fatalf("setting a hostname's health: %d %s", code, body)
	}
	visit := func() int {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := visit(); code != http.StatusBadGateway {
		t.Errorf("the unhealthy hostname answered %d, want 502", code)
	}
	if code, _ := do(http.MethodDelete, base+"/health/"+host, ""); code != http.StatusNoContent {
		t.Errorf("clearing the health: %d", code)
	}
	if code := visit(); code != http.StatusOK {
		t.Errorf("after clearing, the hostname answers %d, want 200", code)
	}
}
