package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/revelations-studio/deploybot/internal/metrics"
)

// TestRouteClassesAreBounded: requests to the paths the bot calls, with a
// repository, a pull request, a commit, a branch or a script name in
// them, are counted under a class from a fixed set, whatever prefix the
// API's base URL adds (GitHub Enterprise Server's /api/v3, the sandbox's).
func TestRouteClassesAreBounded(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	github := map[string]string{
		"/repos/acme/shop/pulls/42":                         "pulls",
		"/repos/acme/shop/pulls":                            "pulls",
		"/repos/acme/shop/check-runs":                       "checks",
		"/repos/acme/shop/check-runs/123456":                "checks",
		"/repos/acme/shop/commits/" + sha + "/check-runs":   "checks",
		"/repos/acme/shop/issues/42/comments":               "comments",
		"/repos/acme/shop/issues/comments/998877":           "comments",
		"/repos/acme/shop/issues/comments/998877/reactions": "reactions",
		"/repos/acme/shop/deployments":                      "deployments",
		"/repos/acme/shop/deployments/5/statuses":           "deployments",
		"/repos/acme/shop/contents/.github/deploybot.yml":   "contents",
		"/repos/acme/shop/tarball/" + sha:                   "contents",
		"/repos/acme/shop/git/ref/heads/feature/login":      "git",
		"/repos/acme/shop/compare/main..." + sha:            "compare",
		"/repos/acme/shop/collaborators/alice/permission":   "collaborators",
		"/orgs/acme/teams/deployers/memberships/alice":      "teams",
		"/app":                                "app",
		"/app/installations/77/access_tokens": "app_tokens",
		"/installation/repositories":          "installation",
		"/graphql":                            "graphql",
		"/repos/acme/shop":                    "repository",
		"/repos/acme/shop/actions/runs":       "other",
		"/gists/1":                            "other",
	}
	for path, want := range github {
		for _, prefix := range []string{"", "/api/v3", "/github"} {
			got := metrics.GitHubRoute(prefix + path)
			if got != want {
				t.Errorf("GitHubRoute(%q) = %q, want %q", prefix+path, got, want)
			}
			if !slices.Contains(metrics.GitHubRoutes(), got) {
				t.Errorf("GitHubRoute(%q) = %q, not one of GitHubRoutes", prefix+path, got)
			}
		}
	}

	neon := map[[2]string]string{
		{"POST", "/projects/p-1/branches"}:                                   "create_branch",
		{"GET", "/projects/p-1/branches"}:                                    "list_branches",
		{"GET", "/projects/p-1/branches/br-a"}:                               "get_branch",
		{"DELETE", "/projects/p-1/branches/br-a"}:                            "delete_branch",
		{"POST", "/projects/p-1/branches/br-a/restore"}:                      "restore_branch",
		{"GET", "/projects/p-1/branches/br-a/endpoints"}:                     "list_branch_endpoints",
		{"POST", "/projects/p-1/branches/br-a/roles/app/reset_password"}:     "reset_role_password",
		{"GET", "/projects/p-1/operations/8a1b"}:                             "get_operation",
		{"GET", "/projects/p-1/connection_uri"}:                              "get_connection_uri",
		{"POST", "/projects/p-1/endpoints"}:                                  "create_endpoint",
		{"GET", "/projects/p-1/branches/pr-12%2Fx"}:                          "get_branch", // an escaped name is one segment
		{"PUT", "/projects/p-1/branches/br-a"}:                               "other",
		{"GET", "/projects"}:                                                 "other",
		{"GET", "/projects/p-1/branches/br-a/roles/app/reveal_password/x"}:   "other",
		{"GET", "/consumption_history/projects"}:                             "other",
		{"POST", "/projects/p-1/branches/br-a/roles/app/reset_password/..."}: "other",
	}
	for req, want := range neon {
		for _, prefix := range []string{"/api/v2", "/neon/api/v2"} {
			got := metrics.NeonOperation(req[0], prefix+req[1])
			if got != want {
				t.Errorf("NeonOperation(%s %s) = %q, want %q", req[0], prefix+req[1], got, want)
			}
			if !slices.Contains(metrics.NeonOperations(), got) {
				t.Errorf("NeonOperation(%s %s) = %q, not one of NeonOperations", req[0], prefix+req[1], got)
			}
		}
	}

	cloudflare := map[[2]string]string{
		{"PUT", "/accounts/acc/workers/scripts/codex-web-preview-12"}:                           "upload_script",
		{"DELETE", "/accounts/acc/workers/scripts/codex-web-preview-12"}:                        "delete_script",
		{"GET", "/accounts/acc/workers/scripts"}:                                                "list_scripts",
		{"PUT", "/accounts/acc/workers/scripts/codex-web-preview-12/secrets"}:                   "put_secret",
		{"POST", "/accounts/acc/workers/scripts/codex-web-preview-12/assets-upload-session"}:    "assets_upload_session",
		{"POST", "/accounts/acc/workers/assets/upload"}:                                         "upload_assets",
		{"GET", "/accounts/acc/workers/scripts/codex-web/deployments"}:                          "list_deployments",
		{"POST", "/accounts/acc/workers/scripts/codex-web/deployments"}:                         "create_deployment",
		{"PUT", "/accounts/acc/workers/domains"}:                                                "attach_custom_domain",
		{"DELETE", "/accounts/acc/workers/domains/dom-1"}:                                       "detach_custom_domain",
		{"POST", "/zones/z1/dns_records"}:                                                       "create_dns_record",
		{"PATCH", "/zones/z1/dns_records/rec-1"}:                                                "update_dns_record",
		{"DELETE", "/zones/z1/workers/routes/r-1"}:                                              "delete_route",
		{"GET", "/accounts/acc/workers/scripts/codex-web/content"}:                              "other",
		{"GET", "/user/tokens/verify"}:                                                          "other",
		{"PATCH", "/accounts/acc/workers/scripts/codex-web-preview-12/script-settings"}:         "other",
		{"GET", "/accounts/acc/workers/scripts/codex-web-preview-12/secrets/STRIPE_SECRET_KEY"}: "get_secret",
	}
	for req, want := range cloudflare {
		for _, prefix := range []string{"/client/v4", "/cloudflare/client/v4"} {
			got := metrics.CloudflareOperation(req[0], prefix+req[1])
			if got != want {
				t.Errorf("CloudflareOperation(%s %s) = %q, want %q", req[0], prefix+req[1], got, want)
			}
			if !slices.Contains(metrics.CloudflareOperations(), got) {
				t.Errorf("CloudflareOperation(%s %s) = %q, not one of CloudflareOperations", req[0], prefix+req[1], got)
			}
		}
	}
}

