package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LogChunk is a piece of a step's output as stored in run_log_chunks.
type LogChunk struct {
	ID   int64
	Step string
	At   time.Time
	Text string
	// Marker is where a step's output was cut: its head before it, its
	// latest output after it; Cut counts the bytes left out here.
	Marker bool
	Cut    int64
}

// LogWrite is one batch of a run's log, written at once.
type LogWrite struct {
	// Chunks are new chunks, in order (their ID and At are given by the
	// database).
	Chunks []LogChunk
	// Drop are chunks to delete (the oldest of a tail over its bound);
	// Cut adds to markers' counts of bytes left out.
	Drop []int64
	Cut  map[int64]int64
}

// WriteLog stores one batch of run's log in one transaction and returns
// the ids of w.Chunks, in order. The caller writes a run's batches one
// after another, so ids grow in the order readers see them committed.
func (s Steps) WriteLog(ctx context.Context, run int64, w LogWrite) ([]int64, error) {
	ctx = context.WithoutCancel(ctx) // a cancelled step's last lines are kept too
	b := &pgx.Batch{}
	ids := make([]int64, len(w.Chunks))
	for i, c := range w.Chunks {
		b.Queue(`INSERT INTO run_log_chunks (run_id, step, body, marker, cut) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			run, c.Step, c.Text, c.Marker, c.Cut).QueryRow(func(row pgx.Row) error { return row.Scan(&ids[i]) })
	}
	if len(w.Drop) > 0 {
		b.Queue(`DELETE FROM run_log_chunks WHERE run_id = $1 AND id = ANY($2)`, run, w.Drop)
	}
	for id, n := range w.Cut {
		b.Queue(`UPDATE run_log_chunks SET cut = cut + $3 WHERE run_id = $1 AND id = $2`, run, id, n)
	}
	if b.Len() == 0 {
		return nil, nil
	}
	// A batch runs in one implicit transaction: a reader never sees a
	// tail's chunk dropped before its marker counts it.
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("store the log of run %d: %w", run, err)
	}
	return ids, nil
}

// LogSince returns up to limit chunks of run's log after chunk id after
// (0: from the start), in order.
func (s Steps) LogSince(ctx context.Context, run, after int64, limit int) ([]LogChunk, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, step, at, body, marker, cut FROM run_log_chunks
		WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3`, run, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read the log of run %d: %w", run, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LogChunk, error) {
		var c LogChunk
		return c, row.Scan(&c.ID, &c.Step, &c.At, &c.Text, &c.Marker, &c.Cut)
	})
	if err != nil {
		return nil, fmt.Errorf("read the log of run %d: %w", run, err)
	}
	return out, nil
}

// Tails returns the stored tails (run_steps.log_tail, the last 8 KiB) of
// run's steps names: what is left of a step whose whole log was not kept
// (a run from before it was, or a write the database refused).
func (s Steps) Tails(ctx context.Context, run int64, names []string) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, log_tail FROM run_steps WHERE run_id = $1 AND name = ANY($2) AND log_tail <> ''`, run, names)
	if err != nil {
		return nil, fmt.Errorf("read the log tails of run %d: %w", run, err)
	}
	out := map[string]string{}
	var name, tail string
	_, err = pgx.ForEachRow(rows, []any{&name, &tail}, func() error {
		out[name] = tail
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the log tails of run %d: %w", run, err)
	}
	return out, nil
}

// LogBytes is how much of run's log is stored: a rescued run's writer
// counts it against the run's bound.
func (s Steps) LogBytes(ctx context.Context, run int64) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(octet_length(body)), 0) FROM run_log_chunks WHERE run_id = $1`, run).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("measure the log of run %d: %w", run, err)
	}
	return n, nil
}
