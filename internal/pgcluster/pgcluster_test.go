package pgcluster_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/revelations-studio/deploybot/internal/pgcluster"
)

// TestStartAdoptStop covers the bot's embedded database: a fresh directory
// is initialised, data survives a restart, and a second start while the
// first server runs (a bot restarted after a crash, with its server still
// up) adopts that server instead of failing.
func TestStartAdoptStop(t *testing.T) {
	if _, err := pgcluster.FindBinaries(); err != nil {
		t.Skip(err) // .ci/run installs them; a developer machine may not have them
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "pg")

	first, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.CreateDatabase(ctx, "deploybot"); err != nil {
		t.Fatal(err)
	}
	if err := first.CreateDatabase(ctx, "deploybot"); err != nil {
		t.Fatalf("CreateDatabase is not idempotent: %v", err)
	}
	exec(t, first.URL("deploybot"), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')`)

	second, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("second start on a running cluster: %v", err)
	}
	if second.URL("x") != first.URL("x") {
		t.Errorf("adopted server at %s, want %s", second.URL("x"), first.URL("x"))
	}
	if err := second.Stop(ctx); err != nil { // adopted: must leave it running
		t.Fatal(err)
	}
	exec(t, first.URL("deploybot"), `SELECT 1`)

	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("postmaster.pid left behind after Stop: %v", err)
	}

	third, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Stop(ctx)
	conn, err := pgx.Connect(ctx, third.URL("deploybot"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil || v != "yes" {
		t.Fatalf("data after restart: %q, %v", v, err)
	}
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// TestRestartOnTheSamePort: a server started on a given port comes back on
// it after a stop, so URLs handed out before the restart work again (the
// bot's pool reconnects to the database it was configured with).
func TestRestartOnTheSamePort(t *testing.T) {
	if _, err := pgcluster.FindBinaries(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "pg")

	first, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	url := first.URL("postgres")
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Ephemeral: true, Port: first.Port()})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop(ctx)
	if second.Port() != first.Port() || second.URL("postgres") != url {
		t.Fatalf("restarted on port %d, want %d", second.Port(), first.Port())
	}
	exec(t, url, `SELECT 1`)
}

// TestKeepsItsPortAcrossRestarts: the bot's private cluster, started with
// no port given, comes back on the port it had, so an operator's psql and
// `bot db url` keep working; Describe gives the URL whether it runs or
// not. When another process holds the port, Start says so and names the
// file to delete to move it.
func TestKeepsItsPortAcrossRestarts(t *testing.T) {
	if _, err := pgcluster.FindBinaries(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "pg")

	if _, _, err := pgcluster.Describe(dir); err == nil {
		t.Error("Describe found a cluster in an empty directory")
	}
	first, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	url := first.URL("postgres")
	described, running, err := pgcluster.Describe(dir)
	if err != nil || !running || described.URL("postgres") != url {
		t.Errorf("Describe of the running cluster: %v running=%v %v, want %s", described, running, err, url)
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	described, running, err = pgcluster.Describe(dir)
	if err != nil || running || described.URL("postgres") != url {
		t.Errorf("Describe of the stopped cluster: running=%v %v, want its URL %s", running, err, url)
	}

	second, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if second.Port() != first.Port() {
		t.Errorf("restarted on port %d, want %d", second.Port(), first.Port())
	}
	exec(t, url, `SELECT 1`)
	if err := second.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// Another process takes the port while the cluster is down.
	squatter, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(first.Port())))
	if err != nil {
		t.Fatal(err)
	}
	_, err = pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Ephemeral: true})
	squatter.Close()
	portFile := filepath.Join(dir, pgcluster.PortFile)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d", first.Port())) || !strings.Contains(err.Error(), "is taken by another process") || !strings.Contains(err.Error(), "delete "+portFile) {
		t.Fatalf("start with its port taken: %v; want an error naming the port and %s", err, portFile)
	}
}