// TestObservationsAreServed: what the bot observes is served at /metrics
// under names and labels Prometheus' linter accepts; a webhook event the
// bot does not know, and a job kind it does not queue, are counted as
// "other"; a job kind with nothing queued reads 0.
func TestObservationsAreServed(t *testing.T) {
	m := metrics.New(metrics.Options{
		WebhookEvents: []string{"pull_request", "ping"},
		JobKinds:      []string{"preview_requested", "sweep"},
		Queue: func(context.Context) ([]metrics.QueuedJobs, error) {
			return []metrics.QueuedJobs{
				{Kind: "preview_requested", Jobs: map[string]int{"available": 3, "running": 1}, OldestDue: 90 * time.Second},
				{Kind: "mystery", Jobs: map[string]int{"available": 2}, OldestDue: time.Second},
			}, nil
		},
		Previews: func(context.Context) (int, error) { return 4, nil },
	})
	m.WebhookDelivered("pull_request", "stored", 20*time.Millisecond)
	m.WebhookDelivered("pull_request", "duplicate", 10*time.Millisecond)
	m.WebhookDelivered("X-Evil-"+strings.Repeat("a", 40), "unauthorized", time.Millisecond)
	m.RunEnded("preview", "ready", 42*time.Second)
	m.StepEnded("preview", "build", "succeeded", 3*time.Second)
	m.GitHubQuota(77, "core", 4200, 5000)
	m.GitHubQuota(77, "something_new", 1, 10)

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	}))
	defer api.Close()
	neon := m.Client(metrics.Neon, nil)
	resp, err := neon.Post(api.URL+"/api/v2/projects/p-1/branches", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if _, err := m.Client(metrics.Cloudflare, nil).Get(dead.URL + "/client/v4/accounts/a/workers/scripts"); err == nil {
		t.Fatal("a request to a closed server succeeded")
	}

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	s := scrapeURL(t, srv.URL)

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"deploybot_webhook_deliveries_total", map[string]string{"event": "pull_request", "outcome": "stored"}, 1},
		{"deploybot_webhook_deliveries_total", map[string]string{"event": "pull_request", "outcome": "duplicate"}, 1},
		{"deploybot_webhook_deliveries_total", map[string]string{"event": "other", "outcome": "unauthorized"}, 1},
		{"deploybot_webhook_ack_duration_seconds", nil, 3},
		{"deploybot_runs_total", map[string]string{"kind": "preview", "outcome": "ready"}, 1},
		{"deploybot_run_duration_seconds", map[string]string{"kind": "preview", "outcome": "ready"}, 1},
		{"deploybot_step_duration_seconds", map[string]string{"run_kind": "preview", "step": "build", "status": "succeeded"}, 1},
		{"deploybot_github_rate_limit_remaining", map[string]string{"installation_id": "77", "resource": "core"}, 4200},
		{"deploybot_github_rate_limit_limit", map[string]string{"installation_id": "77", "resource": "core"}, 5000},
		{"deploybot_github_rate_limit_remaining", map[string]string{"installation_id": "77", "resource": "other"}, 1},
		{"deploybot_neon_requests_total", map[string]string{"operation": "create_branch", "code": "201"}, 1},
		{"deploybot_neon_request_duration_seconds", map[string]string{"operation": "create_branch"}, 1},
		{"deploybot_cloudflare_requests_total", map[string]string{"operation": "list_scripts", "code": "error"}, 1},
		{"deploybot_queue_jobs", map[string]string{"kind": "preview_requested", "state": "available"}, 3},
		{"deploybot_queue_jobs", map[string]string{"kind": "preview_requested", "state": "running"}, 1},
		{"deploybot_queue_jobs", map[string]string{"kind": "preview_requested", "state": "scheduled"}, 0},
		{"deploybot_queue_jobs", map[string]string{"kind": "sweep", "state": "available"}, 0},
		{"deploybot_queue_jobs", map[string]string{"kind": "other", "state": "available"}, 2},
		{"deploybot_queue_oldest_job_age_seconds", map[string]string{"kind": "preview_requested"}, 90},
		{"deploybot_queue_oldest_job_age_seconds", map[string]string{"kind": "sweep"}, 0},
		{"deploybot_previews_alive", nil, 4},
	} {
		if got := s.value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if kinds := s.labelValues("deploybot_queue_jobs", "kind"); !slices.Equal(kinds, []string{"other", "preview_requested", "sweep"}) {
		t.Errorf("queue kinds %v, want other, preview_requested, sweep", kinds)
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := s.families[name]; !ok {
			t.Errorf("no %s: the Go and process collectors are not registered", name)
		}
	}
	problems, err := promlint.New(bytes.NewReader(s.body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestScrapeSurvivesADatabaseError: when the database does not answer,
// the scrape still serves every other metric.
func TestScrapeSurvivesADatabaseError(t *testing.T) {
	down := errors.New("connection refused")
	var logged []error
	m := metrics.New(metrics.Options{
		JobKinds:    []string{"sweep"},
		Queue:       func(context.Context) ([]metrics.QueuedJobs, error) { return nil, down },
		Previews:    func(context.Context) (int, error) { return 0, down },
		ScrapeError: func(err error) { logged = append(logged, err) },
	})
	m.RunEnded("teardown", "done", time.Second)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	s := scrapeURL(t, srv.URL)
	if got := s.value("deploybot_runs_total", map[string]string{"kind": "teardown"}); got != 1 {
		t.Errorf("runs_total = %v, want 1", got)
	}
	for _, name := range []string{"deploybot_queue_jobs", "deploybot_previews_alive"} {
		if _, ok := s.families[name]; ok {
			t.Errorf("%s served although the database did not answer", name)
		}
	}
	if len(logged) != 2 || !errors.Is(logged[0], down) || !errors.Is(logged[1], down) {
		t.Errorf("logged %v, want the database's error for the queue and the previews", logged)
	}
}
