package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/internal/runner"
	"github.com/revelations-studio/deploybot/internal/workspace"
	"github.com/revelations-studio/deploybot/pipeline/state"
	"github.com/revelations-studio/deploybot/templates"
)

// CheckProduction is the name of the production deploy's check run.
const CheckProduction = "deploybot/production"

// registerProduction adds the production deploy worker (ProductionPush).
func registerProduction(workers *river.Workers, deps Deps) {
	prod := &production{deps: deps}
	addWorker(workers, deployTimeout, prod.deploy)
	addWorker(workers, deployTimeout, prod.rollback)
}

// production deploys the default branch after a merge: validate and
// build everything first, migrate, then deploy the workers one at a time,
// each health-checked, rolling back what this run changed if one fails.
//
// Production runs of a repository never overlap and are never cancelled
// mid-step: a merge arriving during a deploy waits its turn, and when
// several wait, only the newest deploys (the older ones conclude as
// superseded without touching anything).
type production struct {
	deps Deps
}

func (p *production) deploy(ctx context.Context, job *river.Job[intent.ProductionPush]) error {
	in := job.Args
	m := in.Delivery()
	repoName := m.Repo.FullName()
	logger := jobLogger(ctx, p.deps.Logger).With().Str("repo", repoName).Str("sha", short(in.After)).Logger()

	lock, err := p.deps.State.Lock(ctx, state.ProductionLock(repoName))
	if err != nil {
		return snoozeIfLocked(err)
	}
	defer lock.Release()

	// The same push delivered again under another delivery id deploys
	// nothing new: the latest production run is already for this commit.
	// (A branch reset to an older commit after a newer deploy is not a
	// duplicate: a later run exists for another commit, and it deploys.)
	last, err := p.deps.State.Runs.LastProduction(ctx, repoName, job.ID)
	if err != nil {
		return err
	}
	if last == in.After && !in.Redeploy {
		logger.Info().Msg("this commit's production run already happened: a duplicate push")
		return nil
	}
	// The default branch gets its test stages like every other branch (a
	// gated deploy waits for them). Unique by args: a retried or snoozed
	// production job queues them once; a redeploy tests nothing new.
	if client := river.ClientFromContext[pgx.Tx](ctx); client != nil && !in.Redeploy {
		if _, err := client.Insert(ctx, intent.TestRequested{Meta: in.Meta, Push: in.Push},
			&river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}); err != nil {
			logger.Warn().Err(err).Msg("queueing the default branch's tests")
		}
	}

	repo, err := p.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
	if err != nil {
		return err
	}
	pr := &productionRun{deps: p.deps, steps: observeSteps(p.deps, "production", p.deps.State.Steps), repo: repo, meta: m, sha: in.After, branch: in.Branch, jobID: job.ID, logger: logger,
		reason: map[bool]string{false: "push", true: "rerun"}[in.Redeploy]}
	if err := pr.concludeAbandoned(ctx); err != nil {
		return err
	}
	newest, err := newestProductionPush(ctx, p.deps, repo, repoName, in.Branch)
	if err != nil {
		return err
	}
	raw, err := repo.File(ctx, repoconfig.Path, in.After)
	if errors.Is(err, github.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s@%s: %w", repoconfig.Path, short(in.After), err)
	}
	file, fileErr := repoconfig.ParseWith(repoconfig.Path+"@"+short(in.After), raw, fileAt(ctx, repo, in.After))
	if fileErr == nil && !file.Production.Enabled {
		logger.Info().Msg("production deploys are not enabled in the pipeline file")
		return nil
	}
	if newest != "" && newest != in.After {
		return pr.supersede(ctx, newest)
	}
	return pr.run(ctx, file, fileErr)
}

// newestProductionPush is the commit that should be live once the queue
// drains: the default branch's head on GitHub. Push deliveries can arrive
// out of order, so the newest one received may not be the newest push; it
// only stands in when the branch cannot be found.
func newestProductionPush(ctx context.Context, deps Deps, repo Repo, repoName, branch string) (string, error) {
	if branch != "" {
		head, found, err := repo.BranchHead(ctx, branch)
		if err != nil {
			return "", err
		}
		if found {
			return head, nil
		}
	}
	return deps.State.Deliveries.LatestProductionPush(ctx, repoName)
}

type productionRun struct {
	deps   Deps
	steps  stepRecorder // the run's steps (Deps.State's in the bot)
	repo   Repo
	meta   intent.Meta
	sha    string
	branch string // the default branch the push went to
	reason string // push, rerun, rollback
	jobID  int64
	logger zerolog.Logger

	runID        int64
	checkID      int64
	checkURL     string
	deploymentID int64
}

