package state

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Intents is the intents table: intents of kinds whose pipeline does not
// exist yet, kept for when it does.
type Intents struct{ pool *pgxpool.Pool }

// Intent is one recorded intent.
type Intent struct {
	DeliveryID string
	Kind       string
	Repo       string
	PR         int
	Body       []byte // the intent as JSON
	JobID      int64
	Attempt    int
}

// Record stores in once per delivery: a retried or rescued job leaves one
// row.
func (i Intents) Record(ctx context.Context, in Intent) error {
	_, err := i.pool.Exec(ctx, `
		INSERT INTO intents (delivery_id, kind, repo, pr_number, intent, job_id, attempt)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (delivery_id) DO NOTHING`,
		in.DeliveryID, in.Kind, in.Repo, in.PR, in.Body, in.JobID, in.Attempt)
	if err != nil {
		return fmt.Errorf("record %s intent of delivery %s: %w", in.Kind, in.DeliveryID, err)
	}
	return nil
}
