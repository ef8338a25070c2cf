// Package state keeps the pipelines' state in PostgreSQL: runs and their
// steps, previews and what they created, what the bot was asked (the
// deliveries), refused commands, the liveness of bot processes, and the
// advisory locks that serialise runs. All of the pipelines' SQL is here;
// package pipeline speaks to it in its own terms and holds none.
package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is the pipelines' state in one database.
type Store struct {
	Runs       Runs
	Steps      Steps
	Previews   Previews
	Deliveries Deliveries
	Refusals   Refusals
	Clients    Clients
	Intents    Intents

	pool *pgxpool.Pool
}

// New returns the store of the database pool serves.
func New(pool *pgxpool.Pool) *Store {
	return &Store{
		Runs:       Runs{pool},
		Steps:      Steps{pool},
		Previews:   Previews{pool},
		Deliveries: Deliveries{pool},
		Refusals:   Refusals{pool},
		Clients:    Clients{pool},
		Intents:    Intents{pool},
		pool:       pool,
	}
}

// ErrLocked says another session holds the lock asked for.
var ErrLocked = errors.New("another run holds the lock")

// Lock takes the session advisory lock named key without waiting, on a
// connection of its own that is kept until unlock: ErrLocked when another
// session holds it. Locks serialise the runs of one pull request, one
// repository's production, one test request, across workers and replicas;
// a process that dies loses its connection and with it the lock.
func (s *Store) Lock(ctx context.Context, key string) (unlock func(), err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	if !ok {
		conn.Release()
		return nil, ErrLocked
	}
	return func() {
		_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key)
		conn.Release()
	}, nil
}
