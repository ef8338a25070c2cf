package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Deliveries reads what GitHub asked the bot (the deliveries the intake
// stored): the pipelines look back at it when GitHub's own answer is not
// enough.
type Deliveries struct{ pool *pgxpool.Pool }

// LatestProductionPush returns the commit of repo's latest push to its
// default branch ("" when none was delivered).
func (d Deliveries) LatestProductionPush(ctx context.Context, repo string) (string, error) {
	var sha string
	err := d.pool.QueryRow(ctx, `
		SELECT intent->>'after' FROM deliveries
		WHERE repo = $1 AND intent_kind = 'production_push'
		ORDER BY received_at DESC LIMIT 1`, repo).Scan(&sha)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the latest push of %s: %w", repo, err)
	}
	return sha, nil
}

// DefaultBranch returns the installation and default branch the latest
// delivery about repo named (0, "" when the bot never heard of it).
func (d Deliveries) DefaultBranch(ctx context.Context, repo string) (installationID int64, branch string, err error) {
	err = d.pool.QueryRow(ctx, `
		SELECT installation_id, coalesce(intent->'repo'->>'default_branch', '') FROM deliveries
		WHERE repo = $1 AND installation_id <> 0 ORDER BY received_at DESC LIMIT 1`, repo).Scan(&installationID, &branch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read the default branch of %s: %w", repo, err)
	}
	return installationID, branch, nil
}

// PreviewRequested reports whether a delivery asked for a preview of pull
// request pr (false when the database cannot say).
func (d Deliveries) PreviewRequested(ctx context.Context, repo string, pr int) bool {
	var ok bool
	_ = d.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE repo = $1 AND pr_number = $2 AND intent_kind = 'preview_requested')`, repo, pr).Scan(&ok)
	return ok
}
