package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/revelations-studio/deploybot/internal/pgcluster"
)

// TestDBURL: with no database.url, the bot's private cluster keeps its port
// from one start to the next, and `bot db url` prints a URL that reaches
// the bot's database, its password masked unless asked for.
func TestDBURL(t *testing.T) {
	if _, err := pgcluster.FindBinaries(); errors.Is(err, pgcluster.ErrNoServer) {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dataDir := t.TempDir()
	cfg := writeConfig(t, "data_dir: "+dataDir+"\ngithub:\n  app:\n    webhook_secret: s\n")
	getenv := func(string) string { return "" }
	bot := func(args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(ctx, args, &out, &errOut, getenv); err != nil {
			t.Fatalf("bot %v: %v\n%s", args, err, errOut.String())
		}
		return strings.TrimSpace(out.String()), errOut.String()
	}

	var errOut bytes.Buffer
	if err := run(ctx, []string{"db", "url", "--config", cfg}, &bytes.Buffer{}, &errOut, getenv); err == nil || !strings.Contains(err.Error(), "no cluster in") {
		t.Errorf("bot db url before the cluster exists: %v, want an error saying there is none", err)
	}

	// Each migrate starts the private cluster and stops it when done.
	bot("migrate", "--config", cfg, "up")
	first, _ := bot("db", "url", "--config", cfg, "--show-password")
	bot("migrate", "--config", cfg, "status")
	second, note := bot("db", "url", "--config", cfg, "--show-password")
	if first != second || !strings.HasPrefix(first, "postgres://deploybot:") || !strings.HasSuffix(first, "/deploybot?sslmode=disable") {
		t.Fatalf("bot db url after two starts: %q then %q, want the same URL of database deploybot", first, second)
	}
	if !strings.Contains(note, "not running") {
		t.Errorf("bot db url of a stopped cluster does not say it is stopped: %q", note)
	}
	masked, note := bot("db", "url", "--config", cfg)
	password, _ := pgx.ParseConfig(first)
	if strings.Contains(masked, password.Password) || !strings.Contains(masked, "xxxxx") ||
		!strings.Contains(note, filepath.Join(dataDir, "postgres", pgcluster.PasswordFile)) {
		t.Errorf("masked URL %q (note %q): want the password masked and its file named", masked, note)
	}

	// Started again, as `bot serve` would: the printed URL reaches the
	// bot's migrated database.
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dataDir, "postgres")})
	if err != nil {
		t.Fatal(err)
	}
	defer stopClusterQuietly(cluster)
	conn, err := pgx.Connect(ctx, first)
	if err != nil {
		t.Fatalf("connect to the URL bot db url printed: %v", err)
	}
	defer conn.Close(ctx)
	var migrations int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM goose_db_version`).Scan(&migrations); err != nil || migrations == 0 {
		t.Fatalf("the bot's database through the printed URL: %d migrations, %v", migrations, err)
	}
	if running, _ := bot("db", "url", "--config", cfg, "--show-password"); running != first {
		t.Errorf("bot db url of the running cluster: %q, want %q", running, first)
	}
}
