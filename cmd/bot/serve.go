package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/handlers"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/intake"
	"github.com/revelations-studio/deploybot/internal/logging"
	"github.com/revelations-studio/deploybot/internal/server"
	"github.com/revelations-studio/deploybot/internal/store"
	"github.com/revelations-studio/deploybot/pipeline"
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	addr := fs.String("addr", "", "listen address (overrides server.address)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, getenv)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Server.Address = *addr
	}
	logger := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	return serve(ctx, cfg, logger)
}

// bot is the wired-up process: database, job queue and HTTP handler.
type bot struct {
	pool    *pgxpool.Pool
	queue   *river.Client[pgx.Tx]
	handler http.Handler
	closeDB func()
}

// start opens the database, brings its schema up, and starts the job queue.
func start(ctx context.Context, cfg *config.Config, logger zerolog.Logger) (*bot, error) {
	pool, closeDB, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	applied, err := store.MigrateUp(ctx, pool)
	for _, line := range applied {
		logger.Info().Str("migration", line).Msg("applied migration")
	}
	if err != nil {
		closeDB()
		return nil, err
	}
	queue, err := pipeline.NewQueue(pool, pipeline.QueueOptions{Workers: cfg.Jobs.Workers, Logger: logger})
	if err != nil {
		closeDB()
		return nil, err
	}
	// Jobs get a context that outlives ctx: shutdown is Stop's job, so that
	// running steps can finish instead of being cut at the signal.
	if err := queue.Start(context.WithoutCancel(ctx)); err != nil {
		closeDB()
		return nil, fmt.Errorf("start job queue: %w", err)
	}
	handler := server.New(server.Options{
		WebhookSecret: cfg.GitHub.App.WebhookSecret.Value(),
		Handlers:      handlers.All(intake.New(pool, queue)),
		Ready:         ready(pool),
		Logger:        logger,
	})
	return &bot{pool: pool, queue: queue, handler: handler, closeDB: closeDB}, nil
}

// stop lets running jobs finish within timeout, cancels the rest (River
// retries them after the restart), and closes the database.
func (b *bot) stop(timeout time.Duration, logger zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := b.queue.Stop(ctx); err != nil {
		logger.Warn().Err(err).Msg("jobs still running at the shutdown timeout: cancelling them")
		hardCtx, hardCancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer hardCancel()
		_ = b.queue.StopAndCancel(hardCtx)
	}
	b.closeDB()
}

// serve runs the bot until ctx ends, then shuts down gracefully: it stops
// taking webhooks, lets running jobs finish within the shutdown timeout, and
// leaves any still running to be rescued by the next start.
func serve(ctx context.Context, cfg *config.Config, logger zerolog.Logger) error {
	b, err := start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	timeout := cfg.Server.ShutdownTimeout.Std()
	defer b.stop(timeout, logger)

	ln, err := net.Listen("tcp", cfg.Server.Address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Address, err)
	}
	srv := &http.Server{
		Handler:           b.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info().Str("addr", ln.Addr().String()).Str("webhook_path", server.WebhookPath).Msg("deploybot is serving")

	select {
	case <-ctx.Done():
		logger.Info().Msg("shutting down: no new webhooks, waiting for running jobs")
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn().Err(err).Msg("http shutdown")
	}
	return nil
}

// ready reports whether the database answers and its schema is current.
func ready(pool *pgxpool.Pool) func(context.Context) error {
	return func(ctx context.Context) error {
		st, err := store.MigrationStatus(ctx, pool)
		if err != nil {
			return err
		}
		if !st.Current() {
			return errors.New("database schema is not current")
		}
		return nil
	}
}
