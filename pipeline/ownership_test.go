package pipeline_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/sandbox/cfsim"
	"github.com/revelations-studio/deploybot/pipeline"
)

// personsBranch makes a Neon branch as a person would, without the bot's
// annotations (or with the annotations given), and returns its id.
func (e *env) personsBranch(name, annotations string) string {
	e.t.Helper()
	body := fmt.Sprintf(`{"branch":{"name":%q,"parent_id":%q},"endpoints":[{"type":"read_write"}]%s}`, name, e.s.Sandbox.NeonProject.DefaultBranchID, annotations)
	req, _ := http.NewRequest(http.MethodPost, e.s.URLs.Neon+"/projects/"+e.s.Sandbox.NeonProject.ID+"/branches", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer key")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	e.must(err)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e.t.Fatalf("creating a person's branch %s: %d", name, resp.StatusCode)
	}
	for _, b := range e.s.Sandbox.Neon.Snapshot().Projects[0].Branches {
		if b.Name == name {
			return b.ID
		}
	}
	e.t.Fatalf("branch %s not found after creating it", name)
	return ""
}

// previewConclusions lists the conclusions of the preview check runs on sha.
func (e *env) previewConclusions(sha string) []string {
	var out []string
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.Name == "deploybot/preview" && c.HeadSHA == sha {
			out = append(out, c.Conclusion)
		}
	}
	return out
}

// closeAndSweep closes pr as GitHub would tell the bot, then sweeps as an
// hour later, so every path that deletes things has had its turn.
func (e *env) closeAndSweep(pr int) {
	e.t.Helper()
	_, err := e.gh.ClosePR(demo.Repo, pr, false)
	e.must(err)
	e.event(pr, "closed")
	e.idle()
	_, err = e.s.App.Sweep(e.ctx, pipeline.SweepOptions{Now: time.Now().Add(time.Hour)})
	e.must(err)
	e.idle()
}

// TestPersonsBranchIsNotTakenOver: a branch "pr-N" that a person made (or
// that the bot made for another repository) is not the preview's. The
// preview fails naming it and who appears to own it; its password is not
// reset (whoever uses it keeps working), and neither /redeploy --reset-db,
// the close, nor the sweep deletes it.
func TestPersonsBranchIsNotTakenOver(t *testing.T) {
	e := start(t)
	e.must(e.gh.SetPermission(demo.Repo, "ada", "admin"))
	for _, tc := range []struct {
		annotations, owner string
	}{
		{"", "made by a person or another tool"},
		{`,"annotation_value":{"deploybot-creator":"deploybot","deploybot-repo":"someone/else","deploybot-purpose":"preview","deploybot-pr":"%d"}`, "preview branch of someone/else#"},
	} {
		// The next PR's number: the simulated GitHub counts from 1.
		next := len(e.gh.Snapshot().PullRequests) + 1
		name := fmt.Sprintf("pr-%d", next)
		ann := tc.annotations
		if strings.Contains(ann, "%d") {
			ann = fmt.Sprintf(ann, next)
		}
		id := e.personsBranch(name, ann)
		password := e.s.Sandbox.Neon.ConnectionURL(e.s.Sandbox.NeonProject.ID, name)

		pr, sha := e.open(fmt.Sprintf("feature/taken-%d", next), map[string]string{"web/src/t.js": "1\n"}, false)
		if pr != next {
			t.Fatalf("PR #%d, expected #%d", pr, next)
		}
		e.event(pr, "opened")
		e.idle()
		if got := e.live(host("web", pr)); got != "" {
			t.Errorf("the preview went live on a branch that is not its own: %s", got)
		}
		if conclusions := e.previewConclusions(sha); strings.Join(conclusions, ",") != "failure" {
			t.Errorf("preview check runs %v, want one failure", conclusions)
		}
		c := e.comment(pr)
		if !strings.Contains(c, name) || !strings.Contains(c, tc.owner) {
			t.Errorf("the status comment does not name the branch and its owner:\n%s", c)
		}
		e.say(pr, "ada", "/redeploy --reset-db")
		e.idle()
		e.closeAndSweep(pr)

		found := false
		for _, b := range e.s.Sandbox.Neon.Snapshot().Projects[0].Branches {
			found = found || b.ID == id
		}
		if !found {
			t.Errorf("the person's branch %s was deleted", name)
		}
		if got := e.s.Sandbox.Neon.ConnectionURL(e.s.Sandbox.NeonProject.ID, name); got != password {
			t.Errorf("the person's branch %s had its password reset", name)
		}
	}
}

