package pipeline

import (
	"context"
	"errors"
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

// CreateCheckRun records a check run opened for a run (its external id),
// before it asks GitHub for it: a bot stopped between GitHub creating it
// and the answer leaves a record the sweep finds it by.
func (r trackedRepo) CreateCheckRun(ctx context.Context, run github.CheckRun) (github.CheckRunRef, error) {
	runID, perr := strconv.ParseInt(run.ExternalID, 10, 64)
	if perr != nil || run.Status == github.StatusCompleted {
		return r.Repo.CreateCheckRun(ctx, run)
	}
	// Not recorded means only that the sweep cannot help this one.
	record, rerr := r.checks.Opening(ctx, state.OpenCheck{Repo: r.repo, HeadSHA: run.HeadSHA, InstallationID: r.installation, RunID: runID, Name: run.Name})
	ref, err := r.Repo.CreateCheckRun(ctx, run)
	if err == nil && rerr == nil {
		_ = r.checks.Created(context.WithoutCancel(ctx), record, ref.ID)
	}
	return ref, err
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

// DefaultCheckGrace is how long after its run ended an open check run is
// left to the run's own conclusion. A run concludes its check runs before
// it records its end, so this is a margin, not a need.
const DefaultCheckGrace = time.Minute

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
		action := SweepAction{Repo: o.Repo, Resource: "check run " + o.Name, Reason: "left open by a run that ended (" + o.RunStatus + ")"}
		if o.CheckRunID == 0 {
			action.Reason = "created by a run that stopped before it learned its id (" + o.RunStatus + ")"
			if sw.dry {
				action.Reason = "perhaps " + action.Reason
			}
		}
		if sw.dry {
			sw.actions = append(sw.actions, action)
			continue
		}
		owner, name, _ := strings.Cut(o.Repo, "/")
		repo, err := sw.deps.GitHub.Repo(ctx, o.InstallationID, owner, name)
		if err != nil {
			sw.fail(err)
			continue
		}
		if o.CheckRunID == 0 {
			// Recorded before it was asked for, never after: GitHub may
			// have created it while the bot stopped.
			id, found, err := repo.CheckRunByExternalID(ctx, o.HeadSHA, o.Name, strconv.FormatInt(o.RunID, 10))
			if err != nil {
				sw.fail(err)
				continue
			}
			if !found {
				_ = sw.deps.State.Checks.Forget(ctx, o.ID)
				continue
			}
			o.CheckRunID = id
		}
		sw.actions = append(sw.actions, action)
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
		_ = sw.deps.State.Checks.Forget(ctx, o.ID) // the record: one per check run (open_checks_ref)
		if o.RunStatus == "running" || o.RunStatus == "queued" {
			_ = endRun(ctx, sw.deps, o.RunID, "cancelled", errors.New("its job ended without ending the run"))
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
