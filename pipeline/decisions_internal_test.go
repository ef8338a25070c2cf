package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/pipeline/state"
	"github.com/revelations-studio/deploybot/templates"
)

// The pipelines' decisions, without a database or a simulator.

func TestDecideSync(t *testing.T) {
	const head, old = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	file := &repoconfig.File{Preview: repoconfig.Preview{On: []string{"opened", "synchronize", "reopened", "ready_for_review"}}}
	drafts := &repoconfig.File{Preview: repoconfig.Preview{On: file.Preview.On, Drafts: true}}
	ev := func(action string) intent.Meta { return intent.Meta{Event: "pull_request", Action: action} }
	comment := intent.Meta{Event: "issue_comment", Action: "created"}
	cases := []struct {
		name    string
		m       intent.Meta
		pr      github.PullRequest
		st      preview
		file    *repoconfig.File
		fileErr error
		opts    syncOptions
		want    syncDecision
	}{
		{"a push deploys", ev("synchronize"), github.PullRequest{HeadSHA: head}, preview{}, file, nil, syncOptions{}, syncDeploy},
		{"an action the file leaves out", ev("edited"), github.PullRequest{HeadSHA: head}, preview{}, file, nil, syncOptions{}, syncIgnored},
		{"a command ignores preview.on", comment, github.PullRequest{HeadSHA: head}, preview{}, file, nil, syncOptions{explicit: true}, syncDeploy},
		{"a draft waits", ev("opened"), github.PullRequest{HeadSHA: head, Draft: true}, preview{}, file, nil, syncOptions{}, syncDraft},
		{"a draft deploys when the file says so", ev("opened"), github.PullRequest{HeadSHA: head, Draft: true}, preview{}, drafts, nil, syncOptions{}, syncDeploy},
		{"a draft deploys on /deploy", comment, github.PullRequest{HeadSHA: head, Draft: true}, preview{}, file, nil, syncOptions{explicit: true}, syncDeploy},
		{"a fork waits for approval", ev("opened"), github.PullRequest{HeadSHA: head, Fork: true}, preview{}, file, nil, syncOptions{}, syncAwaitApproval},
		{"a fork's older approval does not count", ev("synchronize"), github.PullRequest{HeadSHA: head, Fork: true}, preview{ApprovedSHA: old}, file, nil, syncOptions{}, syncAwaitApproval},
		{"a fork's approved head deploys", ev("synchronize"), github.PullRequest{HeadSHA: head, Fork: true}, preview{ApprovedSHA: head}, file, nil, syncOptions{}, syncDeploy},
		{"a bad file from a fork still waits", ev("opened"), github.PullRequest{HeadSHA: head, Fork: true}, preview{}, nil, errors.New("bad"), syncOptions{}, syncAwaitApproval},
		{"a bad file is deployed to report it", ev("opened"), github.PullRequest{HeadSHA: head}, preview{}, nil, errors.New("bad"), syncOptions{}, syncDeploy},
		{"the deployed head is left alone", ev("synchronize"), github.PullRequest{HeadSHA: head}, preview{State: templates.Ready, DeployedSHA: head}, file, nil, syncOptions{}, syncUpToDate},
		{"a failed head is tried again", ev("synchronize"), github.PullRequest{HeadSHA: head}, preview{State: templates.Failed, DeployedSHA: head}, file, nil, syncOptions{}, syncDeploy},
		{"/redeploy rebuilds the deployed head", comment, github.PullRequest{HeadSHA: head}, preview{State: templates.Ready, DeployedSHA: head}, file, nil, syncOptions{explicit: true, force: true}, syncDeploy},
		{"a new head replaces the deployed one", ev("synchronize"), github.PullRequest{HeadSHA: head}, preview{State: templates.Ready, DeployedSHA: old}, file, nil, syncOptions{}, syncDeploy},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := c.st
			if got := decideSync(c.m, c.pr, &st, c.file, c.fileErr, c.opts); got != c.want {
				t.Errorf("decideSync = %d, want %d", got, c.want)
			}
		})
	}
}