// prodWorker is a worker's production deploy and what it replaced.
type prodWorker struct {
	w        repoconfig.Worker
	script   string
	hostname string
	previous string // version live before this run ("" if none)
	version  string // version this run deployed
	deployed bool   // this run changed what the script serves
}

func (r *productionRun) start(ctx context.Context) error {
	id, err := r.deps.State.Runs.Start(ctx, state.Run{Kind: "production", Repo: r.meta.Repo.FullName(), HeadSHA: r.sha, Branch: r.branch, JobID: r.jobID, Reason: r.reason, Actor: r.meta.Sender})
	if err != nil {
		return err
	}
	r.runID = id
	// As in previewRun.startCheck: a cancelled run still learns the id of
	// the check run it created, so it can conclude it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkCreateTimeout)
	defer cancel()
	ref, err := r.repo.CreateCheckRun(ctx, github.CheckRun{
		Name: CheckProduction, HeadSHA: r.sha, Status: github.StatusInProgress, StartedAt: time.Now(),
		ExternalID: strconv.FormatInt(r.runID, 10),
		DetailsURL: r.deps.runPage(r.runID),
		Output:     r.startOutput(),
	})
	if err != nil {
		return fmt.Errorf("create production check run: %w", err)
	}
	r.checkID, r.checkURL = ref.ID, detailsURL(r.deps, r.runID, ref)
	return r.deps.State.Runs.AttachCheckRun(ctx, r.runID, ref.ID)
}

func (r *productionRun) startOutput() *github.CheckOutput {
	if r.reason == "rollback" {
		return &github.CheckOutput{Title: "Rolling back to " + short(r.sha), Summary: "Putting the Worker versions of this deploy back, one Worker at a time."}
	}
	return &github.CheckOutput{Title: "Deploying to production", Summary: "Validating and building before anything changes."}
}

// showWaiting shows on the check run which test stages the deploy waits
// for.
func (r *productionRun) showWaiting(ctx context.Context, pending []string) {
	if err := r.repo.UpdateCheckRun(context.WithoutCancel(ctx), r.checkID, github.CheckRun{
		Name: CheckProduction, Status: github.StatusInProgress,
		Output: &github.CheckOutput{Title: "Waiting for tests", Summary: waitingNote(pending, r.sha, "production deploys")},
	}); err != nil {
		r.logger.Warn().Err(err).Msg("showing the wait for tests on the check run")
	}
}

// supersede concludes a queued production push that a newer one replaces.
func (r *productionRun) supersede(ctx context.Context, newest string) error {
	if err := r.start(ctx); err != nil {
		return err
	}
	r.logger.Info().Str("newest", short(newest)).Msg("production push superseded by a newer one")
	note := fmt.Sprintf("A newer commit (`%s`) reached the default branch while this one waited; only the newest deploys.", short(newest))
	if err := r.repo.UpdateCheckRun(ctx, r.checkID, github.CheckRun{
		Name: CheckProduction, Status: github.StatusCompleted, Conclusion: github.ConclusionSkipped, CompletedAt: time.Now(),
		Output: &github.CheckOutput{Title: "Superseded by " + short(newest), Summary: note},
	}); err != nil {
		return err
	}
	return r.finish(ctx, "skipped", nil)
}

