package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"time"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/logging"
	"github.com/revelations-studio/deploybot/internal/server"
)

// demoCmd runs the bot on its embedded defaults and walks a sample PR
// through it. It needs no config file and no accounts.
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keep := fs.Bool("keep", false, "keep the bot running after the walk (Ctrl-C to stop)")
	verbose := fs.Bool("v", false, "show the bot's logs")
	if err := fs.Parse(args); err != nil {
		return err
	}

	cfg := config.Defaults()
	cfg.GitHub.App.WebhookSecret = config.NewSecret(randomHex(16))
	cfg.Jobs.Workers = 4
	// DATABASE_URL, when set, is used as is; otherwise a private cluster in
	// a temporary directory that is removed afterwards.
	if u := getenv("DATABASE_URL"); u != "" {
		cfg.Database.URL = config.NewSecret(u)
	} else {
		dir, err := os.MkdirTemp("", "deploybot-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	}
	logOut := io.Discard
	if *verbose {
		logOut = stderr
	}
	logger := logging.New(logOut, "info", "console")

	fmt.Fprintln(stdout, "Starting deploybot on a private PostgreSQL (or $DATABASE_URL)…")
	b, err := start(ctx, &cfg, logger)
	if err != nil {
		return err
	}
	defer b.stop(10*time.Second, logger)
	srv := httptest.NewServer(b.handler)
	defer srv.Close()

	if err := demo.Run(ctx, demo.Options{
		HookURL: srv.URL + server.WebhookPath,
		Secret:  cfg.GitHub.App.WebhookSecret.Value(),
		Pool:    b.pool,
		Out:     stdout,
	}); err != nil {
		return fmt.Errorf("demo failed: %w", err)
	}
	fmt.Fprintln(stdout, "\nThe demo passed: every delivery was stored once and its job worked.")
	if *keep {
		fmt.Fprintf(stdout, "Still serving webhooks at %s%s (readiness: %s/readyz); Ctrl-C to stop.\n", srv.URL, server.WebhookPath, srv.URL)
		<-ctx.Done()
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
