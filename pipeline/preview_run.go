package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/health"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/names"
	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/internal/runner"
	"github.com/revelations-studio/deploybot/internal/workspace"
	"github.com/revelations-studio/deploybot/pipeline/state"
	"github.com/revelations-studio/deploybot/templates"
)

// previewRun is one sync of one PR.
type previewRun struct {
	p       *previews
	repo    Repo
	meta    intent.Meta
	pr      github.PullRequest
	st      *preview
	jobID   int64
	logger  zerolog.Logger
	resetDB bool
	force   bool // rebuild every Worker, whatever the path filters say

	runID int64
	// checkID and checkURL are set once checkReady is closed: the check
	// run is created while the first steps run (see deploy). checkURL is
	// where people read the run: its page, or the check run without one.
	checkID    int64
	checkURL   string
	checkReady chan struct{}

	commentMu sync.Mutex
	// lastComment is the body this run last sent: most step changes leave
	// the comment as it was, and those cost no request at all.
	lastComment string
	// shownState is the preview state the comment last showed.
	shownState string
	// reporting is set once the check run exists and the comment showed
	// the build: step changes before it are shown by that first edit.
	reporting bool
}

// plan is what a preview of this PR consists of, all names resolved.
type plan struct {
	file     *repoconfig.File
	repoCfg  config.Repository
	branch   string
	init     string
	workers  []plannedWorker
	secrets  bool // configured secrets are given (not for unapproved forks)
	env      map[string]string
	res      resources
	hostMode cloudflare.HostnameMode
	ws       *workspace.Workspace
	// Set by the database step: the branch's connection URIs, and the
	// branch whose role password it reset (read once the run is done).
	uris        neon.URIs
	ownPassword string
	// unchanged maps the Workers a path filter leaves as they are to the
	// commit their live version was built from.
	unchanged map[string]string
	// Guarded by the run's commentMu: the stages the "tests" step waits
	// for, and the step states last shown.
	waitingFor []string
	lastStates []StepState
}

type plannedWorker struct {
	w        repoconfig.Worker
	script   string
	hostname string
}

func (r *previewRun) vars() map[string]string {
	return PreviewVars(r.pr.Number, r.pr.HeadSHA, r.pr.HeadRef, r.meta.Repo.Name)
}

func (r *previewRun) makePlan(file *repoconfig.File) (*plan, error) {
	repoName := r.meta.Repo.FullName()
	tg, err := targetOf(r.p.deps, repoName)
	if err != nil {
		return nil, err
	}
	repoCfg := tg.cfg
	vars := r.vars()
	env := commandEnv("preview", repoName, r.pr.HeadSHA)
	env["DEPLOYBOT_PR"] = strconv.Itoa(r.pr.Number)
	env["DEPLOYBOT_BRANCH"] = r.pr.HeadRef // user-controlled: data in env, never in a command
	env["DEPLOYBOT_BASE_BRANCH"] = r.pr.BaseRef
	env["DEPLOYBOT_PREVIEW_NAME"] = names.Expand(file.Database.PreviewBranch, vars)
	env = withEnvironmentVars(env, file, repoconfig.EnvPreview, vars)
	pn, err := PreviewNames(file, vars)
	if err != nil {
		return nil, err
	}
	pl := &plan{
		file:     file,
		repoCfg:  repoCfg,
		branch:   pn.Branch,
		init:     file.Database.InitSource,
		secrets:  !r.pr.Fork || file.Forks.Secrets,
		env:      env,
		hostMode: tg.mode,
	}
	if r.pr.Fork {
		pl.init = file.Forks.InitSource
	}
	pl.res = resources{
		Project: file.Database.Project, Branch: pl.branch,
		AccountID: repoCfg.Cloudflare.AccountID, ZoneID: repoCfg.Cloudflare.ZoneID,
		Mode: string(pl.hostMode), DNSTarget: repoCfg.Cloudflare.DNSTarget,
	}
	for i, w := range file.Workers {
		pw := plannedWorker{w: w, script: pn.Workers[i].Script, hostname: pn.Workers[i].Hostname}
		pl.workers = append(pl.workers, pw)
		pl.res.Workers = append(pl.res.Workers, deployedWorker{Name: w.Name, Script: pw.script, Hostname: pw.hostname})
	}
	if err := PreviewNamesApart(file, pn); err != nil {
		return nil, err
	}
	return pl, nil
}