func (r *productionRun) run(ctx context.Context, file *repoconfig.File, fileErr error) error {
	if err := r.start(ctx); err != nil {
		return err
	}
	if fileErr != nil {
		return r.fail(ctx, "The pipeline file has errors", "```text\n"+fileErr.Error()+"\n```", fileErr)
	}
	tg, err := targetOf(r.deps, r.meta.Repo.FullName())
	if err != nil {
		return r.fail(ctx, "Not configured", err.Error(), err)
	}
	cf, err := r.deps.Cloudflare(tg.cfg.Cloudflare.AccountID)
	if err != nil {
		return r.fail(ctx, "Cloudflare", err.Error(), err)
	}
	did, err := r.repo.CreateDeployment(ctx, github.Deployment{
		Ref: r.sha, Environment: "production", Production: true, Description: "Production deploy of " + short(r.sha),
	})
	if err != nil {
		return r.fail(ctx, "GitHub Deployment", err.Error(), err)
	}
	r.deploymentID = did
	if err := r.repo.SetDeploymentStatus(ctx, did, github.DeploymentStatus{State: github.DeployInProgress, LogURL: r.checkURL}); err == nil {
		// Open until this run sets its outcome; the sweep ends it if the
		// run cannot (checks_reconcile.go).
		_ = r.deps.State.Checks.Opened(ctx, state.OpenCheck{Kind: state.KindDeployment, Repo: r.meta.Repo.FullName(), CheckRunID: did,
			InstallationID: r.meta.InstallationID, RunID: r.runID, Name: "production"})
	}
	ws, err := newWorkspace(r.deps)
	if err != nil {
		return r.fail(ctx, "No workspace", err.Error(), err)
	}
	defer ws.Remove()

	pl := newProdPlan(r, file, tg, cf, ws)
	states, runErr := execute(ctx, r.steps, r.runID, pl.steps(), nil)
	var rollback []StepState
	if runErr != nil {
		rollback = pl.rollback(context.WithoutCancel(ctx))
	}
	return r.conclude(context.WithoutCancel(ctx), file, pl.workers, states, rollback, runErr)
}

// prodPlan is a production run's steps and what they share: the source,
// then validation and every build (nothing changes until all pass), the
// migration, then each Worker deployed and health-checked one after the
// other, each after the Workers it binds.
type prodPlan struct {
	r        *productionRun
	file     *repoconfig.File
	tg       target
	cf       Workers
	ws       *workspace.Workspace
	env      map[string]string
	branch   string // the production database branch
	workers  []*prodWorker
	services map[string]string // worker name → script, for service bindings
	dbURL    string            // set by the migrate step
}

func newProdPlan(r *productionRun, file *repoconfig.File, tg target, cf Workers, ws *workspace.Workspace) *prodPlan {
	pn := ProductionNames(file)
	pl := &prodPlan{r: r, file: file, tg: tg, cf: cf, ws: ws, branch: pn.Branch, services: map[string]string{}}
	pl.env = withEnvironmentVars(commandEnv("production", tg.repo, r.sha), file, repoconfig.EnvProduction, pl.placeholders())
	byName := map[string]WorkerNames{}
	for _, wn := range pn.Workers {
		byName[wn.Worker] = wn
	}
	// One by one, each after the Workers it binds: Cloudflare refuses an
	// upload bound to a Worker that does not exist yet.
	for _, w := range file.DeployOrder() {
		wn := byName[w.Name]
		pl.workers = append(pl.workers, &prodWorker{w: w, script: wn.Script, hostname: wn.Hostname})
		pl.services[w.Name] = wn.Script
	}
	return pl
}

// placeholders are what production's vars may use.
func (pl *prodPlan) placeholders() map[string]string {
	return map[string]string{"sha": pl.r.sha, "sha7": short(pl.r.sha), "branch": pl.r.branch, "repo": pl.r.meta.Repo.Name}
}

func (pl *prodPlan) steps() []Step {
	steps := []Step{sourceStep(pl.r.repo, pl.tg.repo, pl.r.sha, pl.ws), {Name: "validate", Do: pl.validate}}
	builds := []string{"validate"}
	checkout := "source"
	if pl.file.Setup.Run != "" {
		checkout = "setup"
		steps = append(steps, setupStep(pl.r.deps, pl.file, checkout, "source", pl.ws.Dir, func() map[string]string { return pl.env }, false,
			cacheFor(pl.tg.repo, pl.r.branch, pl.r.branch, false)))
		builds = append(builds, checkout) // the migration may need what setup installed
	}
	for _, pw := range pl.workers {
		name := "build:" + pw.w.Name
		builds = append(builds, name)
		steps = append(steps, Step{Name: name, Needs: []string{checkout}, Do: func(ctx context.Context, log *Log) error { return pl.build(ctx, log, pw) }})
	}
	// A gated deploy changes nothing (the migration first) before its
	// tests passed on the merged commit.
	if needs := pl.file.Production.NeedsTests.Of(pl.file.Tests); len(needs) > 0 {
		steps = append(steps, testGate(pl.r.deps, pl.tg.repo, pl.r.sha, needs, pl.r.showWaiting))
		builds = append(builds, gateStep)
	}
	steps = append(steps, Step{Name: "migrate", Needs: builds, Do: pl.migrate})
	prev := "migrate"
	for _, pw := range pl.workers {
		deploy, check := "deploy:"+pw.w.Name, "health:"+pw.w.Name
		steps = append(steps,
			Step{Name: deploy, Needs: []string{prev}, Do: func(ctx context.Context, log *Log) error { return pl.deploy(ctx, log, pw) }},
			Step{Name: check, Needs: []string{deploy}, Do: func(ctx context.Context, log *Log) error {
				return checkHealth(ctx, pl.r.deps, log, pw.w, pw.hostname)
			}},
		)
		prev = check
	}
	return steps
}

