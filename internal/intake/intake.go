// Package intake makes webhook deliveries durable: one transaction records
// the delivery under GitHub's delivery id and inserts the River job that will
// carry out its intent. Either both exist or neither does, and a redelivery
// of a known id changes nothing.
//
// Deliveries that arrive together share a transaction (group commit): while
// one batch commits, the next gathers, so under load many deliveries pay
// for one commit, and at rest a delivery waits for nobody. Each is
// acknowledged only after the commit that holds it.
package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

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

// Limits of group commit.
const (
	// maxBatch is the most deliveries one transaction holds.
	maxBatch = 64
	// maxCommitting is how many batches commit at once. More than one keeps
	// the database busy while a batch waits for its commit to be flushed.
	maxCommitting = 4
	// commitTimeout bounds a batch's transaction. A batch holds other
	// deliveries than the one whose request runs it, so it does not stop
	// when that request is cancelled.
	commitTimeout = 30 * time.Second
)

// Store accepts deliveries into PostgreSQL.
type Store struct {
	pool  *pgxpool.Pool
	queue *river.Client[pgx.Tx]

	mu         sync.Mutex
	pending    []*request
	committing int // batches being committed, each by one request's goroutine
}

// New returns a Store inserting jobs through queue, which may be a client
// that is not started (inserting needs no running workers).
func New(pool *pgxpool.Pool, queue *river.Client[pgx.Tx]) *Store {
	return &Store{pool: pool, queue: queue}
}

// request is one delivery waiting for the commit that holds it.
type request struct {
	in   intent.Intent
	meta intent.Meta
	body []byte
	key  *string // intent.Key, nil for none

	done chan result // buffered: the committer never waits for the waiter
	// lead asks the waiter's goroutine to commit the next batch; promoted
	// and gone are guarded by Store.mu.
	lead     chan struct{}
	promoted bool
	gone     bool
}

type result struct {
	receipt Receipt
	err     error
}

// Accept stores the delivery of in and queues in as a job, atomically, and
// returns once that is committed. When ctx ends first, Accept returns its
// error; the delivery may still be committed, and GitHub's redelivery is
// then answered as a duplicate.
func (s *Store) Accept(ctx context.Context, in intent.Intent) (Receipt, error) {
	m := in.Delivery()
	if m.DeliveryID == "" {
		return Receipt{}, errors.New("intake: delivery has no id")
	}
	body, err := json.Marshal(in)
	if err != nil {
		return Receipt{}, fmt.Errorf("intake: encode %s intent: %w", in.Kind(), err)
	}
	req := &request{in: in, meta: m, body: body, done: make(chan result, 1), lead: make(chan struct{}, 1)}
	if k := intent.Key(in); k != "" {
		req.key = &k
	}

	s.mu.Lock()
	s.pending = append(s.pending, req)
	lead := s.committing < maxCommitting
	if lead {
		s.committing++
	}
	s.mu.Unlock()
	if lead {
		s.lead()
	}
	for {
		select {
		case r := <-req.done:
			s.leave(req)
			return r.receipt, r.err
		case <-req.lead:
			s.mu.Lock()
			req.promoted = false
			s.mu.Unlock()
			s.lead()
		case <-ctx.Done():
			s.mu.Lock()
			promoted := req.promoted
			req.gone = !promoted
			s.mu.Unlock()
			if promoted {
				// Others wait for this goroutine to lead: lead first.
				<-req.lead
				s.mu.Lock()
				req.promoted = false
				s.mu.Unlock()
				s.lead()
			}
			return Receipt{}, fmt.Errorf("intake: delivery %s: %w", m.DeliveryID, ctx.Err())
		}
	}
}

// lead commits the oldest pending deliveries (up to maxBatch) in one
// transaction, answers each, and hands the lead off.
func (s *Store) lead() {
	for {
		s.mu.Lock()
		n := min(len(s.pending), maxBatch)
		batch := make([]*request, n)
		copy(batch, s.pending)
		s.pending = s.pending[n:]
		s.mu.Unlock()

		if n > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
			results := s.commit(ctx, batch)
			cancel()
			for i, r := range batch {
				r.done <- results[i]
			}
		}
		if s.handOff() {
			return
		}
	}
}

