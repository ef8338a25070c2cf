// Package metrics is what the bot tells Prometheus: webhook deliveries,
// runs and their steps, the job queue, the calls to GitHub, Neon and
// Cloudflare, GitHub's quota per installation and the previews alive.
//
// One Metrics is made per running bot (internal/app), with its own
// registry: nothing is registered globally, so two bots in one process
// (the tests) count apart. The packages that observe things do not import
// this one: each says what it observes through its own hook (server's
// Options.Observe, pipeline's Observer, github's RateLimits.OnQuota, an
// http.Client's transport), and internal/app connects them.
//
// Every label takes its values from a small fixed set (an event GitHub
// sends the bot, a run kind, a route class of an API, an HTTP status), or
// from the App's installations: never a pull request, a branch, a commit or
// a repository, which would make a new series for each.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric of the bot's own.
const namespace = "deploybot"

// Metrics holds the bot's metrics and the registry that serves them.
type Metrics struct {
	registry *prometheus.Registry

	deliveries  *prometheus.CounterVec
	ackDuration *prometheus.HistogramVec

	runs        *prometheus.CounterVec
	runDuration *prometheus.HistogramVec
	steps       *prometheus.HistogramVec

	requests        map[API]*prometheus.CounterVec
	requestDuration map[API]*prometheus.HistogramVec

	quotaRemaining *prometheus.GaugeVec
	quotaLimit     *prometheus.GaugeVec

	// webhookEvents are the X-GitHub-Event values counted under their own
	// name; any other is "other" (the header is read before the
	// signature is checked: anyone can send any value).
	webhookEvents map[string]bool
}

// Options configures New.
type Options struct {
	// WebhookEvents are the events counted by name (the events the bot
	// handles, and ping); deliveries of any other are counted as "other".
	WebhookEvents []string
	// Queue and Previews read the job queue and the previews from the
	// database when Prometheus scrapes (state.go); nil: not reported.
	Queue    func(ctx context.Context) ([]QueuedJobs, error)
	Previews func(ctx context.Context) (int, error)
	// JobKinds are the kinds of job the bot queues: each is reported, at
	// 0 when none is queued; a kind not listed is counted as "other".
	JobKinds []string
	// ScrapeError, when set, is told why a scrape left metrics out (the
	// database did not answer).
	ScrapeError func(error)
}

// Buckets of the histograms, in seconds. A webhook is answered in
// milliseconds (5 s is the wait for room before 503); steps take from
// milliseconds (a GitHub call) to minutes (a build); runs take seconds to
// the better part of an hour (a production deploy waiting for tests).
var (
	ackBuckets     = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	requestBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	stepBuckets    = []float64{.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}
	runBuckets     = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}
)

