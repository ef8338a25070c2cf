package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/github"
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

// Work runs the job with its logger in ctx and logs how it failed. A job
// that GitHub says cannot succeed (github.Permanent: the App uninstalled
// or suspended, the repository gone) is cancelled at once with one line
// saying why, rather than retried for days with the same answer.
func (m *jobLogging) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	lc := m.logger.With().Str("job_kind", job.Kind).Int64("job_id", job.ID).Int("attempt", job.Attempt)
	meta := metaOf(job.EncodedArgs)
	if meta.DeliveryID != "" {
		lc = lc.Str("delivery_id", meta.DeliveryID)
	}
	logger := lc.Logger()
	ctx = context.WithValue(logger.WithContext(ctx), jobLoggerKey{}, &logger)
	err := doInner(ctx)
	if reason, ok := permanent(err); ok {
		ev := logger.Error()
		if repo := meta.Repo.FullName(); repo != "" {
			ev = ev.Str("repo", repo)
		}
		ev.Str("reason", reason).Str("error", logValue(err.Error())).Msg("job ended without retries: GitHub says it cannot succeed")
		return river.JobCancel(err)
	}
	logJobError(ctx, logger, job, err)
	return err
}

// permanent is github.Permanent for a job's outcome; a job already
// snoozed or cancelled keeps what it chose.
func permanent(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	if _, snoozed := errors.AsType[*river.JobSnoozeError](err); snoozed {
		return "", false
	}
	if _, cancelled := errors.AsType[*river.JobCancelError](err); cancelled {
		return "", false
	}
	return github.Permanent(err)
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

// metaOf is the webhook delivery a job's arguments carry: every intent
// embeds intent.Meta; jobs the bot queues itself (the sweep) have none.
func metaOf(args []byte) intent.Meta {
	var m intent.Meta
	_ = json.Unmarshal(args, &m)
	return m
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
