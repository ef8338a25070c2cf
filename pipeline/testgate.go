package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// Deploys that wait for tests (preview.needs_tests, production.needs_tests):
// the plan's "tests" step waits until the named stages passed on the
// deploy's commit, and the steps that change something need it. Builds go
// on meanwhile. A stage that fails stops the deploy as "blocked"; when a
// later test run of the commit ends (a re-run), blocked deploys of that
// commit are queued again, and they deploy once the gate passes.

// gateStep is the name of the step that waits for tests.
const gateStep = "tests"

// statusBlocked is the status of a run that tests held back: a test run's
// end looks for it (releaseGates).
const statusBlocked = "blocked"

// gateVerdict is what the test results of a commit say of a gate.
type gateVerdict struct {
	failed  []string // stages that failed or were cancelled
	pending []string // stages not finished, or not started
}

func (v gateVerdict) passed() bool { return len(v.failed) == 0 && len(v.pending) == 0 }

// judgeGate decides a gate from a commit's test results. Only a stage that
// passed, or that its path filter left out (nothing it tests changed),
// lets a deploy through; one that failed, was cancelled or was
// skipped (a stage it needs failed) holds it back. A commit whose test run
// was skipped as a whole ([skip ci]) is not held back: its author chose so.
func judgeGate(needs []string, res state.Results) gateVerdict {
	var v gateVerdict
	for _, stage := range needs {
		switch res.Stages[stage] {
		case StepSucceeded, stepUnchanged:
		case StepFailed, StepCancelled, StepSkipped:
			v.failed = append(v.failed, stage)
		case "":
			if !res.Skipped {
				v.pending = append(v.pending, stage)
			}
		default: // pending, running
			v.pending = append(v.pending, stage)
		}
	}
	return v
}

var errGateTimeout = errors.New("the tests took too long")

// gateWithin bounds a deploy's wait for its tests; the deploy jobs' time
// allows for it (deployTimeout).
const gateWithin = 20 * time.Minute

// testGate is the "tests" step of a deploy of sha that needs stages.
// waiting is called whenever the stages waited for change, so the PR can
// show them.
func testGate(deps Deps, repo, sha string, needs []string, waiting func(ctx context.Context, pending []string)) Step {
	return Step{Name: gateStep, Do: func(ctx context.Context, log *Log) error {
		every := deps.GateEvery
		if every <= 0 {
			every = 5 * time.Second
		}
		ctx, cancel := context.WithTimeoutCause(ctx, gateWithin, errGateTimeout)
		defer cancel()
		tick := time.NewTicker(every)
		defer tick.Stop()
		var shown string
		for {
			res, err := deps.State.Tests.ResultsAt(ctx, repo, sha)
			if err != nil {
				return err
			}
			v := judgeGate(needs, res)
			switch {
			case len(v.failed) > 0:
				return fmt.Errorf("test stage %s did not pass on %s: the deploy waits until it does (re-run it)", quoteList(v.failed), short(sha))
			case v.passed():
				log.Printf("%s passed on %s", quoteList(needs), short(sha))
				return nil
			}
			if now := strings.Join(v.pending, ","); now != shown {
				shown = now
				log.Printf("waiting for %s", quoteList(v.pending))
				waiting(ctx, v.pending)
			}
			select {
			case <-ctx.Done():
				if errors.Is(context.Cause(ctx), errGateTimeout) {
					return fmt.Errorf("test stage %s did not finish within %s", quoteList(v.pending), gateWithin)
				}
				return ctx.Err()
			case <-tick.C:
			}
		}
	}}
}

// quoteList writes stage names as `a`, `b`.
func quoteList(names []string) string {
	return "`" + strings.Join(names, "`, `") + "`"
}

// releaseGates queues again the deploys of sha that its tests held back,
// now that a test run of sha has ended: they deploy if the gate passes,
// and are blocked again (with the failing stage) if not.
func (t *testRuns) releaseGates(ctx context.Context, r *testRun) {
	if r.file == nil || (r.file.Preview.NeedsTests.Of(r.file.Tests) == nil && r.file.Production.NeedsTests.Of(r.file.Tests) == nil) {
		return
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	m, repo, sha := r.req.meta, r.req.meta.Repo.FullName(), r.req.sha
	// One release per deploy at a time; a later test run releases again.
	unique := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}}
	if pr, blocked, err := t.deps.State.Runs.Blocked(ctx, repo, "preview", sha); err != nil {
		r.logger.Warn().Err(err).Msg("looking for previews the tests held back")
	} else if blocked && pr > 0 {
		args := previewSweepArgs{Repo: m.Repo, InstallationID: m.InstallationID, PR: pr}
		if _, err := client.Insert(ctx, args, unique); err != nil {
			r.logger.Warn().Err(err).Int("pr", pr).Msg("queueing the preview the tests held back")
		}
	}
	if _, blocked, err := t.deps.State.Runs.Blocked(ctx, repo, "production", sha); err != nil {
		r.logger.Warn().Err(err).Msg("looking for a production deploy the tests held back")
	} else if blocked {
		push := intent.ProductionPush{Meta: m, Push: intent.Push{Branch: r.req.branch, After: sha}}
		if _, err := client.Insert(ctx, push, unique); err != nil {
			r.logger.Warn().Err(err).Msg("queueing the production deploy the tests held back")
		}
	}
}