// boundDeploys are the deploy steps of the Workers w's service bindings
// name (an unchanged one already exists: nothing to wait for).
func boundDeploys(w repoconfig.Worker, unchanged map[string]string) []string {
	var out []string
	for _, s := range w.Services {
		if _, ok := unchanged[s.Worker]; !ok && !slices.Contains(out, "deploy:"+s.Worker) {
			out = append(out, "deploy:"+s.Worker)
		}
	}
	return out
}

// deploy builds and deploys the preview at the PR's head.
func (r *previewRun) deploy(ctx context.Context, file *repoconfig.File, fileErr error) error {
	if err := r.startRun(ctx, "preview"); err != nil {
		return err
	}
	var pl *plan
	if fileErr == nil {
		var err error
		if pl, err = r.makePlan(file); err != nil {
			if err := r.startCheck(ctx); err != nil {
				return r.checkFailed(ctx, err)
			}
			return r.fail(ctx, "The preview could not be planned", err.Error(), err)
		}
	} else {
		if err := r.startCheck(ctx); err != nil {
			return r.checkFailed(ctx, err)
		}
		return r.fail(ctx, "The pipeline file has errors", "`.github/deploybot.yml` on the base branch `"+r.pr.BaseRef+"` could not be used:\n\n```text\n"+fileErr.Error()+"\n```", fileErr)
	}
	r.st.Resources = r.st.Resources.Merge(pl.res)
	pl.unchanged = r.unchangedWorkers(ctx, pl)
	r.st.State = templates.Building
	if err := r.p.save(ctx, r.st); err != nil {
		return r.finishRun(ctx, "failed", err)
	}

	ws, err := newWorkspace(r.p.deps)
	if err != nil {
		if err := r.startCheck(ctx); err != nil {
			return r.checkFailed(ctx, err)
		}
		return r.fail(ctx, "No workspace", err.Error(), err)
	}
	defer ws.Remove()

	steps := r.previewSteps(pl, ws)
	// The check run and the comment's "building" go to GitHub while the
	// first steps (the database, the source) already run: on a real GitHub
	// they are a few hundred milliseconds the preview need not wait for.
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	r.checkReady = make(chan struct{})
	reported := make(chan error, 1)
	go func() {
		err := r.startCheck(ctx)
		if err != nil {
			cancelRun(err)
		} else {
			r.commentMu.Lock()
			r.reporting = true
			r.writeComment(ctx, pl, pl.lastStates, false)
			r.commentMu.Unlock()
		}
		close(r.checkReady)
		reported <- err
	}()
	// While it runs, the comment changes only with the preview's state
	// (building, waiting for tests, failed): every step is on the check
	// run, and each edit is a GitHub write, whose secondary limit is 80 a
	// minute per installation.
	states, runErr := execute(runCtx, observeSteps(r.p.deps, "preview", r.p.deps.State.Steps), r.runID, steps, func(s []StepState) { r.progressComment(ctx, pl, s) })
	if err := <-reported; err != nil {
		return r.checkFailed(ctx, err)
	}
	if pl.ownPassword != "" {
		r.st.Resources.OwnPassword = pl.ownPassword
	}
	return r.conclude(ctx, pl, states, runErr)
}

// checkFailed ends a run whose check run could not be created. Nothing
// shows the run, so the job fails and River tries again, rather than
// leave the PR without a preview (what the run did is converged from).
func (r *previewRun) checkFailed(ctx context.Context, err error) error {
	_ = r.finishRun(ctx, "failed", err)
	return err
}

