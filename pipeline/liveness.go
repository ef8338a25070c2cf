package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// Liveness is how bot processes sharing a database notice that one of them
// died. Each writes a heartbeat; any of them rescues the jobs a silent
// process left in the running state, so a crashed or killed bot's work
// resumes within seconds (the jobs converge: their steps are idempotent and
// a sync concludes the check runs of abandoned runs) rather than after
// River's stuck-job timeout, which must exceed the longest legitimate run.
type Liveness struct {
	pool     *pgxpool.Pool
	clientID string
	logger   zerolog.Logger
	// Every is the heartbeat period; DeadAfter how long a silent process
	// is given before its jobs are rescued.
	Every, DeadAfter time.Duration
}

// NewLiveness tracks the River client clientID.
func NewLiveness(pool *pgxpool.Pool, clientID string, logger zerolog.Logger) *Liveness {
	return &Liveness{pool: pool, clientID: clientID, logger: logger, Every: 5 * time.Second, DeadAfter: 30 * time.Second}
}

// Beat records that this process is alive.
func (l *Liveness) Beat(ctx context.Context) error {
	_, err := l.pool.Exec(ctx, `
		INSERT INTO bot_clients (client_id) VALUES ($1)
		ON CONFLICT (client_id) DO UPDATE SET heartbeat_at = now()`, l.clientID)
	if err != nil {
		return fmt.Errorf("liveness: heartbeat: %w", err)
	}
	return nil
}

// RescueDead makes the running jobs of silent processes available again
// (or discards those out of attempts, as River's own rescuer does) and
// returns how many it rescued.
func (l *Liveness) RescueDead(ctx context.Context) (int, error) {
	tag, err := l.pool.Exec(ctx, `
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
		l.clientID, l.DeadAfter.Seconds())
	if err != nil {
		return 0, fmt.Errorf("liveness: rescue jobs of stopped processes: %w", err)
	}
	if n := int(tag.RowsAffected()); n > 0 {
		l.logger.Warn().Int("jobs", n).Msg("rescued jobs of a bot process that stopped")
		return n, nil
	}
	return 0, nil
}

// Run beats and rescues until ctx ends, then removes this process's row so
// that others do not wait for it.
func (l *Liveness) Run(ctx context.Context) {
	t := time.NewTicker(l.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_, _ = l.pool.Exec(context.Background(), `DELETE FROM bot_clients WHERE client_id = $1`, l.clientID)
			return
		case <-t.C:
		}
		if err := l.Beat(ctx); err != nil && ctx.Err() == nil {
			l.logger.Warn().Err(err).Msg("liveness heartbeat")
		}
		if _, err := l.RescueDead(ctx); err != nil && ctx.Err() == nil {
			l.logger.Warn().Err(err).Msg("liveness rescue")
		}
	}
}