// New makes the bot's metrics, registered with a registry of their own
// together with the Go runtime's and the process's.
func New(opts Options) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "webhook_deliveries_total",
			Help: "Webhook deliveries received, by GitHub event and outcome (stored, duplicate, ignored, bad_request, unauthorized, too_large, busy, error).",
		}, []string{"event", "outcome"}),
		ackDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "webhook_ack_duration_seconds",
			Help:    "Time from a webhook request's arrival to its answer, by outcome.",
			Buckets: ackBuckets,
		}, []string{"outcome"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_total",
			Help: "Pipeline runs ended, by kind (preview, teardown, production, test) and outcome (as in the run's log line: ready, done, deployed, passed, failed, blocked, superseded, cancelled, timed_out, skipped, rolled_back, rollback_failed).",
		}, []string{"kind", "outcome"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "run_duration_seconds",
			Help:    "Duration of ended pipeline runs, by kind and outcome.",
			Buckets: runBuckets,
		}, []string{"kind", "outcome"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "step_duration_seconds",
			Help:    "Duration of ended run steps, by run kind, step kind (source, setup, database, migrate, build, deploy, health, stage, ...) and status (succeeded, failed, cancelled).",
			Buckets: stepBuckets,
		}, []string{"run_kind", "step", "status"}),
		quotaRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "github_rate_limit_remaining",
			Help: "Requests left in GitHub's hourly quota, per installation and resource, as GitHub last reported it.",
		}, []string{"installation_id", "resource"}),
		quotaLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "github_rate_limit_limit",
			Help: "GitHub's hourly quota, per installation and resource, as GitHub last reported it.",
		}, []string{"installation_id", "resource"}),
		requests:        map[API]*prometheus.CounterVec{},
		requestDuration: map[API]*prometheus.HistogramVec{},
		webhookEvents:   map[string]bool{},
	}
	for _, e := range opts.WebhookEvents {
		m.webhookEvents[e] = true
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.deliveries, m.ackDuration, m.runs, m.runDuration, m.steps, m.quotaRemaining, m.quotaLimit,
	)
	for _, api := range []API{GitHub, Neon, Cloudflare} {
		label := api.label()
		m.requests[api] = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: string(api) + "_requests_total",
			Help: "HTTP requests sent to " + api.name() + " (every attempt, retries included), by " + label + " and status code (\"error\" when no answer came).",
		}, []string{label, "code"})
		m.requestDuration[api] = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: string(api) + "_request_duration_seconds",
			Help:    "Time to the headers of " + api.name() + "'s answer, by " + label + ".",
			Buckets: requestBuckets,
		}, []string{label})
		reg.MustRegister(m.requests[api], m.requestDuration[api])
	}
	if opts.Queue != nil || opts.Previews != nil {
		reg.MustRegister(newStateCollector(opts))
	}
	return m
}

// Handler serves the metrics in Prometheus' text format. A collector that
// fails (the database does not answer) leaves its metrics out of the
// scrape, and the rest is served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		// One scrape at a time is plenty, and bounds what a flood of
		// requests to an exposed endpoint can cost the database.
		MaxRequestsInFlight: 2,
		Timeout:             10 * time.Second,
	})
}

// Registry is the registry the metrics are in (for tests and extra
// collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// WebhookDelivered counts a webhook request GitHub's event header named
// event, answered after took with outcome.
func (m *Metrics) WebhookDelivered(event, outcome string, took time.Duration) {
	if !m.webhookEvents[event] {
		event = "other"
	}
	m.deliveries.WithLabelValues(event, outcome).Inc()
	m.ackDuration.WithLabelValues(outcome).Observe(took.Seconds())
}

// RunEnded counts a run of kind that ended with outcome after took (0:
// not known, only counted).
func (m *Metrics) RunEnded(kind, outcome string, took time.Duration) {
	m.runs.WithLabelValues(kind, outcome).Inc()
	if took > 0 {
		m.runDuration.WithLabelValues(kind, outcome).Observe(took.Seconds())
	}
}

// StepEnded records how long a step of a run of runKind ran; step is the
// step's kind (build, deploy, …: pipeline reduces names to a fixed set).
func (m *Metrics) StepEnded(runKind, step, status string, took time.Duration) {
	m.steps.WithLabelValues(runKind, step, status).Observe(took.Seconds())
}

// GitHubQuota records what GitHub said is left of an installation's quota
// of resource (core, graphql, search, …).
func (m *Metrics) GitHubQuota(installationID int64, resource string, remaining, limit int) {
	id, res := strconv.FormatInt(installationID, 10), quotaResource(resource)
	m.quotaRemaining.WithLabelValues(id, res).Set(float64(remaining))
	if limit > 0 {
		m.quotaLimit.WithLabelValues(id, res).Set(float64(limit))
	}
}

// quotaResource bounds the resource label to GitHub's documented
// resources (REST API "Rate limits" / GET /rate_limit).
func quotaResource(r string) string {
	switch r {
	case "core", "graphql", "search", "code_search", "integration_manifest", "source_import",
		"code_scanning_upload", "code_scanning_autofix", "actions_runner_registration", "scim",
		"dependency_snapshots", "dependency_sbom", "audit_log", "audit_log_streaming":
		return r
	}
	return "other"
}
