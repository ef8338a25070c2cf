package neonsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// physical manages the real PostgreSQL databases that back branches, on the
// server given by Options.AdminURL.
type physical struct {
	adminURL string
	pool     *pgxpool.Pool
}

func newPhysical(ctx context.Context, adminURL string) (*physical, error) {
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, fmt.Errorf("neonsim: admin URL: %w", err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("neonsim: connect admin: %w", err)
	}
	return &physical{adminURL: adminURL, pool: pool}, nil
}

func (p *physical) close() { p.pool.Close() }

// newName returns a database name unlikely to clash with other simulators
// or test processes sharing the server.
func newName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "neonsim_" + hex.EncodeToString(b)
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// url returns a connection URL for database db on the admin's server, with
// the admin's credentials: the simulator does not manage real roles.
func (p *physical) url(db string, extra url.Values) string {
	u, err := url.Parse(p.adminURL)
	if err != nil {
		return ""
	}
	u.Path = "/" + db
	q := u.Query()
	for k, vs := range extra {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (p *physical) createEmpty(ctx context.Context, db string) error {
	_, err := p.pool.Exec(ctx, "CREATE DATABASE "+ident(db))
	return err
}

// copy creates db as a copy of template. PostgreSQL refuses to copy a
// database others are connected to, so their sessions are ended first, as
// a Neon compute restart would; callers serialise copies.
func (p *physical) copy(ctx context.Context, db, template string) error {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if _, err = p.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, template); err != nil {
			return err
		}
		_, err = p.pool.Exec(ctx, "CREATE DATABASE "+ident(db)+" TEMPLATE "+ident(template))
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" { // object_in_use
			return err
		}
		// A client reconnected between terminate and copy: try again shortly.
		t := time.NewTimer(time.Duration(attempt+1) * 10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return err
}

// truncateAll empties every user table of db, keeping the schema: what a
// schema-only branch is.
func (p *physical) truncateAll(ctx context.Context, db string) error {
	conn, err := pgx.Connect(ctx, p.url(db, nil))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT schemaname, tablename FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg_toast%'`)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			return err
		}
		tables = append(tables, pgx.Identifier{s, t}.Sanitize())
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(tables) == 0 {
		return nil
	}
	_, err = conn.Exec(ctx, "TRUNCATE "+strings.Join(tables, ", ")+" RESTART IDENTITY CASCADE")
	return err
}

func (p *physical) drop(ctx context.Context, db string) error {
	_, err := p.pool.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(db)+" WITH (FORCE)")
	return err
}

func (p *physical) rename(ctx context.Context, from, to string) error {
	if _, err := p.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, from); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, "ALTER DATABASE "+ident(from)+" RENAME TO "+ident(to))
	return err
}
