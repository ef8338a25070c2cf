// Package intake makes webhook deliveries durable: one transaction records
// the delivery under GitHub's delivery id and inserts the River job that will
// carry out its intent. Either both exist or neither does, and a redelivery
// of a known id changes nothing.
package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// Receipt says what Accept did.
type Receipt struct {
	// JobID is the River job carrying the intent (for a duplicate, the job
	// queued by the first delivery).
	JobID int64
	// Duplicate is true when the delivery id was already stored, or another
	// delivery of the same event (intent.Key) was.
	Duplicate bool
}

// Store accepts deliveries into PostgreSQL.
type Store struct {
	pool  *pgxpool.Pool
	queue *river.Client[pgx.Tx]
}

// New returns a Store inserting jobs through queue, which may be a client
// that is not started (inserting needs no running workers).
func New(pool *pgxpool.Pool, queue *river.Client[pgx.Tx]) *Store {
	return &Store{pool: pool, queue: queue}
}

// Accept stores the delivery of in and queues in as a job, atomically.
func (s *Store) Accept(ctx context.Context, in intent.Intent) (Receipt, error) {
	m := in.Delivery()
	if m.DeliveryID == "" {
		return Receipt{}, errors.New("intake: delivery has no id")
	}
	body, err := json.Marshal(in)
	if err != nil {
		return Receipt{}, fmt.Errorf("intake: encode %s intent: %w", in.Kind(), err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Receipt{}, fmt.Errorf("intake: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit

	// A concurrent insert of the same id (or intent key) waits for the first
	// transaction and then conflicts, so two simultaneous redeliveries still
	// queue one job.
	var key *string
	if k := intent.Key(in); k != "" {
		key = &k
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO deliveries (delivery_id, event, action, installation_id, repo, pr_number, intent_kind, intent, intent_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT DO NOTHING`,
		m.DeliveryID, m.Event, m.Action, m.InstallationID, m.Repo.FullName(), intent.PRNumber(in), in.Kind(), body, key)
	if err != nil {
		return Receipt{}, fmt.Errorf("intake: store delivery %s: %w", m.DeliveryID, err)
	}
	if tag.RowsAffected() == 0 {
		var jobID *int64
		if err := tx.QueryRow(ctx, `
			SELECT job_id FROM deliveries WHERE delivery_id = $1 OR intent_key = $2
			ORDER BY delivery_id = $1 DESC LIMIT 1`, m.DeliveryID, key).Scan(&jobID); err != nil {
			return Receipt{}, fmt.Errorf("intake: look up delivery %s: %w", m.DeliveryID, err)
		}
		r := Receipt{Duplicate: true}
		if jobID != nil {
			r.JobID = *jobID
		}
		return r, nil
	}
	res, err := s.queue.InsertTx(ctx, tx, in, nil)
	if err != nil {
		return Receipt{}, fmt.Errorf("intake: queue %s job for delivery %s: %w", in.Kind(), m.DeliveryID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE deliveries SET job_id = $2 WHERE delivery_id = $1`, m.DeliveryID, res.Job.ID); err != nil {
		return Receipt{}, fmt.Errorf("intake: link delivery %s to job %d: %w", m.DeliveryID, res.Job.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Receipt{}, fmt.Errorf("intake: commit delivery %s: %w", m.DeliveryID, err)
	}
	return Receipt{JobID: res.Job.ID}, nil
}
