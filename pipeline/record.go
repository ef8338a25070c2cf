package pipeline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// Recorder is the worker of an intent kind whose pipeline does not exist
// yet: it writes the intent to the intents table. Recording is idempotent, so
// a retried or rescued job leaves one row.
type Recorder[T intent.Intent] struct {
	river.WorkerDefaults[T]
	pool   *pgxpool.Pool
	logger zerolog.Logger
}

// Work records job's intent.
func (w *Recorder[T]) Work(ctx context.Context, job *river.Job[T]) error {
	in := job.Args
	m := in.Delivery()
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode %s intent of delivery %s: %w", in.Kind(), m.DeliveryID, err)
	}
	_, err = w.pool.Exec(ctx, `
		INSERT INTO intents (delivery_id, kind, repo, pr_number, intent, job_id, attempt)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (delivery_id) DO NOTHING`,
		m.DeliveryID, in.Kind(), m.Repo.FullName(), intent.PRNumber(in), body, job.ID, job.Attempt)
	if err != nil {
		return fmt.Errorf("record %s intent of delivery %s: %w", in.Kind(), m.DeliveryID, err)
	}
	w.logger.Info().
		Str("github_delivery_id", m.DeliveryID).
		Str("intent", in.Kind()).
		Str("repo", m.Repo.FullName()).
		Int("pr", intent.PRNumber(in)).
		Int64("job_id", job.ID).
		Msg("intent recorded")
	return nil
}

// AddRecorders registers a Recorder for every intent kind without a
// pipeline: all of them unless the pipelines run.
func AddRecorders(workers *river.Workers, pool *pgxpool.Pool, logger zerolog.Logger, pipelines bool) {
	if !pipelines {
		river.AddWorker(workers, &Recorder[intent.PreviewRequested]{pool: pool, logger: logger})
		river.AddWorker(workers, &Recorder[intent.PreviewDrafted]{pool: pool, logger: logger})
		river.AddWorker(workers, &Recorder[intent.PreviewClosed]{pool: pool, logger: logger})
		river.AddWorker(workers, &Recorder[intent.CommentCommand]{pool: pool, logger: logger})
		river.AddWorker(workers, &Recorder[intent.CheckRunAction]{pool: pool, logger: logger})
		river.AddWorker(workers, &Recorder[intent.CheckSuiteRequested]{pool: pool, logger: logger})
		river.AddWorker(workers, &Recorder[intent.ProductionPush]{pool: pool, logger: logger})
		river.AddWorker(workers, &Recorder[intent.TestRequested]{pool: pool, logger: logger})
	}
	river.AddWorker(workers, &Recorder[intent.BranchDeleted]{pool: pool, logger: logger})
	river.AddWorker(workers, &Recorder[intent.InstallationChanged]{pool: pool, logger: logger})
}
