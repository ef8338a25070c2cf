package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"

	"github.com/revelations-studio/deploybot/internal/pgcluster"
)

// dbCmd prints how to reach the bot's database: the configured
// database.url, or the private cluster's URL, whose port stays the same
// across restarts. The password is masked unless asked for: the URL is
// often pasted where it should not stay.
func dbCmd(_ context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("db", stderr)
	cfgPath := configFlag(fs)
	show := fs.Bool("show-password", false, "print the password in the URL instead of masking it")
	database := fs.String("database", "deploybot", "database the URL names (the private cluster's bot database is deploybot)")
	// The subcommand comes first (bot db url --config …), and flags stop
	// at the first argument that is not one.
	sub := ""
	if len(args) > 0 && args[0] == "url" {
		sub, args = "url", args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if sub == "" && fs.NArg() == 1 && fs.Arg(0) == "url" {
		sub = "url"
	} else if fs.NArg() > 0 {
		sub = ""
	}
	if sub != "url" {
		fs.Usage()
		return fmt.Errorf("db: the only subcommand is url (bot db url [--config FILE] [--show-password])")
	}
	cfg, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	if u := cfg.Database.URL.Value(); u != "" {
		fmt.Fprintln(stdout, masked(u, *show))
		fmt.Fprintf(stderr, "database.url from %s.\n", *cfgPath)
		return nil
	}
	dir := filepath.Join(cfg.DataDir, "postgres")
	cluster, running, err := pgcluster.Describe(dir)
	if err != nil {
		return fmt.Errorf("%w (database.url is not set: `bot serve` starts a private cluster there)", err)
	}
	fmt.Fprintln(stdout, masked(cluster.URL(*database), *show))
	if !*show {
		fmt.Fprintf(stderr, "The password is masked: --show-password prints it, or read it from %s.\n", cluster.PasswordPath())
	}
	if !running {
		fmt.Fprintln(stderr, "The private cluster is not running now: `bot serve` starts it, on this port.")
	}
	return nil
}

// masked is u with its password replaced by xxxxx, unless show.
func masked(u string, show bool) string {
	if show {
		return u
	}
	p, err := url.Parse(u)
	if err != nil {
		// Not a URL (a key=value DSN, say): print nothing of it that could
		// hold the password.
		return "(database.url is not a URL; see the config)"
	}
	return p.Redacted()
}
