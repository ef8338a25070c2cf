package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleFile is the pipeline file of the demo's sample app.
const sampleFile = "../../internal/demo/samplerepo/.github/deploybot.yml"

// repoWith writes a repository holding files (path → content) and returns
// its root.
func repoWith(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// checkConfig is a bot config for the sample app's repository holding only
// production's STRIPE_SECRET_KEY; the values come from the environment.
const checkConfig = `github:
  app:
    webhook_secret: {env: HOOK}
master_key: {env: MASTER}
repositories:
  revelations-studio/codex:
    cloudflare: {account_id: acct, zone_id: zone}
    environments:
      production:
        secrets:
          STRIPE_SECRET_KEY: {env: LIVE_KEY}
`

// The secret values of checkConfig's environment: none may be printed.
var checkEnv = map[string]string{"HOOK": "hook-VALUE-1", "MASTER": "master-VALUE-2", "LIVE_KEY": "sk_live_VALUE-3", "TEST_KEY": "sk_test_VALUE-4"}

func TestCheck(t *testing.T) {
	const valid = "version: 1\ndatabase:\n  project: p\nworkers:\n  - name: web\n    script: web\n    main: dist/index.js\n    compatibility_date: \"2025-01-01\"\n"
	outside := repoWith(t, map[string]string{"wrangler.toml": "name = \"web\"\nmain = \"index.js\"\n"})
	escaping := repoWith(t, map[string]string{
		".github/deploybot.yml": "version: 1\ndatabase:\n  project: p\nworkers:\n  - name: web\n    wrangler: apps/web/wrangler.toml\n",
	})
	if err := os.MkdirAll(filepath.Join(escaping, "apps", "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "wrangler.toml"), filepath.Join(escaping, "apps", "web", "wrangler.toml")); err != nil {
		t.Fatal(err)
	}
	withWrangler := repoWith(t, map[string]string{
		".github/deploybot.yml":  "version: 1\ndatabase:\n  project: p\nworkers:\n  - name: web\n    wrangler: apps/web/wrangler.toml\n    preview_hostname: web-{pr}.example.com\n",
		"apps/web/wrangler.toml": "name = \"web-prod\"\nmain = \"dist/index.js\"\ncompatibility_date = \"2025-01-01\"\n",
	})
	config := writeConfig(t, checkConfig)
	twoRepos := writeConfig(t, checkConfig+"  someone/else:\n    cloudflare: {account_id: a, zone_id: z}\n")
	fullConfig := writeConfig(t, strings.Replace(checkConfig, "      production:\n", "      preview:\n        secrets:\n          STRIPE_SECRET_KEY: {env: TEST_KEY}\n      production:\n", 1))

	for _, tc := range []struct {
		name    string
		args    []string
		files   map[string]string // a repository to run in, when set
		wantErr bool
		stdout  []string // each in stdout
		stderr  []string // each a line of stderr
	}{{
		name: "sample app prints its plan",
		args: []string{sampleFile},
		stdout: []string{
			".github/deploybot.yml is valid.",
			"Names are shown for pull request #1",
			"branch pr-1 from production",
			"branch push-feature-example-0123456 from production",
			"Workers (each deployed after the Workers it binds: auth, api, web)",
			"script codex-web-preview-1, https://codex-preview-1.revelations.studio",
			"script codex-web, https://codex.revelations.studio",
			"API → api, AUTH → auth",
			"1. static, unit\n",
			"2. integration\n",
			"after static, unit; on the test branch",
			"runs after a change of any file but **/*.md",
			"waits for static, unit, integration to pass on the merged commit",
			"Setup: sh scripts/setup.sh (timeout 15m)",
		},
	}, {
		name:   "the preview's pull request is chosen with --pr",
		args:   []string{"--pr", "42", sampleFile},
		stdout: []string{"script codex-web-preview-42, https://codex-preview-42.revelations.studio", "branch pr-42 from production"},
	}, {
		name:   "a wrangler file is read from the repository",
		args:   []string{filepath.Join(withWrangler, ".github/deploybot.yml")},
		stdout: []string{"script web-prod-preview-1, https://web-1.example.com", "script web-prod, no hostname"},
	}, {
		name:    "unknown key",
		files:   map[string]string{".github/deploybot.yml": strings.Replace(valid, "    script: web", "    scritp: web", 1)},
		wantErr: true,
		stderr:  []string{`.github/deploybot.yml:6: workers[0].scritp: unknown key (did you mean "script"?)`},
	}, {
		name:    "bad type",
		files:   map[string]string{".github/deploybot.yml": valid + "    health: {status: ok}\n"},
		wantErr: true,
		stderr:  []string{`.github/deploybot.yml:9: workers[0].health.status: expected a whole number, found "ok"`},
	}, {
		name:    "a rule of the bot",
		files:   map[string]string{".github/deploybot.yml": valid + "production:\n  needs_tests: [unit]\n"},
		wantErr: true,
		stderr:  []string{".github/deploybot.yml:10: production.needs_tests: waits for tests, but tests.stages has none"},
	}, {
		name:    "preview names that are production's",
		files:   map[string]string{".github/deploybot.yml": valid + "    hostname: web-1.example.com\n    preview_hostname: web-{pr}.example.com\n"},
		wantErr: true,
		stderr:  []string{`worker web: preview_hostname "web-{pr}.example.com" renders to "web-1.example.com", the production hostname of worker web`},
	}, {
		name:    "missing secret",
		args:    []string{"--config", config, sampleFile},
		wantErr: true,
		stderr: []string{
			"worker api needs secret STRIPE_SECRET_KEY (.github/deploybot.yml:63: workers[2].secrets[0]) in the preview environment, which the bot's config does not hold: set repositories.revelations-studio/codex.environments.preview.secrets.STRIPE_SECRET_KEY",
		},
	}, {
		name:    "missing test secret",
		args:    []string{"--config", config},
		files:   map[string]string{".github/deploybot.yml": valid + "tests:\n  stages:\n    - {name: unit, run: make test}\n  secrets: [API_TOKEN]\n"},
		wantErr: true,
		stderr: []string{
			"the test stages need secret API_TOKEN (.github/deploybot.yml:12: tests.secrets[0]) in the test environment, which the bot's config does not hold: set repositories.revelations-studio/codex.environments.test.secrets.API_TOKEN",
		},
	}, {
		name:   "every secret supplied",
		args:   []string{sampleFile, "--config", fullConfig},
		stdout: []string{fullConfig + " holds every secret the file names for revelations-studio/codex.", "from the bot's config STRIPE_SECRET_KEY"},
	}, {
		name:    "--repo names a section of the config",
		args:    []string{"--config", fullConfig, "--repo", "someone/else", sampleFile},
		wantErr: true,
	}, {
		name:    "--repo is needed with several repositories",
		args:    []string{"--config", twoRepos, sampleFile},
		wantErr: true,
	}, {
		name:    "a wrangler file outside the repository",
		args:    []string{filepath.Join(escaping, ".github/deploybot.yml")},
		wantErr: true,
		stderr:  []string{"apps/web/wrangler.toml: cannot be read: openat apps/web/wrangler.toml: path escapes from parent"},
	}, {
		name:    "a pipeline file outside the root",
		args:    []string{"--root", escaping, sampleFile},
		wantErr: true,
	}, {
		name:    "a file outside .github needs --root",
		args:    []string{filepath.Join(outside, "wrangler.toml")},
		wantErr: true,
	}, {
		name:   "--help",
		args:   []string{"--help"},
		stdout: []string{"Usage: bot check", "--config FILE", "--repo OWNER/NAME", "--root DIR", "PATH "},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.files != nil {
				root := repoWith(t, tc.files)
				args = append(args, filepath.Join(root, ".github/deploybot.yml"))
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"check"}, args...), &stdout, &stderr, func(k string) string { return checkEnv[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %v\nstdout:\n%s\nstderr:\n%s", err, tc.wantErr, stdout.String(), stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains("\n"+stderr.String(), "\n"+want+"\n") {
					t.Errorf("stderr lacks the line %q:\n%s", want, stderr.String())
				}
			}
			all := stdout.String() + stderr.String()
			if err != nil {
				all += err.Error()
			}
			for _, v := range checkEnv {
				if strings.Contains(all, v) {
					t.Errorf("the output shows a secret's value %q:\n%s", v, all)
				}
			}
		})
	}
}

