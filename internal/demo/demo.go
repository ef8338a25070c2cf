// Package demo walks a sample pull request through its whole life against
// the bot running on the sandbox: simulated GitHub, Neon and Cloudflare, real
// PostgreSQL branches, real build commands. It is what `bot demo` shows, and
// the end-to-end tests use the same Stack.
package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// Walk opens a PR on the sample repository, pushes to it, and merges it,
// printing the PR's status comment and the resources after each stage. An
// error means the bot did not reach the state it should have.
func Walk(ctx context.Context, s *Stack, out io.Writer) error {
	gh := s.Sandbox.GitHub
	stage := func(title string) { fmt.Fprintf(out, "\n━━ %s\n", title) }
	// settle delivers events as GitHub would, waits for the bot to finish,
	// and prints the PR's comment and the resources.
	settle := func(pr int, events ...func() (ghsim.Event, error)) error {
		for _, build := range events {
			ev, err := build()
			if err != nil {
				return err
			}
			d, err := s.Deliver(ctx, ev)
			if err != nil {
				return err
			}
			if ev.Action == "opened" { // GitHub may deliver twice; the copy must change nothing
				if _, err := gh.Redeliver(ctx, d.ID); err != nil {
					return err
				}
			}
		}
		if err := s.WaitIdle(ctx); err != nil {
			return err
		}
		return s.show(out, pr)
	}
	prEvent := func(pr int, action string) func() (ghsim.Event, error) {
		return func() (ghsim.Event, error) { return gh.PullRequestEvent(Repo, pr, action) }
	}
	// Every push GitHub delivers (tests run on it), before the PR's event.
	pushEvent := func(branch string) func() (ghsim.Event, error) {
		return func() (ghsim.Event, error) { return gh.PushEvent(Repo, branch) }
	}

	stage("Production today: deployed with wrangler, BETTER_AUTH_SECRET set by the team")
	if err := s.deployLikeWrangler(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "    auth-worker, ecom-api and codex-web exist; codex-web has the team's own BETTER_AUTH_SECRET.")

	stage("A developer opens PR #1 (feature/login)")
	sha1, err := gh.Commit(Repo, "feature/login", map[string]string{"web/src/login.js": "export const login = () => 'v1';\n"}, "Add login")
	if err != nil {
		return err
	}
	pr, err := gh.OpenPR(Repo, "feature/login", "main", "Add login", false, false)
	if err != nil {
		return err
	}
	if err := settle(pr, pushEvent("feature/login"), prEvent(pr, "opened")); err != nil {
		return err
	}
	page, err := s.RunPage(ctx, "preview", pr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nThe preview's run, step by step, each step's whole log: %s\n", page)
	s.showTests(out, sha1)
	if err := s.expectLive(ctx, pr, sha1); err != nil {
		return err
	}
	if err := s.showAssets(ctx, out, pr); err != nil {
		return err
	}

	stage("The developer pushes a new commit")
	sha2, err := gh.PushPR(Repo, pr, map[string]string{"web/src/login.js": "export const login = () => 'v2';\n"}, "Fix login")
	if err != nil {
		return err
	}
	if err := settle(pr, pushEvent("feature/login"), prEvent(pr, "synchronize")); err != nil {
		return err
	}
	if err := s.expectLive(ctx, pr, sha2); err != nil {
		return err
	}

	stage("The developer only edits the README: the static checks skip it")
	sha3, err := gh.PushPR(Repo, pr, map[string]string{"README.md": "codex, the sample app.\n\nLog in at /login.\n"}, "Document login")
	if err != nil {
		return err
	}
	if err := settle(pr, pushEvent("feature/login"), prEvent(pr, "synchronize")); err != nil {
		return err
	}
	s.showTests(out, sha3)
	if err := s.expectLive(ctx, pr, sha3); err != nil {
		return err
	}

	stage("The PR is merged: the preview goes, the merge deploys production")
	mergeSHA, err := gh.ClosePR(Repo, pr, true)
	if err != nil {
		return err
	}
	pushMain := func() (ghsim.Event, error) { return gh.PushEvent(Repo, "main") }
	if err := settle(pr, prEvent(pr, "closed"), pushMain); err != nil {
		return err
	}
	if err := s.expectGone(pr); err != nil {
		return err
	}
	s.showTests(out, mergeSHA)
	if err := s.expectProduction(out, mergeSHA); err != nil {
		return err
	}
	return s.expectWaitedForTests(ctx, out, mergeSHA)
}

// ProductionHosts are the sample's production hostnames by worker.
var ProductionHosts = map[string]string{"web": "codex.revelations.studio", "auth": "auth.revelations.studio", "api": "api.revelations.studio"}

// expectProduction prints what production serves and checks it is sha
// everywhere.
func (s *Stack) expectProduction(out io.Writer, sha string) error {
	fmt.Fprintf(out, "\nProduction after the merge (%s):\n", sha[:7])
	var bad []string
	for _, w := range []string{"web", "auth", "api"} {
		host := ProductionHosts[w]
		site, ok := s.Sandbox.Cloudflare.ResolveHost(host, "/")
		got := site.Vars["DEPLOYBOT_COMMIT"]
		fmt.Fprintf(out, "    https://%-28s → %s version %s, commit %.7s\n", host, site.Script, short(site.VersionID), got)
		if !ok || got != sha {
			bad = append(bad, host)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("production does not serve %s at %v", sha[:7], bad)
	}
	return nil
}

func short(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

var marker = regexp.MustCompile(`(?m)^<!--.*-->\n?`)

// show prints the PR's status comment and what exists in the clouds.
func (s *Stack) show(out io.Writer, pr int) error {
	comments := s.Comments(pr)
	fmt.Fprintf(out, "\nStatus comment on PR #%d (%d comment(s) by the bot):\n\n", pr, len(comments))
	for _, c := range comments {
		for _, line := range strings.Split(strings.TrimSpace(marker.ReplaceAllString(c, "")), "\n") {
			fmt.Fprintf(out, "    %s\n", line)
		}
	}
	r := s.Resources()
	fmt.Fprintln(out, "\nResources:")
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "    Neon branches\t%s\n", strings.Join(r.Branches, ", "))
	fmt.Fprintf(w, "    Workers\t%s\n", strings.Join(r.Scripts, ", "))
	fmt.Fprintf(w, "    Custom domains\t%s\n", strings.Join(r.Domains, ", "))
	fmt.Fprintf(w, "    Check runs\t%s\n", strings.Join(r.CheckRuns, ", "))
	return w.Flush()
}

// RunPage is the address of the page of pull request pr's latest run of
// kind (the bot serves it at its public_url).
func (s *Stack) RunPage(ctx context.Context, kind string, pr int) (string, error) {
	var id int64
	err := s.App.Pool.QueryRow(ctx, `SELECT id FROM runs WHERE repo = $1 AND kind = $2 AND pr_number = $3 ORDER BY id DESC LIMIT 1`,
		Repo, kind, pr).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("find the %s run of #%d: %w", kind, pr, err)
	}
	return fmt.Sprintf("%s/runs/%d", s.BotURL, id), nil
}

// Comments are the bot's status comments on pr (there should be one);
// replies to commands are not among them.
func (s *Stack) Comments(pr int) []string {
	var out []string
	for _, c := range s.Sandbox.GitHub.Snapshot().Comments {
		if c.Repo == Repo && c.Issue == pr && c.Author == s.Sandbox.GitHub.BotLogin() &&
			strings.Contains(c.Body, github.StatusMarker(pr)) {
			out = append(out, c.Body)
		}
	}
	return out
}

// Resources is what exists in the simulated clouds.
type Resources struct {
	Branches, Scripts, Domains, CheckRuns []string
}

// Resources lists what exists in the simulated clouds.
func (s *Stack) Resources() Resources {
	var r Resources
	for _, p := range s.Sandbox.Neon.Snapshot().Projects {
		for _, b := range p.Branches {
			r.Branches = append(r.Branches, b.Name)
		}
	}
	cf := s.Sandbox.Cloudflare.Snapshot()
	for _, sc := range cf.Scripts {
		r.Scripts = append(r.Scripts, sc.Name)
	}
	for _, d := range cf.CustomDomains {
		r.Domains = append(r.Domains, d.Hostname)
	}
	for _, c := range s.Sandbox.GitHub.Snapshot().CheckRuns {
		r.CheckRuns = append(r.CheckRuns, fmt.Sprintf("%s@%s=%s", c.Name, c.HeadSHA[:7], orStatus(c.Conclusion, c.Status)))
	}
	for _, l := range [][]string{r.Branches, r.Scripts, r.Domains} {
		sort.Strings(l)
	}
	return r
}

func orStatus(conclusion, status string) string {
	if conclusion != "" {
		return conclusion
	}
	return status
}

// expectLive checks the preview of pr serves sha everywhere and the PR has
// one comment saying so.
func (s *Stack) expectLive(ctx context.Context, pr int, sha string) error {
	comments := s.Comments(pr)
	if len(comments) != 1 {
		return fmt.Errorf("PR #%d has %d status comments, want 1", pr, len(comments))
	}
	if !strings.Contains(comments[0], "Preview ready") || !strings.Contains(comments[0], sha[:7]) {
		return fmt.Errorf("PR #%d's comment does not say the preview of %s is ready:\n%s", pr, sha[:7], comments[0])
	}
	host := fmt.Sprintf("codex-preview-%d.revelations.studio", pr)
	site, ok := s.Sandbox.Cloudflare.ResolveHost(host, "/")
	if !ok || site.Vars["DEPLOYBOT_COMMIT"] != sha {
		return fmt.Errorf("%s serves commit %q, want %s", host, site.Vars["DEPLOYBOT_COMMIT"], sha)
	}
	return nil
}

// previewAssets are the web Worker's static assets a visitor's browser
// loads, with the type each must be served with, and one .assetsignore
// keeps out of the upload.
var previewAssets = []struct{ path, contentType string }{
	{"/", "text/html; charset=utf-8"},
	{"/style.css", "text/css; charset=utf-8"},
	{"/app.js", "text/javascript; charset=utf-8"},
	{"/app.js.map", ""}, // not uploaded: the Worker answers instead
}

// showAssets fetches the preview's static assets through the edge, as a
// browser would, and prints what each is served as.
func (s *Stack) showAssets(ctx context.Context, out io.Writer, pr int) error {
	host := fmt.Sprintf("codex-preview-%d.revelations.studio", pr)
	fmt.Fprintf(out, "\nStatic assets of the preview, as a browser gets them:\n")
	for _, a := range previewAssets {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+host+a.path, nil)
		if err != nil {
			return err
		}
		res, err := s.Web.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		got := res.Header.Get("Content-Type")
		fmt.Fprintf(out, "    GET https://%s%-12s → %d %s (%d bytes)\n", host, a.path, res.StatusCode, got, len(body))
		switch {
		case a.contentType == "" && strings.Contains(string(body), "sourceMappingURL"):
			return fmt.Errorf("%s%s serves the source map .assetsignore leaves out", host, a.path)
		case a.contentType != "" && (res.StatusCode != http.StatusOK || got != a.contentType):
			return fmt.Errorf("%s%s: %d %s, want 200 %s", host, a.path, res.StatusCode, got, a.contentType)
		}
	}
	return nil
}

// expectGone checks nothing of pr's preview is left.
func (s *Stack) expectGone(pr int) error {
	r := s.Resources()
	suffix := fmt.Sprintf("-%d", pr)
	for _, l := range [][]string{r.Branches, r.Scripts} {
		for _, name := range l {
			if strings.HasSuffix(name, suffix) && strings.Contains(name, "-preview") || name == fmt.Sprintf("pr-%d", pr) {
				return fmt.Errorf("%s is left after PR #%d closed", name, pr)
			}
		}
	}
	for _, d := range r.Domains {
		if strings.Contains(d, fmt.Sprintf("-preview-%d.", pr)) {
			return fmt.Errorf("custom domain %s left after PR #%d closed", d, pr)
		}
	}
	comments := s.Comments(pr)
	if len(comments) != 1 || !strings.Contains(comments[0], "destroyed") {
		return fmt.Errorf("PR #%d's comment does not say the preview was destroyed: %v", pr, comments)
	}
	return nil
}
