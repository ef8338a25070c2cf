// Package store opens the bot's PostgreSQL database and keeps its schema
// current: the bot's own goose migrations (package migrations) and River's
// job-queue schema, brought up together so that one command readies a fresh
// database.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/revelations-studio/deploybot/migrations"
)

// Open connects a pool to url and checks that the database answers.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can echo the URL, password included.
		return nil, fmt.Errorf("store: the database URL is not valid (check its syntax)")
	}
	// pgx sizes the pool by CPU count (4 on a small machine), which is less
	// than the bot's job workers plus the webhook handler need at once.
	if !strings.Contains(url, "pool_max_conns") && cfg.MaxConns < minPoolConns {
		cfg.MaxConns = minPoolConns
	}
	// pgx waits for a connection as long as the caller's context allows.
	// A server that does not answer at all (a network partition, a host
	// dropping packets) would then hold a webhook past the 10 s GitHub
	// waits, and the delivery would time out instead of being refused with
	// a 500 that the bot logs; connecting gives up sooner.
	if !strings.Contains(url, "connect_timeout") && cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = ConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open pool for %s: %w", cfg.ConnConfig.Host, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// ConnectTimeout bounds opening a connection unless the URL sets
// connect_timeout.
const ConnectTimeout = 5 * time.Second

// minPoolConns is the pool size unless the URL sets pool_max_conns.
const minPoolConns = 40

// migrationLock is the advisory lock that serialises migrations between
// replicas starting at the same time ("deploybot" in ASCII).
const migrationLock = 0x6465706c6f79626f

// Status is where each part of the schema stands.
type Status struct {
	RiverVersion int // highest River migration applied
	RiverLatest  int // highest River migration this binary knows
	Bot          []*goose.MigrationStatus
	BotPending   int
}

// Current reports whether nothing is pending.
func (s Status) Current() bool { return s.BotPending == 0 && s.RiverVersion >= s.RiverLatest }

// MigrateUp applies every pending River and bot migration and returns a line
// per applied migration.
func MigrateUp(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	var applied []string
	err := withLock(ctx, pool, func(rm *rivermigrate.Migrator[pgx.Tx], gp *goose.Provider) error {
		res, err := rm.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err != nil {
			return fmt.Errorf("store: migrate River's schema up: %w", err)
		}
		for _, v := range res.Versions {
			applied = append(applied, fmt.Sprintf("river %03d %s", v.Version, v.Name))
		}
		results, err := gp.Up(ctx)
		if err != nil {
			return fmt.Errorf("store: migrate the bot's schema up: %w", err)
		}
		for _, r := range results {
			applied = append(applied, fmt.Sprintf("bot   %05d %s", r.Source.Version, r.Source.Path))
		}
		return nil
	})
	return applied, err
}

// MigrateDown rolls back the newest bot migration. River's schema stays: it
// holds the job queue, and dropping it would lose queued work.
func MigrateDown(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var rolled string
	err := withLock(ctx, pool, func(_ *rivermigrate.Migrator[pgx.Tx], gp *goose.Provider) error {
		r, err := gp.Down(ctx)
		if err != nil {
			return fmt.Errorf("store: migrate the bot's schema down: %w", err)
		}
		rolled = fmt.Sprintf("bot   %05d %s", r.Source.Version, r.Source.Path)
		return nil
	})
	return rolled, err
}

// MigrationStatus reports the state of both schemas without changing them.
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) (Status, error) {
	rm, gp, closeDB, err := migrators(pool)
	if err != nil {
		return Status{}, err
	}
	defer closeDB()
	var st Status
	all := rm.AllVersions()
	st.RiverLatest = all[len(all)-1].Version
	existing, err := rm.ExistingVersions(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("store: read River's schema version: %w", err)
	}
	if len(existing) > 0 {
		st.RiverVersion = existing[len(existing)-1].Version
	}
	if st.Bot, err = gp.Status(ctx); err != nil {
		return Status{}, fmt.Errorf("store: read the bot's schema version: %w", err)
	}
	for _, m := range st.Bot {
		if m.State == goose.StatePending {
			st.BotPending++
		}
	}
	return st, nil
}

func withLock(ctx context.Context, pool *pgxpool.Pool, fn func(*rivermigrate.Migrator[pgx.Tx], *goose.Provider) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("store: acquire a connection for migrations: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("store: take the migration lock: %w", err)
	}
	// Unlock with a fresh context: ctx may be what ended the migration.
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock)) //nolint:errcheck

	rm, gp, closeDB, err := migrators(pool)
	if err != nil {
		return err
	}
	defer closeDB()
	return fn(rm, gp)
}

func migrators(pool *pgxpool.Pool) (*rivermigrate.Migrator[pgx.Tx], *goose.Provider, func(), error) {
	rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("store: River migrator: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	gp, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		db.Close()
		return nil, nil, nil, fmt.Errorf("store: goose provider: %w", err)
	}
	return rm, gp, func() { closeQuietly(db) }, nil
}

func closeQuietly(db *sql.DB) { _ = db.Close() }
