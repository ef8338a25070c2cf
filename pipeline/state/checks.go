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
	Kind           string // "" is KindCheck
	Repo           string
	CheckRunID     int64
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
		INSERT INTO open_checks (repo, kind, check_run_id, installation_id, run_id, name) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT DO NOTHING`, o.Repo, cmp.Or(o.Kind, KindCheck), o.CheckRunID, o.InstallationID, o.RunID, o.Name)
	if err != nil {
		return fmt.Errorf("record open check run %d: %w", o.CheckRunID, err)
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

// Stranded lists the open check runs whose run ended more than grace ago,
// or is still recorded as running although its job finished (completed,
// cancelled or discarded) more than grace ago: nothing will conclude them.
func (c Checks) Stranded(ctx context.Context, grace time.Duration) ([]OpenCheck, error) {
	rows, err := c.pool.Query(ctx, `
		SELECT o.kind, o.repo, o.check_run_id, o.installation_id, o.run_id, o.name, r.status,
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
		err := r.Scan(&o.Kind, &o.Repo, &o.CheckRunID, &o.InstallationID, &o.RunID, &o.Name, &o.RunStatus, &o.StepStatus)
		return o, err
	})
}