// validate touches nothing: every Worker must be absent or ours, and every
// hostname free or already ours, before anything changes. It notes the
// version each Worker serves now, for a rollback.
func (pl *prodPlan) validate(ctx context.Context, log *Log) error {
	acct := pl.tg.cfg.Cloudflare
	for _, pw := range pl.workers {
		for _, name := range pl.file.BindingsIn(pw.w, repoconfig.EnvProduction).Secrets {
			if _, err := secretIn(pl.tg.cfg, pl.file, pl.tg.repo, repoconfig.EnvProduction, pw.w.Name, name); err != nil {
				return err
			}
		}
	}
	for _, pw := range pl.workers {
		found, err := claimScript(ctx, pl.cf, acct.AccountID, pw.script, pl.tg.repo, productionScope)
		if err != nil {
			return err
		}
		warnWorkerLimit(log, acct.AccountID, found, pl.r.deps.WorkersLimit)
		if pw.hostname == "" {
			continue
		}
		owner, err := hostnameOwner(ctx, pl.cf, pl.tg.mode, acct.ZoneID, pw.hostname)
		if err != nil {
			return err
		}
		switch owner {
		case "":
			log.Printf("%s is not attached yet: it will be attached to %s", pw.hostname, pw.script)
		case pw.script:
			log.Printf("%s → %s", pw.hostname, pw.script)
		default:
			return fmt.Errorf("%s serves Worker %s, not %s: fix the hostname in Cloudflare or the pipeline file", pw.hostname, owner, pw.script)
		}
		if d, err := pl.cf.CurrentDeployment(ctx, pw.script); err == nil {
			pw.previous = d.VersionID()
		} else if !errors.Is(err, cloudflare.ErrNoDeployment) && !cloudflare.IsNotFound(err) {
			return err
		}
		log.Printf("%s: live version %s", pw.script, orNone(pw.previous))
	}
	return nil
}

func (pl *prodPlan) build(ctx context.Context, log *Log, pw *prodWorker) error {
	if pw.w.Build == "" {
		return nil
	}
	dir := filepath.Join(pl.ws.Dir(), filepath.FromSlash(pw.w.Dir))
	return runCommand(ctx, pl.r.deps.Commands, log, runner.Command{Script: pw.w.Build, Dir: dir, Workspace: pl.ws.Dir(),
		Env: withEnv(pl.env, map[string]string{"DEPLOYBOT_WORKER": pw.w.Name}), Timeout: 20 * time.Minute})
}

// migrate runs the pipeline file's migration on the production branch
// (never undone by a rollback) and learns the URL the Workers get.
func (pl *prodPlan) migrate(ctx context.Context, log *Log) error {
	deps, db := pl.r.deps, pl.file.Database
	b, found, err := deps.Neon.FindBranch(ctx, db.Project, pl.branch)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("the production database branch %q does not exist in Neon project %s", pl.branch, db.Project)
	}
	uris, err := deps.Neon.ConnectionURIs(ctx, db.Project, b.ID, "", "")
	if err != nil {
		return err
	}
	pl.dbURL = uris.Pooled
	if db.Migrate == "" {
		log.Printf("no migrate command")
		return nil
	}
	log.Printf("migrating %s (migrations are never rolled back automatically)", pl.branch)
	return runCommand(ctx, deps.Commands, log, runner.Command{Script: db.Migrate, Dir: pl.ws.Dir(),
		Env: withEnv(pl.env, map[string]string{"DATABASE_URL": uris.Direct}), Secrets: uriSecrets(uris), Timeout: 15 * time.Minute})
}

