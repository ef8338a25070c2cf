package state

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Checks is the open_checks table: the check runs the bot opened and has
// not concluded yet.
type Checks struct{ pool *pgxpool.Pool }

// Kinds of open_checks rows.
const (
	KindCheck      = "check"
	KindDeployment = "deployment"
)

// OpenCheck is a check run (or a deployment, Kind KindDeployment, its id
// in CheckRunID) the bot opened for run RunID.
type OpenCheck struct {
	ID             int64  // the record's
	Kind           string // "" is KindCheck
	Repo           string
	CheckRunID     int64 // 0 while it is being created (Opening)
	HeadSHA        string
	InstallationID int64
	RunID          int64
	Name           string
	// RunStatus is the run's status; StepStatus the status of the step the
	// check run reports ("" for a run's own check run).
	RunStatus, StepStatus string
}

// Opened records a check run the bot created and will conclude.
func (c Checks) Opened(ctx context.Context, o OpenCheck) error {
	_, err := c.pool.Exec(ctx, `
		INSERT INTO open_checks (repo, kind, check_run_id, installation_id, run_id, name, head_sha) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT DO NOTHING`, o.Repo, cmp.Or(o.Kind, KindCheck), o.CheckRunID, o.InstallationID, o.RunID, o.Name, o.HeadSHA)
	if err != nil {
		return fmt.Errorf("record open check run %d: %w", o.CheckRunID, err)
	}
	return nil
}

// Opening records a check run about to be created (o.CheckRunID unset),
// before the request that creates it: if the bot stops before it learns
// the id, the sweep finds the check run by its commit, name and external
// id. It returns the record's id, for Created.
func (c Checks) Opening(ctx context.Context, o OpenCheck) (int64, error) {
	var id int64
	err := c.pool.QueryRow(ctx, `
		INSERT INTO open_checks (repo, kind, installation_id, run_id, name, head_sha) VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING id`, o.Repo, cmp.Or(o.Kind, KindCheck), o.InstallationID, o.RunID, o.Name, o.HeadSHA).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record check run %q being created: %w", o.Name, err)
	}
	return id, nil
}

// Created records the id GitHub gave the check run recorded as record.
func (c Checks) Created(ctx context.Context, record, checkRunID int64) error {
	// A create retried after a lost answer may return a check run already
	// recorded: then one record of it is enough.
	_, err := c.pool.Exec(ctx, `
		WITH intent AS (DELETE FROM open_checks WHERE id = $1
		                RETURNING repo, kind, installation_id, run_id, name, head_sha, opened_at)
		INSERT INTO open_checks (repo, kind, check_run_id, installation_id, run_id, name, head_sha, opened_at)
		SELECT repo, kind, $2, installation_id, run_id, name, head_sha, opened_at FROM intent
		ON CONFLICT (repo, kind, check_run_id) DO NOTHING`, record, checkRunID)
	if err != nil {
		return fmt.Errorf("record open check run %d: %w", checkRunID, err)
	}
	return nil
}

// Forget removes record: the check run it stood for was never created.
func (c Checks) Forget(ctx context.Context, record int64) error {
	if _, err := c.pool.Exec(ctx, `DELETE FROM open_checks WHERE id = $1`, record); err != nil {
		return fmt.Errorf("forget open check record %d: %w", record, err)
	}
	return nil
}

// Concluded records that a check run (or deployment, by kind) is concluded.
func (c Checks) Concluded(ctx context.Context, repo, kind string, checkRunID int64) error {
	if _, err := c.pool.Exec(ctx, `DELETE FROM open_checks WHERE repo = $1 AND kind = $2 AND check_run_id = $3`, repo, kind, checkRunID); err != nil {
		return fmt.Errorf("record concluded check run %d: %w", checkRunID, err)
	}
	return nil
}

// Stranded lists the open check runs (and those being created) whose run ended more than grace ago,
// or is still recorded as running although its job finished (completed,
// cancelled or discarded) more than grace ago: nothing will conclude them.
func (c Checks) Stranded(ctx context.Context, grace time.Duration) ([]OpenCheck, error) {
	rows, err := c.pool.Query(ctx, `
		SELECT o.id, o.kind, o.repo, coalesce(o.check_run_id, 0), o.head_sha, o.installation_id, o.run_id, o.name, r.status,
		       coalesce((SELECT s.status FROM run_steps s WHERE s.run_id = r.id AND s.check_run_id = o.check_run_id LIMIT 1), '')
		FROM open_checks o JOIN runs r ON r.id = o.run_id
		LEFT JOIN river_job j ON j.id = r.job_id
		WHERE (r.status NOT IN ('running', 'queued') AND r.finished_at < now() - make_interval(secs => $1))
		   OR (r.status IN ('running', 'queued') AND j.state IN ('completed', 'cancelled', 'discarded')
		       AND coalesce(j.finalized_at, j.attempted_at) < now() - make_interval(secs => $1))
		   OR (r.status IN ('running', 'queued') AND r.job_id IS NOT NULL AND j.id IS NULL AND o.opened_at < now() - make_interval(secs => $1))
		ORDER BY o.opened_at LIMIT 200`, grace.Seconds())
	if err != nil {
		return nil, fmt.Errorf("read stranded check runs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (OpenCheck, error) {
		var o OpenCheck
		err := r.Scan(&o.ID, &o.Kind, &o.Repo, &o.CheckRunID, &o.HeadSHA, &o.InstallationID, &o.RunID, &o.Name, &o.RunStatus, &o.StepStatus)
		return o, err
	})
}