// TestForeignWorkerIsNotOverwritten: a Worker with a preview's name that
// the bot did not make for this pull request — a person's, or tagged for
// another repository — and a preview hostname serving another Worker are
// neither overwritten nor moved, by the preview, its close or the sweep;
// the preview fails naming the Worker (or hostname) and its owner.
func TestForeignWorkerIsNotOverwritten(t *testing.T) {
	e := start(t)
	cf, err := cloudflare.New(cloudflare.Options{AccountID: e.s.Sandbox.Cloudflare.AccountID(), APIToken: "t", BaseURL: e.s.URLs.Cloudflare})
	e.must(err)
	worker := func(name string, tags ...string) {
		_, err := cf.UploadWorker(e.ctx, cloudflare.Script{Name: name, MainModule: "index.js", Tags: tags,
			Modules: []cloudflare.Module{{Name: "index.js", Content: []byte("export default { fetch() { return new Response('someone else') } }")}}})
		e.must(err)
	}
	for _, tc := range []struct {
		name  string
		setup func(pr int) // makes the foreign thing PR #pr will meet
		want  string       // in the status comment
	}{
		{"a person's worker", func(pr int) { worker(fmt.Sprintf("ecom-api-preview-%d", pr)) }, "no deploybot tags: made by a person or another tool"},
		{"another repository's worker", func(pr int) {
			worker(fmt.Sprintf("ecom-api-preview-%d", pr), "deploybot", "deploybot-repo:acme/other", fmt.Sprintf("deploybot-env:pr-%d", pr))
		}, "deploybot-repo:acme/other"},
		{"a hostname serving another worker", func(pr int) {
			worker("someone-else")
			_, err := cf.AttachCustomDomain(e.ctx, e.s.Sandbox.Cloudflare.Snapshot().Zones[0].ID, host("api", pr), "someone-else")
			e.must(err)
		}, `belongs to the Worker "someone-else"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := len(e.gh.Snapshot().PullRequests) + 1
			tc.setup(next)
			before := e.s.Sandbox.Cloudflare.Snapshot()

			pr, _ := e.open(fmt.Sprintf("feature/foreign-%d", next), map[string]string{"api/src/x.js": "1\n"}, false)
			if pr != next {
				t.Fatalf("PR #%d, expected #%d", pr, next)
			}
			e.event(pr, "opened")
			e.idle()
			if c := e.comment(pr); !strings.Contains(c, tc.want) {
				t.Errorf("the status comment does not say whose it is (%q):\n%s", tc.want, c)
			}
			e.closeAndSweep(pr)

			if tc.name == "a hostname serving another worker" {
				if site, ok := e.s.Sandbox.Cloudflare.ResolveHost(host("api", pr), "/"); !ok || site.Script != "someone-else" {
					t.Errorf("the hostname no longer serves its Worker: %+v", site)
				}
			}
			after := e.s.Sandbox.Cloudflare.Snapshot()
			for _, s := range before.Scripts {
				if !slices.ContainsFunc(after.Scripts, func(a cfsim.ScriptState) bool {
					return a.Name == s.Name && a.CurrentVersion == s.CurrentVersion && len(a.Versions) == len(s.Versions)
				}) {
					t.Errorf("the foreign Worker %s was changed or deleted", s.Name)
				}
			}
		})
	}
}
