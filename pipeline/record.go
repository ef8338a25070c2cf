package pipeline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// Recorder is the worker of an intent kind whose pipeline does not exist
// yet: it writes the intent to the intents table. Recording is idempotent, so
// a retried or rescued job leaves one row.
type Recorder[T intent.Intent] struct {
	river.WorkerDefaults[T]
	intents state.Intents
	logger  zerolog.Logger
}

// Work records job's intent.
func (w *Recorder[T]) Work(ctx context.Context, job *river.Job[T]) error {
	in := job.Args
	m := in.Delivery()
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode %s intent of delivery %s: %w", in.Kind(), m.DeliveryID, err)
	}
	err = w.intents.Record(ctx, state.Intent{
		DeliveryID: m.DeliveryID, Kind: in.Kind(), Repo: m.Repo.FullName(), PR: intent.PRNumber(in),
		Body: body, JobID: job.ID, Attempt: job.Attempt,
	})
	if err != nil {
		return err
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
func AddRecorders(workers *river.Workers, intents state.Intents, logger zerolog.Logger, pipelines bool) {
	if !pipelines {
		river.AddWorker(workers, &Recorder[intent.PreviewRequested]{intents: intents, logger: logger})
		river.AddWorker(workers, &Recorder[intent.PreviewDrafted]{intents: intents, logger: logger})
		river.AddWorker(workers, &Recorder[intent.PreviewClosed]{intents: intents, logger: logger})
		river.AddWorker(workers, &Recorder[intent.CommentCommand]{intents: intents, logger: logger})
		river.AddWorker(workers, &Recorder[intent.CheckRunAction]{intents: intents, logger: logger})
		river.AddWorker(workers, &Recorder[intent.CheckSuiteRequested]{intents: intents, logger: logger})
		river.AddWorker(workers, &Recorder[intent.ProductionPush]{intents: intents, logger: logger})
		river.AddWorker(workers, &Recorder[intent.TestRequested]{intents: intents, logger: logger})
	}
	river.AddWorker(workers, &Recorder[intent.BranchDeleted]{intents: intents, logger: logger})
	river.AddWorker(workers, &Recorder[intent.InstallationChanged]{intents: intents, logger: logger})
}
