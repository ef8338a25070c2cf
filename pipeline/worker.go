package pipeline

import (
	"context"
	"time"

	"github.com/riverqueue/river"
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
