package pgcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Every process on the host can reach 127.0.0.1, repository commands
// included: without the superuser's password a TCP connection is refused,
// with it (the URL the cluster hands out) it works, and the password file is
// readable by its owner only.
func TestLoopbackNeedsThePassword(t *testing.T) {
	ctx := testContext(t)
	c, err := Start(ctx, Options{DataDir: filepath.Join(t.TempDir(), "pg"), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })

	expectLocked(ctx, t, c)
	fi, err := os.Stat(filepath.Join(c.dataDir, PasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", PasswordFile, fi.Mode().Perm())
	}
}

// A cluster initialised by an older version (initdb --auth=trust, no
// password) is closed at the next start, and keeps its data.
func TestTrustClusterIsMigratedAtStart(t *testing.T) {
	ctx := testContext(t)
	old := oldCluster(ctx, t)
	if err := old.start(ctx, mustOwner(t), true); err != nil {
		t.Fatal(err)
	}
	run(ctx, t, old.urlWith("", "postgres"), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')`)
	if err := old.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	c, err := Start(ctx, Options{DataDir: old.dataDir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	expectLocked(ctx, t, c)
	expectKept(ctx, t, c)
}

// A trust cluster still running from an older version is adopted (not
// restarted) and closed while it runs.
func TestRunningTrustClusterIsMigratedWhenAdopted(t *testing.T) {
	ctx := testContext(t)
	old := oldCluster(ctx, t)
	if err := old.start(ctx, mustOwner(t), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = old.Stop(context.Background()) })
	run(ctx, t, old.urlWith("", "postgres"), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')`)

	c, err := Start(ctx, Options{DataDir: old.dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if c.cmd != nil || c.port != old.port {
		t.Fatalf("Start started a server on port %d instead of adopting the one on %d", c.port, old.port)
	}
	expectLocked(ctx, t, c)
	expectKept(ctx, t, c)

	// And a later adoption, with the password saved, still works.
	again, err := Start(ctx, Options{DataDir: old.dataDir})
	if err != nil {
		t.Fatalf("adopting the migrated server: %v", err)
	}
	expectKept(ctx, t, again)
}

// oldCluster initialises a cluster the way versions before the password
// did: every connection trusted, no password file.
func oldCluster(ctx context.Context, t *testing.T) *Cluster {
	t.Helper()
	binDir, err := FindBinaries()
	if err != nil {
		t.Skip(err)
	}
	dataDir := filepath.Join(t.TempDir(), "pg")
	c := &Cluster{dataDir: dataDir, binDir: binDir}
	if err := c.initdb(ctx, mustOwner(t), true, "--auth=trust"); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	c.port = port
	return c
}

func mustOwner(t *testing.T) *owner {
	t.Helper()
	o, err := serverUser()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	if _, err := FindBinaries(); err != nil {
		t.Skip(err) // .ci/run installs them; a developer machine may not have them
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// expectLocked checks that the cluster refuses a loopback connection
// without its password, and accepts its own URL.
func expectLocked(ctx context.Context, t *testing.T, c *Cluster) {
	t.Helper()
	for _, pw := range []string{"", "wrong"} {
		conn, err := pgx.Connect(ctx, c.urlWith(pw, "postgres"))
		if err == nil {
			conn.Close(ctx)
			t.Fatalf("a connection to 127.0.0.1:%d with password %q was accepted", c.port, pw)
		}
		if !refused(err) && !strings.Contains(err.Error(), "password") {
			t.Fatalf("a connection with password %q failed, but not for its password: %v", pw, err)
		}
	}
	if !strings.Contains(c.URL("postgres"), ":"+c.password+"@") || c.password == "" {
		t.Fatalf("the cluster's URL carries no password")
	}
	run(ctx, t, c.URL("postgres"), `SELECT 1`)
}

func expectKept(ctx context.Context, t *testing.T, c *Cluster) {
	t.Helper()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil || v != "yes" {
		t.Fatalf("data after the migration: %q, %v", v, err)
	}
}

func run(ctx context.Context, t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}
