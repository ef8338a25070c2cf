package pipeline

import (
	"cmp"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// Every check run the bot opens is concluded, whatever stops its run: a run
// concludes its own, the next run of a PR or branch concludes what a dead
// process left (concludeAbandoned), and the sweep — at start-up and every
// SweepInterval — concludes any still open whose run has ended. For the
// sweep to find them, every check run opened and concluded through the
// pipelines' Repo is recorded (open_checks).

// checkTracking wraps the GitHub port so that the check runs the
// pipelines open and conclude are recorded.
type checkTracking struct {
	GitHub
	checks state.Checks
}

func (g checkTracking) Repo(ctx context.Context, installationID int64, owner, name string) (Repo, error) {
	repo, err := g.GitHub.Repo(ctx, installationID, owner, name)
	if err != nil {
		return nil, err
	}
	return trackedRepo{Repo: repo, checks: g.checks, repo: owner + "/" + name, installation: installationID}, nil
}

type trackedRepo struct {
	Repo
	checks       state.Checks
	repo         string
	installation int64
}

// CreateCheckRun records a check run opened for a run (its external id).
func (r trackedRepo) CreateCheckRun(ctx context.Context, run github.CheckRun) (github.CheckRunRef, error) {
	ref, err := r.Repo.CreateCheckRun(ctx, run)
	if err != nil || run.Status == github.StatusCompleted {
		return ref, err
	}
	if runID, perr := strconv.ParseInt(run.ExternalID, 10, 64); perr == nil {
		// Not recorded means only that the sweep cannot help this one.
		_ = r.checks.Opened(context.WithoutCancel(ctx), state.OpenCheck{Repo: r.repo, CheckRunID: ref.ID, InstallationID: r.installation, RunID: runID, Name: run.Name})
	}
	return ref, nil
}

// UpdateCheckRun records a check run concluded.
func (r trackedRepo) UpdateCheckRun(ctx context.Context, id int64, run github.CheckRun) error {
	if err := r.Repo.UpdateCheckRun(ctx, id, run); err != nil {
		return err
	}
	if run.Status == github.StatusCompleted {
		_ = r.checks.Concluded(context.WithoutCancel(ctx), r.repo, state.KindCheck, id)
	}
	return nil
}

// SetDeploymentStatus records a deployment concluded by a final status
// (an in-progress one is recorded open by the run that owns it).
func (r trackedRepo) SetDeploymentStatus(ctx context.Context, id int64, s github.DeploymentStatus) error {
	if err := r.Repo.SetDeploymentStatus(ctx, id, s); err != nil {
		return err
	}
	switch s.State {
	case github.DeployInProgress, "queued", "pending":
	default:
		_ = r.checks.Concluded(context.WithoutCancel(ctx), r.repo, state.KindDeployment, id)
	}
	return nil
}

// checkGrace is how long after its run ended an open check run is left to
// the run's own conclusion.
const checkGrace = time.Minute

// concludeStranded concludes the open check runs whose run has ended (or
// whose job ended without ending its run), with the conclusion the run's
// (or the stage's) status gives.
func (sw *sweep) concludeStranded(ctx context.Context) {
	stranded, err := sw.deps.State.Checks.Stranded(ctx, sw.checkGrace)
	if err != nil {
		sw.fail(err)
		return
	}
	for _, o := range stranded {
		sw.actions = append(sw.actions, SweepAction{Repo: o.Repo, Resource: "check run " + o.Name, Reason: "left open by a run that ended (" + o.RunStatus + ")"})
		if sw.dry {
			continue
		}
		owner, name, _ := strings.Cut(o.Repo, "/")
		repo, err := sw.deps.GitHub.Repo(ctx, o.InstallationID, owner, name)
		if err != nil {
			sw.fail(err)
			continue
		}
		conclusion := strandedConclusion(o.RunStatus, o.StepStatus)
		note := "The run this reports ended (" + o.RunStatus + ") without concluding it: the bot stopped, or GitHub failed, while it reported. deploybot's sweep concluded it."
		if o.Kind == state.KindDeployment {
			st := github.DeployError
			if conclusion == github.ConclusionSuccess {
				st = github.DeploySuccess
			}
			err = repo.SetDeploymentStatus(ctx, o.CheckRunID, github.DeploymentStatus{State: st, Description: "Ended (" + o.RunStatus + "): concluded by the sweep"})
		} else {
			err = repo.UpdateCheckRun(ctx, o.CheckRunID, github.CheckRun{
				Name: o.Name, Status: github.StatusCompleted, Conclusion: conclusion, CompletedAt: time.Now(),
				Output: &github.CheckOutput{Title: "Ended (" + conclusion + ")", Summary: note},
			})
		}
		if err != nil {
			sw.fail(err)
			continue
		}
		_ = sw.deps.State.Checks.Concluded(ctx, o.Repo, cmp.Or(o.Kind, state.KindCheck), o.CheckRunID)
		if o.RunStatus == "running" || o.RunStatus == "queued" {
			_ = sw.deps.State.Runs.Finish(ctx, o.RunID, "cancelled", "its job ended without ending the run")
		}
	}
}

// strandedConclusion is what a check run left open gets: its stage's
// outcome when it reports one, else its run's.
func strandedConclusion(runStatus, stepStatus string) string {
	switch stepStatus {
	case StepSucceeded:
		return github.ConclusionSuccess
	case StepFailed:
		return github.ConclusionFailure
	case StepSkipped, stepUnchanged:
		return github.ConclusionSkipped
	case "":
	default: // never finished
		return github.ConclusionCancelled
	}
	switch runStatus {
	case "succeeded":
		return github.ConclusionSuccess
	case "failed", statusBlocked:
		return github.ConclusionFailure
	case "skipped":
		return github.ConclusionSkipped
	}
	return github.ConclusionCancelled
}
