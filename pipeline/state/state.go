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
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/revelations-studio/deploybot/internal/retry"
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
	Tests      Tests
	Checks     Checks
	Jobs       Jobs
	Pages      PageActions

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
		Tests:      Tests{pool},
		Checks:     Checks{pool},
		Jobs:       Jobs{pool},
		Pages:      PageActions{pool},
		pool:       pool,
	}
}

// ErrLocked says another session holds the lock asked for.
var ErrLocked = errors.New("another run holds the lock")

// Lock is a set of session advisory locks held on one connection of their
// own, so that a run needs one connection however many it holds. A process
// that dies loses its connection and with it the locks.
type Lock struct {
	conn *pgxpool.Conn
}

// Polling bounds of Lock.Also.
const (
	lockPollMin = 50 * time.Millisecond
	lockPollMax = 2 * time.Second
)

// Lock takes the lock named key without waiting: ErrLocked when another
// session holds it. Locks serialise the runs of one pull request, one
// repository's production, one test request, across workers and replicas.
func (s *Store) Lock(ctx context.Context, key string) (*Lock, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	ok, err := tryLock(ctx, conn, key)
	if !ok {
		conn.Release()
		if err == nil {
			err = ErrLocked
		}
		return nil, err
	}
	return &Lock{conn: conn}, nil
}

// Also takes one more lock on l's connection, waiting for it until ctx
// ends. It polls: a blocked pg_advisory_lock would hold a connection that
// cancelling ctx cannot free without breaking the session. It must not be
// called concurrently with itself or Release.
func (l *Lock) Also(ctx context.Context, key string) error {
	for wait := lockPollMin; ; wait = min(wait*2, lockPollMax) {
		ok, err := tryLock(ctx, l.conn, key)
		if ok || err != nil {
			return err
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// Release gives up every lock of l and its connection.
func (l *Lock) Release() {
	_, _ = l.conn.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`)
	l.conn.Release()
}

func tryLock(ctx context.Context, conn *pgxpool.Conn, key string) (bool, error) {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		return false, fmt.Errorf("lock %s: %w", key, err)
	}
	return ok, nil
}
