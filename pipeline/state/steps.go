package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Steps is the run_steps table: each step of a run, its status, timings
// and the tail of its log.
type Steps struct{ pool *pgxpool.Pool }

// Step is what is recorded of one step.
type Step struct {
	Name     string
	Status   string // pending, running, succeeded, failed, skipped, cancelled
	Started  time.Time
	Finished time.Time
	Log      string
	Err      string
	// CheckRunID is a test stage's own check run (read only: Tests
	// records it).
	CheckRunID int64
}

// Plan records run's steps as pending; steps already recorded (a rescued
// run repeating its plan) are kept.
func (s Steps) Plan(ctx context.Context, run int64, names []string) error {
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO run_steps (run_id, name) SELECT $1, unnest($2::text[])
		ON CONFLICT DO NOTHING`, run, names); err != nil {
		return fmt.Errorf("record steps of run %d: %w", run, err)
	}
	return nil
}

// Update records a step's state. It outlives ctx's cancellation: a
// cancelled step must still be recorded as such.
func (s Steps) Update(ctx context.Context, run int64, st Step) error {
	_, err := s.pool.Exec(context.WithoutCancel(ctx), `
		UPDATE run_steps SET status = $3, started_at = $4, finished_at = $5, log_tail = $6, error = $7
		WHERE run_id = $1 AND name = $2`,
		run, st.Name, st.Status, nullTime(st.Started), nullTime(st.Finished), st.Log, st.Err)
	if err != nil {
		return fmt.Errorf("record step %s of run %d: %w", st.Name, run, err)
	}
	return nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
