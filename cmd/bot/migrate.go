package main

import (
	"context"
	"fmt"
	"io"

	"github.com/revelations-studio/deploybot/internal/app"
	"github.com/revelations-studio/deploybot/internal/logging"
	"github.com/revelations-studio/deploybot/internal/store"
)

func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("migrate", stderr)
	cfgPath := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("migrate needs one of up, down, status")
	}
	direction := fs.Arg(0)
	if direction != "up" && direction != "down" && direction != "status" {
		return fmt.Errorf("migrate %q: use up, down or status", direction)
	}
	cfg, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	logger := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	pool, closeDB, err := app.OpenDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB()

	switch direction {
	case "up":
		applied, err := store.MigrateUp(ctx, pool)
		for _, line := range applied {
			fmt.Fprintln(stdout, "applied", line)
		}
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "schema is current")
		}
	case "down":
		rolled, err := store.MigrateDown(ctx, pool)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "rolled back", rolled)
	case "status":
		st, err := store.MigrationStatus(ctx, pool)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "river  version %d of %d\n", st.RiverVersion, st.RiverLatest)
		for _, m := range st.Bot {
			applied := "pending"
			if !m.AppliedAt.IsZero() {
				applied = "applied " + m.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			fmt.Fprintf(stdout, "bot    %05d %-40s %s\n", m.Source.Version, m.Source.Path, applied)
		}
		if st.Current() {
			fmt.Fprintln(stdout, "schema is current")
		} else {
			fmt.Fprintln(stdout, "migrations pending: run `bot migrate up`")
		}
	}
	return nil
}
