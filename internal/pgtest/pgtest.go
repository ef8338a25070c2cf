// Package pgtest gives tests a real, freshly migrated PostgreSQL database.
//
// It uses the server at TEST_DATABASE_URL when that is set, and otherwise
// starts a throwaway cluster from the machine's PostgreSQL binaries (package
// pgcluster), one per test binary. Each test gets its own database, cloned
// from a migrated template, and dropped when the test ends.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		pool := pgtest.NewDatabase(t)
//		…
//	}
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/store"
)

var (
	// serverURL points at the maintenance database of the server under test;
	// set by Main before any test runs.
	serverURL string

	templateOnce sync.Once
	templateName string
	templateErr  error
)

// Main runs the tests of a package against a PostgreSQL server and returns
// the exit code. Use it from TestMain.
func Main(m *testing.M) int {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		serverURL = u
		defer dropTemplate()
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	dir, err := os.MkdirTemp("", "deploybot-pgtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		cancel()
		return 1
	}
	defer os.RemoveAll(dir)
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir + "/data", Ephemeral: true})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: set TEST_DATABASE_URL or install PostgreSQL's server binaries:", err)
		return 1
	}
	defer cluster.Stop(context.Background())
	serverURL = cluster.URL("postgres")
	return m.Run()
}

// dropTemplate removes the template from a server that outlives the tests.
func dropTemplate() {
	if templateName == "" {
		return
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+templateName+" WITH (FORCE)")
}

// ServerURL is the URL of the maintenance database of the server under test,
// for tests that create databases of their own.
func ServerURL(t testing.TB) string {
	t.Helper()
	if serverURL == "" {
		t.Fatal("pgtest: call pgtest.Main from TestMain")
	}
	return serverURL
}

// NewDatabase creates a migrated database for this test and returns a pool
// on it. Both are gone when the test ends.
func NewDatabase(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, _ := NewDatabaseURL(t)
	return pool
}

// NewDatabaseURL is NewDatabase that also returns the database's URL, for
// tests that start something which opens its own connections.
func NewDatabaseURL(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	admin := adminConn(t)
	templateOnce.Do(func() { templateName, templateErr = buildTemplate(ctx, admin) })
	if templateErr != nil {
		t.Fatalf("pgtest: build the migrated template database: %v", templateErr)
	}
	name := "test_" + randomSuffix()
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateName)); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	dbURL := withDatabase(serverURL, name)
	pool, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		if _, err := admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return pool, dbURL
}

// adminConn connects to the maintenance database for the length of a test.
func adminConn(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), ServerURL(t))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", redact(serverURL), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// buildTemplate migrates a database once per test binary; each test's
// database is a copy of it, which is much faster than migrating each time.
func buildTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	name := "tmpl_" + randomSuffix()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	pool, err := store.Open(ctx, withDatabase(serverURL, name))
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if _, err := store.MigrateUp(ctx, pool); err != nil {
		return "", err
	}
	return name, nil
}

func withDatabase(serverURL, name string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		panic(fmt.Sprintf("pgtest: TEST_DATABASE_URL is not a URL: %v", err))
	}
	u.Path = "/" + name
	return u.String()
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return strings.Replace(u.Redacted(), "xxxxx", "…", 1)
}
