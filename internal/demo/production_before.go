package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
)

// The sample team deployed production with wrangler before they adopted
// the bot, and set production's BETTER_AUTH_SECRET with `wrangler secret
// put`: the bot takes their Workers over at the first merge and must keep
// that secret (a new one would log every user out).

// teamAuthSecret is the production BETTER_AUTH_SECRET the team set itself.
const teamAuthSecret = "the-teams-own-production-auth-secret"

// deployLikeWrangler uploads the sample's production Workers as wrangler
// would (no deploybot tags) and sets the team's own secret on the web Worker.
func (s *Stack) deployLikeWrangler(ctx context.Context) error {
	cf, err := cloudflare.New(cloudflare.Options{
		AccountID: s.Sandbox.Cloudflare.AccountID(), APIToken: s.Config.Cloudflare.APIToken.Value(),
		BaseURL: s.URLs.Cloudflare + "/", HTTPClient: http.DefaultClient,
	})
	if err != nil {
		return err
	}
	for _, script := range []string{"auth-worker", "ecom-api", "codex-web"} {
		if _, err := cf.UploadWorker(ctx, cloudflare.Script{Name: script, MainModule: "index.js", CompatibilityDate: "2025-01-01",
			Modules: []cloudflare.Module{{Name: "index.js", Content: []byte(`export default { fetch() { return new Response("deployed with wrangler") } }`)}},
		}); err != nil {
			return fmt.Errorf("deploy %s as wrangler would: %w", script, err)
		}
	}
	url := fmt.Sprintf("%s/accounts/%s/workers/scripts/codex-web/secrets", s.URLs.Cloudflare, s.Sandbox.Cloudflare.AccountID())
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(`{"name":"BETTER_AUTH_SECRET","text":"`+teamAuthSecret+`","type":"secret_text"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.Config.Cloudflare.APIToken.Value())
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("wrangler secret put BETTER_AUTH_SECRET: %s", res.Status)
	}
	return nil
}

// showTests prints the test check runs of sha, stage by stage.
func (s *Stack) showTests(out io.Writer, sha string) {
	byStage := map[string]string{}
	for _, c := range s.Sandbox.GitHub.Snapshot().CheckRuns {
		if stage, ok := strings.CutPrefix(c.Name, "deploybot/test: "); ok && c.HeadSHA == sha {
			byStage[stage] = fmt.Sprintf("%s (%s)", orStatus(c.Conclusion, c.Status), c.OutputTitle)
		}
	}
	stages := make([]string, 0, len(byStage))
	for stage := range byStage {
		stages = append(stages, stage)
	}
	sort.Strings(stages)
	fmt.Fprintf(out, "\nTest check runs on %s:\n", sha[:7])
	for _, stage := range stages {
		fmt.Fprintf(out, "    deploybot/test: %-12s %s\n", stage, byStage[stage])
	}
}

// expectWaitedForTests checks that production's first change (its
// migration) started after every test stage of sha had passed, and that
// the team's secret survived the deploy.
func (s *Stack) expectWaitedForTests(ctx context.Context, out io.Writer, sha string) error {
	var testsDone, migrate string
	err := s.App.Pool.QueryRow(ctx, `
		SELECT coalesce((SELECT max(st.finished_at)::text FROM run_steps st JOIN runs r ON r.id = st.run_id
		                 WHERE r.kind = 'test' AND r.head_sha = $1 AND st.name NOT LIKE 'setup:%'), ''),
		       coalesce((SELECT min(st.started_at)::text FROM run_steps st JOIN runs r ON r.id = st.run_id
		                 WHERE r.kind = 'production' AND r.head_sha = $1 AND st.name = 'migrate'), '')`, sha).Scan(&testsDone, &migrate)
	if err != nil {
		return err
	}
	if testsDone == "" || migrate == "" || migrate < testsDone {
		return fmt.Errorf("production's migration started at %q, before its tests passed (%q)", migrate, testsDone)
	}
	fmt.Fprintf(out, "\nProduction waited for its tests (needs_tests: all): the last stage passed at %s, the migration started at %s.\n", testsDone[11:23], migrate[11:23])
	v, _ := s.Sandbox.Cloudflare.SecretValue("codex-web", "BETTER_AUTH_SECRET")
	if v != teamAuthSecret {
		return fmt.Errorf("production's BETTER_AUTH_SECRET changed in the deploy")
	}
	fmt.Fprintln(out, "Production's BETTER_AUTH_SECRET is still the one the team set with wrangler: the deploy kept it.")
	return nil
}
