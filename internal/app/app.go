// Package app assembles the running bot from its configuration: database,
// schema, job queue with its pipelines, the clients of GitHub, Neon and
// Cloudflare, and the HTTP handler. `bot serve`, `bot demo` and the
// end-to-end tests all start the bot through it, so what is tested is what
// runs.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/palantir/go-githubapp/githubapp"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/handlers"
	"github.com/revelations-studio/deploybot/internal/buildcache"
	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/health"
	"github.com/revelations-studio/deploybot/internal/intake"
	"github.com/revelations-studio/deploybot/internal/login"
	"github.com/revelations-studio/deploybot/internal/metrics"
	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/pgcluster"
	"github.com/revelations-studio/deploybot/internal/retry"
	"github.com/revelations-studio/deploybot/internal/runner"
	"github.com/revelations-studio/deploybot/internal/server"
	"github.com/revelations-studio/deploybot/internal/store"
	"github.com/revelations-studio/deploybot/internal/web"
	"github.com/revelations-studio/deploybot/pipeline"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// Options configures Start.
type Options struct {
	Config *config.Config
	Logger zerolog.Logger
	// Health is the client for workers' health checks and HealthScheme its
	// scheme; defaults: an ordinary client over https. The sandbox routes
	// every hostname to its edge over http.
	Health       *http.Client
	HealthScheme string
	// HealthWithin bounds each worker's health check (default 5 minutes).
	HealthWithin time.Duration
	// GateEvery: see pipeline.Deps.
	GateEvery time.Duration
	// GitHubWrites paces each installation's content-creating requests
	// (github.RateLimits.Writes); the zero value is GitHub's documented
	// limit. The sandbox shortens its minute with the simulated GitHub's.
	GitHubWrites github.WritePace
	// BotLogin is the App's bot user ("<slug>[bot]"), whose comments are the
	// status comments; empty means ask GitHub (GET /app) at start.
	BotLogin string
	// InsertOnly opens the queue without working jobs (for commands such as
	// `bot sweep` that leave the work to the running bot).
	InsertOnly bool
	// SweepEvery: see pipeline.QueueOptions.
	SweepEvery time.Duration
	// Commands runs the repository's commands; nil means a runner.Runner
	// as the config's runner.isolation says.
	Commands pipeline.Commands
	// RetryPolicy: see pipeline.QueueOptions.
	RetryPolicy river.ClientRetryPolicy
	// SignInClient talks to GitHub for the web pages' sign-in (default: a
	// client with a 15 s timeout).
	SignInClient *http.Client
	// FailFast makes the GitHub, Neon and Cloudflare clients give up on an
	// API that does not answer after one quick retry and at most a few
	// seconds a request (see failFastDial), for commands a person waits on
	// (`bot sweep --dry-run`), rather than wait it out as pipelines do.
	FailFast bool
}

// App is the running bot.
type App struct {
	Pool  *pgxpool.Pool
	Queue *river.Client[pgx.Tx]
	// Handler serves the webhooks and probes, and GET /metrics unless
	// server.metrics_address puts the metrics on a listener of their own.
	Handler http.Handler
	// Metrics serves the Prometheus metrics (GET /metrics on
	// server.metrics_address).
	Metrics http.Handler
	deps    *pipeline.Deps
	started bool
	// stopLiveness ends the heartbeat after the queue stopped.
	stopLiveness func()
	// pages are the web pages (nil without public_url); stopPages ends
	// their database listener.
	pages     *web.Handler
	stopPages func()
	closeDB   func()
}

