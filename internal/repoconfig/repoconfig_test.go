package repoconfig_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/repoconfig"
)

func TestSeedFile(t *testing.T) {
	data, err := os.ReadFile("testdata/codex.deploybot.yml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := repoconfig.Parse(repoconfig.Path, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Workers) != 3 || f.Workers[0].PreviewScript != "codex-web-preview-{pr}" {
		t.Fatalf("workers: %+v", f.Workers)
	}
	if h := f.Workers[1].Health; h.Path != "/" || h.Status != 200 {
		t.Errorf("default health: %+v", h)
	}
	if h := f.Workers[2].Health; h.Path != "/healthz" || h.Status != 204 || h.Timeout != "5m" {
		t.Errorf("health: %+v", h)
	}
	if f.Database.TestBranch != "push-{branch}-{sha7}" || f.Forks.InitSource != "schema-only" {
		t.Errorf("defaults: %+v %+v", f.Database, f.Forks)
	}
	if len(f.Tests.Stages) != 4 || !f.Production.Enabled {
		t.Errorf("tests/production: %+v %+v", f.Tests, f.Production)
	}
}

const worker = `database: {project: p-1}
workers:
  - name: web
    script: codex-web
    main: dist/index.js
    compatibility_date: "2025-01-01"
`

func TestErrorsNameLineAndKey(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", worker + "    bulid: make\n", ".github/deploybot.yml:7: workers[0].bulid: unknown key (did you mean \"build\"?)"},
		{"missing project", "workers:\n  - {name: w, script: s, main: m.js, compatibility_date: \"2025-01-01\"}\n", "database.project: is required"},
		{"unknown placeholder", worker + "    preview_hostname: web-{prr}.example.com\n", ":7: workers[0].preview_hostname: unknown placeholder {prr}"},
		{"pattern shared by every PR", worker + "    preview_script: web-preview\n", "every run would share one name"},
		{"branch alone names no PR", "database: {project: p, preview_branch: \"{branch}\"}\n", `.github/deploybot.yml:1: database.preview_branch: "{branch}" has {branch} but no {pr} or {sha}: branch names are not unique per pull request (add {pr})`},
		{"production as preview branch", "database: {project: p, preview_branch: production}\n", `:1: database.preview_branch: "production" has no {pr} or {sha}: every run would share one name`},
		{"branch alone in a hostname", worker + "    preview_hostname: \"{branch}.example.com\"\n", `:7: workers[0].preview_hostname: "{branch}.example.com" has {branch} but no {pr} or {sha}`},
		{"branch alone in a script", worker + "    preview_script: \"web-{branch}\"\n", `:7: workers[0].preview_script: "web-{branch}" has {branch} but no {pr} or {sha}`},
		{"bad date", strings.Replace(worker, "2025-01-01", "Jan 1", 1), ":6: workers[0].compatibility_date: \"Jan 1\" is not a date"},
		{"path escaping the repository", strings.Replace(worker, "dist/index.js", "../../etc/passwd", 1), ":5: workers[0].main: \"../../etc/passwd\" must be a path inside the repository"},
		{"key given twice", worker + "    main: other.js\n", ":7: workers[0].main: key given twice"},
		{"assets outside", worker + "    assets: ../secrets\n", ":7: workers[0].assets: \"../secrets\" must be a path inside the repository"},
		{"bad init source", "database: {project: p, init_source: everything}\n", ":1: database.init_source: \"everything\" is not one of parent-data, schema-only"},
		{"bad action", "preview: {on: [opened, merged]}\n", "preview.on[1]: \"merged\" is not one of"},
		{"duplicate binding", worker + "    vars: {STRIPE: x}\n    secrets: [STRIPE]\n", "binding STRIPE is also given by"},
		{"bad health status", worker + "    health: {status: 700}\n", ":7: workers[0].health.status: 700 is not an HTTP status"},
		{"bound to itself", worker + "    services: [{binding: SELF, worker: web}]\n", `:7: workers[0].services: web → web is a cycle of service bindings`},
		{"unknown service", worker + "    services: [{binding: AUTH, worker: auth}]\n", "workers[0].services[0].worker: \"auth\" is not a worker"},
		{"duplicate worker", worker + "  - {name: web, script: s2, main: m.js, compatibility_date: \"2025-01-01\"}\n", "workers[1].name: \"web\" is used by another worker"},
		{"stage cycle", "tests:\n  stages:\n    - {name: a, run: x, needs: [b]}\n    - {name: b, run: y, needs: [a]}\n", "cycle: a → b → a"},
		{"unknown need", "tests:\n  stages:\n    - {name: a, run: x, needs: [lint]}\n", ":3: tests.stages[0].needs[0]: \"lint\" is not a stage"},
		{"bad timeout", "tests:\n  stages:\n    - {name: a, run: x, timeout: forever}\n", "\"forever\" is not a positive duration"},
		{"wrong version", "version: 2\n", ":1: version: 2 is not a version"},
		{"unknown environment", "environments:\n  staging: {vars: {A: b}}\n", ":2: environments.staging: unknown key"},
		{"unknown worker environment", worker + "    environments: {test: {vars: {A: b}}}\n", ":7: workers[0].environments.test: unknown key"},
		{"{pr} reaching production", worker + "    vars: {URL: \"https://web-{pr}.example.com\"}\n", ":7: workers[0].vars.URL: uses {pr}, which only previews have: put it under environments.preview.vars"},
		{"{pr} in production vars", "environments:\n  production:\n    vars: {URL: \"x-{pr}\"}\n", ":3: environments.production.vars.URL: uses {pr}"},
		{"unknown placeholder in a var", "environments:\n  preview:\n    vars: {URL: \"x-{prr}\"}\n", ":3: environments.preview.vars.URL: unknown placeholder {prr}"},
		{"environment secret clashes with a var", worker + "    vars: {STRIPE_KEY: x}\n    environments:\n      production: {secrets: [STRIPE_KEY]}\n", ":9: workers[0].environments.production.secrets[0]: binding STRIPE_KEY is also given by vars.STRIPE_KEY"},
		{"gate naming an unknown stage", "tests:\n  stages:\n    - {name: unit, run: x}\npreview:\n  needs_tests: [unit, lint]\n", ":5: preview.needs_tests[1]: \"lint\" is not a stage of tests.stages"},
		{"gate without stages", "production:\n  needs_tests: all\n", ":2: production.needs_tests: waits for tests, but tests.stages has none"},
		{"gate of the wrong shape", "tests:\n  stages:\n    - {name: unit, run: x}\nproduction:\n  needs_tests: unit\n", ":5: production.needs_tests: expected a list of stage names or all, found \"unit\""},
		{"bad glob", "tests:\n  stages:\n    - {name: unit, run: x, paths: [\"web/[a-\"]}\n", ":3: tests.stages[0].paths[0]: \"web/[a-\" is not a valid glob"},
		{"absolute path filter", worker + "    paths_ignore: [/docs/**]\n", ":7: workers[0].paths_ignore[0]: \"/docs/**\": write paths from the repository's root"},
		{"setup without a command", "setup:\n  timeout: 5m\n", "setup.run: is required with setup.timeout"},
		{"bad setup timeout", "setup:\n  run: pnpm install\n  timeout: soon\n", ":3: setup.timeout: \"soon\" is not a positive duration"},
		{"cache without paths", "setup:\n  run: pnpm install\n  cache: {key: [pnpm-lock.yaml]}\n", ":3: setup.cache: needs both key (the lockfiles) and paths"},
		{"cache of the whole checkout", "setup:\n  run: pnpm install\n  cache: {key: [pnpm-lock.yaml], paths: [.]}\n", "setup.cache.paths[0]: \".\" is the whole checkout"},
		{"bad test secret", "tests:\n  secrets: [not-a-name]\n", ":2: tests.secrets[0]: \"not-a-name\" is not a valid environment variable name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := repoconfig.Parse(repoconfig.Path, []byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/codex.deploybot.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(worker))
	f.Add([]byte("tests:\n  stages:\n    - {name: a, run: x, needs: [a]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := repoconfig.Parse(repoconfig.Path, data)
		if err != nil {
			return
		}
		for _, w := range file.Workers {
			if w.PreviewScript == "" || w.Health.Status == 0 || w.Health.Path == "" {
				t.Fatalf("accepted worker without defaults: %+v", w)
			}
		}
	})
}

// TestDeployOrder: each Worker comes after the Workers it binds, in the
// file's order otherwise; a cycle is refused with its path.
func TestDeployOrder(t *testing.T) {
	const head = "version: 1\ndatabase: {project: p}\nworkers:\n"
	w := func(name, binds string) string {
		s := "  - {name: " + name + ", script: " + name + ", main: m.js, compatibility_date: \"2025-01-01\""
		if binds != "" {
			s += ", services: [" + binds + "]"
		}
		return s + "}\n"
	}
	for _, tc := range []struct {
		name, yaml, want, err string
	}{
		{"no bindings keeps the file's order", head + w("a", "") + w("b", "") + w("c", ""), "a b c", ""},
		{"the sample app: web binds api and auth", head + w("web", "{binding: API, worker: api}, {binding: AUTH, worker: auth}") + w("auth", "") + w("api", ""), "api auth web", ""},
		{"a chain", head + w("a", "{binding: B, worker: b}") + w("b", "{binding: C, worker: c}") + w("c", ""), "c b a", ""},
		{"a cycle", head + w("a", "{binding: B, worker: b}") + w("b", "{binding: A, worker: a}"), "", "workers[0].services: a → b → a is a cycle of service bindings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := repoconfig.Parse(repoconfig.Path, []byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range f.DeployOrder() {
				got = append(got, w.Name)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("order %v, want %s", got, tc.want)
			}
		})
	}
}

