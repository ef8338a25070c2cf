package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/logging"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
)

// demoCmd runs the bot on its embedded defaults against the sandbox and
// walks a sample PR through its life. It needs no config file and no
// accounts.
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("demo", stderr)
	keep := fs.Bool("keep", false, "keep the bot and the sandbox running after the walk (Ctrl-C to stop)")
	verbose := fs.Bool("v", false, "show the bot's logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logOut := io.Discard
	if *verbose {
		logOut = stderr
	}
	logger := logging.New(logOut, "info", "console")

	dir, err := os.MkdirTemp("", "deploybot-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// $DATABASE_URL (a superuser URL) hosts both the bot's database and the
	// simulated Neon branches; otherwise a private cluster does.
	adminURL, botURL := getenv("DATABASE_URL"), getenv("DATABASE_URL")
	if adminURL == "" {
		fmt.Fprintln(stdout, "Starting a private PostgreSQL…")
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "postgres"), Ephemeral: true})
		if err != nil {
			return err
		}
		defer stopClusterQuietly(cluster)
		if err := cluster.CreateDatabase(ctx, "deploybot"); err != nil {
			return err
		}
		adminURL, botURL = cluster.URL("postgres"), cluster.URL("deploybot")
	}
	fmt.Fprintln(stdout, "Starting the sandbox (GitHub, Neon, Cloudflare) and deploybot…")
	stack, err := demo.StartStack(ctx, demo.StackOptions{
		AdminURL: adminURL, DatabaseURL: botURL, DataDir: filepath.Join(dir, "bot"), Logger: logger,
		// The pages ask to sign in with the sandbox's GitHub, as a real
		// bot's do with github.com.
		SignIn: true,
	})
	if err != nil {
		return err
	}
	defer stack.Close()

	walkCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := demo.Walk(walkCtx, stack, stdout); err != nil {
		return fmt.Errorf("demo failed: %w", err)
	}
	fmt.Fprintln(stdout, "\nThe demo passed: the preview was built, updated in place and deleted with the PR, and the merge reached production.")
	if *keep {
		fmt.Fprintf(stdout, "\nStill running. Sandbox: %s (state: %s); bot webhooks: %s; runs' pages: %s/runs/{id} (sign in on the sandbox's GitHub as any login: it has no passwords); metrics: %s/metrics. Ctrl-C to stop.\n",
			stack.URLs.GitHub, stack.URLs.State, stack.HookURL, stack.BotURL, stack.BotURL)
		<-ctx.Done()
	}
	return nil
}
