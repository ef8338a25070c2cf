package pipeline_test

import (
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/demo"
)

// TestForkCodeNeedsTheSandbox: on a bot configured to run commands without
// a sandbox (runner.isolation: none), the repository's own branches still
// build, but a fork's code never runs, approved or not: its preview and
// its test stages fail saying why, and nothing of it goes live.
func TestForkCodeNeedsTheSandbox(t *testing.T) {
	e := startWith(t, demo.StackOptions{Isolation: "none"})
	e.must(e.gh.SetPermission(demo.Repo, "ada", "admin"))

	own, ownSHA := e.open("feature", map[string]string{"web/src/f.js": "export const f = 1;\n"}, false)
	e.event(own, "opened")
	e.idle()
	if got := e.live(host("web", own)); got != ownSHA {
		t.Fatalf("the repository's own PR without a sandbox: live %q, want %s", got, ownSHA)
	}

	sha, err := e.gh.Commit(demo.Repo, "fork/feature", map[string]string{"web/src/f.js": "export const f = 2;\n"}, "From a fork")
	e.must(err)
	pr, err := e.gh.OpenPR(demo.Repo, "fork/feature", "main", "From a fork", true, false)
	e.must(err)
	e.event(pr, "opened")
	e.idle()
	e.say(pr, "ada", "/deploy "+sha)
	e.idle()

	if got := e.live(host("web", pr)); got != "" {
		t.Errorf("the fork's code went live at %s without a sandbox", got)
	}
	if preview := e.previewConclusions(sha); strings.Join(preview, ",") != "failure" {
		t.Errorf("fork preview check runs: %v, want one failure", preview)
	}
	if c := e.comment(pr); !strings.Contains(c, "sandbox") {
		t.Errorf("the status comment does not say why:\n%s", c)
	}
	for stage, conclusions := range e.stageChecks(sha) {
		for _, c := range conclusions {
			if c == "success" {
				t.Errorf("fork test stage %s ran without a sandbox", stage)
			}
		}
	}
}