// TestBindingsIn: what each environment's Worker gets, from the most
// general setting to the most specific; generated secrets reach production
// only by name.
func TestBindingsIn(t *testing.T) {
	const file = `database: {project: p-1}
environments:
  preview: {vars: {STRIPE_MODE: test, APP_URL: "https://web-{pr}.example.com"}}
  production: {vars: {STRIPE_MODE: live}}
workers:
  - name: web
    script: codex-web
    main: dist/index.js
    compatibility_date: "2025-01-01"
    vars: {STRIPE_MODE: unset, LOG: info}
    secrets: [STRIPE_SECRET_KEY]
    generated_secrets: [BETTER_AUTH_SECRET]
    environments:
      preview: {vars: {LOG: debug}}
      production:
        secrets: [SENTRY_DSN]
        generated_secrets: [COOKIE_KEY]
`
	f, err := repoconfig.Parse(repoconfig.Path, []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		env                string
		vars               string
		secrets, generated string
	}{
		{repoconfig.EnvPreview, "map[APP_URL:https://web-{pr}.example.com LOG:debug STRIPE_MODE:test]", "[STRIPE_SECRET_KEY]", "[BETTER_AUTH_SECRET]"},
		{repoconfig.EnvProduction, "map[LOG:info STRIPE_MODE:live]", "[STRIPE_SECRET_KEY SENTRY_DSN]", "[COOKIE_KEY]"},
	}
	for _, c := range cases {
		b := f.BindingsIn(f.Workers[0], c.env)
		if got := fmt.Sprint(b.Vars); got != c.vars {
			t.Errorf("%s vars = %s, want %s", c.env, got, c.vars)
		}
		if got := fmt.Sprint(b.Secrets); got != c.secrets {
			t.Errorf("%s secrets = %s, want %s", c.env, got, c.secrets)
		}
		if got := fmt.Sprint(b.Generated); got != c.generated {
			t.Errorf("%s generated = %s, want %s", c.env, got, c.generated)
		}
	}
}