// leave is the end of a request answered by another's batch. If it was
// asked to lead meanwhile, it hands the lead on (or commits what only
// abandoned requests left) before its answer goes out.
func (s *Store) leave(req *request) {
	s.mu.Lock()
	promoted := req.promoted
	req.promoted = false
	s.mu.Unlock()
	if !promoted {
		return
	}
	<-req.lead
	if !s.handOff() {
		s.lead()
	}
}

// handOff passes this goroutine's commit slot to the goroutine of the next
// pending delivery, or frees the slot when nothing is pending or another
// goroutine already has the lead over what is. It returns false when only
// deliveries whose requests ended are pending: their goroutines are gone,
// so this one must commit them itself.
func (s *Store) handOff() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		s.committing--
		return true
	}
	led := false
	for _, next := range s.pending {
		switch {
		case next.gone:
		case next.promoted:
			led = true
		default:
			next.promoted = true
			next.lead <- struct{}{} // buffered and empty: a request is promoted once at a time
			return true
		}
	}
	if led {
		s.committing--
		return true
	}
	return false
}

// commit stores batch in one transaction. When that fails, each delivery
// is tried in a transaction of its own, so that one bad delivery fails
// only itself and every other gets its own answer.
func (s *Store) commit(ctx context.Context, batch []*request) []result {
	results := make([]result, len(batch))
	if len(batch) > 1 {
		if err := s.commitBatch(ctx, batch, results); err == nil {
			return results
		}
	}
	for i, r := range batch {
		results[i].receipt, results[i].err = s.commitOne(ctx, r)
	}
	return results
}

// commitBatch stores several deliveries and their jobs in one transaction.
func (s *Store) commitBatch(ctx context.Context, batch []*request, results []result) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit

	n := len(batch)
	ids, events, actions, repos, kinds, keys := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	insts, prs, bodies := make([]int64, n), make([]int, n), make([]string, n)
	for i, r := range batch {
		ids[i], events[i], actions[i], insts[i] = r.meta.DeliveryID, r.meta.Event, r.meta.Action, r.meta.InstallationID
		repos[i], prs[i], kinds[i], bodies[i], keys[i] = r.meta.Repo.FullName(), intent.PRNumber(r.in), r.in.Kind(), string(r.body), r.key
	}
	// Rows conflicting with stored ones, or with an earlier row of the same
	// batch (the same delivery twice), are left out; a concurrent batch
	// storing the same id makes this one wait for it, then conflict.
	rows, err := tx.Query(ctx, `
		INSERT INTO deliveries (delivery_id, event, action, installation_id, repo, pr_number, intent_kind, intent, intent_key)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::int[], $7::text[], $8::jsonb[], $9::text[])
		ON CONFLICT DO NOTHING
		RETURNING delivery_id`, ids, events, actions, insts, repos, prs, kinds, bodies, keys)
	if err != nil {
		return err
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	isNew := make(map[string]bool, len(stored))
	for _, id := range stored {
		isNew[id] = true
	}

	var params []river.InsertManyParams
	queued := map[string]bool{}
	for _, r := range batch {
		if id := r.meta.DeliveryID; isNew[id] && !queued[id] {
			queued[id] = true
			params = append(params, river.InsertManyParams{Args: r.in})
		}
	}
	jobOf := make(map[string]int64, len(params))
	if len(params) > 0 {
		res, err := s.queue.InsertManyTx(ctx, tx, params)
		if err != nil {
			return err
		}
		// Matched by the delivery id in each job's arguments rather than by
		// position: the order of an INSERT's RETURNING is not promised.
		var jobIDs []int64
		var jobDeliveries []string
		for _, j := range res {
			var args struct {
				DeliveryID string `json:"delivery_id"`
			}
			if err := json.Unmarshal(j.Job.EncodedArgs, &args); err != nil || !isNew[args.DeliveryID] {
				return fmt.Errorf("job %d does not name a delivery of this batch", j.Job.ID)
			}
			jobOf[args.DeliveryID] = j.Job.ID
			jobIDs = append(jobIDs, j.Job.ID)
			jobDeliveries = append(jobDeliveries, args.DeliveryID)
		}
		if _, err := tx.Exec(ctx, `
			UPDATE deliveries d SET job_id = v.job FROM unnest($1::text[], $2::bigint[]) AS v(id, job)
			WHERE d.delivery_id = v.id`, jobDeliveries, jobIDs); err != nil {
			return err
		}
	}

	// The others are duplicates: of a stored delivery, or of one stored
	// by this batch (whose job is now linked).
	var dupIDs []string
	var dupKeys []*string
	var dupAt []int
	first := map[string]bool{}
	for i, r := range batch {
		id := r.meta.DeliveryID
		if isNew[id] && !first[id] {
			first[id] = true
			results[i].receipt = Receipt{JobID: jobOf[id]}
			continue
		}
		dupIDs, dupKeys, dupAt = append(dupIDs, id), append(dupKeys, r.key), append(dupAt, i)
	}
	if len(dupAt) > 0 {
		rows, err := tx.Query(ctx, `
			SELECT DISTINCT ON (r.ord) r.ord, d.job_id
			FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r(id, key, ord)
			JOIN deliveries d ON d.delivery_id = r.id OR d.intent_key = r.key
			ORDER BY r.ord, (d.delivery_id = r.id) DESC`, dupIDs, dupKeys)
		if err != nil {
			return err
		}
		type found struct {
			ord   int64
			jobID *int64
		}
		list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (found, error) {
			var f found
			return f, row.Scan(&f.ord, &f.jobID)
		})
		if err != nil {
			return err
		}
		for _, f := range list {
			i := dupAt[f.ord-1]
			results[i].receipt.Duplicate = true
			if f.jobID != nil {
				results[i].receipt.JobID = *f.jobID
			}
		}
		for _, i := range dupAt {
			if !results[i].receipt.Duplicate {
				return fmt.Errorf("delivery %s was neither stored nor found", batch[i].meta.DeliveryID)
			}
		}
	}
	return tx.Commit(ctx)
}

