package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/sandbox"
)

// sandboxCmd serves the simulated GitHub, Neon and Cloudflare APIs and the
// edge at one address until interrupted, for trying the bot (or a client)
// without any account.
func sandboxCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("sandbox", stderr)
	addr := fs.String("addr", "127.0.0.1:8900", "listen address")
	secret := fs.String("webhook-secret", "sandbox-secret", "secret the simulated GitHub signs webhooks with")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// Neon branches are real databases: on $DATABASE_URL's server (a
	// superuser URL) or on a private cluster removed at exit.
	adminURL := getenv("DATABASE_URL")
	dir, err := os.MkdirTemp("", "deploybot-sandbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	adminURL, _, stop, err := pgcluster.Server(ctx, adminURL, filepath.Join(dir, "postgres"))
	if err != nil {
		return err
	}
	defer stop()
	sb, err := sandbox.New(ctx, sandbox.Options{AdminURL: adminURL, WebhookSecret: *secret})
	if err != nil {
		return err
	}
	defer sb.Close(context.WithoutCancel(ctx))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	urls := sb.URLsAt("http://" + ln.Addr().String())
	keyPath := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(keyPath, sb.GitHub.AppPrivateKeyPEM(), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deploybot sandbox at http://%s\n\n%s\n\nGitHub App private key: %s\nWebhook secret: %s\nCtrl-C to stop.\n",
		ln.Addr(), sb.Describe(urls), keyPath, *secret)

	srv := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

func stopClusterQuietly(c *pgcluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.Stop(ctx)
}