// TestFilterTouched: a change concerns a filter when one of its files
// matches paths (any, when paths is empty) and not paths_ignore, with "**"
// crossing folders as in GitHub Actions.
func TestFilterTouched(t *testing.T) {
	web := repoconfig.Filter{Paths: []string{"web/**", "packages/ui/**"}}
	notDocs := repoconfig.Filter{Ignore: []string{"**/*.md", "docs/**"}}
	both := repoconfig.Filter{Paths: []string{"api/**"}, Ignore: []string{"api/**/*_test.ts"}}
	cases := []struct {
		f     repoconfig.Filter
		files []string
		want  bool
	}{
		{repoconfig.Filter{}, nil, true},
		{web, []string{"web/src/app.tsx"}, true},
		{web, []string{"packages/ui/button/index.ts"}, true},
		{web, []string{"api/src/index.ts", "README.md"}, false},
		{web, []string{"website/x"}, false},
		{notDocs, []string{"README.md", "docs/a/b.txt"}, false},
		{notDocs, []string{"README.md", "api/x.ts"}, true},
		{both, []string{"api/src/a_test.ts"}, false},
		{both, []string{"api/src/a_test.ts", "api/src/a.ts"}, true},
		{web, nil, false},
	}
	for _, c := range cases {
		if got := c.f.Touched(c.files); got != c.want {
			t.Errorf("%+v.Touched(%q) = %v, want %v", c.f, c.files, got, c.want)
		}
	}
}
