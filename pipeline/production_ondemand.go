package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/pipeline/state"
	"github.com/revelations-studio/deploybot/templates"
)

// Production on demand, from the production check run: "Re-run" deploys
// its commit again, and "Roll back to this" (a button on every successful
// production check run) puts the Worker versions that deploy left live
// back, without running any migration. Both take the authorization of the
// PR commands.

// IdentifierRollback is the production check run's "Roll back to this"
// button.
const IdentifierRollback = "rollback"

// rollbackAction is the button on a successful production check run
// (GitHub allows labels of 20 characters, descriptions of 40).
var rollbackAction = github.CheckAction{Label: "Roll back to this", Identifier: IdentifierRollback, Description: "Put these Worker versions back live"}

// productionAction answers "Re-run" and "Roll back to this" on a production
// check run.
func (q *requests) productionAction(ctx context.Context, in intent.CheckRunAction) error {
	m := in.Delivery()
	logger := jobLogger(ctx, q.deps.Logger).With().Str("repo", m.Repo.FullName()).Str("user", m.Sender).Str("sha", short(in.HeadSHA)).Logger()
	var args river.JobArgs
	switch {
	case m.Action == "rerequested":
		args = intent.ProductionPush{Meta: m, Push: intent.Push{Branch: m.Repo.DefaultBranch, After: in.HeadSHA}, Redeploy: true}
	case m.Action == "requested_action" && in.Identifier == IdentifierRollback:
		args = productionRollbackArgs{Meta: m, SHA: in.HeadSHA, CheckRunID: in.CheckRunID}
	default:
		return nil
	}
	if repo, err := q.gate.open(ctx, m, logger, "production "+m.Action); repo == nil || err != nil {
		return err
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	_, err := client.Insert(ctx, args, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}})
	return err
}

// productionRollbackArgs puts back what the production run reported by
// CheckRunID (at commit SHA) deployed.
type productionRollbackArgs struct {
	Meta       intent.Meta `json:"meta"`
	SHA        string      `json:"sha"`
	CheckRunID int64       `json:"check_run_id"`
}

func (productionRollbackArgs) Kind() string { return "production_rollback" }

// rollback is the production_rollback job: under the repository's
// production lock, each Worker of the earlier deploy is deployed at the
// version it had then, in deploy order, and health-checked.
func (p *production) rollback(ctx context.Context, job *river.Job[productionRollbackArgs]) error {
	a := job.Args
	repoName := a.Meta.Repo.FullName()
	logger := jobLogger(ctx, p.deps.Logger).With().Str("repo", repoName).Str("sha", short(a.SHA)).Logger()
	lock, err := p.deps.State.Lock(ctx, state.ProductionLock(repoName))
	if err != nil {
		return snoozeIfLocked(err)
	}
	defer lock.Release()

	sha, versions, found, err := p.deps.State.Runs.DeployedBy(ctx, repoName, a.CheckRunID)
	if err != nil {
		return err
	}
	if !found || sha != a.SHA {
		logger.Warn().Int64("check_run", a.CheckRunID).Msg("roll back: no successful production deploy recorded for this check run")
		return nil
	}
	repo, err := p.deps.GitHub.Repo(ctx, a.Meta.InstallationID, a.Meta.Repo.Owner, a.Meta.Repo.Name)
	if err != nil {
		return err
	}
	r := &productionRun{deps: p.deps, steps: observeSteps(p.deps, "production", p.deps.State.Steps), repo: repo, meta: a.Meta, sha: sha, branch: a.Meta.Repo.DefaultBranch,
		jobID: job.ID, logger: logger, reason: "rollback"}
	if err := r.start(ctx); err != nil {
		return err
	}
	raw, err := repo.File(ctx, repoconfig.Path, sha)
	if err != nil {
		return r.fail(ctx, "Roll back failed", "The pipeline file at "+short(sha)+" could not be read: "+err.Error(), err)
	}
	file, err := repoconfig.ParseWith(repoconfig.Path+"@"+short(sha), raw, fileAt(ctx, repo, sha))
	if err != nil {
		return r.fail(ctx, "Roll back failed", "```text\n"+err.Error()+"\n```", err)
	}
	tg, err := targetOf(p.deps, repoName)
	if err != nil {
		return r.fail(ctx, "Not configured", err.Error(), err)
	}
	cf, err := p.deps.Cloudflare(tg.cfg.Cloudflare.AccountID)
	if err != nil {
		return r.fail(ctx, "Cloudflare", err.Error(), err)
	}

	var steps []Step
	var workers []*prodWorker
	prev := ""
	for _, w := range file.DeployOrder() {
		version, ok := versions[w.Script]
		if !ok {
			continue // not part of that deploy: left as it is
		}
		pw := &prodWorker{w: w, script: w.Script, hostname: w.Hostname, version: version}
		workers = append(workers, pw)
		name, check := "rollback:"+w.Name, "health:"+w.Name
		var needs []string
		if prev != "" {
			needs = []string{prev}
		}
		steps = append(steps,
			Step{Name: name, Needs: needs, Do: func(ctx context.Context, log *Log) error {
				if d, err := cf.CurrentDeployment(ctx, pw.script); err == nil {
					pw.previous = d.VersionID()
				}
				if _, err := cf.Deploy(ctx, pw.script, pw.version); err != nil {
					return err
				}
				log.Printf("%s: version %s (was %s)", pw.script, pw.version, orNone(pw.previous))
				return nil
			}},
			Step{Name: check, Needs: []string{name}, Do: func(ctx context.Context, log *Log) error {
				return checkHealth(ctx, p.deps, log, pw.w, pw.hostname)
			}},
		)
		prev = check
	}
	states, runErr := execute(ctx, r.steps, r.runID, steps, nil)
	return r.concludeRollback(context.WithoutCancel(ctx), workers, versions, states, runErr)
}

