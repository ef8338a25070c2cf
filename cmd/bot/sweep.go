package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/revelations-studio/deploybot/internal/app"
	"github.com/revelations-studio/deploybot/internal/logging"
	"github.com/revelations-studio/deploybot/pipeline"
)

// sweepCmd runs the sweeper once: it lists what the bot created and should
// no longer exist, and (without --dry-run) removes it. Previews are torn
// down by jobs that the running bot works.
//
// It needs the database and the GitHub App (to read which pull requests
// are closed), not the Cloudflare token or Neon key: without one, the search
// for that API's orphans is skipped, saying so. A dry run only looks, and a
// person waits on it: an API that does not answer is reported in seconds,
// with its URL, rather than retried as the pipelines would.
func sweepCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("sweep", stderr)
	cfgPath := configFlag(fs)
	dry := fs.Bool("dry-run", false, "only print what would be removed")
	grace := fs.Duration("check-grace", pipeline.DefaultCheckGrace, "conclude the check runs left open by runs that ended at least this long ago")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	logger := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	a, err := app.Start(ctx, app.Options{Config: cfg, Logger: logger, InsertOnly: true, FailFast: *dry})
	if err != nil {
		return err
	}
	defer a.Stop(10*time.Second, logger)
	opts := pipeline.SweepOptions{DryRun: *dry, CheckGrace: cmp.Or(*grace, -1)}
	if cfg.Neon.APIKey.Value() == "" {
		opts.SkipBranches = true
		fmt.Fprintf(stdout, "skipping orphaned Neon branches: %v\n", cfg.KeyError("neon.api_key", "is not set"))
	}
	if cfg.Cloudflare.APIToken.Value() == "" {
		opts.SkipWorkers = true
		fmt.Fprintf(stdout, "skipping orphaned Cloudflare Workers: %v\n", cfg.KeyError("cloudflare.api_token", "is not set"))
	}
	actions, err := a.Sweep(ctx, opts)
	verb := "removing"
	if *dry {
		verb = "would remove"
	}
	for _, act := range actions {
		fmt.Fprintf(stdout, "%s %s\n", verb, act)
	}
	if len(actions) == 0 && err == nil {
		fmt.Fprintln(stdout, "nothing to sweep")
	}
	return err
}