// TestRowStatus: what a worker's row of the status comment says, from
// its steps (build, deploy, health).
func TestRowStatus(t *testing.T) {
	st := func(s ...string) map[string]StepState {
		out := map[string]StepState{}
		for i, status := range s {
			if status != "" {
				out[[]string{"build", "deploy", "health"}[i]] = StepState{Status: status}
			}
		}
		return out
	}
	for _, c := range []struct {
		name   string
		states map[string]StepState
		want   string
	}{
		{"not planned yet", st(), templates.Queued},
		{"all pending", st(StepPending, StepPending, StepPending), templates.Queued},
		{"building", st(StepRunning, StepPending, StepPending), templates.Building},
		{"deployed, health check running", st(StepSucceeded, StepSucceeded, StepRunning), templates.Building},
		{"all succeeded", st(StepSucceeded, StepSucceeded, StepSucceeded), templates.Ready},
		{"a failed build", st(StepFailed, StepSkipped, StepSkipped), templates.Failed},
		{"a failed health check", st(StepSucceeded, StepSucceeded, StepFailed), templates.Failed},
		{"cancelled by a newer push", st(StepSucceeded, StepCancelled, StepPending), templates.Cancelled},
		{"skipped after another step failed", st(StepSkipped, StepSkipped, StepSkipped), templates.Cancelled},
	} {
		if got := rowStatus(c.states, "build", "deploy", "health"); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestStepConclusion(t *testing.T) {
	for status, want := range map[string]string{
		StepSucceeded: github.ConclusionSuccess, StepFailed: github.ConclusionFailure,
		StepSkipped: github.ConclusionSkipped, StepCancelled: github.ConclusionCancelled,
		StepRunning: "", StepPending: "",
	} {
		if got := stepConclusion(status); got != want {
			t.Errorf("stepConclusion(%s) = %q, want %q", status, got, want)
		}
	}
}

func TestOwnedFor(t *testing.T) {
	tags := scriptTags("acme/app", "pr-5")
	for _, c := range []struct {
		tags        []string
		repo, scope string
		want        bool
	}{
		{tags, "acme/app", "pr-5", true},
		{tags, "acme/app", "pr-6", false},         // another pull request's
		{tags, "acme/other", "pr-5", false},       // another repository's
		{tags[1:], "acme/app", "pr-5", false},     // not marked as the bot's
		{nil, "acme/app", productionScope, false}, // a person's (claimScript adopts it for production only)
	} {
		if got := ownedFor(c.tags, c.repo, c.scope); got != c.want {
			t.Errorf("ownedFor(%v, %s, %s) = %v, want %v", c.tags, c.repo, c.scope, got, c.want)
		}
	}
}

func TestWarnWorkerLimit(t *testing.T) {
	for _, c := range []struct {
		l     cloudflare.ScriptLookup
		limit int
		warn  string
	}{
		{cloudflare.ScriptLookup{Workers: 50}, 100, ""},
		{cloudflare.ScriptLookup{Workers: 89}, 100, "will have 90 of the 100"},
		{cloudflare.ScriptLookup{Workers: 99}, 100, "will have 100 of the 100"},
		{cloudflare.ScriptLookup{Workers: 100}, 100, "probably be refused"},
		{cloudflare.ScriptLookup{Workers: 100, Found: true}, 100, ""}, // an update adds no Worker
		{cloudflare.ScriptLookup{Workers: 450}, 500, "will have 451 of the 500"},
	} {
		var log Log
		warnWorkerLimit(&log, "acct", c.l, c.limit)
		got := log.String()
		if (c.warn == "") != (got == "") || !strings.Contains(got, c.warn) {
			t.Errorf("%+v, limit %d: %q, want %q", c.l, c.limit, got, c.warn)
		}
	}
}

// TestJudgeGate: a gated deploy goes ahead only when every stage it needs
// passed on its commit.
func TestJudgeGate(t *testing.T) {
	needs := []string{"unit", "integration"}
	cases := []struct {
		name            string
		res             state.Results
		failed, pending string
	}{
		{"nothing ran yet", state.Results{Stages: map[string]string{}}, "[]", "[unit integration]"},
		{"running", state.Results{Stages: map[string]string{"unit": StepSucceeded, "integration": StepRunning}}, "[]", "[integration]"},
		{"planned", state.Results{Stages: map[string]string{"unit": StepPending, "integration": StepPending}}, "[]", "[unit integration]"},
		{"all passed", state.Results{Stages: map[string]string{"unit": StepSucceeded, "integration": StepSucceeded, "static": StepFailed}}, "[]", "[]"},
		{"one failed", state.Results{Stages: map[string]string{"unit": StepFailed, "integration": StepSkipped}}, "[unit integration]", "[]"},
		{"cancelled by a newer push", state.Results{Stages: map[string]string{"unit": StepCancelled, "integration": StepSucceeded}}, "[unit]", "[]"},
		{"[skip ci]", state.Results{Stages: map[string]string{}, Skipped: true}, "[]", "[]"},
		{"left out by its path filter", state.Results{Stages: map[string]string{"unit": stepUnchanged, "integration": StepSucceeded}}, "[]", "[]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := judgeGate(needs, c.res)
			if got := fmt.Sprint(v.failed); got != c.failed {
				t.Errorf("failed = %v, want %s", v.failed, c.failed)
			}
			if got := fmt.Sprint(v.pending); got != c.pending {
				t.Errorf("pending = %v, want %s", v.pending, c.pending)
			}
			if v.passed() != (c.failed == "[]" && c.pending == "[]") {
				t.Errorf("passed = %v", v.passed())
			}
		})
	}
}
