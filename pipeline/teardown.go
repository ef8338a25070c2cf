package pipeline

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/pipeline/state"
	"github.com/revelations-studio/deploybot/templates"
)

// teardown deletes everything the PR's preview created: hostnames, scripts,
// the database branch, and marks its deployments inactive. Every step treats
// "already gone" as done, so a teardown repeated after a crash converges.
func (r *previewRun) teardown(ctx context.Context) error {
	res := r.st.Resources
	if res.Empty() && r.st.State == templates.Destroyed {
		return nil
	}
	if err := r.startRun(ctx, "teardown"); err != nil {
		return err
	}
	states, runErr := execute(ctx, observeSteps(r.p.deps, "teardown", r.p.deps.State.Steps), r.runID, r.teardownSteps(res), nil)
	ctx = context.WithoutCancel(ctx)
	if runErr != nil {
		// What is left stays recorded; the job is retried and the sweeper
		// looks again.
		_ = r.finishRun(ctx, "failed", runErr)
		return runErr
	}
	// Every PR the bot was asked to build gets the closing word, even when
	// it was closed before anything was built. It is said before the
	// preview is recorded destroyed: a bot stopped in between tears down
	// again (nothing is left to delete) and says it then, where the other
	// order would leave the PR without a word.
	if r.st.CommentID != 0 || len(states) > 1 || r.st.Known || r.p.deps.State.Deliveries.PreviewRequested(ctx, r.meta.Repo.FullName(), r.pr.Number) {
		if err := r.postComment(ctx, teardownComment(r.pr.Number, r.pr.State == "open", res, time.Now())); err != nil {
			// Not recorded destroyed: the job's next attempt says it.
			_ = r.finishRun(ctx, "failed", err)
			return err
		}
	}
	r.st.State, r.st.DeployedSHA, r.st.Resources, r.st.DeploymentID = templates.Destroyed, "", resources{}, 0
	if err := r.p.save(ctx, r.st); err != nil {
		return err
	}
	return r.finishRun(ctx, "succeeded", nil)
}

// teardownSteps removes each Worker, the database branch and the
// deployments, independently of each other.
func (r *previewRun) teardownSteps(res resources) []Step {
	var steps []Step
	for _, w := range res.Workers {
		steps = append(steps, Step{Name: "remove:" + w.Name, Do: func(ctx context.Context, log *Log) error {
			return r.removeWorker(ctx, log, res, w)
		}})
	}
	if res.Branch != "" {
		steps = append(steps, Step{Name: "database", Do: func(ctx context.Context, log *Log) error {
			return r.removeBranch(ctx, log, res)
		}})
	}
	return append(steps, Step{Name: "deployments", Do: func(ctx context.Context, log *Log) error {
		n, err := r.repo.DeactivatePullRequestDeployments(ctx, "preview", r.pr.Number, 0, r.st.DeploymentID)
		log.Printf("%d deployment(s) marked inactive", n)
		return err
	}})
}

// removeWorker detaches a preview Worker's hostname and deletes it, if it
// is the preview's.
func (r *previewRun) removeWorker(ctx context.Context, log *Log, res resources, w state.DeployedWorker) error {
	cf, err := r.p.deps.Cloudflare(res.AccountID)
	if err != nil {
		return err
	}
	_, err = claimScript(ctx, cf, res.AccountID, w.Script, r.meta.Repo.FullName(), previewEnv+strconv.Itoa(r.pr.Number))
	if _, theirs := errors.AsType[*cloudflare.NotOwnedError](err); theirs {
		// The preview never had it (its upload was refused): nothing of
		// ours to remove, and its hostname is not ours either.
		log.Printf("%v", err)
		return nil
	}
	if err != nil {
		return err
	}
	if w.Hostname != "" {
		h := cloudflare.Hostname{ZoneID: res.ZoneID, Name: w.Hostname, Script: w.Script, Target: res.DNSTarget}
		if err := cf.DetachHostname(ctx, cloudflare.HostnameMode(res.Mode), h); err != nil {
			return err
		}
		log.Printf("detached %s", w.Hostname)
	}
	if err := cf.DeleteScript(ctx, w.Script); err != nil {
		return err
	}
	log.Printf("deleted script %s", w.Script)
	return nil
}

// removeBranch deletes the preview's database branch, if it is the
// preview's.
func (r *previewRun) removeBranch(ctx context.Context, log *Log, res resources) error {
	err := r.p.deps.Neon.DeleteBranchNamed(ctx, res.Project, res.Branch, neon.Tags{Repo: r.meta.Repo.FullName(), Purpose: neon.PurposePreview, PR: r.pr.Number})
	if _, theirs := errors.AsType[*neon.NotOwnedError](err); theirs {
		// The preview never had it (its database step was refused):
		// nothing of ours to delete.
		log.Printf("%v", err)
		return nil
	}
	if err != nil {
		return err
	}
	log.Printf("deleted branch %s", res.Branch)
	return nil
}

// teardownComment is the status comment after a teardown of res.
func teardownComment(pr int, open bool, res resources, now time.Time) templates.Comment {
	rows := []templates.Row{}
	if res.Branch != "" {
		rows = append(rows, templates.Row{Kind: "database", Name: res.Branch, Status: templates.Destroyed, Updated: now})
	}
	for _, w := range res.Workers {
		rows = append(rows, templates.Row{Kind: "worker", Name: w.Name, Status: templates.Destroyed, Updated: now})
	}
	note := "The pull request was closed: its preview was deleted."
	switch {
	case open:
		note = "The preview was deleted. Push a commit or comment `/deploy` to bring it back."
	case len(rows) == 0:
		note = "The pull request was closed before a preview was built."
	}
	return templates.Comment{PR: pr, State: templates.Destroyed, Rows: rows, Note: note}
}
