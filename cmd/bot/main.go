// Command bot is deploybot: a GitHub App that turns pull requests into
// preview environments and merges into production deploys.
//
//	bot demo    [--keep]                walk a sample PR through a local bot
//	bot setup   --public-url URL        register the GitHub App, write config.yml
//	bot serve   [--config config.yml]   receive webhooks and run pipelines
//	bot migrate [--config config.yml] up|down|status
//	bot sandbox [--addr 127.0.0.1:8900] [--serve-bot]
//	                                    simulated GitHub, Neon, Cloudflare (and the bot)
//	bot sweep   [--config config.yml]   remove what closed PRs left
//	bot check   [--config config.yml] [.github/deploybot.yml]
//	                                    validate a pipeline file, print its plan
//	bot db url  [--config config.yml]   the URL of the bot's database
//	bot version                         the version and commit of the build
//	bot probe   [--url URL]             exit 0 if the bot's /healthz answers
//
// This file and its neighbours only wire packages together; the behaviour
// lives in handlers/, pipeline/ and internal/.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/procguard"
)

// commands are the subcommands, as the usage lists them.
var commands = []struct{ name, synopsis, what string }{
	{"demo", "[--keep] [-v]", "run the bot on its embedded defaults and walk a sample PR through it"},
	{"setup", "--public-url URL [--github-url URL] [--org ORG] [--name NAME] [--config FILE]", "register the bot's GitHub App with GitHub's App-manifest flow (a page to open in a browser) and write its key, webhook secret and config"},
	{"serve", "[--config FILE] [--addr HOST:PORT]", "receive GitHub webhooks and run pipelines"},
	{"migrate", "[--config FILE] up|down|status", "manage the database schema (serve migrates up by itself): up applies every migration, down undoes the last one, status lists them"},
	{"sandbox", "[--addr 127.0.0.1:8900] [--serve-bot]", "serve simulated GitHub, Neon and Cloudflare APIs and their edge, with control endpoints to act on them; --serve-bot also runs the bot against them"},
	{"sweep", "[--config FILE] [--dry-run] [--check-grace 1m]", "remove previews of closed PRs and orphaned branches the bot made; conclude check runs left open"},
	{"check", "[--config FILE [--repo OWNER/NAME]] [PATH]", "validate a .github/deploybot.yml and print what the bot would do with it"},
	{"db", "url [--config FILE] [--show-password]", "print the URL of the bot's database (the private cluster's, whose port stays the same, when database.url is not set)"},
	{"version", "", "print the bot's version and the commit it was built from"},
	{"probe", "[--url http://127.0.0.1:8080/healthz] [--timeout 3s]", "GET the bot's /healthz and exit 0 if it answers 2xx, 1 if not (the Docker image's HEALTHCHECK)"},
}

// usageText is the bot's usage: every command, what it does, and where the
// config is documented.
func usageText() string {
	var b strings.Builder
	b.WriteString("deploybot — preview environments and production deploys for GitHub pull requests\n\nUsage:\n")
	for _, c := range commands {
		line := fmt.Sprintf("  bot %-8s%s", c.name, c.synopsis)
		if len(line) < 41 {
			fmt.Fprintf(&b, "%-41s%s\n", line, c.what)
		} else {
			fmt.Fprintf(&b, "%s\n%41s%s\n", line, "", c.what)
		}
	}
	b.WriteString("\nThe config file defaults to config.yml; config.example.yml documents every key.\n`bot <command> --help` describes a command's flags.\n")
	return b.String()
}

// newFlagSet is a subcommand's flag set: its --help prints the command's
// synopsis, what it does and its flags, and ends the bot with status 0.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		for _, c := range commands {
			if c.name == name {
				fmt.Fprintf(fs.Output(), "Usage: bot %s %s\n\n%s.\n\nFlags:\n", c.name, c.synopsis, c.what)
			}
		}
		fs.PrintDefaults()
	}
	return fs
}

// version is set at link time where the build has no git history to stamp
// (the Docker image: -ldflags "-X main.version=...").
var version string

// versionCmd prints the module version and the commit the binary was built
// from, as the Go toolchain recorded them (or as the link set version).
func versionCmd(stdout io.Writer) error {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("version: the binary carries no build information")
	}
	out := "deploybot " + cmp.Or(version, info.Main.Version)
	var rev, at, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (with uncommitted changes)"
			}
		}
	}
	if rev != "" {
		out += fmt.Sprintf(", commit %.12s of %s%s", rev, at, modified)
	}
	fmt.Fprintf(stdout, "%s, %s\n", out, info.GoVersion)
	return nil
}

func main() {
	// Before anything reads a secret: no other process of this user may read
	// the bot's memory, environment or files through /proc, or attach to it.
	if err := procguard.NotDumpable(); err != nil {
		fmt.Fprintln(os.Stderr, "bot:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp): // --help was asked for and given
	case err != nil:
		fmt.Fprintln(os.Stderr, "bot:", err)
		os.Exit(1)
	}
}

// run is main without process globals, so tests can call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
		return errors.New("no command given")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "setup":
		return setupCmd(ctx, args, stdout, stderr)
	case "serve":
		return serveCmd(ctx, args, stderr, getenv)
	case "migrate":
		return migrateCmd(ctx, args, stdout, stderr, getenv)
	case "demo":
		return demoCmd(ctx, args, stdout, stderr, getenv)
	case "sandbox":
		return sandboxCmd(ctx, args, stdout, stderr, getenv)
	case "sweep":
		return sweepCmd(ctx, args, stdout, stderr, getenv)
	case "check":
		return checkCmd(args, stdout, stderr, getenv)
	case "db":
		return dbCmd(ctx, args, stdout, stderr, getenv)
	case "version", "--version":
		return versionCmd(stdout)
	case "probe":
		return probeCmd(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText())
		return nil
	}
	fmt.Fprint(stderr, usageText())
	return fmt.Errorf("unknown command %q", cmd)
}

// loadConfig reads the config file and then removes every variable a secret
// was (or could have been) read from: from the environment the bot's
// children inherit and from /proc/<pid>/environ. The secrets live on only in
// the returned Config.
func loadConfig(path string, getenv func(string) string) (*config.Config, error) {
	cfg, err := config.Load(path, getenv)
	if err != nil {
		return nil, err
	}
	if err := procguard.ForgetEnv(cfg.SecretEnv()); err != nil {
		return nil, fmt.Errorf("remove the secrets' variables from the environment: %w", err)
	}
	return cfg, nil
}

// configFlag registers --config on fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "config.yml", "path of the YAML config file")
}
