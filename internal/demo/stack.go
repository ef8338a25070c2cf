package demo

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/app"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/health"
	"github.com/revelations-studio/deploybot/internal/login"
	"github.com/revelations-studio/deploybot/internal/runner"
	"github.com/revelations-studio/deploybot/internal/sandbox"
	"github.com/revelations-studio/deploybot/internal/sandbox/cfsim"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
	"github.com/revelations-studio/deploybot/internal/server"
	"github.com/revelations-studio/deploybot/pipeline"
)

// Repo is the sample repository's full name.
const (
	Owner    = "revelations-studio"
	RepoName = "codex"
	Repo     = Owner + "/" + RepoName
)

//go:embed all:samplerepo
var sample embed.FS

// StackOptions configures StartStack.
type StackOptions struct {
	// AdminURL is a superuser URL of the PostgreSQL server that holds the
	// simulated Neon branches.
	AdminURL string
	// DatabaseURL is the bot's own database.
	DatabaseURL string
	// DataDir holds the bot's workspaces.
	DataDir string
	Logger  zerolog.Logger
	// HealthWithin bounds each worker's health check (default 1 minute).
	HealthWithin time.Duration
	// DNSRoutes attaches preview hostnames as proxied CNAMEs plus Worker
	// routes instead of Workers Custom Domains.
	DNSRoutes bool
	// PeriodicSweep lets the sweeper run on its own schedule; tests that
	// leave things behind on purpose keep it off and call App.Sweep.
	PeriodicSweep bool
	// Commands says who may run commands on the sample repository (default:
	// the admin, maintain and write roles).
	Commands config.RepoCommands
	// GitHubNow is the simulated GitHub's clock (default time.Now).
	GitHubNow func() time.Time
	// GitHubMinute shortens the minute (and hour) of GitHub's
	// content-creation limit, in the simulated GitHub and in the bot's
	// pacing of its writes alike (default a minute).
	GitHubMinute time.Duration
	// Isolation is the bot's runner.isolation (default "bwrap").
	Isolation string
	// Shared are host directories every repository command may read and
	// write (see runner.Options.Shared): tests hand commands files there.
	Shared []string
	// CloudflarePlan limits the simulated Cloudflare account (default
	// Workers Free's); the bot's cloudflare.workers_limit follows it.
	CloudflarePlan cfsim.Plan
	// NeonOperationTime is how long the simulated Neon's operations run
	// (0: they finish at once).
	NeonOperationTime time.Duration
	// Repository changes the sample repository's entry of the bot's
	// config before the bot starts (its secret values, say).
	Repository func(*config.Repository)
	// SignIn makes the bot's pages ask viewers to sign in with the
	// simulated GitHub (the App's OAuth client), as a bot configured with
	// github.app.client_id does; Admins are the logins that see everything.
	SignIn bool
	Admins []string
}

// Stack is the bot running against the sandbox: what `bot demo` shows and
// what the end-to-end tests drive.
type Stack struct {
	Sandbox *sandbox.Sandbox
	URLs    sandbox.URLs
	App     *app.App
	// HookURL is the bot's webhook endpoint.
	HookURL string
	// BotURL is the bot's address, its public_url: the runs' pages are
	// under it, and its probes and GET /metrics.
	BotURL string
	Config *config.Config
	// Web is an HTTP client that takes every hostname to the sandbox's
	// edge, as DNS takes it to Cloudflare: what a visitor of a preview sees.
	Web *http.Client

	closers []func()
}

