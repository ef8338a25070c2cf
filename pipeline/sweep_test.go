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
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
	"github.com/revelations-studio/deploybot/pipeline"
	"github.com/revelations-studio/deploybot/pipeline/state"
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

// TestSweepFindsCheckRunsWhoseIDWasNeverLearned: the bot stopped after
// GitHub created a stage's check run and before it learned its id, and no
// later run of the branch comes to conclude it. The record written before
// the create lets the sweep find the check run by its external id (the
// run's id) and conclude it; a record of a check run GitHub never created
// is forgotten.
func TestSweepFindsCheckRunsWhoseIDWasNeverLearned(t *testing.T) {
	e := start(t)
	sha, err := e.gh.Commit(demo.Repo, "feature/lost-id", map[string]string{"web/src/l.js": "1\n"}, "change")
	e.must(err)
	st := state.New(e.s.App.Pool)
	runID, err := st.Runs.Start(e.ctx, state.Run{Kind: "test", Repo: demo.Repo, HeadSHA: sha, JobID: 424242, Reason: "push"})
	e.must(err)
	for _, stage := range []string{"unit", "lint"} {
		_, err := st.Checks.Opening(e.ctx, state.OpenCheck{Repo: demo.Repo, HeadSHA: sha, InstallationID: e.gh.InstallationID(), RunID: runID, Name: "deploybot/test: " + stage})
		e.must(err)
	}
	cc, err := github.NewClientCreator(github.Config{V3APIURL: e.s.URLs.GitHub, AppID: e.gh.AppID(), PrivateKey: e.gh.AppPrivateKeyPEM()})
	e.must(err)
	client, err := cc.NewInstallationClient(e.gh.InstallationID())
	e.must(err)
	rep := github.NewReporter(client, demo.Owner, demo.RepoName)
	_, err = rep.CreateCheckRun(e.ctx, github.CheckRun{Name: "deploybot/test: unit", HeadSHA: sha, Status: github.StatusQueued, ExternalID: fmt.Sprint(runID)})
	e.must(err)

	actions, err := e.s.App.Sweep(e.ctx, pipeline.SweepOptions{CheckGrace: -1})
	e.must(err)
	var concluded []string
	for _, a := range actions {
		if strings.HasPrefix(a.Resource, "check run") {
			concluded = append(concluded, a.Resource)
		}
	}
	if len(concluded) != 1 || concluded[0] != "check run deploybot/test: unit" {
		t.Errorf("the sweep concluded %q, want only the unit stage's check run (GitHub never created lint's)", concluded)
	}
	for _, c := range e.gh.Snapshot().CheckRuns {
		if c.HeadSHA == sha && (c.Status != "completed" || c.Conclusion != "cancelled") {
			t.Errorf("check run %s is %s/%s, want completed/cancelled", c.Name, c.Status, c.Conclusion)
		}
	}
	var left int
	e.must(e.s.App.Pool.QueryRow(e.ctx, `SELECT count(*) FROM open_checks WHERE run_id = $1`, runID).Scan(&left))
	if left != 0 {
		t.Errorf("%d records of the run's check runs are left after the sweep", left)
	}
}
