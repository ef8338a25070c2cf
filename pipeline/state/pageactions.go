package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PageActions is the page_actions table: what signed-in people asked on the
// web pages and what came of it, for the run page to show.
type PageActions struct{ pool *pgxpool.Pool }

// PageAction is one request from a page and its outcome.
type PageAction struct {
	ID     int64
	Repo   string
	RunID  int64 // the run whose page it was asked on
	Action string
	Stage  string
	Actor  string
	// Status is queued, running, done, refused or failed; Message says why
	// for the last two.
	Status  string
	Message string
	// StartedRun is the run it started, once there is one (0 before, or
	// for an action that starts none).
	StartedRun  int64
	RequestedAt time.Time
}

// Request stores a request and, in the same transaction, queues the job
// that carries it out: insert gets the row's id and returns the job's.
// Either both exist or neither.
func (p PageActions) Request(ctx context.Context, a PageAction, insert func(ctx context.Context, tx pgx.Tx, id int64) (jobID int64, err error)) (int64, error) {
	var id int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
			INSERT INTO page_actions (repo, run_id, action, stage, actor) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			a.Repo, a.RunID, a.Action, a.Stage, a.Actor).Scan(&id); err != nil {
			return err
		}
		job, err := insert(ctx, tx, id)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE page_actions SET job_id = $2 WHERE id = $1`, id, job)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("request %s on run %d of %s: %w", a.Action, a.RunID, a.Repo, err)
	}
	return id, nil
}

// Running marks request id as being carried out.
func (p PageActions) Running(ctx context.Context, id int64) error {
	_, err := p.pool.Exec(ctx, `UPDATE page_actions SET status = 'running' WHERE id = $1 AND status = 'queued'`, id)
	if err != nil {
		return fmt.Errorf("mark page action %d running: %w", id, err)
	}
	return nil
}

// Finish records how request id ended: status done, refused or failed,
// message why, and resultJob the job whose run it started (0: none). It
// outlives ctx's cancellation, like the outcome it records.
func (p PageActions) Finish(ctx context.Context, id int64, status, message string, resultJob int64) error {
	_, err := p.pool.Exec(context.WithoutCancel(ctx), `
		UPDATE page_actions SET status = $2, message = $3, result_job_id = nullif($4, 0), finished_at = now() WHERE id = $1`,
		id, status, message, resultJob)
	if err != nil {
		return fmt.Errorf("record the outcome of page action %d: %w", id, err)
	}
	return nil
}

// Recent returns the last n requests asked on run's page, newest first,
// with the run each started.
func (p PageActions) Recent(ctx context.Context, run int64, n int) ([]PageAction, error) {
	rows, err := p.pool.Query(ctx, `
		SELECT a.id, a.repo, a.run_id, a.action, a.stage, a.actor, a.status, a.message, coalesce(r.id, 0), a.requested_at
		FROM page_actions a
		LEFT JOIN LATERAL (SELECT id FROM runs WHERE a.result_job_id IS NOT NULL AND job_id = a.result_job_id ORDER BY id DESC LIMIT 1) r ON true
		WHERE a.run_id = $1 ORDER BY a.id DESC LIMIT $2`, run, n)
	if err != nil {
		return nil, fmt.Errorf("read the page actions of run %d: %w", run, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PageAction, error) {
		var a PageAction
		err := r.Scan(&a.ID, &a.Repo, &a.RunID, &a.Action, &a.Stage, &a.Actor, &a.Status, &a.Message, &a.StartedRun, &a.RequestedAt)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the page actions of run %d: %w", run, err)
	}
	return out, nil
}
