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
// the admin's credentials, for the simulator's own work and test setup.
// What the API hands out goes through the proxy instead (Server.uri).
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

// sessionConfig is how the proxy opens a session on database db once it
// has checked the client's password: as the admin, like the simulator's
// own connections.
func (p *physical) sessionConfig(db string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(p.adminURL)
	if err != nil {
		return nil, fmt.Errorf("admin URL: %w", err)
	}
	cfg.Database = db
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	return cfg, nil
}

// newPassword returns a role password in Neon's style (npg_ and random
// letters and digits): safe in a URL without escaping.
func newPassword() string { return "npg_" + rand.Text()[:16] }

func (p *physical) createEmpty(ctx context.Context, db string) error {
	_, err := p.pool.Exec(ctx, "CREATE DATABASE "+ident(db))
	return err
}

// copy creates db as a copy of template. PostgreSQL refuses to copy a
// database others are connected to; real Neon branches a busy parent
// without disturbing its sessions, so the copy waits for the parent to be
// free (a migration finishing, say) rather than ending them. Only a parent
// held for longer than copyPatience has its sessions ended, as a Neon
// compute restart would. Callers serialise copies.
func (p *physical) copy(ctx context.Context, db, template string) error {
	deadline := time.Now().Add(copyPatience)
	wait := 10 * time.Millisecond
	for {
		_, err := p.pool.Exec(ctx, "CREATE DATABASE "+ident(db)+" TEMPLATE "+ident(template))
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" { // object_in_use
			return err
		}
		if time.Now().After(deadline) {
			if _, err := p.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, template); err != nil {
				return err
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// copyPatience is how long a copy waits for its busy parent: longer than a
// sandbox migration runs, short enough that a session merely left open
// (which real Neon would not mind) costs little.
const copyPatience = 2 * time.Second

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
