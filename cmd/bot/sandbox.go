package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/logging"
	"github.com/revelations-studio/deploybot/internal/login"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/sandbox"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
	"github.com/revelations-studio/deploybot/internal/server"
)

// sandboxCmd serves the simulated GitHub, Neon and Cloudflare APIs and the
// edge at one address until interrupted, for trying the bot (or a client)
// without any account. It writes a bot config pointed at the sandbox, and
// with --serve-bot runs `bot serve` on it, its webhook URL registered, so
// that the control endpoints' webhooks reach it.
func sandboxCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("sandbox", stderr)
	addr := fs.String("addr", "127.0.0.1:8900", "listen address")
	secret := fs.String("webhook-secret", "sandbox-secret", "secret the simulated GitHub signs webhooks with")
	serveBot := fs.Bool("serve-bot", false, "also run the bot (bot serve) on the written config, its webhook URL registered with the sandbox")
	botAddr := fs.String("bot-addr", "127.0.0.1:8080", "the bot's listen address with --serve-bot (and in the written config)")
	botURL := fs.String("bot-url", "", "deliver webhooks to this URL (a bot started apart); --serve-bot registers its own")
	isolation := fs.String("isolation", "bwrap", "the bot's runner.isolation: bwrap, or none where bubblewrap cannot run")
	var repos []string
	fs.Func("repo", "a repository (owner/name) the bot's config serves, besides the sample's "+demo.Repo+" (repeatable)", func(v string) error {
		owner, name, ok := strings.Cut(v, "/")
		if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("%q is not owner/name", v)
		}
		repos = append(repos, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *serveBot && *botURL != "" {
		return errors.New("sandbox: --serve-bot registers the bot it runs; --bot-url is for a bot started apart: give one of them")
	}
	if *isolation != "bwrap" && *isolation != "none" {
		return fmt.Errorf("sandbox: --isolation %q: want bwrap or none", *isolation)
	}

	// Neon branches are real databases: on $DATABASE_URL's server (a
	// superuser URL) or on a private cluster removed at exit. The bot's own
	// database lives there too.
	dir, err := os.MkdirTemp("", "deploybot-sandbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	adminURL, cluster, stop, err := pgcluster.Server(ctx, getenv("DATABASE_URL"), filepath.Join(dir, "postgres"))
	if err != nil {
		return err
	}
	defer stop()
	botDB, dropDB, err := botDatabase(ctx, adminURL, cluster)
	if err != nil {
		return err
	}
	defer dropDB()
	sb, err := sandbox.New(ctx, sandbox.Options{AdminURL: adminURL, WebhookSecret: *secret})
	if err != nil {
		return err
	}
	defer sb.Close(context.WithoutCancel(ctx))
	sb.Sample = func() (map[string]string, error) { return demo.SampleFiles(sb) }

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	base := "http://" + ln.Addr().String()
	urls := sb.URLsAt(base)
	keyPath := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(keyPath, sb.GitHub.AppPrivateKeyPEM(), 0o600); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "bot.yml")
	if err := os.WriteFile(cfgPath, sandboxBotConfig(sb, urls, ln.Addr().String(), *botAddr, botDB, keyPath, *secret, *isolation, filepath.Join(dir, "bot"), repos), 0o600); err != nil {
		return err
	}

	srv := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()

	fmt.Fprintf(stdout, "deploybot sandbox at %s\n\n%s\n\nGitHub App private key: %s\nWebhook secret: %s\nBot config for this sandbox: %s\n",
		base, sb.Describe(urls), keyPath, *secret, cfgPath)

	hook := "http://" + *botAddr + server.WebhookPath
	botErr := make(chan error, 1)
	switch {
	case *serveBot:
		cfg, err := loadConfig(cfgPath, getenv)
		if err != nil {
			return err
		}
		logger := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
		fmt.Fprintf(stdout, "\nStarting the bot (bot serve --config %s) on %s…\n", cfgPath, *botAddr)
		go func() { botErr <- serve(ctx, cfg, logger) }()
		if err := waitReady(ctx, "http://"+*botAddr+"/readyz", botErr); err != nil {
			return err
		}
		sb.SetHookURL(hook)
		fmt.Fprintf(stdout, "The bot is ready; webhooks go to %s.\n", hook)
	case *botURL != "":
		hook = *botURL
		sb.SetHookURL(hook)
		fmt.Fprintf(stdout, "\nWebhooks go to %s.\n", hook)
	default:
		fmt.Fprintf(stdout, "\nRun the bot against it in another terminal, then tell the sandbox where it listens:\n"+
			"  go run ./cmd/bot serve --config %s\n  curl -X PUT %s/hooks -d '{\"url\": \"%s\"}'\n", cfgPath, base, hook)
	}
	fmt.Fprint(stdout, drivingHelp(base))

	select {
	case <-ctx.Done():
		if *serveBot {
			return <-botErr // serve stops on the same signal
		}
		return nil
	case err := <-errc:
		return err
	case err := <-botErr:
		return fmt.Errorf("the bot stopped: %w", err)
	}
}

// drivingHelp is what to paste to walk a pull request through the bot.
func drivingHelp(base string) string {
	return fmt.Sprintf(`
Drive it as GitHub would (each answer lists the webhooks delivered and the bot's status):
  curl -X POST %[1]s/repos -d '{"repo": "%[2]s", "sample": true}'
  curl -X POST %[1]s/repos/%[2]s/pulls -d '{"head": "feature/login", "title": "Add login", "files": {"web/src/login.js": "export const login = 1;\n"}}'
  curl -s %[1]s/state | jq '.github.comments[].body, .github.check_runs'
  curl -X POST %[1]s/repos/%[2]s/pulls/1/close -d '{"merge": true}'
Ctrl-C to stop.
`, base, demo.Repo)
}

// waitReady polls the bot's /readyz until it says ready, the bot stops
// (its error), or ctx ends. Start-up takes seconds (migrations, the
// sandbox check of the command runner); polling with backoff is how a
// client learns a server is up.
func waitReady(ctx context.Context, readyz string, stopped <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	delay := 50 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, readyz, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-stopped:
			if err == nil {
				err = errors.New("it exited")
			}
			return fmt.Errorf("the bot did not start: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

// botDatabase makes the bot's own database on the sandbox's PostgreSQL
// server and returns its URL and how to drop it (a server given by
// $DATABASE_URL outlives the sandbox; a private cluster goes whole).
func botDatabase(ctx context.Context, adminURL string, cluster *pgcluster.Cluster) (string, func(), error) {
	if cluster != nil {
		if err := cluster.CreateDatabase(ctx, "deploybot"); err != nil {
			return "", nil, err
		}
		return cluster.URL("deploybot"), func() {}, nil
	}
	name := "deploybot_sandbox_" + randomHex(6)
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox: connect to $DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("sandbox: create the bot's database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox: $DATABASE_URL is not a URL")
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, adminURL); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			_ = c.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

// sandboxBotConfig is a bot config with every key the sandbox needs: its
// API URLs and the App's id, key and webhook secret, Neon's and
// Cloudflare's (any) credentials, a master key, health checks sent to the
// sandbox's edge over http, and the repositories, each deploying to the
// simulated account with Stripe keys for the sample's pipeline file.
func sandboxBotConfig(sb *sandbox.Sandbox, urls sandbox.URLs, sandboxAddr, botAddr, dbURL, keyPath, secret, isolation, dataDir string, repos []string) []byte {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // a JSON string is a YAML string
	publicURL := "http://" + botAddr
	if strings.HasPrefix(botAddr, ":") {
		publicURL = "http://127.0.0.1" + botAddr
	}
	sb.GitHub.AddCallbackURL(publicURL + login.PathCallback)
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by bot sandbox: the bot's config for this sandbox, removed when it stops.
# go run ./cmd/bot serve --config %s
server:
  address: %s
  # The run pages, behind sign-in on the sandbox's GitHub (any login: it
  # has no passwords).
  public_url: %s
database:
  url: %s
data_dir: %s
github:
  v3_api_url: %s
  v4_api_url: %s
  web_url: %s
  app:
    integration_id: %d
    private_key: {file: %s}
    webhook_secret: %s
    client_id: %s
    client_secret: %s
neon:
  api_url: %s
  api_key: sandbox-neon-key          # the sandbox takes any key
cloudflare:
  api_url: %s
  api_token: sandbox-cloudflare-token
master_key: %s
# Preview hostnames resolve nowhere: health checks go to the sandbox's edge,
# which serves every Worker over plain http.
health_check:
  connect_to: %s
  scheme: http
runner:
  isolation: %s
log:
  level: info
  format: console
repositories:
`, q(filepath.Join(filepath.Dir(keyPath), "bot.yml")), q(botAddr), q(publicURL), q(dbURL), q(dataDir),
		q(urls.GitHub), q(strings.TrimSuffix(urls.GitHub, "/")+"/graphql"), q(strings.TrimSuffix(urls.GitHub, "/")),
		sb.GitHub.AppID(), q(keyPath), q(secret), q(ghsim.ClientID), q(sb.GitHub.ClientSecret()),
		q(urls.Neon), q(urls.Cloudflare), q(randomHex(32)), q(sandboxAddr), q(isolation))
	testKey, liveKey := q("sk_test_"+randomHex(12)), q("sk_live_"+randomHex(12))
	for _, repo := range append([]string{demo.Repo}, repos...) {
		fmt.Fprintf(&b, `  %s:
    cloudflare: {account_id: %s, zone_id: %s}
    environments:
      preview: {secrets: {STRIPE_SECRET_KEY: %s}}
      test: {secrets: {STRIPE_SECRET_KEY: %s}}
      production: {secrets: {STRIPE_SECRET_KEY: %s}}
`, q(repo), q(sb.Cloudflare.AccountID()), q(sb.ZoneID), testKey, testKey, liveKey)
	}
	return []byte(b.String())
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func stopClusterQuietly(c *pgcluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.Stop(ctx)
}
