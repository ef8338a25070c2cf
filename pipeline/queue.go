// Package pipeline runs the bot's work as durable River jobs.
//
// Each intent kind (package intent) is a job kind. The pipelines that build
// previews, deploy production and run tests register their workers here as
// they arrive; until then an intent's worker records it (see Recorder), so
// that operators and tests can see the queue deliver every delivery's work.
package pipeline

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/logging"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// QueueOptions configures NewQueue.
type QueueOptions struct {
	// Workers is how many jobs run at once in this process.
	Workers int
	Logger  zerolog.Logger
	// Pipelines runs the preview pipelines. Without it every intent is only
	// recorded (for tests of the webhook intake alone).
	Pipelines *Deps
	// SweepEvery is how often the sweeper runs (0: SweepInterval; negative:
	// never, for tests that arrange leftovers on purpose).
	SweepEvery time.Duration
	// RetryPolicy says when a failed job runs again (nil: River's default,
	// attempt⁴ seconds, for outages that take minutes to clear).
	RetryPolicy river.ClientRetryPolicy
}

// JobKinds are the kinds of job the bot queues: every intent's and the
// pipelines' own (the metrics report each, at 0 when none is queued).
func JobKinds() []string {
	return []string{
		intent.PreviewRequested{}.Kind(), intent.PreviewDrafted{}.Kind(), intent.PreviewClosed{}.Kind(),
		intent.CommentCommand{}.Kind(), intent.CheckRunAction{}.Kind(), intent.CheckSuiteRequested{}.Kind(),
		intent.ProductionPush{}.Kind(), intent.TestRequested{}.Kind(), intent.BranchDeleted{}.Kind(),
		intent.InstallationChanged{}.Kind(), intent.PageAction{}.Kind(),
		testRunArgs{}.Kind(), sweepArgs{}.Kind(), previewSweepArgs{}.Kind(), productionRollbackArgs{}.Kind(),
	}
}

// NewQueue returns the River client that inserts and works the bot's jobs.
// It is not started: Start it to work jobs; inserting works without.
func NewQueue(pool *pgxpool.Pool, opts QueueOptions) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	if opts.Pipelines != nil {
		d := *opts.Pipelines
		// Every check run opened and concluded is recorded, for the sweep.
		d.GitHub = checkTracking{GitHub: d.GitHub, checks: d.State.Checks}
		g := &gate{deps: d}
		tests := newTestRuns(d, g)
		p := &previews{deps: d, gate: g, tests: tests}
		addWorker(workers, deployTimeout, syncOn[intent.PreviewRequested](p))
		addWorker(workers, deployTimeout, syncOn[intent.PreviewDrafted](p))
		addWorker(workers, deployTimeout, syncOn[intent.PreviewClosed](p))
		(&requests{deps: d, gate: g, p: p}).register(workers)
		registerProduction(workers, d)
		registerTests(workers, tests)
		registerSweep(workers, p)
	}
	AddRecorders(workers, state.New(pool).Intents, opts.Logger, opts.Pipelines != nil)
	var periodic []*river.PeriodicJob
	if opts.Pipelines != nil && opts.SweepEvery >= 0 {
		every := opts.SweepEvery
		if every == 0 {
			every = SweepInterval
		}
		periodic = append(periodic, sweepJob(every))
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		PeriodicJobs: periodic,
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: max(opts.Workers, 1)},
			intent.QueueTests:  {MaxWorkers: max(opts.Workers, 1)},
		},
		Workers: workers,
		// River's own lines pass at warn and above; the bot logs its jobs'
		// failures itself, with their delivery (jobLogging).
		Logger:     logging.Slog(opts.Logger, slog.LevelWarn),
		Middleware: []rivertype.Middleware{&jobLogging{logger: opts.Logger}},
		// A job whose process died is retried after this long; it must
		// exceed the longest step a pipeline runs without heartbeat.
		RescueStuckJobsAfter: deployTimeout + 5*time.Minute,
		RetryPolicy:          opts.RetryPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: job queue: %w", err)
	}
	return client, nil
}