// awaitCheck waits until the run's check run exists (it is created while
// the first steps run), so a step can refer to it.
func (r *previewRun) awaitCheck(ctx context.Context) error {
	if r.checkReady == nil {
		return nil
	}
	select {
	case <-r.checkReady:
		if r.checkID == 0 {
			return errors.New("the run's check run could not be created")
		}
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// previewSteps is the preview as a graph: database and source first, then
// the migration and every worker's build at once, each worker's upload,
// hostname and health check as soon as its build (and the migration) are
// done, and the GitHub Deployment when all workers are healthy.
func (r *previewRun) previewSteps(pl *plan, ws *workspace.Workspace) []Step {
	pl.ws = ws
	steps := []Step{
		{Name: "database", Do: func(ctx context.Context, log *Log) error { return r.database(ctx, log, pl) }},
		sourceStep(r.repo, r.meta.Repo.FullName(), r.pr.HeadSHA, ws),
	}
	// The builds and the migration start from the source, or from what
	// the setup command made of it.
	checkout := "source"
	if pl.file.Setup.Run != "" {
		checkout = "setup"
		steps = append(steps, setupStep(r.p.deps, pl.file, checkout, "source", ws.Dir, func() map[string]string { return pl.env }, r.pr.Fork,
			cacheFor(r.meta.Repo.FullName(), r.pr.HeadRef, r.meta.Repo.DefaultBranch, r.pr.Fork)))
	}
	steps = append(steps, Step{Name: "migrate", Needs: []string{"database", checkout}, Do: func(ctx context.Context, log *Log) error { return r.migrate(ctx, log, pl) }})
	// A gated preview deploys once its tests passed; builds go on meanwhile.
	var gate []string
	if needs := pl.file.Preview.NeedsTests.Of(pl.file.Tests); len(needs) > 0 {
		steps = append(steps, testGate(r.p.deps, r.meta.Repo.FullName(), r.pr.HeadSHA, needs, func(ctx context.Context, pending []string) {
			r.showWaiting(ctx, pl, pending)
		}))
		gate = []string{gateStep}
	}
	var healthSteps []string
	for _, pw := range pl.workers {
		if since, ok := pl.unchanged[pw.w.Name]; ok {
			// Nothing it is built from changed: it keeps its version.
			steps = append(steps, Step{Name: keepStep(pw.w.Name), Do: func(ctx context.Context, log *Log) error {
				log.Printf("%s keeps the version built from %s: no file its paths select changed since", pw.script, short(since))
				return nil
			}})
			healthSteps = append(healthSteps, keepStep(pw.w.Name))
			continue
		}
		build, deploy, check := "build:"+pw.w.Name, "deploy:"+pw.w.Name, "health:"+pw.w.Name
		steps = append(steps,
			Step{Name: build, Needs: []string{checkout}, Do: func(ctx context.Context, log *Log) error { return r.build(ctx, log, pl, pw.w) }},
			// Cloudflare refuses an upload whose service binding names a
			// Worker that does not exist yet: the Workers this one binds
			// go up first (the file has no cycle).
			Step{Name: deploy, Needs: slices.Concat([]string{build, "migrate"}, gate, boundDeploys(pw.w, pl.unchanged)), Do: func(ctx context.Context, log *Log) error {
				return r.deployWorker(ctx, log, pl, pw)
			}},
			Step{Name: check, Needs: []string{deploy}, Do: func(ctx context.Context, log *Log) error {
				return checkHealth(ctx, r.p.deps, log, pw.w, pw.hostname)
			}},
		)
		healthSteps = append(healthSteps, check)
	}
	// The GitHub Deployment only reports the preview: when GitHub cannot
	// record it, the preview still works and is shown as ready, with the
	// step's failure beside it.
	return append(steps, Step{Name: "deployment", Needs: healthSteps, Optional: true, Do: func(ctx context.Context, log *Log) error {
		return r.recordDeployment(ctx, log, pl)
	}})
}

// database makes (or resets) the PR's branch and learns its connection
// URIs, with a password of the branch's own.
func (r *previewRun) database(ctx context.Context, log *Log, pl *plan) error {
	db := r.p.deps.Neon
	opts := neon.BranchOptions{Name: pl.branch, Parent: pl.file.Database.Parent, InitSource: pl.init,
		Tags: neon.Tags{Repo: r.meta.Repo.FullName(), Purpose: neon.PurposePreview, PR: r.pr.Number}}
	b, err := db.EnsureBranch(ctx, pl.file.Database.Project, opts)
	if err != nil {
		return err
	}
	// The branch's role came with the parent's password: it gets its own
	// before the migration and the Workers see it, once per branch (a
	// reset branch again), recorded with the preview.
	owned := r.st.Resources.OwnPassword
	if r.resetDB {
		if b, err = resetBranch(ctx, db, pl.file.Database.Project, b, opts); err != nil {
			return err
		}
		log.Printf("reset %s from its parent (%s)", pl.branch, pl.init)
		owned = ""
	}
	uris, ownedNow, err := db.OwnConnectionURIs(ctx, pl.file.Database.Project, b, owned)
	if err != nil {
		return err
	}
	if ownedNow != owned {
		log.Printf("role password of %s reset: it is the branch's own", b.Name)
	}
	pl.ownPassword, pl.uris = ownedNow, uris
	log.Printf("branch %s (%s) from %s, %s", b.Name, b.ID, pl.file.Database.Parent, pl.init)
	return nil
}

func (r *previewRun) migrate(ctx context.Context, log *Log, pl *plan) error {
	if pl.file.Database.Migrate == "" {
		log.Printf("no migrate command in the pipeline file")
		return nil
	}
	env := withEnv(pl.env, map[string]string{"DATABASE_URL": pl.uris.Direct})
	return runCommand(ctx, r.p.deps.Commands, log, runner.Command{Script: pl.file.Database.Migrate, Dir: pl.ws.Dir(), Env: env,
		Secrets: uriSecrets(pl.uris), Timeout: 15 * time.Minute, Untrusted: r.pr.Fork})
}

func (r *previewRun) build(ctx context.Context, log *Log, pl *plan, w repoconfig.Worker) error {
	if w.Build == "" {
		log.Printf("no build command")
		return nil
	}
	env := withEnv(pl.env, map[string]string{"DEPLOYBOT_WORKER": w.Name})
	return runCommand(ctx, r.p.deps.Commands, log, runner.Command{Script: w.Build, Dir: filepath.Join(pl.ws.Dir(), filepath.FromSlash(w.Dir)),
		Workspace: pl.ws.Dir(), Env: env, Timeout: 20 * time.Minute, Untrusted: r.pr.Fork})
}

// resetBranch gives branch b its parent's current data again. A branch
// without a parent (made schema-only before schema-only branches became
// children of a shared schema-only root) cannot be reset: it is made
// again, as o says.
func resetBranch(ctx context.Context, db Databases, project string, b neon.Branch, o neon.BranchOptions) (neon.Branch, error) {
	if b.ParentID != "" {
		return b, db.ResetBranch(ctx, project, b.Name, o.Tags)
	}
	if err := db.DeleteBranchNamed(ctx, project, b.Name, o.Tags); err != nil {
		return b, err
	}
	return db.EnsureBranch(ctx, project, o)
}

func (r *previewRun) deployWorker(ctx context.Context, log *Log, pl *plan, pw plannedWorker) error {
	w := pw.w
	cf, err := r.p.deps.Cloudflare(pl.res.AccountID)
	if err != nil {
		return err
	}
	spec := scriptSpec{
		worker: w, env: repoconfig.EnvPreview, bindings: pl.file.BindingsIn(w, repoconfig.EnvPreview), placeholders: r.vars(),
		name: pw.script, workspace: pl.ws.Dir(), commit: r.pr.HeadSHA, dbURL: pl.uris.Pooled,
		scope: "pr-" + strconv.Itoa(r.pr.Number), repoCfg: pl.repoCfg, file: pl.file, withhold: !pl.secrets, services: map[string]string{},
	}
	for _, other := range pl.workers {
		spec.services[other.w.Name] = other.script
	}
	script, err := buildScript(r.p.deps, r.meta.Repo.FullName(), spec, log)
	if err != nil {
		return err
	}
	found, err := claimScript(ctx, cf, pl.res.AccountID, pw.script, r.meta.Repo.FullName(), spec.scope)
	if err != nil {
		return err
	}
	warnWorkerLimit(log, pl.res.AccountID, found, r.p.deps.WorkersLimit)
	version, err := cf.UploadWorker(ctx, script)
	if err != nil {
		return err
	}
	log.Printf("uploaded %s version %s (%d modules, %d secrets)", pw.script, version, len(script.Modules), len(script.Secrets))
	if pw.hostname == "" {
		return nil
	}
	if err := cf.AttachHostname(ctx, pl.hostMode, cloudflare.Hostname{ZoneID: pl.res.ZoneID, Name: pw.hostname, Script: pw.script, Target: pl.res.DNSTarget}); err != nil {
		return err
	}
	log.Printf("%s → %s", pw.hostname, pw.script)
	return nil
}

// checkHealth polls a deployed worker's health path with backoff until it
// answers as expected or the deadline passes.
func checkHealth(ctx context.Context, deps Deps, log *Log, w repoconfig.Worker, hostname string) error {
	if hostname == "" {
		log.Printf("no hostname: nothing to check")
		return nil
	}
	within := deps.HealthWithin
	if within == 0 {
		within = 5 * time.Minute
	}
	if w.Health.Timeout != "" {
		within, _ = time.ParseDuration(w.Health.Timeout)
	}
	url := deps.HealthScheme + "://" + hostname + w.Health.Path
	res, err := health.Check(ctx, deps.Health, health.Target{URL: url, ExpectStatus: w.Health.Status}, health.Policy{
		Within: within,
		OnAttempt: func(attempt, status int, err error, wait time.Duration) {
			log.Printf("attempt %d: status %d %v; next in %s", attempt, status, errString(err), wait.Round(time.Millisecond))
		},
	})
	if err != nil {
		return err
	}
	if !res.Healthy {
		return fmt.Errorf("%s did not answer %d within %s (%d attempts; last: status %d %s)", url, w.Health.Status, within, res.Attempts, res.LastStatus, res.LastError)
	}
	log.Printf("%s healthy after %d attempt(s), %s", url, res.Attempts, res.Elapsed.Round(time.Millisecond))
	return nil
}

func (r *previewRun) recordDeployment(ctx context.Context, log *Log, pl *plan) error {
	if err := r.awaitCheck(ctx); err != nil { // its log URL is the check run's
		return err
	}
	id, err := r.repo.CreateDeployment(ctx, github.Deployment{
		Ref: r.pr.HeadSHA, Environment: "preview", Transient: true, PR: r.pr.Number,
		Description: fmt.Sprintf("Preview of #%d", r.pr.Number),
	})
	if err != nil {
		return err
	}
	if err := r.repo.SetDeploymentStatus(ctx, id, github.DeploymentStatus{
		State: github.DeploySuccess, EnvironmentURL: mainURL(r.p.deps, pl), LogURL: r.checkURL,
		Description: "Preview ready at " + short(r.pr.HeadSHA),
	}); err != nil {
		return err
	}
	if _, err := r.repo.DeactivatePullRequestDeployments(ctx, "preview", r.pr.Number, id, r.st.DeploymentID); err != nil {
		return err
	}
	r.st.DeploymentID = id
	log.Printf("deployment %d", id)
	return nil
}

// conclude finishes the check run, the comment and the stored state.
func (r *previewRun) conclude(ctx context.Context, pl *plan, states []StepState, runErr error) error {
	ctx = context.WithoutCancel(ctx)
	switch {
	case runErr == nil:
		r.st.State, r.st.DeployedSHA = templates.Ready, r.pr.HeadSHA
		r.recordBuilt(pl)
	case errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded):
		// A newer run of this PR took over (or the job ran out of time):
		// leave the comment to the next run.
		r.st.State = templates.Cancelled
	default:
		r.st.State = templates.Failed
	}
	if err := r.p.save(ctx, r.st); err != nil {
		return err
	}
	check := r.checkOutput(pl, states)
	summary, _ := templates.CheckSummary(check)
	text, _ := templates.CheckText(check)
	run := github.CheckRun{Name: CheckPreview, Status: github.StatusCompleted, CompletedAt: time.Now(), Output: &github.CheckOutput{Summary: summary, Text: text},
		Actions: []github.CheckAction{
			{Label: "Redeploy", Identifier: IdentifierRedeploy, Description: "Rebuild this preview at the PR's head"},
			{Label: "Destroy", Identifier: IdentifierDestroy, Description: "Delete this preview"},
		}}
	status := "succeeded"
	switch r.st.State {
	case templates.Ready:
		run.Conclusion, run.Output.Title = github.ConclusionSuccess, "Preview ready"
		if failed := firstFailed(states); failed != unknownStep {
			run.Output.Title = "Preview ready (step " + failed + " failed)"
			check.Note = "The preview works, but step `" + failed + "` failed: GitHub's \"View deployment\" button may be missing until the next deploy."
			run.Output.Summary, _ = templates.CheckSummary(check)
		}
	case templates.Cancelled:
		run.Conclusion, run.Output.Title, status = github.ConclusionCancelled, "Superseded", "cancelled"
		check.Note = "A newer run of this pull request took over."
		run.Output.Summary, _ = templates.CheckSummary(check)
	default:
		run.Conclusion, run.Output.Title, status = github.ConclusionFailure, "Preview failed: "+firstFailed(states), "failed"
		if firstFailed(states) == gateStep {
			// Held back by its tests: a later test run of the commit queues
			// it again (releaseGates).
			run.Output.Title, status = "Held back: a test stage failed", statusBlocked
		}
	}
	// The check run and the comment are independent writes: sent at once,
	// the result shows one GitHub round trip after the last step.
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := r.repo.UpdateCheckRun(ctx, r.checkID, run); err != nil {
			r.logger.Warn().Err(err).Msg("concluding the check run")
		}
	})
	if r.st.State != templates.Cancelled {
		r.updateComment(ctx, pl, states)
	}
	wg.Wait()
	if err := r.finishRun(ctx, status, runErr); err != nil {
		return err
	}
	if r.st.State == templates.Cancelled {
		return nil
	}
	return nil // a failed preview is reported, not retried: a new push or /redeploy retries
}

