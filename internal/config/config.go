// Package config reads the bot's YAML configuration.
//
// Reading is strict: an unknown key or a value of the wrong type is an error
// that names the file, line and key, because a deploy bot that silently
// ignores a misspelt setting deploys the wrong thing. Secrets may live in the
// file, but are better given as environment variables or files (see Secret).
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/revelations-studio/deploybot/internal/strictyaml"
)

// Config is the whole configuration file.
type Config struct {
	Server     Server     `yaml:"server"`
	Database   Database   `yaml:"database"`
	DataDir    string     `yaml:"data_dir"`
	GitHub     GitHub     `yaml:"github"`
	Neon       Neon       `yaml:"neon"`
	Cloudflare Cloudflare `yaml:"cloudflare"`
	Jobs       Jobs       `yaml:"jobs"`
	Runner     Runner     `yaml:"runner"`
	Cache      Cache      `yaml:"cache"`
	Log        Log        `yaml:"log"`
	// HealthCheck says how deployed Workers are reached for health checks.
	HealthCheck HealthCheck `yaml:"health_check"`
	// MasterKey derives the per-PR generated secrets (HMAC of the key and
	// repo+PR), so they are stable across redeploys and never stored.
	MasterKey Secret `yaml:"master_key"`
	// Repositories maps "owner/name" to its cloud accounts and secrets.
	Repositories map[string]Repository `yaml:"repositories"`

	file      string
	lines     strictyaml.Lines
	secretEnv []string // see SecretEnv
}

// Cache bounds the build cache under DataDir/cache (setup.cache of the
// pipeline files): past MaxMB, the entries used longest ago go.
type Cache struct {
	MaxMB int `yaml:"max_mb"`
}