// Start checks the configuration and the App's credentials, then opens the
// database (or a private cluster), migrates it, and starts the job queue and
// its pipelines. Everything that can be checked without the database is
// checked first, so a wrong key or a missing token stops the bot in a
// second, with one line naming the key, rather than after PostgreSQL
// started:
//   - the config (config.CheckCredentials; for InsertOnly, which takes no
//     work, only the App's id and key, config.RequireApp); warnings are
//     logged;
//   - the host's sandbox for repository commands (NewRunner);
//   - the App id and key against GitHub (GET /app), unless BotLogin is
//     given.
func Start(ctx context.Context, opts Options) (*App, error) {
	cfg, logger := opts.Config, opts.Logger
	if opts.InsertOnly {
		if err := cfg.RequireApp(); err != nil {
			return nil, err
		}
	} else {
		warnings, err := cfg.CheckCredentials()
		if err != nil {
			return nil, err
		}
		for _, w := range warnings {
			logger.Warn().Msg(w.Error())
		}
	}
	if opts.Commands == nil && !opts.InsertOnly {
		cmds, err := NewRunner(ctx, cfg, logger)
		if err != nil {
			return nil, err
		}
		opts.Commands = cmds
	}
	// The metrics exist before the database (GET /app below is counted);
	// what they read from it at a scrape is bound once it is open.
	var st *state.Store
	m := newMetrics(func() *state.Store { return st }, logger)
	limits := rateLimits(cfg.GitHub.Budget, opts.GitHubWrites)
	seen := newQuotas(time.Now)
	limits.OnQuota = func(installation int64, resource string, remaining, limit int) {
		m.GitHubQuota(installation, resource, remaining, limit)
		seen.record(installation, resource, remaining, limit)
	}
	creator, err := github.NewClientCreator(github.Config{
		V3APIURL:   cfg.GitHub.V3APIURL,
		V4APIURL:   cfg.GitHub.V4APIURL,
		AppID:      cfg.GitHub.App.IntegrationID,
		PrivateKey: []byte(cfg.GitHub.App.PrivateKey.Value()),
		RateLimits: limits,
		// Under the ETag cache: every request that reaches GitHub is
		// counted, 304s and installation tokens included.
		Transport: m.Transport(metrics.GitHub, opts.transport()),
		Retry:     opts.retry(),
	})
	if err != nil {
		return nil, err
	}
	if opts.BotLogin == "" {
		login, err := appLogin(ctx, cfg, creator)
		if err != nil {
			return nil, err
		}
		opts.BotLogin = login
		logger.Info().Str("login", login).Msg("the App's bot user")
	}
	pool, closeDB, err := OpenDatabase(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*App, error) {
		closeDB()
		return nil, err
	}
	applied, err := store.MigrateUp(ctx, pool)
	for _, line := range applied {
		logger.Info().Str("migration", line).Msg("applied migration")
	}
	if err != nil {
		return fail(err)
	}

	st = state.New(pool)
	deps := pipelineDeps(cfg, opts, pool, creator, m)
	qopts := pipeline.QueueOptions{Workers: cfg.Jobs.Workers, Logger: logger, SweepEvery: opts.SweepEvery, Pipelines: deps, RetryPolicy: opts.RetryPolicy}
	queue, err := pipeline.NewQueue(pool, qopts)
	if err != nil {
		return fail(err)
	}
	// The pages' background work (River UI's) ends with Stop.
	pagesCtx, stopPagesCtx := context.WithCancel(context.WithoutCancel(ctx))
	failBefore := fail
	fail = func(err error) (*App, error) { stopPagesCtx(); return failBefore(err) }
	pages, hub, err := newPages(pagesCtx, cfg, opts, pool, queue, seen.rows, pipeline.NewPageActions(pool, queue))
	if err != nil {
		return fail(err)
	}
	// Jobs get a context that outlives ctx: shutdown is Stop's job, so that
	// running steps can finish instead of being cut at the signal.
	var stopLiveness func()
	if !opts.InsertOnly {
		// Heartbeat first: the jobs this process takes must never look
		// abandoned to another replica.
		live := pipeline.NewLiveness(pool, queue.ID(), logger)
		live.Every, live.DeadAfter = cfg.Jobs.Heartbeat.Std(), 6*cfg.Jobs.Heartbeat.Std()
		if err := live.Beat(ctx); err != nil {
			return fail(err)
		}
		if _, err := live.RescueDead(ctx); err != nil {
			return fail(err)
		}
		if err := queue.Start(context.WithoutCancel(ctx)); err != nil {
			return fail(fmt.Errorf("start job queue: %w", err))
		}
		liveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { live.Run(liveCtx); close(done) }()
		stopLiveness = func() { cancel(); <-done }
	}
	stopPages := stopPagesCtx
	if pages != nil {
		stopListen := listenRuns(ctx, pool, hub)
		stopPages = func() { stopListen(); stopPagesCtx() }
	}
	sopts := server.Options{
		WebhookSecret: cfg.GitHub.App.WebhookSecret.Value(),
		Handlers:      handlers.All(intake.New(pool, queue)),
		Ready:         ready(pool),
		Logger:        logger,
		Observe:       m.WebhookDelivered,
		Pages:         pagesHandler(pages),
	}
	if cfg.Server.MetricsAddress == "" {
		sopts.Metrics = m.Handler()
	}
	return &App{Pool: pool, Queue: queue, Handler: server.New(sopts), Metrics: m.Handler(), deps: qopts.Pipelines, started: !opts.InsertOnly, stopLiveness: stopLiveness,
		pages: pages, stopPages: stopPages, closeDB: closeDB}, nil
}