func (r *previewRun) checkOutput(pl *plan, states []StepState) templates.Check {
	var c templates.Check
	stepStatus := map[string]string{}
	for _, s := range states {
		stepStatus[s.Name] = s.Status
		c.Steps = append(c.Steps, templates.CheckStep{Name: s.Name, Status: s.Status, Duration: s.Duration(), Log: s.Log})
	}
	for _, pw := range pl.workers {
		cw := templates.CheckWorker{Name: pw.w.Name, Script: pw.script}
		if pw.hostname != "" {
			cw.URL = "https://" + pw.hostname
		}
		switch stepStatus["health:"+pw.w.Name] {
		case StepSucceeded:
			cw.Checked, cw.Healthy = true, true
		case StepFailed:
			cw.Checked = true
		}
		c.Workers = append(c.Workers, cw)
	}
	return c
}

// updateComment renders the status comment from the steps' states and
// edits it in place (the reporter sends nothing when it is unchanged).
// showWaiting shows on the check run and the comment which test stages the
// preview waits for.
func (r *previewRun) showWaiting(ctx context.Context, pl *plan, pending []string) {
	if r.awaitCheck(ctx) != nil {
		return
	}
	// The check run first: once the comment says the preview waits (a
	// step's progress may edit it as soon as waitingFor is set), the check
	// run says so too.
	if err := r.repo.UpdateCheckRun(context.WithoutCancel(ctx), r.checkID, github.CheckRun{
		Name: CheckPreview, Status: github.StatusInProgress,
		Output: &github.CheckOutput{Title: "Waiting for tests", Summary: waitingNote(pending, r.pr.HeadSHA, "the preview deploys")},
	}); err != nil {
		r.logger.Warn().Err(err).Msg("showing the wait for tests on the check run")
	}
	r.commentMu.Lock()
	pl.waitingFor = pending
	states := pl.lastStates
	r.commentMu.Unlock()
	r.updateComment(ctx, pl, states)
}