// TestCheckNamesEveryMissingSecret: with the sample app's config lacking
// the preview's and the test stages' values and the master key, each
// missing secret is named with the key to set, in each environment.
func TestCheckNamesEveryMissingSecret(t *testing.T) {
	config := writeConfig(t, strings.Replace(checkConfig, "master_key: {env: MASTER}\n", "", 1))
	var stdout, stderr bytes.Buffer
	env := map[string]string{"HOOK": "hook-VALUE-1", "LIVE_KEY": "sk_live_VALUE-3"} // no master key
	err := run(context.Background(), []string{"check", "--config", config, "--repo", "revelations-studio/codex", sampleFile}, &stdout, &stderr, func(k string) string { return env[k] })
	if err == nil {
		t.Fatalf("check passed:\n%s", stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	want := []string{
		"worker api needs secret STRIPE_SECRET_KEY (.github/deploybot.yml:63: workers[2].secrets[0]) in the preview environment, which the bot's config does not hold: set repositories.revelations-studio/codex.environments.preview.secrets.STRIPE_SECRET_KEY",
		"the pipeline file asks for generated secret BETTER_AUTH_SECRET, but the bot has no master_key (set it, or DEPLOYBOT_MASTER_KEY)",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), strings.Join(want, "\n"))
	}
	if strings.Contains(stdout.String()+stderr.String(), "sk_live_VALUE-3") {
		t.Error("a secret's value was printed")
	}
}
