package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// worker is a River worker made of a function and the time one of its jobs
// may take (0: the client's default). River's own WorkFunc has no timeout,
// and a struct per kind of job only repeated these two methods.
type worker[T river.JobArgs] struct {
	river.WorkerDefaults[T]
	timeout time.Duration
	work    func(ctx context.Context, job *river.Job[T]) error
}

func (w *worker[T]) Timeout(*river.Job[T]) time.Duration { return w.timeout }

func (w *worker[T]) Work(ctx context.Context, job *river.Job[T]) error { return w.work(ctx, job) }

// addWorker registers work for jobs of kind T.
func addWorker[T river.JobArgs](workers *river.Workers, timeout time.Duration, work func(ctx context.Context, job *river.Job[T]) error) {
	river.AddWorker(workers, &worker[T]{timeout: timeout, work: work})
}

// jobLogging is the middleware every job of the bot runs through. It gives
// the job a logger carrying the job and the webhook delivery that queued it,
// so that any line the job writes can be traced back to the delivery, and
// it logs the job's failure: River logs "job errored" at info, below what
// the bot lets through from River, so without this a job failing attempt
// after attempt would leave no line at all.
type jobLogging struct {
	river.MiddlewareDefaults
	logger zerolog.Logger
}

// Work runs the job with its logger in ctx and logs how it failed.
func (m *jobLogging) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	lc := m.logger.With().Str("job_kind", job.Kind).Int64("job_id", job.ID).Int("attempt", job.Attempt)
	if id := deliveryOf(job.EncodedArgs); id != "" {
		lc = lc.Str("delivery_id", id)
	}
	logger := lc.Logger()
	ctx = context.WithValue(logger.WithContext(ctx), jobLoggerKey{}, &logger)
	err := doInner(ctx)
	logJobError(ctx, logger, job, err)
	return err
}

// logJobError logs err, the outcome of one attempt of job: at warn when
// River will try again, at error when this was its last attempt. A snooze
// (a lock held by another run) and a cancellation (a newer push, a
// closed pull request, a job cancelled on purpose) are how the bot works,
// not failures: they are logged at debug.
func logJobError(ctx context.Context, logger zerolog.Logger, job *rivertype.JobRow, err error) {
	if err == nil {
		return
	}
	if _, snoozed := errors.AsType[*river.JobSnoozeError](err); snoozed {
		logger.Debug().Msg("job snoozed")
		return
	}
	if _, cancelled := errors.AsType[*river.JobCancelError](err); cancelled || errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely) {
		logger.Debug().Str("reason", err.Error()).Msg("job cancelled")
		return
	}
	ev, msg := logger.Warn(), "job failed: River will try it again"
	if job.Attempt >= job.MaxAttempts {
		ev, msg = logger.Error(), "job failed on its last attempt: River discards it"
	}
	ev.Int("max_attempts", job.MaxAttempts).Str("error", logValue(err.Error())).Msg(msg)
}

// deliveryOf is the webhook delivery id in a job's arguments: every intent
// embeds intent.Meta; jobs the bot queues itself (the sweep) have none.
func deliveryOf(args []byte) string {
	var m intent.Meta
	if json.Unmarshal(args, &m) != nil {
		return ""
	}
	return m.DeliveryID
}

type jobLoggerKey struct{}

// jobLogger is the logger of the job ctx belongs to (see jobLogging), or
// fallback outside a job (tests that call the pipeline directly). Code that
// adds its own fields starts from it, so every line of a job carries its
// delivery id.
func jobLogger(ctx context.Context, fallback zerolog.Logger) zerolog.Logger {
	if l, ok := ctx.Value(jobLoggerKey{}).(*zerolog.Logger); ok {
		return *l
	}
	return fallback
}