// waitingNote says what a deploy of sha waits for.
func waitingNote(pending []string, sha, what string) string {
	return fmt.Sprintf("Waiting for test stage %s on `%s`: %s when they pass (builds go on meanwhile).", quoteList(pending), short(sha), what)
}

func (r *previewRun) updateComment(ctx context.Context, pl *plan, states []StepState) {
	r.commentMu.Lock()
	defer r.commentMu.Unlock()
	r.writeComment(ctx, pl, states, false)
}

// progressComment is updateComment for a step's change: it writes only
// when the preview's state changed.
func (r *previewRun) progressComment(ctx context.Context, pl *plan, states []StepState) {
	r.commentMu.Lock()
	defer r.commentMu.Unlock()
	if !r.reporting {
		pl.lastStates = states
		return
	}
	r.writeComment(ctx, pl, states, true)
}

// writeComment renders the comment for states; onNewState skips it when
// the state shown is the one last written. The caller holds commentMu.
func (r *previewRun) writeComment(ctx context.Context, pl *plan, states []StepState, onNewState bool) {
	ctx = context.WithoutCancel(ctx)
	pl.lastStates = states
	c := templates.Comment{PR: r.pr.Number, Commit: r.pr.HeadSHA, CheckURL: r.checkURL, State: templates.Building}
	status := map[string]StepState{}
	failed := false
	for _, s := range states {
		status[s.Name] = s
		if s.Status == StepFailed && !s.Optional {
			failed = true
			if c.Failure == nil {
				c.Failure = &templates.Failure{Step: s.Name, Log: excerpt(s.Log, s.Err)}
			}
		}
	}
	switch gate, gated := status[gateStep]; {
	case states != nil && !failed && allSucceeded(states):
		c.State = templates.Ready
	case failed:
		c.State = templates.Failed
	case gated && gate.Status != StepSucceeded && len(pl.waitingFor) > 0:
		c.State, c.Note = templates.WaitingForTests, waitingNote(pl.waitingFor, r.pr.HeadSHA, "the preview deploys")
	}
	now := time.Now()
	c.Rows = append(c.Rows, templates.Row{Kind: "database", Name: pl.branch, Status: rowStatus(status, "database", "migrate"), Commit: r.pr.HeadSHA, Updated: now})
	for _, pw := range pl.workers {
		row := templates.Row{Kind: "worker", Name: pw.w.Name, Status: rowStatus(status, "build:"+pw.w.Name, "deploy:"+pw.w.Name, "health:"+pw.w.Name), Commit: r.pr.HeadSHA, Updated: now}
		if since, ok := pl.unchanged[pw.w.Name]; ok {
			row.Status, row.Commit = rowStatus(status, keepStep(pw.w.Name)), since
		}
		if row.Status == templates.Ready && pw.hostname != "" {
			row.URL = "https://" + pw.hostname
		}
		c.Rows = append(c.Rows, row)
	}
	if onNewState && c.State == r.shownState {
		return
	}
	r.shownState = c.State
	_ = r.postComment(ctx, c) // logged; the next state change tries again
}

