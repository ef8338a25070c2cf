package pipeline_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/demo"
)

// The sample app's pipeline file has environments: Stripe's test key and
// STRIPE_MODE=test in previews, the live key and mode in production, a
// per-environment BETTER_AUTH_URL, and a BETTER_AUTH_SECRET generated per
// preview that production never gets from the bot (the team's own value
// stays).

// putSecret sets a Worker's secret as `wrangler secret put` does: the team
// setting production's own value, outside the bot.
func (e *env) putSecret(script, name, value string) {
	e.t.Helper()
	url := fmt.Sprintf("%s/accounts/%s/workers/scripts/%s/secrets", e.s.URLs.Cloudflare, e.s.Sandbox.Cloudflare.AccountID(), script)
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPut, url, strings.NewReader(fmt.Sprintf(`{"name":%q,"text":%q,"type":"secret_text"}`, name, value)))
	e.must(err)
	req.Header.Set("Authorization", "Bearer "+e.s.Config.Cloudflare.APIToken.Value())
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	e.must(err)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("wrangler secret put %s on %s: %s", name, script, res.Status)
	}
}

// vars are the plain-text bindings the Worker serving host has.
func (e *env) vars(host string) map[string]string {
	site, _ := e.s.Sandbox.Cloudflare.ResolveHost(host, "/")
	return site.Vars
}