// Server is the HTTP listener that receives webhooks.
type Server struct {
	Address string `yaml:"address"`
	// MetricsAddress, when set, is where GET /metrics is served, and the
	// main listener does not serve it (keep the metrics off the internet
	// while webhooks reach Address). Empty: /metrics is on Address.
	MetricsAddress  string   `yaml:"metrics_address"`
	PublicURL       string   `yaml:"public_url"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Admins are the GitHub logins who see the operator's pages of the web
	// interface (every repository, the queue, River UI).
	Admins []string `yaml:"admins"`
}

// Database says where the bot keeps its state.
type Database struct {
	// URL of a PostgreSQL database. Empty: the bot runs a private cluster
	// under DataDir.
	URL Secret `yaml:"url"`
}

// GitHub is the GitHub App the bot acts as.
type GitHub struct {
	V3APIURL string `yaml:"v3_api_url"`
	V4APIURL string `yaml:"v4_api_url"`
	// WebURL is where people sign in (https://github.com, or a GitHub
	// Enterprise Server's root): the web interface's login goes there.
	WebURL string    `yaml:"web_url"`
	App    GitHubApp `yaml:"app"`
	// Budget shares out each installation's hourly request quota.
	Budget GitHubBudget `yaml:"budget"`
}

// GitHubBudget keeps a burst of work (many PRs pushed at once, a sweep) from
// spending an installation's whole hourly quota, after which the bot could
// not even report until the reset.
type GitHubBudget struct {
	// Reserve is the share of GitHub's hourly limit below which requests
	// are paced so that the rest lasts until the reset; check runs, the
	// status comment and deployment statuses keep going until 1 % is left.
	// 0% turns pacing off.
	Reserve Percent `yaml:"reserve"`
	// RequestsPerHour caps each installation's requests, for GitHub
	// Enterprise Server or an App whose quota other tools share; 0: no cap.
	RequestsPerHour int `yaml:"requests_per_hour"`
}

// GitHubApp holds the App's identity and secrets.
type GitHubApp struct {
	IntegrationID int64  `yaml:"integration_id"`
	WebhookSecret Secret `yaml:"webhook_secret"`
	PrivateKey    Secret `yaml:"private_key"`
	// ClientID and ClientSecret are the App's OAuth client: with them (and
	// server.public_url) the web interface asks people to sign in with
	// GitHub, and shows each only the repositories GitHub lets them read.
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
}

// Neon is the Neon API account used for database branches.
type Neon struct {
	APIURL string `yaml:"api_url"`
	APIKey Secret `yaml:"api_key"`
}

// Cloudflare is the Cloudflare account used for Workers and hostnames.
type Cloudflare struct {
	APIURL   string `yaml:"api_url"`
	APIToken Secret `yaml:"api_token"`
	// WorkersLimit is how many Workers the account's plan allows (100 on
	// Workers Free, 500 on Paid). Cloudflare refuses one more (error
	// 10037); the bot warns in the run's log once a new Worker brings the
	// account within 10% of it.
	WorkersLimit int `yaml:"workers_limit"`
}

// Repository is what the bot needs to deploy one repository: where its
// Workers and hostnames live, and the values of the secrets its pipeline file
// names. Secret values never live in the repository itself.
type Repository struct {
	Cloudflare RepoCloudflare `yaml:"cloudflare"`
	// Secrets holds values for every environment: the older, flat form.
	// An environment's own value (Environments) wins over it.
	Secrets      map[string]Secret `yaml:"secrets"`
	Environments RepoEnvironments  `yaml:"environments"`
	Commands     RepoCommands      `yaml:"commands"`
}

// RepoEnvironments holds the secret values of each environment, so that
// previews and test runs get test keys and production its live ones.
type RepoEnvironments struct {
	Preview    RepoEnvironment `yaml:"preview"`
	Test       RepoEnvironment `yaml:"test"`
	Production RepoEnvironment `yaml:"production"`
}

// RepoEnvironment is one environment's secret values.
type RepoEnvironment struct {
	Secrets map[string]Secret `yaml:"secrets"`
}

// Environment names, as the pipeline file writes them.
const (
	EnvironmentPreview    = "preview"
	EnvironmentTest       = "test"
	EnvironmentProduction = "production"
)

// SecretIn returns the value of secret name in environment env: the
// environment's own, else the flat Secrets' (every environment's). where
// is the key an operator sets for it, for errors.
func (r Repository) SecretIn(env, name string) (value Secret, found bool, where string) {
	if s, ok := r.environment(env).Secrets[name]; ok && s.Value() != "" {
		return s, true, ""
	}
	if s, ok := r.Secrets[name]; ok && s.Value() != "" {
		return s, true, ""
	}
	return Secret{}, false, "environments." + env + ".secrets." + name
}

func (r Repository) environment(env string) RepoEnvironment {
	switch env {
	case EnvironmentPreview:
		return r.Environments.Preview
	case EnvironmentTest:
		return r.Environments.Test
	case EnvironmentProduction:
		return r.Environments.Production
	}
	return RepoEnvironment{}
}

// secrets lists every secret value of the repository with its key below
// repositories.<name>.
func (r Repository) secrets() map[string]map[string]Secret {
	return map[string]map[string]Secret{
		"secrets":                         r.Secrets,
		"environments.preview.secrets":    r.Environments.Preview.Secrets,
		"environments.test.secrets":       r.Environments.Test.Secrets,
		"environments.production.secrets": r.Environments.Production.Secrets,
	}
}

// RepoCommands says who may steer the bot with PR commands and check-run
// buttons. By default anyone whose role on the repository is admin,
// maintain or write may.
//
// Allow and Only name users by login and teams as "@org/team-slug", the
// way GitHub writes them. A team must belong to the repository's owner:
// the App's installation token cannot see another organisation's teams.
// Asking GitHub about teams needs the App's organization permission
// "Members: read".
type RepoCommands struct {
	// Roles replaces the default roles (admin, maintain, write, triage, read).
	Roles []string `yaml:"roles"`
	// Allow lets these users and team members in whatever their role
	// (widening).
	Allow []string `yaml:"allow"`
	// Only, when set, lets only these users and team members in, and still
	// only with an allowed role (narrowing).
	Only []string `yaml:"only"`
}

// Team is an "@org/team-slug" entry of Allow or Only.
type Team struct {
	Org  string
	Slug string
}

// String is the team as written in the configuration.
func (t Team) String() string { return "@" + t.Org + "/" + t.Slug }

// ParseTeam reads an "@org/team-slug" entry; ok is false for anything
// else, a user login included.
func ParseTeam(entry string) (t Team, ok bool) {
	rest, isTeam := strings.CutPrefix(entry, "@")
	org, slug, found := strings.Cut(rest, "/")
	if !isTeam || !found || !isLogin(org) || !isTeamSlug(slug) {
		return Team{}, false
	}
	return Team{Org: org, Slug: slug}, true
}

// isLogin is GitHub's rule for user and organisation logins: letters,
// digits and single hyphens, not at either end, at most 39 characters.
func isLogin(s string) bool {
	if s == "" || len(s) > 39 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, c := range s {
		if !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// isTeamSlug accepts what GitHub makes of a team's name: letters, digits,
// hyphens and underscores.
func isTeamSlug(s string) bool {
	for _, c := range s {
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return s != ""
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// RepoCloudflare places a repository's Workers and hostnames.
type RepoCloudflare struct {
	AccountID string `yaml:"account_id"`
	ZoneID    string `yaml:"zone_id"`
	// Hostnames is "custom_domain" (Workers Custom Domains, the default) or
	// "dns_route" (a proxied CNAME to DNSTarget plus a Worker route).
	Hostnames string `yaml:"hostnames"`
	DNSTarget string `yaml:"dns_target"`
}

// Jobs tunes the durable job queue.
type Jobs struct {
	Workers int `yaml:"workers"`
	// Heartbeat is how often this process tells the others it is alive; a
	// process silent for six heartbeats is taken for dead and its running
	// jobs are resumed elsewhere.
	Heartbeat Duration `yaml:"heartbeat"`
	// TestCommands bounds the test-stage commands running at once.
	TestCommands int `yaml:"test_commands"`
}

// Runner says how the repository's commands are run.
type Runner struct {
	// Isolation is "bwrap" (the default: every command in a bubblewrap
	// sandbox where the bot does not exist) or "none" (commands run as the
	// bot's user, next to its credentials; fork code is then refused). The
	// bot refuses to start when "bwrap" does not work on the host, rather
	// than run commands unprotected without being told to.
	Isolation string `yaml:"isolation"`
}

// HealthCheck routes health checks. Both keys are for the sandbox and
// tests; in production the hostnames are requested over https as they are.
type HealthCheck struct {
	// ConnectTo sends every health check to this host:port (keeping the
	// hostname in the Host header), e.g. the sandbox's edge.
	ConnectTo string `yaml:"connect_to"`
	// Scheme is https (default) or http.
	Scheme string `yaml:"scheme"`
}

// Log selects log verbosity and format.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Defaults is the configuration before any file is applied.
func Defaults() Config {
	return Config{
		Server:  Server{Address: ":8080", ShutdownTimeout: Duration(30 * time.Second)},
		DataDir: ".deploybot",
		GitHub: GitHub{
			V3APIURL: "https://api.github.com/",
			V4APIURL: "https://api.github.com/graphql",
			WebURL:   "https://github.com",
			Budget:   GitHubBudget{Reserve: 10},
		},
		Neon:        Neon{APIURL: "https://console.neon.tech/api/v2"},
		Cloudflare:  Cloudflare{APIURL: "https://api.cloudflare.com/client/v4", WorkersLimit: 100},
		Jobs:        Jobs{Workers: 10, TestCommands: 4, Heartbeat: Duration(5 * time.Second)},
		Runner:      Runner{Isolation: "bwrap"},
		Cache:       Cache{MaxMB: 5120},
		HealthCheck: HealthCheck{Scheme: "https"},
		Log:         Log{Level: "info", Format: "json"},
	}
}

// RequireApp reports, naming the keys, what is missing for the bot to act
// as the GitHub App: without its id and private key it could store
// deliveries but never read a pull request or report on one, and the work
// they asked for would be silently lost. `bot migrate` does not need them;
// `bot serve` and `bot sweep` do. A key that is not an RSA private key in
// PEM is refused here too, naming where it was read from, rather than when
// the first request to GitHub is signed.
func (c *Config) RequireApp() error {
	var errs []error
	if c.GitHub.App.IntegrationID == 0 {
		errs = append(errs, c.lines.Errorf(c.file, "github.app.integration_id", "is not set: the GitHub App's numeric id (its settings page, \"App ID\") is needed to act on deliveries"))
	}
	key := c.GitHub.App.PrivateKey
	if key.Value() == "" {
		errs = append(errs, c.lines.Errorf(c.file, "github.app.private_key", "is not set: the App's private key (PEM) is needed to act on deliveries (set it, or %s)", EnvPrivateKey))
	} else if err := CheckAppPrivateKey([]byte(key.Value())); err != nil {
		errs = append(errs, c.lines.Errorf(c.file, "github.app.private_key", "the key from %s %v", key.Source(), err))
	}
	return errors.Join(errs...)
}

// Environment variables that supply a secret when the file does not.
const (
	EnvDatabaseURL     = "DEPLOYBOT_DATABASE_URL"
	EnvWebhookSecret   = "DEPLOYBOT_WEBHOOK_SECRET"
	EnvPrivateKey      = "DEPLOYBOT_GITHUB_PRIVATE_KEY"
	EnvNeonAPIKey      = "DEPLOYBOT_NEON_API_KEY"
	EnvCloudflareToken = "DEPLOYBOT_CLOUDFLARE_API_TOKEN"
	EnvMasterKey       = "DEPLOYBOT_MASTER_KEY"
	EnvClientSecret    = "DEPLOYBOT_GITHUB_CLIENT_SECRET"
)

// Load reads and validates the file at path. Secrets are resolved from the
// file, the environment (getenv) and secret files.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config: %s does not exist (start from config.example.yml, or pass --config)", path)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, getenv)
}

// Parse is Load for a file already read; name is used in errors.
func Parse(name string, data []byte, getenv func(string) string) (*Config, error) {
	cfg := Defaults()
	cfg.file = name
	lines, err := strictyaml.Decode(name, data, &cfg)
	if err != nil {
		return nil, err
	}
	cfg.lines = lines
	if err := cfg.resolveSecrets(getenv); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// SecretEnv names every environment variable a secret of this config was,
// or could have been, read from: each DEPLOYBOT_* secret variable and its
// _FILE twin, and each variable an {env: NAME} reference names. The caller
// removes them from its environment once the config is loaded, so nothing
// the bot starts, and nothing that reads /proc/<pid>/environ, finds them.
// Loading stays free of process-wide effects; cmd/bot does the removing.
func (c *Config) SecretEnv() []string { return slices.Clone(c.secretEnv) }

// File is the path the configuration was read from.
func (c *Config) File() string { return c.file }

// SecretFiles are the files secrets were read from ({file: PATH} and the
// …_FILE variables), which no repository command may see.
func (c *Config) SecretFiles() []string {
	var out []string
	add := func(s Secret) {
		if s.file != "" {
			out = append(out, s.file)
		}
	}
	for _, s := range []Secret{c.Database.URL, c.GitHub.App.WebhookSecret, c.GitHub.App.PrivateKey, c.Neon.APIKey, c.Cloudflare.APIToken, c.MasterKey, c.GitHub.App.ClientSecret} {
		add(s)
	}
	for _, r := range c.Repositories {
		for _, m := range r.secrets() {
			for _, s := range m {
				add(s)
			}
		}
	}
	return out
}

func (c *Config) resolveSecrets(getenv func(string) string) error {
	var errs []error
	for _, s := range []struct {
		key string
		sec *Secret
		env string
	}{
		{"database.url", &c.Database.URL, EnvDatabaseURL},
		{"github.app.webhook_secret", &c.GitHub.App.WebhookSecret, EnvWebhookSecret},
		{"github.app.private_key", &c.GitHub.App.PrivateKey, EnvPrivateKey},
		{"neon.api_key", &c.Neon.APIKey, EnvNeonAPIKey},
		{"cloudflare.api_token", &c.Cloudflare.APIToken, EnvCloudflareToken},
		{"master_key", &c.MasterKey, EnvMasterKey},
		{"github.app.client_secret", &c.GitHub.App.ClientSecret, EnvClientSecret},
	} {
		if err := s.sec.resolve(getenv, s.env); err != nil {
			errs = append(errs, c.lines.Errorf(c.file, s.key, "%v", err))
		}
		c.secretEnv = append(c.secretEnv, s.sec.envNames(s.env)...)
	}
	for name, repo := range c.Repositories {
		for at, m := range repo.secrets() {
			for key, sec := range m {
				path := "repositories." + name + "." + at + "." + key
				// A repository secret has no default variable: it must be written.
				if err := sec.resolve(getenv, ""); err != nil {
					errs = append(errs, c.lines.Errorf(c.file, path, "%v", err))
				}
				c.secretEnv = append(c.secretEnv, sec.envNames("")...)
				m[key] = sec
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Config) validate() error {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, c.lines.Errorf(c.file, key, format, args...))
	}
	if c.GitHub.App.WebhookSecret.Value() == "" {
		fail("github.app.webhook_secret", "is empty: the bot will not accept unsigned webhooks (set it, or %s)", EnvWebhookSecret)
	}
	if c.GitHub.App.IntegrationID < 0 {
		fail("github.app.integration_id", "must be the App's numeric id")
	}
	if r := c.GitHub.Budget.Reserve; r < 0 || r > 50 {
		fail("github.budget.reserve", "must be between 0%% and 50%%, not %s", r)
	}
	if n := c.GitHub.Budget.RequestsPerHour; n < 0 {
		fail("github.budget.requests_per_hour", "must be 0 (no cap) or more, not %d", n)
	}
	for key, u := range map[string]string{
		"github.v3_api_url":  c.GitHub.V3APIURL,
		"github.v4_api_url":  c.GitHub.V4APIURL,
		"github.web_url":     c.GitHub.WebURL,
		"neon.api_url":       c.Neon.APIURL,
		"cloudflare.api_url": c.Cloudflare.APIURL,
	} {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			fail(key, "%q is not an http(s) URL", u)
		}
	}
	if c.Cloudflare.WorkersLimit < 1 {
		fail("cloudflare.workers_limit", "must be the account plan's number of Workers (100 on Workers Free, 500 on Paid), not %d", c.Cloudflare.WorkersLimit)
	}
	if c.Server.PublicURL != "" {
		if p, err := url.Parse(c.Server.PublicURL); err != nil || p.Host == "" {
			fail("server.public_url", "%q is not a URL", c.Server.PublicURL)
		}
	}
	// Sign-in needs all three: a client without a public URL has nowhere to
	// send people back to, and half a client cannot exchange a code.
	if (c.GitHub.App.ClientID == "") != (c.GitHub.App.ClientSecret.Value() == "") {
		if c.GitHub.App.ClientID == "" {
			fail("github.app.client_id", "is empty although github.app.client_secret is set: sign-in with GitHub needs both (the App's settings page shows them)")
		} else {
			fail("github.app.client_secret", "is empty although github.app.client_id is set: sign-in with GitHub needs both (generate one on the App's settings page)")
		}
	}
	if c.GitHub.App.ClientID != "" && c.MasterKey.Value() == "" {
		fail("github.app.client_id", "is set but master_key is not: sign-in keeps each person's GitHub token sealed with a key derived from master_key")
	}
	if c.GitHub.App.ClientID != "" && c.Server.PublicURL == "" {
		fail("github.app.client_id", "is set but server.public_url is not: sign-in with GitHub needs the URL people reach the bot at (its callback is <public_url>/login/callback)")
	}
	for i, login := range c.Server.Admins {
		if login == "" || strings.ContainsAny(login, " /@") {
			fail("server.admins", "item %d (%q) is not a GitHub login", i+1, login)
		}
	}
	if c.Server.Address == "" {
		fail("server.address", "is empty (e.g. \":8080\")")
	}
	if a := c.Server.MetricsAddress; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			fail("server.metrics_address", "%q is not host:port (e.g. \"127.0.0.1:9090\" or \":9090\")", a)
		} else if a == c.Server.Address {
			fail("server.metrics_address", "%q is server.address too: leave it empty to serve /metrics there", a)
		}
	}
	if c.Server.ShutdownTimeout <= 0 {
		fail("server.shutdown_timeout", "must be positive")
	}
	if c.DataDir == "" {
		fail("data_dir", "is empty")
	}
	if c.Jobs.Workers < 1 || c.Jobs.Workers > 1000 {
		fail("jobs.workers", "must be between 1 and 1000, not %d", c.Jobs.Workers)
	}
	if c.Jobs.Heartbeat <= 0 {
		fail("jobs.heartbeat", "must be positive")
	}
	if c.HealthCheck.Scheme != "http" && c.HealthCheck.Scheme != "https" {
		fail("health_check.scheme", "%q is not http or https", c.HealthCheck.Scheme)
	}
	if c.Cache.MaxMB < 0 {
		fail("cache.max_mb", "must not be negative (0 keeps nothing)")
	}
	if c.Jobs.TestCommands < 1 || c.Jobs.TestCommands > 256 {
		fail("jobs.test_commands", "must be between 1 and 256, not %d", c.Jobs.TestCommands)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		fail("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	for name, repo := range c.Repositories {
		key := "repositories." + name
		if owner, repoName, ok := strings.Cut(name, "/"); !ok || owner == "" || repoName == "" || strings.Contains(repoName, "/") {
			fail(key, "%q is not owner/name", name)
		}
		for i, role := range repo.Commands.Roles {
			switch role {
			case "admin", "maintain", "write", "triage", "read":
			default:
				fail(fmt.Sprintf("%s.commands.roles[%d]", key, i), "%q is not one of admin, maintain, write, triage, read", role)
			}
		}
		owner, _, _ := strings.Cut(name, "/")
		for _, list := range []struct {
			name    string
			entries []string
		}{{"allow", repo.Commands.Allow}, {"only", repo.Commands.Only}} {
			for i, entry := range list.entries {
				at := fmt.Sprintf("%s.commands.%s[%d]", key, list.name, i)
				team, isTeam := ParseTeam(entry)
				switch {
				case isTeam && !strings.EqualFold(team.Org, owner):
					fail(at, "%q is a team of %s, not of %s: the App's installation on %s cannot see other organisations' teams", entry, team.Org, owner, owner)
				case !isTeam && !isLogin(entry):
					fail(at, "%q is neither a user login nor a team (@org/team-slug)", entry)
				}
			}
		}
		cf := repo.Cloudflare
		if cf.AccountID == "" {
			fail(key+".cloudflare.account_id", "is required")
		}
		if cf.ZoneID == "" {
			fail(key+".cloudflare.zone_id", "is required")
		}
		switch cf.Hostnames {
		case "", "custom_domain":
		case "dns_route":
			if cf.DNSTarget == "" {
				fail(key+".cloudflare.dns_target", "is required when hostnames is dns_route (the CNAME target, e.g. the zone apex)")
			}
		default:
			fail(key+".cloudflare.hostnames", "%q is not one of custom_domain, dns_route", cf.Hostnames)
		}
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		fail("log.format", "%q is not one of json, console", c.Log.Format)
	}
	switch c.Runner.Isolation {
	case "bwrap", "none":
	default:
		fail("runner.isolation", "%q is not one of bwrap, none", c.Runner.Isolation)
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration written like "30s" or "5m".
type Duration time.Duration

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%q is not a duration (e.g. 30s, 5m)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Std is d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Percent is a share written like "10%" or "2.5%"; its value is the number
// of percent (10 for 10%). The sign is required, so that 0.1 is never
// mistaken for 10% or the other way round.
type Percent float64

// UnmarshalYAML parses "N%".
func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	num, ok := strings.CutSuffix(strings.TrimSpace(n.Value), "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if n.Kind != yaml.ScalarNode || !ok || err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%q is not a percentage (e.g. 10%%)", n.Value)
	}
	*p = Percent(v)
	return nil
}

// String writes p back as "N%".
func (p Percent) String() string { return strconv.FormatFloat(float64(p), 'g', -1, 64) + "%" }

// Fraction is p as a share of one (0.1 for 10%).
func (p Percent) Fraction() float64 { return float64(p) / 100 }