func (r *previewRun) postComment(ctx context.Context, c templates.Comment) error {
	body, err := templates.StatusComment(c)
	if err != nil {
		r.logger.Error().Err(err).Msg("rendering the status comment")
		return err
	}
	if r.lastComment == "" && r.st.CommentID != 0 {
		// Once per run, what the comment says now: the edits after it go
		// without a read, and a body it already shows is not written again
		// (the time it was last written is what a fork's approval is
		// checked against).
		if c, found, err := r.repo.StatusComment(ctx, r.pr.Number, r.st.CommentID); err == nil && found && c.ID == r.st.CommentID {
			r.lastComment = strings.TrimPrefix(c.Body, github.StatusMarker(r.pr.Number)+"\n")
		}
	}
	if body == r.lastComment && r.st.CommentID != 0 {
		return nil
	}
	id, err := r.repo.UpsertStatusComment(ctx, r.pr.Number, body, r.st.CommentID)
	if err != nil {
		r.logger.Warn().Err(err).Msg("updating the status comment")
		return err
	}
	r.lastComment = body
	if id != r.st.CommentID {
		r.st.CommentID = id
		_ = r.p.save(ctx, r.st)
	}
	return nil
}

// showOnly updates the comment without deploying (drafts, unapproved forks).
func (r *previewRun) showOnly(ctx context.Context, shown, note string) error {
	if r.st.State == shown {
		return nil
	}
	r.st.State = shown
	_ = r.postComment(ctx, templates.Comment{PR: r.pr.Number, State: shown, Commit: r.pr.HeadSHA, Note: note})
	return r.p.save(ctx, r.st)
}