// StartStack starts the sandbox and a bot configured for it, and pushes the
// sample repository (with its pipeline file) to the simulated GitHub.
func StartStack(ctx context.Context, opts StackOptions) (_ *Stack, err error) {
	s := &Stack{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	secret := randomHex(16)
	sb, err := sandbox.New(ctx, sandbox.Options{AdminURL: opts.AdminURL, WebhookSecret: secret, GitHubNow: opts.GitHubNow, GitHubContentMinute: opts.GitHubMinute,
		CloudflarePlan: opts.CloudflarePlan, NeonOperationDelay: opts.NeonOperationTime})
	if err != nil {
		return nil, err
	}
	s.Sandbox = sb
	s.closers = append(s.closers, func() { _ = sb.Close(context.Background()) })
	sbServer := httptest.NewServer(sb.Handler())
	s.closers = append(s.closers, sbServer.Close)
	s.URLs = sb.URLsAt(sbServer.URL)

	cfg := config.Defaults()
	cfg.DataDir = opts.DataDir
	if opts.CloudflarePlan.Workers > 0 {
		cfg.Cloudflare.WorkersLimit = opts.CloudflarePlan.Workers
	}
	cfg.Database.URL = config.NewSecret(opts.DatabaseURL)
	cfg.Jobs.Workers = 8
	if opts.Isolation != "" {
		cfg.Runner.Isolation = opts.Isolation
	}
	cfg.GitHub.V3APIURL = s.URLs.GitHub
	cfg.GitHub.V4APIURL = strings.TrimSuffix(s.URLs.GitHub, "/") + "/graphql"
	cfg.GitHub.App.IntegrationID = sb.GitHub.AppID()
	cfg.GitHub.App.PrivateKey = config.NewSecret(string(sb.GitHub.AppPrivateKeyPEM()))
	cfg.GitHub.App.WebhookSecret = config.NewSecret(secret)
	cfg.Neon.APIURL = s.URLs.Neon
	cfg.Neon.APIKey = config.NewSecret("sandbox-neon-key")
	cfg.Cloudflare.APIURL = s.URLs.Cloudflare
	cfg.Cloudflare.APIToken = config.NewSecret("sandbox-cloudflare-token")
	cfg.MasterKey = config.NewSecret(randomHex(32))
	// Stripe's test key for previews and test runs, its live key for
	// production: the values differ per environment, as a team's do.
	testKey := config.NewSecret("sk_test_" + randomHex(12))
	repo := config.Repository{
		Cloudflare: config.RepoCloudflare{AccountID: sb.Cloudflare.AccountID(), ZoneID: sb.ZoneID},
		Environments: config.RepoEnvironments{
			Preview:    config.RepoEnvironment{Secrets: map[string]config.Secret{"STRIPE_SECRET_KEY": testKey}},
			Test:       config.RepoEnvironment{Secrets: map[string]config.Secret{"STRIPE_SECRET_KEY": testKey}},
			Production: config.RepoEnvironment{Secrets: map[string]config.Secret{"STRIPE_SECRET_KEY": config.NewSecret("sk_live_" + randomHex(12))}},
		},
		Commands: opts.Commands,
	}
	if opts.DNSRoutes {
		repo.Cloudflare.Hostnames, repo.Cloudflare.DNSTarget = "dns_route", sb.Zone
	}
	if opts.Repository != nil {
		opts.Repository(&repo)
	}
	cfg.Repositories = map[string]config.Repository{Repo: repo}
	s.Config = &cfg
	within := opts.HealthWithin
	if within == 0 {
		within = time.Minute
	}
	var cmds pipeline.Commands
	if len(opts.Shared) > 0 {
		r, err := runner.New(ctx, runner.Options{Isolation: runner.Isolation(cfg.Runner.Isolation), Shared: opts.Shared})
		if err != nil {
			return nil, err
		}
		cmds = r
	}
	s.Web = health.ClientResolvingTo(strings.TrimPrefix(sbServer.URL, "http://"))
	// The bot's address is known before it starts, so that its check runs
	// link its runs' pages there.
	botServer := httptest.NewUnstartedServer(http.NotFoundHandler())
	s.closers = append(s.closers, botServer.Close)
	s.BotURL = "http://" + botServer.Listener.Addr().String()
	cfg.Server.PublicURL = s.BotURL
	if opts.SignIn {
		sb.GitHub.AddCallbackURL(s.BotURL + login.PathCallback)
		cfg.GitHub.WebURL = strings.TrimSuffix(s.URLs.GitHub, "/")
		cfg.GitHub.App.ClientID = ghsim.ClientID
		cfg.GitHub.App.ClientSecret = config.NewSecret(sb.GitHub.ClientSecret())
		cfg.Server.Admins = opts.Admins
	}
	a, err := app.Start(ctx, app.Options{
		Commands:     cmds,
		Config:       &cfg,
		Logger:       opts.Logger,
		Health:       s.Web,
		HealthScheme: "http",
		HealthWithin: within,
		SweepEvery:   map[bool]time.Duration{true: 0, false: -1}[opts.PeriodicSweep],
		RetryPolicy:  quickRetry{},
		GitHubWrites: github.WritePace{Minute: opts.GitHubMinute},
		// The sandbox's tests take seconds: a deploy that waits for them
		// looks often.
		GateEvery: 200 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	s.App = a
	s.closers = append(s.closers, func() { a.Stop(10*time.Second, opts.Logger) })
	botServer.Config.Handler = a.Handler
	botServer.Start()
	s.HookURL = botServer.URL + server.WebhookPath

	if err := s.seedRepo(); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops everything StartStack started, newest first.
func (s *Stack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// SampleFiles is the sample repository, with the sandbox's Neon project in
// its pipeline file.
func (s *Stack) SampleFiles() (map[string]string, error) { return SampleFiles(s.Sandbox) }

func (s *Stack) seedRepo() error { return SeedSample(s.Sandbox) }

// SampleFiles is the sample repository for sb, with sb's Neon project in its
// pipeline file.
func SampleFiles(sb *sandbox.Sandbox) (map[string]string, error) {
	files := map[string]string{}
	err := fs.WalkDir(sample, "samplerepo", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := sample.ReadFile(path)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(path, "samplerepo/")] = strings.ReplaceAll(string(b), "PROJECT_ID", sb.NeonProject.ID)
		return nil
	})
	return files, err
}

// SeedSample pushes the sample repository to sb's GitHub.
func SeedSample(sb *sandbox.Sandbox) error {
	files, err := SampleFiles(sb)
	if err != nil {
		return err
	}
	if err := sb.GitHub.CreateRepo(Owner, RepoName, "main"); err != nil {
		return err
	}
	_, err = sb.GitHub.Commit(Repo, "main", files, "Initial commit")
	return err
}

// Deliver sends an event the simulated GitHub built to the bot and checks
// the bot took it.
func (s *Stack) Deliver(ctx context.Context, ev ghsim.Event) (ghsim.Delivery, error) {
	d, err := s.Sandbox.GitHub.Deliver(ctx, s.HookURL, ev)
	if err != nil {
		return d, err
	}
	if d.Status != 200 {
		return d, fmt.Errorf("%s %s: the bot answered %d %s", ev.Name, ev.Action, d.Status, d.Error)
	}
	return d, nil
}

// WaitIdle waits until the bot has no job left to work. It watches the job
// queue's events and re-reads the queue when one arrives (and at least every
// 200 ms, since a job finishing between the read and the subscription would
// otherwise go unseen).
func (s *Stack) WaitIdle(ctx context.Context) error {
	events, cancel := s.App.Queue.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled, river.EventKindJobSnoozed)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var busy int
		err := s.App.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable', 'pending', 'scheduled')`).Scan(&busy)
		if err != nil {
			return err
		}
		if busy == 0 {
			return nil
		}
		select {
		case <-events:
		case <-tick.C:
		case <-ctx.Done():
			return errors.New("the bot did not finish its work in time")
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// quickRetry is the sandbox's retry policy. The failures it meets are
// injected faults that clear at once, not outages: attempt n runs again
// after n×200 ms (at most 3 s) instead of River's n⁴ seconds, so a demo or
// test under faults converges in seconds, through the same retries.
type quickRetry struct{}

func (quickRetry) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(min(time.Duration(job.Attempt)*200*time.Millisecond, 3*time.Second))
}
