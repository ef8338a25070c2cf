package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/app"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/logging"
	"github.com/revelations-studio/deploybot/internal/server"
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("serve", stderr)
	cfgPath := configFlag(fs)
	addr := fs.String("addr", "", "listen address (overrides server.address)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Server.Address = *addr
	}
	logger := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	return serve(ctx, cfg, logger)
}

// serve runs the bot until ctx ends, then shuts down gracefully: it stops
// taking webhooks, lets running jobs finish within the shutdown timeout, and
// leaves any still running to be rescued by the next start.
func serve(ctx context.Context, cfg *config.Config, logger zerolog.Logger) error {
	b, err := app.Start(ctx, app.Options{Config: cfg, Logger: logger})
	if err != nil {
		return err
	}
	timeout := cfg.Server.ShutdownTimeout.Std()
	defer b.Stop(timeout, logger)

	ln, err := net.Listen("tcp", cfg.Server.Address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Address, err)
	}
	mainSrv := server.HTTPServer(b.Handler, server.DefaultTimeouts)
	// A live run page's stream would hold a graceful shutdown until its
	// run ends: the shutdown ends the streams first.
	mainSrv.RegisterOnShutdown(b.EndStreams)
	servers := []*http.Server{mainSrv}
	listeners := []net.Listener{ln}
	if a := cfg.Server.MetricsAddress; a != "" {
		mln, err := net.Listen("tcp", a)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s (server.metrics_address): %w", a, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", b.Metrics)
		servers, listeners = append(servers, server.HTTPServer(mux, server.DefaultTimeouts)), append(listeners, mln)
	}
	serveErr := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { serveErr <- srv.Serve(listeners[i]) }()
	}
	ev := logger.Info().Str("addr", ln.Addr().String()).Str("webhook_path", server.WebhookPath)
	if len(listeners) > 1 {
		ev = ev.Str("metrics_addr", listeners[1].Addr().String())
	}
	if cfg.Server.PublicURL != "" {
		ev = ev.Str("run_pages", strings.TrimSuffix(cfg.Server.PublicURL, "/")+"/runs/{id}")
	}
	ev.Msg("deploybot is serving")

	select {
	case <-ctx.Done():
		logger.Info().Msg("shutting down: no new webhooks, waiting for running jobs")
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			logger.Warn().Err(err).Msg("http shutdown")
		}
	}
	return nil
}