// fail ends a run that could not start its steps.
func (r *previewRun) fail(ctx context.Context, title, summary string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	if err := r.repo.UpdateCheckRun(ctx, r.checkID, github.CheckRun{
		Name: CheckPreview, Status: github.StatusCompleted, Conclusion: github.ConclusionFailure, CompletedAt: time.Now(),
		Output: &github.CheckOutput{Title: title, Summary: summary},
	}); err != nil {
		r.logger.Warn().Err(err).Msg("concluding the check run")
	}
	r.st.State = templates.Failed
	_ = r.postComment(ctx, templates.Comment{PR: r.pr.Number, State: templates.Failed, Commit: r.pr.HeadSHA, CheckURL: r.checkURL,
		Failure: &templates.Failure{Step: "setup", Log: cause.Error()}})
	if err := r.p.save(ctx, r.st); err != nil {
		return err
	}
	return r.finishRun(ctx, "failed", cause)
}

func (r *previewRun) startRun(ctx context.Context, kind string) error {
	id, err := r.p.deps.State.Runs.Start(ctx, state.Run{
		Kind: kind, Repo: r.meta.Repo.FullName(), PR: r.pr.Number, HeadSHA: r.pr.HeadSHA, JobID: r.jobID,
		Reason: r.meta.Event + "." + r.meta.Action, Actor: r.meta.Sender,
	})
	r.runID = id
	return err
}