// newPages builds the web pages when server.public_url is set: the bot
// then links its runs' pages from GitHub, and serves them beside the
// webhook. Without it no page is served (nil). The pages' live streams are
// woken through hub (listenRuns).
//
// With the App's OAuth client configured (github.app.client_id), viewers
// sign in with GitHub and see the repositories GitHub lets them read
// (internal/login); without it, whoever reaches public_url reads every
// run's log (secrets masked), for the demo or behind an authenticating
// proxy. Only signed-in viewers get actions' buttons (actions): without
// sign-in nobody is known, so nobody may act.
//
// Signed-in admins also get River UI over queue, under /river/, whose
// background services run until ctx ends; the overview shows the GitHub
// rate limits budget reports.
func newPages(ctx context.Context, cfg *config.Config, opts Options, pool *pgxpool.Pool, queue *river.Client[pgx.Tx], budget func() []web.BudgetRow, actions web.Actions) (*web.Handler, *web.Hub, error) {
	if cfg.Server.PublicURL == "" || opts.InsertOnly {
		return nil, nil, nil
	}
	hub := web.NewHub()
	scheme := opts.HealthScheme
	if scheme == "" {
		scheme = cfg.HealthCheck.Scheme
	}
	var signIn *login.Service
	var riverUI http.Handler
	if cfg.GitHub.App.ClientID != "" {
		var err error
		if riverUI, err = web.NewRiverUI(ctx, queue, opts.Logger); err != nil {
			return nil, nil, err
		}
		signIn, err = login.New(pool, login.Options{
			WebURL: cfg.GitHub.WebURL, APIURL: cfg.GitHub.V3APIURL,
			ClientID: cfg.GitHub.App.ClientID, ClientSecret: cfg.GitHub.App.ClientSecret.Value(),
			PublicURL: cfg.Server.PublicURL, MasterKey: []byte(cfg.MasterKey.Value()),
			Admins: cfg.Server.Admins, HTTPClient: opts.SignInClient, Logger: opts.Logger,
		})
		if err != nil {
			return nil, nil, err
		}
	}
	h, err := web.New(web.Options{
		Reader:        web.StateReader(state.New(pool)),
		Hub:           hub,
		Login:         signIn,
		Actions:       actions,
		River:         riverUI,
		Budget:        budget,
		GitHubURL:     github.WebURL(cfg.GitHub.V3APIURL),
		PreviewScheme: scheme,
		Logger:        opts.Logger,
	})
	if err != nil {
		return nil, nil, err
	}
	return h, hub, nil
}

// pagesHandler is pages as the server takes it: a nil *web.Handler must be
// a nil http.Handler.
func pagesHandler(pages *web.Handler) http.Handler {
	if pages == nil {
		return nil
	}
	return pages
}

// EndStreams ends the pages' live streams, which would hold an HTTP
// server's graceful shutdown until their runs end (http.Server's
// RegisterOnShutdown).
func (a *App) EndStreams() {
	if a.pages != nil {
		a.pages.Close()
	}
}

