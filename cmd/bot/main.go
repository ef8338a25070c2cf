// Command bot is deploybot: a GitHub App that turns pull requests into
// preview environments and merges into production deploys.
//
//	bot demo    [--keep]                walk a sample PR through a local bot
//	bot serve   [--config config.yml]   receive webhooks and run pipelines
//	bot migrate [--config config.yml] up|down|status
//	bot sandbox [--addr 127.0.0.1:8900]  simulated GitHub, Neon, Cloudflare
//	bot sweep   [--config config.yml]   remove what closed PRs left
//	bot check   [--config config.yml] [.github/deploybot.yml]
//	                                    validate a pipeline file, print its plan
//
// This file and its neighbours only wire packages together; the behaviour
// lives in handlers/, pipeline/ and internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/procguard"
)

const usage = `deploybot — preview environments and production deploys for GitHub pull requests

Usage:
  bot demo    [--keep] [-v]              run the bot on its embedded defaults and walk a sample PR through it
  bot serve   [--config FILE]            receive GitHub webhooks and run pipelines
  bot migrate [--config FILE] up|down|status
                                         manage the database schema (serve migrates up by itself)
  bot sandbox [--addr 127.0.0.1:8900]    serve simulated GitHub, Neon and Cloudflare APIs and their edge
  bot sweep   [--config FILE] [--dry-run]
                                         remove previews of closed PRs and orphaned branches the bot made
  bot check   [--config FILE [--repo OWNER/NAME]] [PATH]
                                         validate a .github/deploybot.yml and print what the bot would do with it

The config file defaults to config.yml; config.example.yml documents every key.
`

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
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bot:", err)
		}
		os.Exit(1)
	}
}

// run is main without process globals, so tests can call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
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
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
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