func TestEnvironments(t *testing.T) {
	e := start(t)
	cf := e.s.Sandbox.Cloudflare

	pr, _ := e.open("feature/env", map[string]string{"web/src/env.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	if v, _ := cf.SecretValue(fmt.Sprintf("ecom-api-preview-%d", pr), "STRIPE_SECRET_KEY"); !strings.HasPrefix(v, "sk_test_") {
		t.Errorf("preview STRIPE_SECRET_KEY = %q, want the test key", v)
	}
	if got := e.vars(host("api", pr))["STRIPE_MODE"]; got != "test" {
		t.Errorf("preview STRIPE_MODE = %q", got)
	}
	if got, want := e.vars(host("web", pr))["BETTER_AUTH_URL"], "https://"+host("auth", pr); got != want {
		t.Errorf("preview BETTER_AUTH_URL = %q, want %q ({pr} filled in)", got, want)
	}
	if v, _ := cf.SecretValue(fmt.Sprintf("codex-web-preview-%d", pr), "BETTER_AUTH_SECRET"); len(v) != 64 {
		t.Errorf("preview BETTER_AUTH_SECRET = %q, want a generated one", v)
	}

	first := e.merge(map[string]string{"web/src/env.js": "1\n"})
	e.idle()
	if got := e.production()[first]; got != "success" {
		t.Fatalf("first production deploy: %q (%s)", got, e.failedSteps())
	}
	if v, _ := cf.SecretValue("ecom-api", "STRIPE_SECRET_KEY"); !strings.HasPrefix(v, "sk_live_") {
		t.Errorf("production STRIPE_SECRET_KEY = %q, want the live key", v)
	}
	if got := e.vars(prodHosts["api"])["STRIPE_MODE"]; got != "live" {
		t.Errorf("production STRIPE_MODE = %q", got)
	}
	if got := e.vars(prodHosts["web"])["BETTER_AUTH_URL"]; got != "https://auth.revelations.studio" {
		t.Errorf("production BETTER_AUTH_URL = %q", got)
	}
	if v, ok := cf.SecretValue("codex-web", "BETTER_AUTH_SECRET"); ok {
		t.Errorf("production got a generated BETTER_AUTH_SECRET (%d chars): it is the team's own", len(v))
	}

	// The team sets production's secret itself; the next deploy keeps it.
	e.putSecret("codex-web", "BETTER_AUTH_SECRET", "the-teams-production-secret")
	second := e.merge(map[string]string{"web/src/env.js": "2\n"})
	e.idle()
	if got := e.production()[second]; got != "success" {
		t.Fatalf("second production deploy: %q (%s)", got, e.failedSteps())
	}
	if v, _ := cf.SecretValue("codex-web", "BETTER_AUTH_SECRET"); v != "the-teams-production-secret" {
		t.Errorf("production BETTER_AUTH_SECRET after a deploy = %q, want the team's value unchanged", v)
	}
	if got := e.live(prodHosts["web"]); got != second {
		t.Errorf("production web serves %q, want %s", got, second)
	}
}

// TestMissingProductionSecret: a secret with a value for previews only
// stops the production deploy in its validation, before anything changes,
// and the check run names the environment and the key to set.
func TestMissingProductionSecret(t *testing.T) {
	e := startWith(t, demo.StackOptions{Repository: func(r *config.Repository) {
		r.Environments.Production.Secrets = nil
	}})
	sha := e.merge(map[string]string{"web/src/x.js": "1\n"})
	e.idle()
	if got := e.production()[sha]; got != "failure" {
		t.Fatalf("production check run: %q, want failure", got)
	}
	want := "worker api needs secret STRIPE_SECRET_KEY (.github/deploybot.yml@" + sha[:7] + ":" + secretLine(e) + ": workers[2].secrets[0]) in the production environment, which the bot's config does not hold: set repositories." + demo.Repo + ".environments.production.secrets.STRIPE_SECRET_KEY"
	if failed := e.failedSteps(); !strings.Contains(failed, want) {
		t.Errorf("failed steps: %s\nwant one saying %q", failed, want)
	}
	if !strings.Contains(e.failedSteps(), "validate:") {
		t.Errorf("the missing secret was found after something changed: %s", e.failedSteps())
	}
	for _, script := range []string{"auth-worker", "ecom-api", "codex-web"} {
		if _, ok := e.s.Sandbox.Cloudflare.Script(script); ok {
			t.Errorf("%s was uploaded: nothing may change when a secret is missing", script)
		}
	}
}

// TestTestStagesGetTheTestEnvironment: stages get the test environment's
// vars and the secrets tests.secrets names (its values, masked in the
// log), never production's.
func TestTestStagesGetTheTestEnvironment(t *testing.T) {
	e := start(t)
	e.commitMain(func(f string) string {
		return strings.Replace(f, "tests:\n", "tests:\n  secrets: [STRIPE_SECRET_KEY]\n", 1)
	})
	sha := e.pushBranch("feature/keys", "Keys", map[string]string{
		"tests/unit.sh": "echo \"mode=$STRIPE_MODE key=$STRIPE_SECRET_KEY\"\ncase \"$STRIPE_SECRET_KEY\" in sk_test_*) echo test-key ;; *) echo other-key ;; esac\n",
	})
	e.idle()
	if got := e.stageChecks(sha)["unit"]; fmt.Sprint(got) != "[success]" {
		t.Fatalf("unit: %v (%s)", got, e.failedSteps())
	}
	var logTail string
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT log_tail FROM run_steps s JOIN runs r ON r.id = s.run_id
		WHERE r.head_sha = $1 AND s.name = 'unit'`, sha).Scan(&logTail))
	testKey, _, _ := e.s.Config.Repositories[demo.Repo].SecretIn("test", "STRIPE_SECRET_KEY")
	if !strings.Contains(logTail, "mode=test key=***") || !strings.Contains(logTail, "test-key") || strings.Contains(logTail, testKey.Value()) {
		t.Errorf("unit log:\n%s", logTail)
	}
}

// secretLine is the line of the api Worker's secrets in the sample's file.
func secretLine(e *env) string {
	files, err := e.s.SampleFiles()
	e.must(err)
	f := files[".github/deploybot.yml"]
	return fmt.Sprint(strings.Count(f[:strings.Index(f, "    secrets: [STRIPE_SECRET_KEY]")], "\n") + 1)
}
