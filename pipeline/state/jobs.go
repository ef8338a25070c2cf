package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Jobs reads River's job table for the operator's metrics: what waits in
// the queue, of which kind, and for how long.
type Jobs struct{ pool *pgxpool.Pool }

// JobsOfKind is what the queue holds of one kind of job.
type JobsOfKind struct {
	Kind string
	// ByState counts the jobs by River state: available, scheduled,
	// retryable, running (kinds with none of them are not listed).
	ByState map[string]int
	// OldestDue is how long the job that has waited longest for a worker
	// since it became due has waited: an available job's, or a scheduled
	// or retryable one's past its time (River's scheduler has not moved it
	// yet). 0 when none waits.
	OldestDue time.Duration
}

// Waiting lists, by kind, the jobs not finished: those waiting for a
// worker, scheduled for later, waiting to be retried, and running.
func (j Jobs) Waiting(ctx context.Context) ([]JobsOfKind, error) {
	rows, err := j.pool.Query(ctx, `
		SELECT kind,
			count(*) FILTER (WHERE state = 'available'),
			count(*) FILTER (WHERE state = 'scheduled'),
			count(*) FILTER (WHERE state = 'retryable'),
			count(*) FILTER (WHERE state = 'running'),
			COALESCE(EXTRACT(EPOCH FROM now() - min(scheduled_at) FILTER (WHERE state <> 'running' AND scheduled_at <= now())), 0)::float8
		FROM river_job
		WHERE state IN ('available', 'scheduled', 'retryable', 'running')
		GROUP BY kind`)
	if err != nil {
		return nil, fmt.Errorf("count queued jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobsOfKind, error) {
		var k JobsOfKind
		var available, scheduled, retryable, running int
		var oldest float64
		if err := r.Scan(&k.Kind, &available, &scheduled, &retryable, &running, &oldest); err != nil {
			return k, err
		}
		k.ByState = map[string]int{"available": available, "scheduled": scheduled, "retryable": retryable, "running": running}
		k.OldestDue = time.Duration(oldest * float64(time.Second))
		return k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("count queued jobs: %w", err)
	}
	return out, nil
}
