package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/revelations-studio/deploybot/internal/setup"
)

// setupCmd registers the bot's GitHub App through GitHub's App-manifest
// flow and writes the config that runs it (internal/setup).
func setupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("setup", stderr)
	var opts setup.Options
	fs.StringVar(&opts.PublicURL, "public-url", "", "the URL GitHub reaches the bot at; webhooks go to it + /api/github/hook (required)")
	fs.StringVar(&opts.GitHubURL, "github-url", setup.DefaultGitHubURL, "GitHub's web address: https://github.com or a GitHub Enterprise Server's https://HOST")
	fs.StringVar(&opts.APIURL, "api-url", "", "GitHub's REST API (default: https://api.github.com/, or HOST/api/v3/ on GitHub Enterprise Server)")
	fs.StringVar(&opts.Org, "org", "", "register the App in this organization instead of your personal account")
	fs.StringVar(&opts.Name, "name", "deploybot", "the App's name (unique on GitHub; you may change it on GitHub's page)")
	fs.BoolVar(&opts.Teams, "teams", false, "also ask for the organization permission Members: read, for PR commands allowed to teams (@org/team-slug)")
	fs.StringVar(&opts.ConfigPath, "config", "config.yml", "the config file to write (never over an existing one)")
	fs.StringVar(&opts.KeyFile, "key-file", "", "where to write the App's private key (default: github-app.pem beside the config)")
	fs.StringVar(&opts.SecretFile, "secret-file", "", "where to write the webhook secret (default: github-webhook-secret beside the config)")
	fs.StringVar(&opts.MasterKeyFile, "master-key-file", "", "where to write a new master_key, 32 random bytes (default: master-key beside the config)")
	fs.StringVar(&opts.ClientSecretFile, "client-secret-file", "", "where to write the App's OAuth client secret, for signing in to the web interface (default: github-client-secret beside the config)")
	fs.BoolVar(&opts.Force, "force", false, "replace an existing key file or secret file")
	addr := fs.String("addr", "127.0.0.1:0", "where the setup page listens; the browser that registers the App must reach it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("setup: unexpected argument %q (every setting is a flag; see bot setup --help)", fs.Arg(0))
	}
	opts.Out = stdout
	reg, err := setup.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("setup: listen on %s: %w", *addr, err)
	}
	_, err = reg.Run(ctx, ln)
	return err
}