// startCheck creates the run's check run and records its id. A newer push
// cancelling the run must not cut this short: GitHub may create the check
// run while the answer is lost with the cancelled request, leaving it
// spinning on the commit with no id to conclude it by. So both finish on
// a context of their own; the cancelled run then concludes it.
func (r *previewRun) startCheck(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkCreateTimeout)
	defer cancel()
	ref, err := r.repo.CreateCheckRun(ctx, github.CheckRun{
		Name: CheckPreview, HeadSHA: r.pr.HeadSHA, Status: github.StatusInProgress, StartedAt: time.Now(),
		ExternalID: strconv.FormatInt(r.runID, 10),
		DetailsURL: r.p.deps.runPage(r.runID),
		Output:     &github.CheckOutput{Title: "Building the preview", Summary: "deploybot is building the preview of #" + strconv.Itoa(r.pr.Number) + "."},
	})
	if err != nil {
		return fmt.Errorf("create check run: %w", err)
	}
	r.checkID, r.checkURL = ref.ID, detailsURL(r.p.deps, r.runID, ref)
	return r.p.deps.State.Runs.AttachCheckRun(ctx, r.runID, ref.ID)
}

// detailsURL is where the status comment's "Details" and a deployment's
// log link: the run's page when the bot has one, else its check run.
func detailsURL(deps Deps, runID int64, ref github.CheckRunRef) string {
	if page := deps.runPage(runID); page != "" {
		return page
	}
	return ref.URL
}

// checkCreateTimeout bounds creating and recording a check run, which a
// cancelled run still finishes (see startCheck).
const checkCreateTimeout = 2 * time.Minute

func (r *previewRun) finishRun(ctx context.Context, status string, cause error) error {
	return endRun(ctx, r.p.deps, r.runID, status, cause)
}

func rowStatus(states map[string]StepState, steps ...string) string {
	anyStarted, allDone := false, true
	for _, name := range steps {
		s, ok := states[name]
		if !ok {
			return templates.Queued
		}
		switch s.Status {
		case StepFailed:
			return templates.Failed
		case StepCancelled, StepSkipped:
			return templates.Cancelled
		case StepRunning:
			anyStarted = true
			allDone = false
		case StepSucceeded:
			anyStarted = true
		default:
			allDone = false
		}
	}
	switch {
	case allDone:
		return templates.Ready
	case anyStarted:
		return templates.Building
	}
	return templates.Queued
}

// allSucceeded reports whether every step succeeded, optional ones
// excepted (they may also have failed).
func allSucceeded(states []StepState) bool {
	for _, s := range states {
		if s.Status != StepSucceeded && !(s.Optional && s.Status == StepFailed) {
			return false
		}
	}
	return true
}

func firstFailed(states []StepState) string {
	for _, s := range states {
		if s.Status == StepFailed {
			return s.Name
		}
	}
	return unknownStep
}

const unknownStep = "unknown step"

// excerpt is the end of a failed step's output for the PR comment.
func excerpt(log, err string) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	out := strings.Join(lines, "\n")
	if err != "" && !strings.Contains(out, err) {
		out = strings.TrimLeft(out+"\n"+err, "\n")
	}
	return out
}

func mainURL(deps Deps, pl *plan) string {
	for _, pw := range pl.workers {
		if pw.hostname != "" {
			return "https://" + pw.hostname
		}
	}
	return ""
}

func withEnv(base, extra map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// runCommand runs c with cmds and writes its output to log.
func runCommand(ctx context.Context, cmds Commands, log *Log, c runner.Command) error {
	res, err := runLogged(ctx, cmds, log, c)
	if err != nil {
		return err
	}
	return res.Err()
}

// runLogged runs c with cmds, its output streaming into log as it comes
// (the run's page shows it live). A Commands that does not stream has its
// captured output written to log when it is done.
func runLogged(ctx context.Context, cmds Commands, log *Log, c runner.Command) (runner.Result, error) {
	out := &countingWriter{w: log}
	c.Output = out
	res, err := cmds.Run(ctx, c)
	if out.n == 0 && res.Output != "" {
		log.Write([]byte(res.Output))
	}
	return res, err
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

// uriSecrets are what of a branch's connection URIs must never be shown:
// the URIs and their password on its own (a tool may print it alone).
func uriSecrets(u neon.URIs) []string {
	out := []string{u.Direct, u.Pooled}
	for _, raw := range out[:2] {
		if p, err := url.Parse(raw); err == nil {
			if pw, ok := p.User.Password(); ok {
				out = append(out, pw)
			}
		}
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
