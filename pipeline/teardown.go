package pipeline

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/neon"
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
	deps := r.p.deps
	var steps []Step
	for _, w := range res.Workers {
		steps = append(steps, Step{Name: "remove:" + w.Name, Do: func(ctx context.Context, log *Log) error {
			cf, err := deps.Cloudflare(res.AccountID)
			if err != nil {
				return err
			}
			_, err = claimScript(ctx, cf, res.AccountID, w.Script, r.meta.Repo.FullName(), previewEnv+strconv.Itoa(r.pr.Number))
			if _, theirs := errors.AsType[*cloudflare.NotOwnedError](err); theirs {
				// The preview never had it (its upload was refused): nothing
				// of ours to remove, and its hostname is not ours either.
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
		}})
	}
	if res.Branch != "" {
		steps = append(steps, Step{Name: "database", Do: func(ctx context.Context, log *Log) error {
			err := deps.Neon.DeleteBranchNamed(ctx, res.Project, res.Branch, neon.Tags{Repo: r.meta.Repo.FullName(), Purpose: neon.PurposePreview, PR: r.pr.Number})
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
		}})
	}
	steps = append(steps, Step{Name: "deployments", Do: func(ctx context.Context, log *Log) error {
		n, err := r.repo.DeactivatePullRequestDeployments(ctx, "preview", r.pr.Number, 0, r.st.DeploymentID)
		log.Printf("%d deployment(s) marked inactive", n)
		return err
	}})

	states, runErr := execute(ctx, deps.State.Steps, r.runID, steps, nil)
	ctx = context.WithoutCancel(ctx)
	status := "succeeded"
	if runErr != nil {
		// What is left stays recorded; the job is retried and the sweeper
		// looks again.
		status = "failed"
		_ = r.finishRun(ctx, status, runErr)
		return runErr
	}
	rows := []templates.Row{}
	now := time.Now()
	if res.Branch != "" {
		rows = append(rows, templates.Row{Kind: "database", Name: res.Branch, Status: templates.Destroyed, Updated: now})
	}
	for _, w := range res.Workers {
		rows = append(rows, templates.Row{Kind: "worker", Name: w.Name, Status: templates.Destroyed, Updated: now})
	}
	r.st.State, r.st.DeployedSHA, r.st.Resources, r.st.DeploymentID = templates.Destroyed, "", resources{}, 0
	if err := r.p.save(ctx, r.st); err != nil {
		return err
	}
	note := "The pull request was closed: its preview was deleted."
	if r.pr.State == "open" {
		note = "The preview was deleted. Push a commit or comment `/deploy` to bring it back."
	}
	// Every PR the bot was asked to build gets the closing word, even when
	// it was closed before anything was built.
	if r.st.CommentID != 0 || len(states) > 1 || r.st.Known || r.p.wasRequested(ctx, r.meta.Repo.FullName(), r.pr.Number) {
		if len(rows) == 0 && r.pr.State != "open" {
			note = "The pull request was closed before a preview was built."
		}
		r.postComment(ctx, templates.Comment{PR: r.pr.Number, State: templates.Destroyed, Rows: rows, Note: note})
	}
	return r.finishRun(ctx, status, nil)
}

// wasRequested reports whether a delivery asked for a preview of the PR.
func (p *previews) wasRequested(ctx context.Context, repo string, pr int) bool {
	return p.deps.State.Deliveries.PreviewRequested(ctx, repo, pr)
}
