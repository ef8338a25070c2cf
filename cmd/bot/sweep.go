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
	a, err := app.Start(ctx, app.Options{Config: cfg, Logger: logger, InsertOnly: true})
	if err != nil {
		return err
	}
	defer a.Stop(10*time.Second, logger)
	actions, err := a.Sweep(ctx, pipeline.SweepOptions{DryRun: *dry, CheckGrace: cmp.Or(*grace, -1)})
	verb := "removing"
	if *dry {
		verb = "would remove"
	}
	for _, act := range actions {
		fmt.Fprintf(stdout, "%s %s\n", verb, act)
	}
	if len(actions) == 0 {
		fmt.Fprintln(stdout, "nothing to sweep")
	}
	return err
}
