package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Clients is the bot_clients table: the heartbeat of each bot process
// (River client) sharing the database.
type Clients struct{ pool *pgxpool.Pool }

// Beat records that client is alive.
func (c Clients) Beat(ctx context.Context, client string) error {
	_, err := c.pool.Exec(ctx, `
		INSERT INTO bot_clients (client_id) VALUES ($1)
		ON CONFLICT (client_id) DO UPDATE SET heartbeat_at = now()`, client)
	if err != nil {
		return fmt.Errorf("liveness: heartbeat: %w", err)
	}
	return nil
}

// Leave removes client's row, so that others do not wait for it.
func (c Clients) Leave(ctx context.Context, client string) error {
	_, err := c.pool.Exec(ctx, `DELETE FROM bot_clients WHERE client_id = $1`, client)
	return err
}

// RescueDead makes the running jobs of processes other than self that
// have been silent for deadAfter available again (or discards those out of
// attempts, as River's own rescuer does) and returns how many.
func (c Clients) RescueDead(ctx context.Context, self string, deadAfter time.Duration) (int, error) {
	tag, err := c.pool.Exec(ctx, `
		UPDATE river_job SET
			state = CASE WHEN attempt >= max_attempts THEN 'discarded'::river_job_state ELSE 'retryable'::river_job_state END,
			finalized_at = CASE WHEN attempt >= max_attempts THEN now() END,
			scheduled_at = now(),
			errors = array_append(errors, jsonb_build_object(
				'at', now(), 'attempt', attempt,
				'error', 'the bot process working this job stopped (no heartbeat)', 'trace', ''))
		WHERE state = 'running'
		  AND attempted_by IS NOT NULL
		  AND attempted_by[array_length(attempted_by, 1)] <> $1
		  AND NOT EXISTS (
			SELECT 1 FROM bot_clients c
			WHERE c.client_id = attempted_by[array_length(attempted_by, 1)]
			  AND c.heartbeat_at > now() - make_interval(secs => $2))`,
		self, deadAfter.Seconds())
	if err != nil {
		return 0, fmt.Errorf("liveness: rescue jobs of stopped processes: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