// commitOne stores one delivery and its job in a transaction of its own.
func (s *Store) commitOne(ctx context.Context, r *request) (Receipt, error) {
	m := r.meta
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Receipt{}, fmt.Errorf("intake: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit

	// A concurrent insert of the same id (or intent key) waits for the first
	// transaction and then conflicts, so two simultaneous redeliveries still
	// queue one job.
	tag, err := tx.Exec(ctx, `
		INSERT INTO deliveries (delivery_id, event, action, installation_id, repo, pr_number, intent_kind, intent, intent_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT DO NOTHING`,
		m.DeliveryID, m.Event, m.Action, m.InstallationID, m.Repo.FullName(), intent.PRNumber(r.in), r.in.Kind(), r.body, r.key)
	if err != nil {
		return Receipt{}, fmt.Errorf("intake: store delivery %s: %w", m.DeliveryID, err)
	}
	if tag.RowsAffected() == 0 {
		var jobID *int64
		if err := tx.QueryRow(ctx, `
			SELECT job_id FROM deliveries WHERE delivery_id = $1 OR intent_key = $2
			ORDER BY delivery_id = $1 DESC LIMIT 1`, m.DeliveryID, r.key).Scan(&jobID); err != nil {
			return Receipt{}, fmt.Errorf("intake: look up delivery %s: %w", m.DeliveryID, err)
		}
		rec := Receipt{Duplicate: true}
		if jobID != nil {
			rec.JobID = *jobID
		}
		return rec, nil
	}
	res, err := s.queue.InsertTx(ctx, tx, r.in, nil)
	if err != nil {
		return Receipt{}, fmt.Errorf("intake: queue %s job for delivery %s: %w", r.in.Kind(), m.DeliveryID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE deliveries SET job_id = $2 WHERE delivery_id = $1`, m.DeliveryID, res.Job.ID); err != nil {
		return Receipt{}, fmt.Errorf("intake: link delivery %s to job %d: %w", m.DeliveryID, res.Job.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Receipt{}, fmt.Errorf("intake: commit delivery %s: %w", m.DeliveryID, err)
	}
	return Receipt{JobID: res.Job.ID}, nil
}
