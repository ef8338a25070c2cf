package metrics_test

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/metrics"
	"github.com/revelations-studio/deploybot/internal/pgtest"
	"github.com/revelations-studio/deploybot/pipeline"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestMetricsFollowAPullRequest runs a pull request through the bot on the
// sandbox, as `bot demo` does — a push (its tests run), the PR opened and
// its delivery redelivered, then closed — and scrapes /metrics from the
// bot's listener after each stage, as Prometheus would: the series an
// operator watches move, and every label value is one of its fixed set.
func TestMetricsFollowAPullRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	_, dbURL := pgtest.NewDatabaseURL(t)
	s, err := demo.StartStack(ctx, demo.StackOptions{AdminURL: pgtest.ServerURL(t), DatabaseURL: dbURL, DataDir: t.TempDir(),
		Logger: zerolog.Nop(), GitHubMinute: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gh := s.Sandbox.GitHub
	metricsURL := s.BotURL + "/metrics"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	before := scrapeURL(t, metricsURL)
	if n, ok := before.sum("deploybot_previews_alive", nil); !ok || n != 0 {
		t.Errorf("before any PR: previews alive %v (served: %v), want 0", n, ok)
	}

	_, err = gh.Commit(demo.Repo, "feature/metrics", map[string]string{"web/src/login.js": "export const login = () => 'v1';\n"}, "Add login")
	must(err)
	pr, err := gh.OpenPR(demo.Repo, "feature/metrics", "main", "Add login", false, false)
	must(err)
	push, err := gh.PushEvent(demo.Repo, "feature/metrics")
	must(err)
	_, err = s.Deliver(ctx, push)
	must(err)
	opened, err := gh.PullRequestEvent(demo.Repo, pr, "opened")
	must(err)
	d, err := s.Deliver(ctx, opened)
	must(err)
	_, err = gh.Redeliver(ctx, d.ID) // GitHub may deliver twice: counted as a duplicate
	must(err)
	must(s.WaitIdle(ctx))

	open := scrapeURL(t, metricsURL)
	installation := strconv.FormatInt(gh.InstallationID(), 10)
	atLeast := func(sc scrape, name string, labels map[string]string, min float64) {
		t.Helper()
		if got, _ := sc.sum(name, labels); got < min {
			t.Errorf("%s%v = %v, want at least %v", name, labels, got, min)
		}
	}
	exactly := func(sc scrape, name string, labels map[string]string, want float64) {
		t.Helper()
		if got := sc.value(name, labels); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	exactly(open, "deploybot_webhook_deliveries_total", map[string]string{"event": "pull_request", "outcome": "stored"}, 1)
	exactly(open, "deploybot_webhook_deliveries_total", map[string]string{"event": "pull_request", "outcome": "duplicate"}, 1)
	exactly(open, "deploybot_webhook_deliveries_total", map[string]string{"event": "push", "outcome": "stored"}, 1)
	exactly(open, "deploybot_webhook_ack_duration_seconds", nil, 3)
	exactly(open, "deploybot_runs_total", map[string]string{"kind": "preview", "outcome": "ready"}, 1)
	exactly(open, "deploybot_run_duration_seconds", map[string]string{"kind": "preview", "outcome": "ready"}, 1)
	atLeast(open, "deploybot_runs_total", map[string]string{"kind": "test", "outcome": "passed"}, 1)
	// The sample has three Workers: each is built, deployed and
	// health-checked once.
	for _, step := range []string{"build", "deploy", "health"} {
		exactly(open, "deploybot_step_duration_seconds", map[string]string{"run_kind": "preview", "step": step, "status": "succeeded"}, 3)
	}
	for _, step := range []string{"database", "migrate"} {
		exactly(open, "deploybot_step_duration_seconds", map[string]string{"run_kind": "preview", "step": step, "status": "succeeded"}, 1)
	}
	atLeast(open, "deploybot_step_duration_seconds", map[string]string{"run_kind": "test", "step": "stage", "status": "succeeded"}, 1)
	for _, route := range []string{"app_tokens", "pulls", "contents", "checks", "comments", "deployments"} {
		atLeast(open, "deploybot_github_requests_total", map[string]string{"route": route}, 1)
	}
	atLeast(open, "deploybot_github_request_duration_seconds", map[string]string{"route": "checks"}, 1)
	atLeast(open, "deploybot_neon_requests_total", map[string]string{"operation": "create_branch"}, 1)
	atLeast(open, "deploybot_cloudflare_requests_total", map[string]string{"operation": "upload_script"}, 3)
	remaining := open.value("deploybot_github_rate_limit_remaining", map[string]string{"installation_id": installation, "resource": "core"})
	limit := open.value("deploybot_github_rate_limit_limit", map[string]string{"installation_id": installation, "resource": "core"})
	if remaining <= 0 || remaining >= limit {
		t.Errorf("GitHub quota of installation %s: %v of %v left, want some spent and some left", installation, remaining, limit)
	}
	exactly(open, "deploybot_previews_alive", nil, 1)
	// Idle: every kind the bot queues reads 0, none is unknown.
	for _, kind := range pipeline.JobKinds() {
		exactly(open, "deploybot_queue_jobs", map[string]string{"kind": kind, "state": "available"}, 0)
		exactly(open, "deploybot_queue_oldest_job_age_seconds", map[string]string{"kind": kind}, 0)
	}
	checkBounded(t, open)

	_, err = gh.ClosePR(demo.Repo, pr, false)
	must(err)
	ev, err := gh.PullRequestEvent(demo.Repo, pr, "closed")
	must(err)
	_, err = s.Deliver(ctx, ev)
	must(err)
	must(s.WaitIdle(ctx))

	gone := scrapeURL(t, metricsURL)
	exactly(gone, "deploybot_previews_alive", nil, 0)
	exactly(gone, "deploybot_runs_total", map[string]string{"kind": "teardown", "outcome": "done"}, 1)
	exactly(gone, "deploybot_step_duration_seconds", map[string]string{"run_kind": "teardown", "step": "remove", "status": "succeeded"}, 3)
	exactly(gone, "deploybot_webhook_deliveries_total", map[string]string{"event": "pull_request", "outcome": "stored"}, 2)
	atLeast(gone, "deploybot_neon_requests_total", map[string]string{"operation": "delete_branch"}, 1)
	atLeast(gone, "deploybot_cloudflare_requests_total", map[string]string{"operation": "delete_script"}, 3)
	checkBounded(t, gone)
}

// checkBounded checks that every label value in the scrape comes from its
// fixed set: the bot made only requests it can name, ran only steps it can
// name, and no PR number, SHA or name of the repository's became a label.
func checkBounded(t *testing.T, s scrape) {
	t.Helper()
	sets := []struct {
		metric, label string
		allowed       []string
	}{
		{"deploybot_github_requests_total", "route", without(metrics.GitHubRoutes(), "other")},
		{"deploybot_neon_requests_total", "operation", without(metrics.NeonOperations(), "other")},
		{"deploybot_cloudflare_requests_total", "operation", without(metrics.CloudflareOperations(), "other")},
		{"deploybot_step_duration_seconds", "step", without(pipeline.StepKinds(), "other")},
		{"deploybot_step_duration_seconds", "run_kind", []string{"preview", "teardown", "production", "test"}},
		{"deploybot_runs_total", "kind", []string{"preview", "teardown", "production", "test"}},
		{"deploybot_queue_jobs", "kind", pipeline.JobKinds()},
		{"deploybot_webhook_deliveries_total", "event", []string{"pull_request", "push"}},
	}
	for _, set := range sets {
		for _, v := range s.labelValues(set.metric, set.label) {
			if !slices.Contains(set.allowed, v) {
				t.Errorf("%s{%s=%q}: not one of %v", set.metric, set.label, v, set.allowed)
			}
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

func without(set []string, v string) []string {
	return slices.DeleteFunc(slices.Clone(set), func(s string) bool { return s == v })
}