// listenRuns wakes hub's streams on the database's notifications of runs'
// changes, from this process's runs and from other replicas', until the
// returned function is called.
func listenRuns(ctx context.Context, pool *pgxpool.Pool, hub *web.Hub) (stop func()) {
	listenCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { state.ListenRuns(listenCtx, pool, hub.Notify); close(done) }()
	return func() { cancel(); <-done }
}

// RunURL is the address of run id's page under public_url.
func RunURL(publicURL string) func(id int64) string {
	base := strings.TrimSuffix(publicURL, "/")
	return func(id int64) string { return base + "/runs/" + strconv.FormatInt(id, 10) }
}

// Sweep runs the sweeper now (see pipeline.Sweep); teardowns are queued for
// the job workers.
func (a *App) Sweep(ctx context.Context, opts pipeline.SweepOptions) ([]pipeline.SweepAction, error) {
	if a.deps == nil {
		return nil, errors.New("sweep needs the GitHub App's id and private key in the config")
	}
	return pipeline.Sweep(ctx, *a.deps, func(ctx context.Context, args river.JobArgs) error {
		_, err := a.Queue.Insert(ctx, args, nil)
		return err
	}, opts)
}

// Stop lets running jobs finish within timeout, cancels the rest (River
// retries them after the restart), and closes the database.
func (a *App) Stop(timeout time.Duration, logger zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	a.EndStreams()
	if !a.started {
		a.stopPages()
		a.closeDB()
		return
	}
	if err := a.Queue.Stop(ctx); err != nil {
		logger.Warn().Err(err).Msg("jobs still running at the shutdown timeout: cancelling them")
		hardCtx, hardCancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer hardCancel()
		_ = a.Queue.StopAndCancel(hardCtx)
	}
	a.stopLiveness()
	a.stopPages()
	a.closeDB()
}

// NewRunner returns the runner of the repository's commands that cfg asks
// for. With runner.isolation: bwrap (the default) a host where the sandbox
// does not work stops the bot here, saying why and what to do, rather than
// run commands next to its credentials unasked; with none, it says once
// that commands run unprotected and fork code will be refused.
func NewRunner(ctx context.Context, cfg *config.Config, logger zerolog.Logger) (*runner.Runner, error) {
	hidden := append([]string{cfg.File(), filepath.Join(cfg.DataDir, "postgres")}, cfg.SecretFiles()...)
	r, err := runner.New(ctx, runner.Options{Isolation: runner.Isolation(cfg.Runner.Isolation), Hidden: hidden})
	if err != nil {
		return nil, fmt.Errorf("%s: runner.isolation: %w — install bubblewrap (Debian: apt-get install -y bubblewrap) on a host that allows unprivileged user namespaces, or set runner.isolation: none to run commands without a sandbox (code from forks is then never run)", orDefault(cfg.File(), "config"), err)
	}
	if r.Isolated() {
		logger.Info().Msg("repository commands run in a bubblewrap sandbox")
	} else {
		logger.Warn().Msg("runner.isolation: none — repository commands run as the bot's own user and can read its credentials; code from forks is refused")
	}
	return r, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// appCheckWithin bounds the start-up's GET /app: long enough for a slow
// answer and a few retries, short enough that an unreachable GitHub is
// reported while the operator still watches.
const appCheckWithin = 15 * time.Second

// appLogin asks GitHub who the App is (github.AppLogin) and turns its
// failures into config errors naming the keys to check and the URL asked.
func appLogin(ctx context.Context, cfg *config.Config, creator githubapp.ClientCreator) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, appCheckWithin)
	defer cancel()
	login, err := github.AppLogin(ctx, creator, cfg.GitHub.App.IntegrationID)
	var ae *github.AppError
	switch {
	case err == nil:
		return login, nil
	case !errors.As(err, &ae):
		return "", err
	case ae.Refused():
		return "", cfg.KeyError("github.app.integration_id", "GitHub refused App id %d with github.app.private_key (from %s): GET %s answered %d %s (%q): check the id (the App's settings page, \"App ID\") and that the key is this App's",
			ae.AppID, cfg.GitHub.App.PrivateKey.Source(), ae.URL, ae.Status, http.StatusText(ae.Status), ae.Message)
	case ae.Status == 0:
		return "", cfg.KeyError("github.v3_api_url", "GitHub did not answer GET %s: %v (check the URL and the network)", ae.URL, ae.Err)
	}
	return "", fmt.Errorf("%s: asking GitHub who the App is: %w", orDefault(cfg.File(), "config"), err)
}

