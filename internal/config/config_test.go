package config_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/config"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

const minimal = `github:
  app:
    integration_id: 7
    webhook_secret: s3cret
`

func TestParseErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown top-level key", minimal + "databse:\n  url: x\n",
			[]string{"config.yml:5: databse: unknown key"}},
		{"typo gets a suggestion", "server:\n  adress: :80\n" + minimal,
			[]string{"config.yml:2: server.adress: unknown key (did you mean \"address\"?)"}},
		{"unknown nested key lists the known ones", minimal + "jobs:\n  zzz: 1\n",
			[]string{"config.yml:6: jobs.zzz: unknown key (known keys: heartbeat, test_commands, workers)"}},
		{"wrong type", minimal + "jobs:\n  workers: many\n",
			[]string{"config.yml:6: jobs.workers: expected a whole number, found \"many\""}},
		{"bad duration", "server:\n  shutdown_timeout: soon\n" + minimal,
			[]string{"config.yml:2: server.shutdown_timeout: \"soon\" is not a duration"}},
		{"mapping where a value belongs", "data_dir:\n  a: b\n" + minimal,
			[]string{"config.yml:2: data_dir: expected a string, found a mapping"}},
		{"empty webhook secret", "github:\n  app:\n    webhook_secret: \"\"\n",
			[]string{"config.yml:3: github.app.webhook_secret: is empty", "DEPLOYBOT_WEBHOOK_SECRET"}},
		{"absent webhook secret", "log:\n  level: debug\n",
			[]string{"config.yml: github.app.webhook_secret: is empty"}},
		{"bad URL", minimal + "neon:\n  api_url: console.neon.tech\n",
			[]string{"config.yml:6: neon.api_url: \"console.neon.tech\" is not an http(s) URL"}},
		{"bad enum", minimal + "log:\n  level: loud\n",
			[]string{"config.yml:6: log.level: \"loud\" is not one of debug, info, warn, error"}},
		{"out of range", minimal + "jobs:\n  workers: 0\n",
			[]string{"config.yml:6: jobs.workers: must be between 1 and 1000"}},
		{"secret from an unset variable", "github:\n  app:\n    webhook_secret: {env: NOPE}\n",
			[]string{"config.yml:3: github.app.webhook_secret: environment variable NOPE is empty or unset"}},
		{"secret with both sources", "github:\n  app:\n    webhook_secret: {env: A, file: B}\n",
			[]string{"config.yml:3: github.app.webhook_secret: a secret needs exactly one of env or file"}},
		{"duplicate key", minimal + "log:\n  level: info\n  level: debug\n",
			[]string{"config.yml:7: log.level: key given twice"}},
		{"several problems at once", "server:\n  adress: x\njobs:\n  workers: many\n",
			[]string{"server.adress: unknown key", "jobs.workers"}},
		{"not YAML", "github: [\n", []string{"config.yml: "}},
		{"metrics address not host:port", minimal + "server:\n  metrics_address: metrics\n",
			[]string{"config.yml:6: server.metrics_address: \"metrics\" is not host:port"}},
		{"metrics address on the main listener", minimal + "server:\n  address: \":8080\"\n  metrics_address: \":8080\"\n",
			[]string{"config.yml:7: server.metrics_address: \":8080\" is server.address too"}},
		{"repository not owner/name", minimal + "repositories:\n  codex:\n    cloudflare: {account_id: a, zone_id: z}\n",
			[]string{"config.yml:6: repositories.codex: \"codex\" is not owner/name"}},
		{"repository without an account", minimal + "repositories:\n  o/r:\n    cloudflare: {zone_id: z}\n",
			[]string{"config.yml: repositories.o/r.cloudflare.account_id: is required"}},
		{"dns_route without a target", minimal + "repositories:\n  o/r:\n    cloudflare: {account_id: a, zone_id: z, hostnames: dns_route}\n",
			[]string{"repositories.o/r.cloudflare.dns_target: is required"}},
		{"repository secret from an unset variable", minimal + "repositories:\n  o/r:\n    cloudflare: {account_id: a, zone_id: z}\n    secrets:\n      STRIPE: {env: NOPE}\n",
			[]string{"config.yml:9: repositories.o/r.secrets.STRIPE: environment variable NOPE is empty or unset"}},
		{"budget reserve above half", budgetYAML("reserve: 80%"),
			[]string{"config.yml:5: github.budget.reserve: must be between 0% and 50%, not 80%"}},
		{"budget reserve without the sign", budgetYAML("reserve: 0.1"),
			[]string{"config.yml:5: github.budget.reserve: \"0.1\" is not a percentage (e.g. 10%)"}},
		{"negative budget cap", budgetYAML("requests_per_hour: -1"),
			[]string{"config.yml:5: github.budget.requests_per_hour: must be 0 (no cap) or more, not -1"}},
		{"unknown key under budget", budgetYAML("reserv: 5%"),
			[]string{"config.yml:5: github.budget.reserv: unknown key (did you mean \"reserve\"?)"}},
		{"unknown key under budget lists the known ones", budgetYAML("burst: 100"),
			[]string{"config.yml:5: github.budget.burst: unknown key (known keys: requests_per_hour, reserve)"}},
		{"commands entry neither a login nor a team", commandsYAML("allow", "alice", `"@acme/deployers"`, `"@acme"`),
			[]string{`config.yml:12: repositories.acme/app.commands.allow[2]: "@acme" is neither a user login nor a team (@org/team-slug)`}},
		{"commands entry with a bad login", commandsYAML("only", "-alice", "bob--smith", "carol_", strings.Repeat("a", 40), `"acme/deployers"`, `"@acme/"`, `"@acme/dev ops"`),
			[]string{
				`config.yml:10: repositories.acme/app.commands.only[0]: "-alice" is neither`,
				`config.yml:11: repositories.acme/app.commands.only[1]: "bob--smith" is neither`,
				`config.yml:12: repositories.acme/app.commands.only[2]: "carol_" is neither`,
				`config.yml:13: repositories.acme/app.commands.only[3]: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" is neither`,
				`config.yml:14: repositories.acme/app.commands.only[4]: "acme/deployers" is neither`,
				`config.yml:15: repositories.acme/app.commands.only[5]: "@acme/" is neither`,
				`config.yml:16: repositories.acme/app.commands.only[6]: "@acme/dev ops" is neither`,
			}},
		{"team of another organisation", commandsYAML("allow", `"@acme/deployers"`, `"@umbrella/deployers"`),
			[]string{`config.yml:11: repositories.acme/app.commands.allow[1]: "@umbrella/deployers" is a team of umbrella, not of acme: the App's installation on acme cannot see other organisations' teams`}},
		{"unknown environment", minimal + "repositories:\n  o/r:\n    cloudflare: {account_id: a, zone_id: z}\n    environments:\n      staging: {secrets: {A: x}}\n",
			[]string{"config.yml:9: repositories.o/r.environments.staging: unknown key (known keys: preview, production, test)"}},
		{"environment secret from an unset variable", minimal + "repositories:\n  o/r:\n    cloudflare: {account_id: a, zone_id: z}\n    environments:\n      production:\n        secrets: {STRIPE: {env: NOPE}}\n",
			[]string{"config.yml:10: repositories.o/r.environments.production.secrets.STRIPE: environment variable NOPE is empty or unset"}},
		{"empty file", "", []string{"config.yml: github.app.webhook_secret: is empty"}},
		{"a list at the top", "- a\n- b\n", []string{"config.yml:1: expected a mapping"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse("config.yml", []byte(c.yaml), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDefaultsAndOverrides(t *testing.T) {
	cfg, err := config.Parse("config.yml", []byte(minimal+"server:\n  address: 127.0.0.1:9000\n  shutdown_timeout: 5s\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Address != "127.0.0.1:9000" || cfg.Server.ShutdownTimeout.Std() != 5*time.Second {
		t.Errorf("server = %+v", cfg.Server)
	}
	if cfg.GitHub.V3APIURL != "https://api.github.com/" || cfg.Jobs.Workers != 10 || cfg.DataDir != ".deploybot" {
		t.Errorf("defaults lost: %+v", cfg)
	}
	if cfg.GitHub.App.IntegrationID != 7 {
		t.Errorf("integration id %d", cfg.GitHub.App.IntegrationID)
	}
}

// commandsYAML is a valid file whose repository acme/app has entries under
// commands.<list>, the first on line 10.
func commandsYAML(list string, entries ...string) string {
	y := minimal + "repositories:\n  acme/app:\n    cloudflare: {account_id: a, zone_id: z}\n    commands:\n      " + list + ":\n"
	for _, e := range entries {
		y += "        - " + e + "\n"
	}
	return y
}

// TestCommandsNameUsersAndTeams: logins as GitHub allows them and teams of
// the repository's owner (in any case) are accepted, and the teams are
// told from the users.
func TestCommandsNameUsersAndTeams(t *testing.T) {
	login39 := strings.Repeat("a", 39)
	cfg, err := config.Parse("config.yml", []byte(commandsYAML("allow", "alice", "Bob-Smith", "r2d2", login39, `"@acme/deployers"`, `"@ACME/release_managers"`)+
		"      only: [alice, \"@acme/core-team\"]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var teams, users []string
	for _, e := range cfg.Repositories["acme/app"].Commands.Allow {
		if team, ok := config.ParseTeam(e); ok {
			teams = append(teams, team.Org+" "+team.Slug)
		} else {
			users = append(users, e)
		}
	}
	if fmt.Sprint(users) != fmt.Sprint([]string{"alice", "Bob-Smith", "r2d2", login39}) || fmt.Sprint(teams) != "[acme deployers ACME release_managers]" {
		t.Errorf("users %q, teams %q", users, teams)
	}
	if team, ok := config.ParseTeam("@acme/core-team"); !ok || team.String() != "@acme/core-team" {
		t.Errorf("ParseTeam: %v, %v", team, ok)
	}
	for _, notTeam := range []string{"alice", "acme/deployers", "@acme", "@/deployers", "@acme/a/b", "@-acme/x"} {
		if _, ok := config.ParseTeam(notTeam); ok {
			t.Errorf("%q taken for a team", notTeam)
		}
	}
}

// budgetYAML is a valid file with one line under github.budget, on line 5.
func budgetYAML(line string) string {
	return "github:\n  app:\n    webhook_secret: s3cret\n  budget:\n    " + line + "\n"
}

func TestGitHubBudget(t *testing.T) {
	cfg, err := config.Parse("config.yml", []byte(minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.GitHub.Budget; b.Reserve != 10 || b.Reserve.Fraction() != 0.1 || b.RequestsPerHour != 0 {
		t.Errorf("default budget %+v, want a 10%% reserve and no cap", b)
	}
	cfg, err = config.Parse("config.yml", []byte(budgetYAML("reserve: 2.5%")+"    requests_per_hour: 3000\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.GitHub.Budget; b.Reserve != 2.5 || b.RequestsPerHour != 3000 {
		t.Errorf("budget %+v", b)
	}
	for _, edge := range []string{"reserve: 0%", "reserve: 50%", "reserve: \"10 %\""} {
		if _, err := config.Parse("config.yml", []byte(budgetYAML(edge)), env(nil)); err != nil {
			t.Errorf("%s: %v", edge, err)
		}
	}
}

func TestSecretsFromEnvironmentAndFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(keyFile, []byte("-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "cf-token")
	if err := os.WriteFile(tokenFile, []byte("cf-token-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`github:
  app:
    webhook_secret: {env: HOOK}
    private_key: {file: %s}
neon:
  api_key: inline-neon-key
`, keyFile)
	cfg, err := config.Parse("config.yml", []byte(yaml), env(map[string]string{
		"HOOK":                                "from-env",
		config.EnvCloudflareToken + "_FILE":   tokenFile,
		config.EnvDatabaseURL:                 "postgres://u:p@db/deploybot",
		config.EnvNeonAPIKey:                  "ignored: the file sets neon.api_key",
		config.EnvWebhookSecret:               "ignored: the file names HOOK",
		config.EnvPrivateKey:                  "ignored: the file names a key file",
		config.EnvCloudflareToken + "_UNUSED": "x",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ got, want string }{
		"webhook secret": {cfg.GitHub.App.WebhookSecret.Value(), "from-env"},
		"private key":    {cfg.GitHub.App.PrivateKey.Value(), "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----"},
		"neon key":       {cfg.Neon.APIKey.Value(), "inline-neon-key"},
		"cf token":       {cfg.Cloudflare.APIToken.Value(), "cf-token-value"},
		"database url":   {cfg.Database.URL.Value(), "postgres://u:p@db/deploybot"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", name, c.got, c.want)
		}
	}

	// A config printed or logged by mistake shows no secret.
	printed := fmt.Sprintf("%v %+v", cfg, *cfg)
	js, _ := json.Marshal(cfg)
	for _, s := range []string{"from-env", "abc", "inline-neon-key", "cf-token-value", "u:p@db"} {
		if strings.Contains(printed, s) || strings.Contains(string(js), s) {
			t.Errorf("secret %q visible when the config is printed", s)
		}
	}
}

// SecretEnv names every variable a secret came from or could have come from,
// so that the bot can drop them all after loading: the default variables and
// their _FILE twins even when the file sets the secret another way (a stale
// credential in the environment is still a credential), and each {env: NAME}.
func TestSecretEnvNamesEveryCredentialVariable(t *testing.T) {
	yaml := `github:
  app:
    webhook_secret: {env: HOOK}
repositories:
  acme/app:
    cloudflare: {account_id: a, zone_id: z}
    secrets: {STRIPE_SECRET_KEY: {env: ACME_STRIPE}, PLAIN: inline}
`
	cfg, err := config.Parse("config.yml", []byte(yaml), env(map[string]string{"HOOK": "h", "ACME_STRIPE": "s"}))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.SecretEnv()
	for _, want := range []string{"HOOK", "ACME_STRIPE",
		config.EnvDatabaseURL, config.EnvWebhookSecret, config.EnvPrivateKey, config.EnvNeonAPIKey,
		config.EnvCloudflareToken, config.EnvMasterKey, config.EnvPrivateKey + "_FILE", config.EnvMasterKey + "_FILE"} {
		if !slices.Contains(got, want) {
			t.Errorf("SecretEnv() = %v, lacks %s", got, want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "config.yml"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "config.example.yml") {
		t.Fatalf("got %v", err)
	}
}

// TestExampleIsValid keeps config.example.yml loadable: it is what new users
// copy.
func TestExampleIsValid(t *testing.T) {
	_, err := config.Load(filepath.Join("..", "..", "config.example.yml"), env(map[string]string{
		config.EnvWebhookSecret: "x",
	}))
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("server:\n  adress: x\n"))
	f.Add([]byte("github: {app: {webhook_secret: {env: X}}}"))
	f.Add([]byte("a: &x 1\nb: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.yml", data, env(map[string]string{"X": "y"}))
		if err == nil && cfg.GitHub.App.WebhookSecret.Value() == "" {
			t.Fatal("accepted a config without a webhook secret")
		}
	})
}

// TestSecretsPerEnvironment: an environment's own value wins over the flat
// form; a value missing in an environment names the key to set.
func TestSecretsPerEnvironment(t *testing.T) {
	y := minimal + `repositories:
  o/r:
    cloudflare: {account_id: a, zone_id: z}
    secrets: {STRIPE: sk_flat, SENTRY: dsn}
    environments:
      preview: {secrets: {STRIPE: sk_test}}
      production: {secrets: {STRIPE: sk_live, ONLY_PROD: p}}
`
	cfg, err := config.Parse("config.yml", []byte(y), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	repo := cfg.Repositories["o/r"]
	cases := []struct{ env, name, want, where string }{
		{"preview", "STRIPE", "sk_test", ""},
		{"production", "STRIPE", "sk_live", ""},
		{"test", "STRIPE", "sk_flat", ""},
		{"preview", "SENTRY", "dsn", ""},
		{"production", "ONLY_PROD", "p", ""},
		{"preview", "ONLY_PROD", "", "environments.preview.secrets.ONLY_PROD"},
	}
	for _, c := range cases {
		got, ok, where := repo.SecretIn(c.env, c.name)
		if got.Value() != c.want || ok != (c.want != "") || where != c.where {
			t.Errorf("SecretIn(%s, %s) = %q, %v, %q; want %q, %q", c.env, c.name, got.Value(), ok, where, c.want, c.where)
		}
	}
}
