package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueuedJobs is what the job queue holds of one kind of job.
type QueuedJobs struct {
	Kind string
	// Jobs counts them by River state: available (due, waiting for a
	// worker), scheduled (due later: a retry's backoff, a job snoozed
	// behind its pull request's lock), retryable, running.
	Jobs map[string]int
	// OldestDue is how long the job of this kind that has waited longest
	// for a worker since it became due has waited (0: none waits).
	OldestDue time.Duration
}

// queueStates are the River states reported, each as a series of its own
// so that a kind with nothing queued reads 0, not "no data".
var queueStates = []string{"available", "scheduled", "retryable", "running"}

// stateCollector reads the queue and the previews when Prometheus scrapes:
// the numbers are the database's, so every replica reports the same, and
// nothing runs between scrapes.
type stateCollector struct {
	queue    func(context.Context) ([]QueuedJobs, error)
	previews func(context.Context) (int, error)
	failed   func(error) // Options.ScrapeError
	kinds    map[string]bool
	kindList []string

	jobs, oldest, alive *prometheus.Desc
}

// scrapeTimeout bounds the queries of one scrape: a database that does
// not answer must not hold Prometheus' scrapes until they pile up.
const scrapeTimeout = 5 * time.Second

func newStateCollector(opts Options) *stateCollector {
	c := &stateCollector{queue: opts.Queue, previews: opts.Previews, failed: opts.ScrapeError, kinds: map[string]bool{},
		jobs: prometheus.NewDesc(namespace+"_queue_jobs",
			"Jobs in the queue, by kind and River state (available: due and waiting for a worker; scheduled: due later; retryable; running).",
			[]string{"kind", "state"}, nil),
		oldest: prometheus.NewDesc(namespace+"_queue_oldest_job_age_seconds",
			"How long the job of each kind that has waited longest for a worker since it became due has waited; 0 when none waits.",
			[]string{"kind"}, nil),
		alive: prometheus.NewDesc(namespace+"_previews_alive",
			"Pull requests whose preview holds cloud resources (a Neon branch, Workers) now, whatever its state.",
			nil, nil),
	}
	for _, k := range opts.JobKinds {
		c.kinds[k] = true
		c.kindList = append(c.kindList, k)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.oldest
	ch <- c.alive
}

// Collect implements prometheus.Collector. A query that fails is reported
// as an invalid metric: the scrape shows the error, the other metrics are
// still served.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if c.queue != nil {
		c.collectQueue(ctx, ch)
	}
	if c.previews != nil {
		n, err := c.previews(ctx)
		if err != nil {
			c.fail(fmt.Errorf("previews alive: %w", err))
			ch <- prometheus.NewInvalidMetric(c.alive, err)
		} else {
			ch <- prometheus.MustNewConstMetric(c.alive, prometheus.GaugeValue, float64(n))
		}
	}
}

func (c *stateCollector) fail(err error) {
	if c.failed != nil {
		c.failed(err)
	}
}

func (c *stateCollector) collectQueue(ctx context.Context, ch chan<- prometheus.Metric) {
	queued, err := c.queue(ctx)
	if err != nil {
		c.fail(fmt.Errorf("job queue: %w", err))
		ch <- prometheus.NewInvalidMetric(c.jobs, err)
		ch <- prometheus.NewInvalidMetric(c.oldest, err)
		return
	}
	counts := map[string]map[string]int{}
	oldest := map[string]time.Duration{}
	for _, k := range c.kindList {
		counts[k] = map[string]int{}
		oldest[k] = 0
	}
	for _, q := range queued {
		kind := q.Kind
		if !c.kinds[kind] {
			kind = "other"
		}
		if counts[kind] == nil {
			counts[kind] = map[string]int{}
		}
		for st, n := range q.Jobs {
			counts[kind][st] += n
		}
		oldest[kind] = max(oldest[kind], q.OldestDue)
	}
	for kind, byState := range counts {
		for _, st := range queueStates {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(byState[st]), kind, st)
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest[kind].Seconds(), kind)
	}
}