// FailFast settings: a command a person waits on gives an unreachable API
// up after one quick retry and a few seconds, naming its URL, where a
// pipeline would wait it out.
const (
	failFastDial    = 5 * time.Second
	failFastAnswer  = 10 * time.Second
	failFastRetries = 1
)

// transport is the HTTP transport of the API clients: nil (the default)
// unless FailFast.
func (o Options) transport() http.RoundTripper {
	if !o.FailFast {
		return nil
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: failFastDial, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = failFastDial
	t.ResponseHeaderTimeout = failFastAnswer
	return t
}

// retry is the API clients' retry policy: the clients' own defaults unless
// FailFast.
func (o Options) retry() retry.Policy {
	if !o.FailFast {
		return retry.Policy{}
	}
	return retry.Policy{Attempts: 1 + failFastRetries, Base: 250 * time.Millisecond, Max: time.Second}
}

// newMetrics makes the bot's metrics: deliveries of the events the
// handlers take (and pings) are counted by name, the queue and the
// previews are read from the database (st, once it is open) at each scrape.
func newMetrics(st func() *state.Store, logger zerolog.Logger) *metrics.Metrics {
	return metrics.New(metrics.Options{
		WebhookEvents: append(handlers.Events(), "ping"),
		JobKinds:      pipeline.JobKinds(),
		Queue: func(ctx context.Context) ([]metrics.QueuedJobs, error) {
			if st() == nil {
				return nil, errors.New("the database is not open yet")
			}
			kinds, err := st().Jobs.Waiting(ctx)
			out := make([]metrics.QueuedJobs, len(kinds))
			for i, k := range kinds {
				out[i] = metrics.QueuedJobs{Kind: k.Kind, Jobs: k.ByState, OldestDue: k.OldestDue}
			}
			return out, err
		},
		Previews: func(ctx context.Context) (int, error) {
			if st() == nil {
				return 0, errors.New("the database is not open yet")
			}
			return st().Previews.Alive(ctx)
		},
		ScrapeError: func(err error) {
			logger.Warn().Err(err).Msg("metrics: a scrape left out what the database did not answer")
		},
	})
}

func pipelineDeps(cfg *config.Config, opts Options, pool *pgxpool.Pool, creator githubapp.ClientCreator, m *metrics.Metrics) *pipeline.Deps {
	var (
		mu      sync.Mutex
		clients = map[string]*cloudflare.Client{}
	)
	db := neon.New(cfg.Neon.APIURL, cfg.Neon.APIKey.Value(), m.Client(metrics.Neon, nil))
	cfOpts := cloudflare.Options{APIToken: cfg.Cloudflare.APIToken.Value(), BaseURL: cfg.Cloudflare.APIURL, HTTPClient: m.Client(metrics.Cloudflare, nil)}
	if opts.FailFast {
		client := &http.Client{Transport: opts.transport()}
		db = neon.New(cfg.Neon.APIURL, cfg.Neon.APIKey.Value(), m.Client(metrics.Neon, client)).WithRetry(opts.retry()).WithLockWait(0)
		cfOpts.HTTPClient = m.Client(metrics.Cloudflare, client)
		cfOpts.MaxRetries, cfOpts.RetryBaseDelay, cfOpts.RetryMaxDelay = failFastRetries, 250*time.Millisecond, time.Second
		cfOpts.RequestTimeout = failFastAnswer
	}
	deps := &pipeline.Deps{
		State:        state.New(pool),
		Repositories: cfg.Repositories,
		MasterKey:    cfg.MasterKey,
		WorkersLimit: cfg.Cloudflare.WorkersLimit,
		GitHub: pipeline.GitHubFunc(func(ctx context.Context, installationID int64, owner, name string) (pipeline.Repo, error) {
			client, err := creator.NewInstallationClient(installationID)
			if err != nil {
				return nil, err
			}
			return github.NewReporter(client, owner, name, github.WithBotLogin(opts.BotLogin)), nil
		}),
		Neon: db,
		Cloudflare: func(accountID string) (pipeline.Workers, error) {
			mu.Lock()
			defer mu.Unlock()
			if c, ok := clients[accountID]; ok {
				return c, nil
			}
			o := cfOpts
			o.AccountID = accountID
			c, err := cloudflare.New(o)
			if err != nil {
				return nil, err
			}
			clients[accountID] = c
			return c, nil
		},
		Health:       opts.Health,
		HealthScheme: opts.HealthScheme,
		HealthWithin: opts.HealthWithin,
		GateEvery:    opts.GateEvery,
		WorkDir:      filepath.Join(cfg.DataDir, "workspaces"),
		Cache:        buildcache.New(filepath.Join(cfg.DataDir, "cache"), int64(cfg.Cache.MaxMB)<<20),
		Commands:     opts.Commands,
		TestCommands: cfg.Jobs.TestCommands,
		Logger:       opts.Logger,
		Observer:     m,
	}
	if cfg.Server.PublicURL != "" {
		deps.RunURL = RunURL(cfg.Server.PublicURL)
	}
	if deps.Health == nil {
		deps.Health = &http.Client{Timeout: 30 * time.Second}
		if cfg.HealthCheck.ConnectTo != "" {
			deps.Health = health.ClientResolvingTo(cfg.HealthCheck.ConnectTo)
		}
	}
	if deps.HealthScheme == "" {
		deps.HealthScheme = cfg.HealthCheck.Scheme
	}
	return deps
}

// rateLimits turns github.budget into the clients' settings. github.RateLimits
// reads a zero reserve as "the default", so the config's 0% (no pacing)
// becomes a negative one.
func rateLimits(b config.GitHubBudget, writes github.WritePace) github.RateLimits {
	reserve := b.Reserve.Fraction()
	if reserve == 0 {
		reserve = -1
	}
	return github.RateLimits{Reserve: reserve, RequestsPerHour: b.RequestsPerHour, Writes: writes}
}

// OpenDatabase connects to the configured database or, when none is
// configured, to a private cluster under the data directory. close releases
// the pool and stops a cluster this process started.
func OpenDatabase(ctx context.Context, cfg *config.Config, logger zerolog.Logger) (*pgxpool.Pool, func(), error) {
	url := cfg.Database.URL.Value()
	var cluster *pgcluster.Cluster
	if url == "" {
		dir := filepath.Join(cfg.DataDir, "postgres")
		logger.Info().Str("data_dir", dir).Msg("no database.url configured: using a private PostgreSQL cluster")
		var err error
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{
			DataDir: dir,
			Logf:    func(format string, args ...any) { logger.Info().Msgf(format, args...) },
		})
		if err != nil {
			return nil, nil, err
		}
		if err := cluster.CreateDatabase(ctx, "deploybot"); err != nil {
			stopCluster(cluster, logger)
			return nil, nil, err
		}
		url = cluster.URL("deploybot")
	}
	pool, err := store.Open(ctx, url)
	if err != nil {
		if cluster != nil {
			stopCluster(cluster, logger)
		}
		return nil, nil, err
	}
	return pool, func() {
		pool.Close()
		if cluster != nil {
			stopCluster(cluster, logger)
		}
	}, nil
}

func stopCluster(c *pgcluster.Cluster, logger zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		logger.Warn().Err(err).Msg("stopping the private PostgreSQL cluster")
	}
}

// ready reports whether the database answers and its schema is current.
func ready(pool *pgxpool.Pool) func(context.Context) error {
	return func(ctx context.Context) error {
		st, err := store.MigrationStatus(ctx, pool)
		if err != nil {
			return err
		}
		if !st.Current() {
			return errors.New("database schema is not current")
		}
		return nil
	}
}
