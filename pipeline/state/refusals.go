package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Refusals is the command_refusals table: when the bot last reacted to a
// person's refused command on a repository.
type Refusals struct{ pool *pgxpool.Pool }

// Record records a refused command of login on repo and reports whether it
// deserves a reaction: the first refusal within window. The time is
// PostgreSQL's and the row decides atomically, so replicas agree. Rows of
// the repository's other users older than the window go as well.
func (r Refusals) Record(ctx context.Context, repo, login string, window time.Duration) (bool, error) {
	var react bool
	err := r.pool.QueryRow(ctx, `
		WITH expired AS (
			DELETE FROM command_refusals
			WHERE repo = $1 AND login <> lower($2) AND reacted_at < now() - make_interval(secs => $3))
		INSERT INTO command_refusals AS r (repo, login, reacted_at) VALUES ($1, lower($2), now())
		ON CONFLICT (repo, login) DO UPDATE SET reacted_at = now()
		WHERE r.reacted_at < now() - make_interval(secs => $3)
		RETURNING true`, repo, login, window.Seconds()).Scan(&react)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record refused command of %s on %s: %w", login, repo, err)
	}
	return react, nil
}