// concludeRollback reports a rollback on its check run and a GitHub
// Deployment, and records the versions now live.
func (r *productionRun) concludeRollback(ctx context.Context, workers []*prodWorker, versions map[string]string, states []StepState, runErr error) error {
	check := templates.Check{}
	for _, s := range states {
		check.Steps = append(check.Steps, templates.CheckStep{Name: s.Name, Status: s.Status, Duration: s.Duration(), Log: s.Log})
	}
	summary, _ := templates.CheckSummary(check)
	text, _ := templates.CheckText(check)
	lines := []string{"| Worker | Version before | Version now |", "| --- | --- | --- |"}
	for _, pw := range workers {
		lines = append(lines, fmt.Sprintf("| %s | `%s` | `%s` |", pw.w.Name, orNone(pw.previous), pw.version))
	}
	run := github.CheckRun{Name: CheckProduction, Status: github.StatusCompleted, CompletedAt: time.Now()}
	status, state := "succeeded", github.DeploySuccess
	note := fmt.Sprintf("Production serves the Worker versions deployed from `%s` again. No migration ran: the database stays as the newer deploys left it.", short(r.sha))
	run.Conclusion, run.Actions = github.ConclusionSuccess, []github.CheckAction{rollbackAction}
	title := "Rolled back to " + short(r.sha)
	if runErr != nil {
		status, state, title, run.Conclusion, run.Actions = "failed", github.DeployFailure, "Roll back failed", github.ConclusionFailure, nil
		note = fmt.Sprintf("`%s` failed: production may serve a mix of versions. See the steps below.", firstFailed(states))
	} else if err := r.deps.State.Runs.SetVersions(ctx, r.runID, versions); err != nil {
		r.logger.Warn().Err(err).Msg("recording the versions rolled back to")
	}
	run.Output = &github.CheckOutput{Title: title, Summary: note + "\n\n" + strings.Join(lines, "\n") + "\n\n" + summary, Text: text}
	if err := r.repo.UpdateCheckRun(ctx, r.checkID, run); err != nil {
		r.logger.Warn().Err(err).Msg("concluding the rollback's check run")
	}
	if id, err := r.repo.CreateDeployment(ctx, github.Deployment{Ref: r.sha, Environment: "production", Production: true, Description: "Roll back to " + short(r.sha)}); err == nil {
		_ = r.repo.SetDeploymentStatus(ctx, id, github.DeploymentStatus{State: state, LogURL: r.checkURL, Description: note, AutoInactive: true})
	} else {
		r.logger.Warn().Err(err).Msg("recording the rollback as a deployment")
	}
	r.logger.Info().Str("outcome", status).Msg("production rollback")
	return r.finish(ctx, status, runErr)
}
