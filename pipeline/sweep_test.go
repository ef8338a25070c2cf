package pipeline_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/demo"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
	"github.com/revelations-studio/deploybot/pipeline"
)

// TestSweepReadsEachRepositoryOnce: the sweep lists the open PRs once,
// reads each base branch's pipeline file once, and asks about a PR alone
// only when the list lacks it. It still finds a closed PR, a PR GitHub does
// not know (deleted: as good as closed) and a preview past its base
// branch's TTL, and leaves the others.
func TestSweepReadsEachRepositoryOnce(t *testing.T) {
	e := start(t)
	files, err := e.s.SampleFiles()
	e.must(err)
	file := files[repoconfig.Path]
	_, err = e.gh.Commit(demo.Repo, "main", map[string]string{repoconfig.Path: file + "preview:\n  ttl: 48h\n"}, "previews live two days")
	e.must(err)
	_, err = e.gh.Commit(demo.Repo, "release", map[string]string{repoconfig.Path: file + "preview:\n  ttl: 1000h\n"}, "release previews live longer")
	e.must(err)

	var onMain []int
	for i := range 4 {
		pr, _ := e.open(fmt.Sprintf("feature/%d", i), map[string]string{"web/src/f.js": fmt.Sprint(i)}, false)
		onMain = append(onMain, pr)
	}
	var onRelease []int
	for i := range 2 {
		branch := fmt.Sprintf("fix/%d", i)
		_, err := e.gh.Commit(demo.Repo, branch, map[string]string{"web/src/fix.js": fmt.Sprint(i)}, "fix")
		e.must(err)
		pr, err := e.gh.OpenPR(demo.Repo, branch, "release", "A fix", false, false)
		e.must(err)
		onRelease = append(onRelease, pr)
	}
	closed := onMain[1]
	_, err = e.gh.ClosePR(demo.Repo, closed, false) // no event delivered
	e.must(err)
	const deleted = 999
	stale := onMain[2]        // untouched for 72 h, TTL 48 h on main
	keptStale := onRelease[0] // untouched for 72 h, TTL 1000 h on release
	destroyed := onMain[3]    // already torn down: nothing to ask
	for _, pr := range append(append([]int{deleted}, onMain...), onRelease...) {
		state, age := "ready", time.Duration(0)
		switch pr {
		case stale, keptStale:
			age = 72 * time.Hour
		case destroyed:
			state = "destroyed"
		}
		_, err := e.s.App.Pool.Exec(e.ctx, `
			INSERT INTO previews (repo, pr_number, installation_id, state, resources, updated_at)
			VALUES ($1, $2, $3, $4, $5, now() - $6::interval)`,
			demo.Repo, pr, e.gh.InstallationID(), state, fmt.Sprintf(`{"branch": "pr-%d"}`, pr), fmt.Sprintf("%d seconds", int(age.Seconds())))
		e.must(err)
	}

	before := e.gh.Snapshot().Requests
	actions, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{DryRun: true})
	e.must(err)
	after := e.gh.Snapshot().Requests
	var said []string
	for _, a := range actions {
		said = append(said, a.String())
	}
	sort.Strings(said)
	want := []string{
		fmt.Sprintf("%s #%d preview: preview unchanged for longer than its TTL (48h0m0s)", demo.Repo, stale),
		fmt.Sprintf("%s #%d preview: pull request is closed", demo.Repo, closed),
		fmt.Sprintf("%s #%d preview: pull request is closed", demo.Repo, deleted),
	}
	sort.Strings(want)
	if strings.Join(said, "\n") != strings.Join(want, "\n") {
		t.Errorf("actions:\n%s\nwant:\n%s", strings.Join(said, "\n"), strings.Join(want, "\n"))
	}

	for route, n := range map[string]int{
		"GET /repos/{owner}/{repo}/pulls":                          1, // one page lists them all
		"GET /repos/{owner}/{repo}/pulls/{pull_number}":            2, // the closed and the deleted one
		"GET /repos/{owner}/{repo}/contents/{path}":                2, // the pipeline file on main and on release
		"POST /repos/{owner}/{repo}/check-runs":                    0,
		"PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}": 0,
	} {
		if got := after[route] - before[route]; got != n {
			t.Errorf("%s: %d requests, want %d", route, got, n)
		}
	}
}

// TestSweepConcludesStrandedCheckRuns: a check run whose conclusion GitHub
// refused while its run ended is concluded by the sweep (at start-up and
// every interval), with its run's outcome, so it never spins on the commit.
func TestSweepConcludesStrandedCheckRuns(t *testing.T) {
	e := start(t)
	// Every attempt to conclude a check run fails while the preview runs.
	e.gh.Faults().Set(fault.Rule{Method: http.MethodPatch, Path: "/repos/" + demo.Repo + "/check-runs/", Rate: 1, Status: http.StatusBadGateway})
	pr, sha := e.open("feature/stranded", map[string]string{"web/src/s.js": "1\n"}, false)
	e.event(pr, "opened")
	e.idle()
	if got := e.checks()[sha]; got != "in_progress" {
		t.Fatalf("preview check run %q: the fault was meant to leave it open", got)
	}
	e.gh.Faults().Set()
	// A run that ended only now keeps its check run for a minute; a sweep
	// with no grace concludes it at once.
	if _, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{}); err != nil || e.checks()[sha] != "in_progress" {
		t.Fatalf("the sweep concluded a check run within its run's grace: %q, %v", e.checks()[sha], err)
	}
	if _, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{CheckGrace: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if got := e.checks()[sha]; got != "success" {
		t.Errorf("after the sweep the preview check run is %q, want success (its run succeeded)", got)
	}
	actions, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{CheckGrace: time.Nanosecond})
	e.must(err)
	for _, a := range actions {
		if strings.HasPrefix(a.Resource, "check run") {
			t.Errorf("a second sweep concluded again: %v", a)
		}
	}
}

// TestSweepEndsStrandedDeployments: a production deployment whose outcome
// GitHub refused stays "in_progress" until the sweep gives it its run's.
func TestSweepEndsStrandedDeployments(t *testing.T) {
	e := start(t)
	release := filepath.Join(e.shared, "release")
	sha := e.merge(map[string]string{"web/build.sh": "while [ ! -f '" + release + "' ]; do sleep 0.05; done\n" + normalBuild})
	e.waitForStep("build:web") // the deployment is in progress by now
	e.gh.Faults().Set(fault.Rule{Method: http.MethodPost, Path: "/repos/" + demo.Repo + "/deployments/", Rate: 1, Status: http.StatusBadGateway})
	e.must(os.WriteFile(release, nil, 0o644))
	e.idle()
	e.gh.Faults().Set()
	last := func() string {
		for _, d := range e.gh.Snapshot().Deployments {
			if d.Environment == "production" && d.SHA == sha && len(d.Statuses) > 0 {
				return d.Statuses[len(d.Statuses)-1].State
			}
		}
		return ""
	}
	if got := last(); got != "in_progress" {
		t.Fatalf("the production deployment's last status is %q: the fault was meant to leave it in progress", got)
	}
	if _, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{CheckGrace: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if got := last(); got != "success" {
		t.Errorf("after the sweep the deployment is %q, want success (the deploy succeeded)", got)
	}
}