func (pl *prodPlan) deploy(ctx context.Context, log *Log, pw *prodWorker) error {
	acct := pl.tg.cfg.Cloudflare
	script, err := buildScript(pl.r.deps, pl.tg.repo, scriptSpec{
		worker: pw.w, env: repoconfig.EnvProduction, bindings: pl.file.BindingsIn(pw.w, repoconfig.EnvProduction), placeholders: pl.placeholders(),
		name: pw.script, workspace: pl.ws.Dir(), commit: pl.r.sha, dbURL: pl.dbURL,
		scope: productionScope, repoCfg: pl.tg.cfg, file: pl.file, services: pl.services,
	}, log)
	if err != nil {
		return err
	}
	pw.deployed = true // from here on, a failure needs a rollback
	if pw.version, err = pl.cf.UploadWorker(ctx, script); err != nil {
		return err
	}
	log.Printf("%s: version %s (was %s)", pw.script, pw.version, orNone(pw.previous))
	if pw.hostname == "" {
		return nil
	}
	return pl.cf.AttachHostname(ctx, pl.tg.mode, cloudflare.Hostname{ZoneID: acct.ZoneID, Name: pw.hostname, Script: pw.script, Target: acct.DNSTarget})
}

// undo is what a rollback does to one Worker a failed run changed.
type undo struct {
	pw *prodWorker
	// remove: the Worker had no live version before the run, so its
	// hostname is detached and it is deleted again.
	remove bool
}

// rollbackChoice decides what a failed production run undoes: every Worker
// it changed, newest change first, goes back to the version live before
// the run, or is removed when it had none. Workers the run never reached
// are left alone; the migration is never undone.
func rollbackChoice(workers []*prodWorker) []undo {
	var out []undo
	for i := len(workers) - 1; i >= 0; i-- {
		if pw := workers[i]; pw.deployed {
			out = append(out, undo{pw: pw, remove: pw.previous == ""})
		}
	}
	return out
}

// rollback carries out rollbackChoice, one Worker after the other.
func (pl *prodPlan) rollback(ctx context.Context) []StepState {
	acct := pl.tg.cfg.Cloudflare
	var steps []Step
	for _, u := range rollbackChoice(pl.workers) {
		pw := u.pw
		step := Step{Name: "rollback:" + pw.w.Name, Do: func(ctx context.Context, log *Log) error {
			if !u.remove {
				if _, err := pl.cf.Deploy(ctx, pw.script, pw.previous); err != nil {
					return err
				}
				log.Printf("%s: back to version %s", pw.script, pw.previous)
				return nil
			}
			if pw.hostname != "" {
				h := cloudflare.Hostname{ZoneID: acct.ZoneID, Name: pw.hostname, Script: pw.script, Target: acct.DNSTarget}
				if err := pl.cf.DetachHostname(ctx, pl.tg.mode, h); err != nil {
					return err
				}
			}
			log.Printf("%s had no live version before: removed", pw.script)
			return pl.cf.DeleteScript(ctx, pw.script)
		}}
		if len(steps) > 0 {
			step.Needs = []string{steps[len(steps)-1].Name}
		}
		steps = append(steps, step)
	}
	if len(steps) == 0 {
		return nil
	}
	states, err := execute(ctx, pl.r.steps, pl.r.runID, steps, nil)
	if err != nil {
		pl.r.logger.Error().Err(err).Msg("production rollback failed")
	}
	return states
}

func (r *productionRun) conclude(ctx context.Context, file *repoconfig.File, workers []*prodWorker, states, rollback []StepState, runErr error) error {
	check := templates.Check{}
	for _, s := range append(states, rollback...) {
		check.Steps = append(check.Steps, templates.CheckStep{Name: s.Name, Status: s.Status, Duration: s.Duration(), Log: s.Log})
	}
	var lines []string
	lines = append(lines, "| Worker | Previous version | New version | URL |", "| --- | --- | --- | --- |")
	for _, pw := range workers {
		url := "—"
		if pw.hostname != "" {
			url = "https://" + pw.hostname
		}
		lines = append(lines, fmt.Sprintf("| %s | `%s` | `%s` | %s |", pw.w.Name, orNone(pw.previous), orNone(pw.version), url))
	}
	summary, _ := templates.CheckSummary(check)
	text, _ := templates.CheckText(check)
	run := github.CheckRun{Name: CheckProduction, Status: github.StatusCompleted, CompletedAt: time.Now()}
	status, deployState := "succeeded", github.DeploySuccess
	run.Conclusion = github.ConclusionSuccess
	title := "Deployed " + short(r.sha)
	if runErr != nil {
		run.Conclusion, status, deployState, title = github.ConclusionFailure, "failed", github.DeployFailure, "Production deploy failed"
		if firstFailed(states) == gateStep {
			// Held back by its tests: a later test run of the commit
			// queues it again (releaseGates).
			status, title = statusBlocked, "Held back: a test stage failed"
		}
	}
	note := productionNote(r.sha, runErr != nil, states, rollback, file.Database.Migrate)
	run.Output = &github.CheckOutput{
		Title:   title,
		Summary: note + "\n\n" + strings.Join(lines, "\n") + "\n\n" + summary,
		Text:    text,
	}
	if runErr == nil {
		versions := map[string]string{}
		for _, pw := range workers {
			versions[pw.script] = pw.version
		}
		if err := r.deps.State.Runs.SetVersions(ctx, r.runID, versions); err != nil {
			r.logger.Warn().Err(err).Msg("recording the versions deployed")
		}
		run.Actions = []github.CheckAction{rollbackAction}
	}
	if err := r.repo.UpdateCheckRun(ctx, r.checkID, run); err != nil {
		r.logger.Warn().Err(err).Msg("concluding the production check run")
	}
	envURL := ""
	for _, pw := range workers {
		if pw.hostname != "" {
			envURL = "https://" + pw.hostname
			break
		}
	}
	if err := r.repo.SetDeploymentStatus(ctx, r.deploymentID, github.DeploymentStatus{
		State: deployState, EnvironmentURL: envURL, LogURL: r.checkURL, Description: note, AutoInactive: true,
	}); err != nil {
		r.logger.Warn().Err(err).Msg("setting the production deployment status")
	}
	return r.finish(ctx, status, runErr)
}

// productionNote says where a production run left production: the
// sentence a person reads first on the check run and the deployment.
func productionNote(sha string, failed bool, states, rollback []StepState, migrate string) string {
	if !failed {
		return fmt.Sprintf("Production serves `%s` everywhere.", short(sha))
	}
	step := firstFailed(states)
	var note string
	switch {
	case len(rollback) == 0:
		note = fmt.Sprintf("`%s` failed before anything changed: production is as it was.", step)
	case allSucceeded(rollback):
		note = fmt.Sprintf("`%s` failed: every worker this run changed was rolled back, production is as it was before this run.", step)
	default:
		note = fmt.Sprintf("`%s` failed and the rollback failed too: production may be mixed. See the rollback steps below.", step)
	}
	if stepSucceeded(states, "migrate") && migrate != "" {
		note += " The migration ran and was not rolled back (`" + migrate + "`)."
	}
	return note
}

func (r *productionRun) fail(ctx context.Context, title, summary string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	if err := r.repo.UpdateCheckRun(ctx, r.checkID, github.CheckRun{
		Name: CheckProduction, Status: github.StatusCompleted, Conclusion: github.ConclusionFailure, CompletedAt: time.Now(),
		Output: &github.CheckOutput{Title: title, Summary: summary + "\n\nNothing was changed."},
	}); err != nil {
		r.logger.Warn().Err(err).Msg("concluding the production check run")
	}
	if r.deploymentID != 0 {
		_ = r.repo.SetDeploymentStatus(ctx, r.deploymentID, github.DeploymentStatus{State: github.DeployFailure, LogURL: r.checkURL, Description: title})
	}
	return r.finish(ctx, "failed", cause)
}

func (r *productionRun) finish(ctx context.Context, status string, cause error) error {
	return endRun(ctx, r.deps, r.runID, status, cause)
}

// concludeAbandoned ends production runs of the repository left running by
// a stopped bot (the lock is held, so none is really running).
func (r *productionRun) concludeAbandoned(ctx context.Context) error {
	runs, err := r.deps.State.Runs.AbandonedProduction(ctx, r.meta.Repo.FullName())
	if err != nil {
		return err
	}
	return concludeAbandoned(ctx, r.deps.State.Runs, r.repo, CheckProduction, runs)
}

// hostnameOwner is the script a hostname serves today ("" when none).
func hostnameOwner(ctx context.Context, cf Workers, mode cloudflare.HostnameMode, zoneID, hostname string) (string, error) {
	if mode == cloudflare.ModeDNSRoute {
		routes, err := cf.ListRoutes(ctx, zoneID, hostname)
		if err != nil {
			return "", err
		}
		for _, rt := range routes {
			if rt.Pattern == cloudflare.RoutePattern(hostname) {
				return rt.Script, nil
			}
		}
		return "", nil
	}
	domains, err := cf.ListCustomDomains(ctx, hostname)
	if err != nil {
		return "", err
	}
	for _, d := range domains {
		if d.Hostname == hostname {
			return d.Service, nil
		}
	}
	return "", nil
}

func stepSucceeded(states []StepState, name string) bool {
	for _, s := range states {
		if s.Name == name {
			return s.Status == StepSucceeded
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
