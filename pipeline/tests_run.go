package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/annotate"
	"github.com/revelations-studio/deploybot/internal/buildcache"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/internal/runner"
	"github.com/revelations-studio/deploybot/internal/workspace"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// One test run: the source once, an ephemeral database branch migrated
// once, every stage as a step with its own check run, the branch deleted
// whatever happens; and how runs of one branch replace each other.

// stageResult is what a stage's command did.
type stageResult struct {
	ran         bool
	exitCode    int
	duration    time.Duration
	timedOut    bool
	timeout     time.Duration
	output      string
	annotations []annotate.Annotation
}

// testRun is one run of a branch's test stages at one commit.
type testRun struct {
	t      *testRuns
	req    testRequest
	jobID  int64
	repo   Repo
	logger zerolog.Logger

	runID  int64
	lock   *state.Lock
	file   *repoconfig.File
	stages []repoconfig.Stage
	dir    string // the run's folder: the tarball, the setup tree, one tree per stage
	checks map[string]int64
	needs  map[string][]string // of every step

	dbName string // the ephemeral Neon branch's name
	// Set by the setup steps before the steps that need them start (and
	// read by dropDatabase after all steps ended).
	dbLocked  bool
	uris      neon.URIs
	sourceDir string

	mu        sync.Mutex // guards results
	results   map[string]stageResult
	concluded map[string]bool // only touched by execute's onChange, then by conclude
}

// run does req: it waits for the branch's previous run (cancelling it when
// this one supersedes it), then runs the stages and reports them.
func (t *testRuns) run(ctx context.Context, jobID int64, req testRequest) error {
	deps := t.deps
	repoName := req.meta.Repo.FullName()
	logger := jobLogger(ctx, deps.Logger).With().Str("repo", repoName).Str("branch", req.branch).Str("sha", short(req.sha)).
		Str("reason", req.reason).Logger()
	ctx = logger.WithContext(ctx)
	r := &testRun{t: t, req: req, jobID: jobID, logger: logger,
		checks: map[string]int64{}, results: map[string]stageResult{}, concluded: map[string]bool{}}

	repo, err := deps.GitHub.Repo(ctx, req.meta.InstallationID, req.meta.Repo.Owner, req.meta.Repo.Name)
	if err != nil {
		return fmt.Errorf("open %s: %w", repoName, err)
	}
	r.repo = repo
	if req.reason == reasonPush {
		if done, err := r.pushNeedsNoTests(ctx); done || err != nil {
			return err
		}
	}
	if err := r.record(ctx, "queued", ""); err != nil {
		return err
	}
	if err := r.cancelOlder(ctx); err != nil {
		return r.finish(ctx, "failed", err)
	}
	// The branch's previous run still holds the lock (it was just asked to
	// stop, or it tests the same commit): snooze rather than wait, which
	// would hold a worker. The run stays queued and the next attempt takes
	// it up again; a newer push cancels the snoozed job (cancelOlder).
	lock, err := deps.State.Lock(ctx, "deploybot:test:"+repoName+"@"+req.key)
	if errors.Is(err, errLocked) {
		logger.Debug().Msg("the branch's previous test run is still running: snoozing")
		return river.JobSnooze(lockRetry)
	}
	if err != nil {
		_ = r.finish(ctx, "failed", err)
		return err
	}
	r.lock = lock
	defer lock.Release()
	if newer, err := r.superseded(ctx); err != nil || newer {
		if err != nil {
			_ = r.finish(ctx, "failed", err)
			return err
		}
		logger.Info().Msg("a newer run of the branch is waiting: this one is not needed")
		return r.finish(ctx, "cancelled", errSuperseded)
	}
	if err := r.concludeAbandoned(ctx); err != nil {
		logger.Warn().Err(err).Msg("concluding the branch's abandoned test runs")
	}
	if err := deps.State.Tests.Start(ctx, r.runID); err != nil {
		_ = r.finish(ctx, "failed", err)
		return err
	}
	return r.test(ctx)
}

// pushNeedsNoTests settles the pushes that test nothing, and says whether
// it did (done):
//   - the same push delivered again under another delivery id (GitHub's
//     duplicates, a merge's production job retried): nothing recorded;
//   - a push delivered late, whose commit is no longer the branch's head:
//     the newer push's own job tests the head, and this run would only
//     cancel that one;
//   - "[skip ci]" in the head commit's message.
func (r *testRun) pushNeedsNoTests(ctx context.Context) (done bool, err error) {
	req, repoName := r.req, r.req.meta.Repo.FullName()
	dup, err := r.t.deps.State.Tests.Ran(ctx, state.TestRun{Repo: repoName, Key: req.key, SHA: req.sha, Reason: reasonPush}, r.jobID)
	if err != nil {
		return false, err
	}
	if dup {
		r.logger.Info().Msg("this commit's tests already ran or are running: a duplicate push")
		return true, nil
	}
	head, found, err := r.repo.BranchHead(ctx, req.branch)
	if err != nil {
		return false, err
	}
	if head != req.sha {
		why := "the branch no longer exists"
		if found {
			why = "not the branch's head any more (now " + short(head) + "): a push delivered late"
		}
		r.logger.Info().Str("head", short(head)).Msg("stale push: no tests")
		return true, r.record(ctx, "skipped", why)
	}
	if skipCI(req.message) {
		r.logger.Info().Msg("[skip ci] in the head commit message: no tests")
		return true, r.record(ctx, "skipped", "[skip ci] in the head commit message")
	}
	return false, nil
}

// skipCI reports whether a commit message asks for no CI run.
func skipCI(message string) bool {
	m := strings.ToLower(message)
	return strings.Contains(m, "[skip ci]") || strings.Contains(m, "[ci skip]")
}

// test reads the pipeline file and runs the stages.
func (r *testRun) test(ctx context.Context) error {
	deps := r.t.deps
	base := r.req.meta.Repo.DefaultBranch
	if base == "" {
		return r.finish(ctx, "failed", errors.New("the event does not name the repository's default branch, where the pipeline file is read"))
	}
	raw, err := r.repo.File(ctx, repoconfig.Path, base)
	if errors.Is(err, github.ErrNotFound) {
		r.logger.Info().Str("base", base).Msg("no pipeline file on the default branch: no tests")
		return r.finish(ctx, "skipped", errors.New("no pipeline file on the default branch"))
	}
	if err != nil {
		_ = r.finish(ctx, "failed", err)
		return fmt.Errorf("read %s@%s: %w", repoconfig.Path, base, err)
	}
	file, err := repoconfig.ParseWith(repoconfig.Path+"@"+base, raw, fileAt(ctx, r.repo, base))
	if err != nil {
		return r.badFile(ctx, base, err)
	}
	if len(file.Tests.Stages) == 0 {
		r.logger.Info().Msg("the pipeline file has no test stages")
		return r.finish(ctx, "skipped", errors.New("no test stages in the pipeline file"))
	}
	stages, ok := selectStages(file.Tests.Stages, r.req.stage)
	if !ok {
		r.logger.Info().Str("stage", r.req.stage).Msg("the stage to re-run is no longer in the pipeline file")
		return r.finish(ctx, "skipped", fmt.Errorf("stage %q is no longer in the pipeline file", r.req.stage))
	}
	r.file, r.stages = file, stages
	unchanged := r.unchangedStages(ctx)
	r.dbName = TestBranchName(file, r.req.branch, r.req.sha, r.req.meta.Repo.Name, r.req.pr)

	if err := r.createChecks(ctx); err != nil {
		r.concludeAll(ctx, nil, err)
		_ = r.finish(ctx, "failed", err)
		return err
	}
	if err := r.skipUnchanged(ctx, unchanged); err != nil {
		_ = r.finish(ctx, "failed", err)
		return err
	}
	if len(r.stages) == 0 {
		err := r.finish(ctx, "succeeded", nil)
		r.t.releaseGates(ctx, r)
		return err
	}
	ws, wsErr := newWorkspace(deps)
	if wsErr == nil {
		r.dir = ws.Dir()
		defer ws.Remove()
	}
	if r.dir == "" {
		err := fmt.Errorf("no workspace: %w", wsErr)
		r.concludeAll(ctx, nil, err)
		return r.finish(ctx, "failed", err)
	}

	states, runErr := execute(ctx, observeSteps(deps, "test", deps.State.Steps), r.runID, r.steps(), func(s []StepState) { r.onChange(ctx, s) })
	r.dropDatabase(ctx)
	r.concludeAll(ctx, states, runErr)
	status := "succeeded"
	switch {
	case ctx.Err() != nil:
		status = "cancelled"
	case runErr != nil:
		status = "failed"
	}
	err = r.finish(ctx, status, runErr) // failures are reported, not retried
	if ctx.Err() == nil {
		r.t.releaseGates(ctx, r)
	}
	return err
}

// selectStages is every stage, or the one to re-run and those it needs (in
// the file's order).
func selectStages(all []repoconfig.Stage, stage string) ([]repoconfig.Stage, bool) {
	if stage == "" {
		return all, true
	}
	byName := map[string]repoconfig.Stage{}
	for _, s := range all {
		byName[s.Name] = s
	}
	if _, ok := byName[stage]; !ok {
		return nil, false
	}
	keep := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if keep[n] {
			return
		}
		keep[n] = true
		for _, need := range byName[n].Needs {
			visit(need)
		}
	}
	visit(stage)
	var out []repoconfig.Stage
	for _, s := range all {
		if keep[s.Name] {
			out = append(out, s)
		}
	}
	return out, true
}

// steps is the run as a graph: the source (and, for the database stages,
// the ephemeral branch and its migration), then the stages as their needs
// allow.
func (r *testRun) steps() []Step {
	steps := []Step{{Name: stepSource, Do: r.fetchSource}}
	// Everything starts from the source, or from what the setup command
	// made of it (each stage gets its own copy).
	checkout := stepSource
	if r.file.Setup.Run != "" {
		checkout = stepSetup
		steps = append(steps, setupStep(r.t.deps, r.file, stepSetup, stepSource, func() string { return r.sourceDir },
			func() map[string]string { return r.env("", false) }, r.req.fork,
			cacheFor(r.req.meta.Repo.FullName(), r.req.branch, r.req.meta.Repo.DefaultBranch, r.req.fork)))
	}
	db := false
	for _, s := range r.stages {
		db = db || s.Database
	}
	if db {
		steps = append(steps,
			Step{Name: stepDatabase, Do: r.createDatabase},
			Step{Name: stepMigrate, Needs: []string{checkout, stepDatabase}, Do: r.migrate},
		)
	}
	for _, s := range r.stages {
		needs := append([]string{checkout}, s.Needs...)
		if s.Database {
			needs = append(needs, stepMigrate)
		}
		steps = append(steps, Step{Name: s.Name, Needs: needs, Do: func(ctx context.Context, log *Log) error {
			return r.runStage(ctx, log, s)
		}})
	}
	r.needs = map[string][]string{}
	for _, s := range steps {
		r.needs[s.Name] = s.Needs
	}
	return steps
}

func (r *testRun) tarball() string { return filepath.Join(r.dir, "source.tar.gz") }

// fetchSource downloads the commit's tarball once and unpacks it, which
// checks it, into the tree the migration runs in; every stage then gets
// its own fresh copy.
func (r *testRun) fetchSource(ctx context.Context, log *Log) error {
	body, err := r.repo.Tarball(ctx, r.req.sha)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.OpenFile(r.tarball(), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(body, maxTarball+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download the source of %s: %w", short(r.req.sha), err)
	}
	if n > maxTarball {
		return fmt.Errorf("the source of %s is larger than %d bytes compressed", short(r.req.sha), int64(maxTarball))
	}
	dir, stats, err := r.unpack(ctx, "setup")
	if err != nil {
		return err
	}
	r.sourceDir = dir
	log.Printf("%s at %s: %+v", r.req.meta.Repo.FullName(), short(r.req.sha), stats)
	return nil
}

// stageTree is a stage's own checkout: the source unpacked again, or,
// after a setup command, a copy of the tree it set up.
func (r *testRun) stageTree(ctx context.Context, stage string) (string, error) {
	if r.file.Setup.Run == "" {
		dir, _, err := r.unpack(ctx, "stage-"+stage)
		return dir, err
	}
	dir := filepath.Join(r.dir, "stage-"+stage)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	// Links stay links (node_modules is full of them), as the cache keeps
	// them.
	if err := buildcache.CopyTree(ctx, r.sourceDir+"/.", dir); err != nil {
		return dir, fmt.Errorf("copy the set-up checkout: %w", err)
	}
	return dir, nil
}

// unpack extracts the tarball into a new folder of the run.
func (r *testRun) unpack(ctx context.Context, name string) (string, workspace.Stats, error) {
	dir := filepath.Join(r.dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", workspace.Stats{}, err
	}
	f, err := os.Open(r.tarball())
	if err != nil {
		return "", workspace.Stats{}, err
	}
	defer f.Close()
	stats, err := workspace.Extract(ctx, f, dir, workspace.Limits{})
	return dir, stats, err
}

// createDatabase makes the run's ephemeral branch, fresh: a branch of the
// same name left by a crashed run is deleted first. Two runs whose branch
// names come out alike (the same commit pushed to "feature/a" and
// "feature-a") take turns through a lock on the name.
func (r *testRun) createDatabase(ctx context.Context, log *Log) error {
	deps := r.t.deps
	db := r.file.Database
	name := r.dbName
	if err := r.lock.Also(ctx, "deploybot:test-db:"+db.Project+"/"+name); err != nil {
		return err
	}
	r.dbLocked = true
	// Left by a crashed run of ours, or someone else's: then the run
	// fails, naming it, and the branch stays.
	if err := deps.Neon.DeleteBranchNamed(ctx, db.Project, name, r.dbTags()); err != nil {
		return err
	}
	init := db.InitSource
	if r.req.fork {
		init = r.file.Forks.InitSource
	}
	// Neon deletes the branch by itself once it expires: a safety net
	// for a bot that dies and never comes back (the run deletes it, the
	// sweeper deletes what a run left, long before then).
	b, err := deps.Neon.EnsureBranch(ctx, db.Project, neon.BranchOptions{
		Name: name, Parent: db.Parent, InitSource: init, Tags: r.dbTags(),
		ExpiresAt: time.Now().Add(testBranchExpiry),
	})
	if err != nil {
		return err
	}
	// The stages (a fork's, once approved) must not learn the parent's
	// password, which the new branch's role still has.
	uris, _, err := deps.Neon.OwnConnectionURIs(ctx, db.Project, b, "")
	if err != nil {
		return err
	}
	r.uris = uris
	log.Printf("branch %s (%s) from %s, %s", b.Name, b.ID, db.Parent, init)
	return nil
}

// dbTags are the annotations of the run's ephemeral branch.
func (r *testRun) dbTags() neon.Tags {
	return neon.Tags{Repo: r.req.meta.Repo.FullName(), Purpose: neon.PurposeTest, PR: r.req.pr}
}

// dropDatabase deletes the ephemeral branch, whatever became of the run:
// with a context of its own, since the run's may be cancelled or past its
// deadline. If the bot dies first, the sweeper deletes it later.
func (r *testRun) dropDatabase(ctx context.Context) {
	if !r.dbLocked {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	err := r.t.deps.Neon.DeleteBranchNamed(ctx, r.file.Database.Project, r.dbName, r.dbTags())
	if _, theirs := errors.AsType[*neon.NotOwnedError](err); theirs {
		r.logger.Warn().Err(err).Str("neon_branch", r.dbName).Msg("the test run's database name is taken by a branch that is not the run's: left alone")
		return
	}
	if err != nil {
		r.logger.Error().Err(err).Str("neon_branch", r.dbName).Msg("deleting the test run's database branch; the sweeper will retry")
		return
	}
	r.logger.Info().Str("neon_branch", r.dbName).Msg("test database branch deleted")
}

func (r *testRun) migrate(ctx context.Context, log *Log) error {
	cmd := r.file.Database.Migrate
	if cmd == "" {
		log.Printf("no migrate command in the pipeline file")
		return nil
	}
	release, err := r.t.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return runCommand(ctx, r.t.deps.Commands, log, runner.Command{
		Script: cmd, Dir: r.sourceDir, Env: r.env("", true), Secrets: uriSecrets(r.uris), Timeout: migrateTimeout,
		Untrusted: r.req.fork,
	})
}

// acquire waits for one of the process's command slots.
func (t *testRuns) acquire(ctx context.Context) (func(), error) {
	select {
	case t.slots <- struct{}{}:
		return func() { <-t.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// env is what a command gets: the CI context, and the database for the
// stages that asked for it. Values a push controls (the branch name) are
// data in variables, never part of the command.
func (r *testRun) env(stage string, database bool) map[string]string {
	placeholders := map[string]string{"sha": r.req.sha, "sha7": short(r.req.sha), "branch": r.req.branch, "repo": r.req.meta.Repo.Name}
	env := withEnvironmentVars(commandEnv("test", r.req.meta.Repo.FullName(), r.req.sha), r.file, repoconfig.EnvTest, placeholders)
	env["DEPLOYBOT_BRANCH"] = r.req.branch
	if stage != "" {
		env["DEPLOYBOT_STAGE"] = stage
	}
	if r.req.pr > 0 {
		env["DEPLOYBOT_PR"] = strconv.Itoa(r.req.pr)
	}
	if database {
		env["DATABASE_URL"] = r.uris.Direct
		env["DEPLOYBOT_DATABASE_BRANCH"] = r.dbName
	}
	return env
}

// runStage runs a stage's command in its own copy of the source and keeps
// what the check run shows.
func (r *testRun) runStage(ctx context.Context, log *Log, s repoconfig.Stage) error {
	release, err := r.t.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	r.markInProgress(ctx, s.Name)
	dir, err := r.stageTree(ctx, s.Name)
	if dir != "" {
		defer workspace.RemoveAll(dir)
	}
	if err != nil {
		return fmt.Errorf("unpack the source: %w", err)
	}
	timeout := defaultStageTimeout
	if s.Timeout != "" {
		timeout, _ = time.ParseDuration(s.Timeout) // validated by repoconfig
	}
	cmd := runner.Command{Script: s.Run, Dir: dir, Env: r.env(s.Name, s.Database), Timeout: timeout, Untrusted: r.req.fork}
	if s.Database {
		cmd.Secrets = uriSecrets(r.uris)
	}
	if err := r.stageSecrets(log, &cmd); err != nil {
		return err
	}
	res, err := runLogged(ctx, r.t.deps.Commands, log, cmd)
	result := stageResult{
		ran: err == nil, exitCode: res.ExitCode, duration: res.Duration, timedOut: res.TimedOut, timeout: timeout,
		output: res.Output,
		// Parsed while the tree exists: annotations point only at its files.
		annotations: annotate.Parse(res.Output, annotate.Options{Root: dir, Files: os.DirFS(dir)}),
	}
	r.mu.Lock()
	r.results[s.Name] = result
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return res.Err()
}

// stageSecrets gives a stage the test environment's values of the secrets
// tests.secrets names, masked in its output; a fork's run gets them only
// with forks.secrets.
func (r *testRun) stageSecrets(log *Log, cmd *runner.Command) error {
	names := r.file.Tests.Secrets
	if len(names) == 0 {
		return nil
	}
	if r.req.fork && !r.file.Forks.Secrets {
		log.Printf("fork pull request: secrets %s withheld", strings.Join(names, ", "))
		return nil
	}
	repo := r.req.meta.Repo.FullName()
	cfg := r.t.deps.Repositories[repo]
	for _, name := range names {
		sec, ok, _ := cfg.SecretIn(repoconfig.EnvTest, name)
		if !ok {
			return testSecretMissing(cfg, r.file, repo, name)
		}
		cmd.Env[name] = sec.Value()
		cmd.Secrets = append(cmd.Secrets, sec.Value())
	}
	return nil
}

func (r *testRun) result(stage string) (stageResult, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.results[stage]
	return res, ok
}

// record stores the run as queued (or directly as finished, for a skip).
func (r *testRun) record(ctx context.Context, status, msg string) error {
	id, err := r.t.deps.State.Tests.Record(ctx, state.TestRun{
		Repo: r.req.meta.Repo.FullName(), Key: r.req.key, SHA: r.req.sha, JobID: r.jobID, Reason: r.req.reason, Actor: r.req.meta.Sender,
	}, status, msg)
	if err != nil {
		return err
	}
	r.runID = id
	return nil
}

// finish stores how the run ended. Only an error of the store is returned:
// how the tests went is on the check runs.
func (r *testRun) finish(ctx context.Context, status string, cause error) error {
	return endRun(ctx, r.t.deps, r.runID, status, cause)
}

// Runs are ordered by their job's id: River numbers jobs as they are
// queued, in the order the deliveries arrived, whereas a run's own row is
// written when its job starts.

// cancelOlder cancels the jobs of the older runs of the branch that this
// one replaces, running or waiting: River cancels the job's context, which
// kills its commands, concludes its check runs and deletes its branch. A
// new head replaces every older run; a re-run only those of its commit.
func (r *testRun) cancelOlder(ctx context.Context) error {
	tests := r.t.deps.State.Tests
	ids, err := tests.Older(ctx, r.req.meta.Repo.FullName(), r.req.key, r.jobID, r.req.reason != reasonRerun, r.req.sha)
	if err != nil || len(ids) == 0 {
		return err
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := client.JobCancel(ctx, id); err != nil {
			r.logger.Warn().Err(err).Int64("cancel_job_id", id).Msg("cancelling a superseded test run")
		}
	}
	// A job snoozed while waiting for the branch's lock is cancelled without
	// running again: end its queued run here (a running job ends its own).
	return tests.CancelQueued(ctx, ids, errSuperseded.Error())
}

// superseded reports whether a newer run that replaces this one exists: it
// was queued while this one waited for the lock.
func (r *testRun) superseded(ctx context.Context) (bool, error) {
	return r.t.deps.State.Tests.Newer(ctx, r.req.meta.Repo.FullName(), r.req.key, r.jobID, r.req.sha, []string{reasonPush, reasonFork})
}

// concludeAbandoned ends the branch's runs still marked running, and this
// job's earlier attempts: holding the branch's lock, no other job is
// working on them, so their process died. Their check runs would otherwise
// stay in progress forever. Their database branch is left to the sweeper
// (or replaced, when this run tests the same commit).
func (r *testRun) concludeAbandoned(ctx context.Context) error {
	runs, checks, err := r.t.deps.State.Tests.Abandoned(ctx, r.req.meta.Repo.FullName(), r.req.key, r.runID, r.jobID)
	if err != nil {
		return err
	}
	for _, c := range checks {
		r.logger.Warn().Str("stage", c.Stage).Int64("check_run_id", c.CheckRunID).Msg("concluding a check run abandoned by a stopped bot")
		run := github.CheckRun{Name: checkTestPrefix + c.Stage, Status: github.StatusCompleted, CompletedAt: time.Now(),
			Conclusion: stepConclusion(c.Status),
			Output:     &github.CheckOutput{Title: "Interrupted", Summary: "The bot stopped during this run; a newer run of the branch took over."}}
		if run.Conclusion == github.ConclusionCancelled || run.Conclusion == "" {
			run.Conclusion = github.ConclusionCancelled
		} else {
			run.Output = nil // it had finished: keep what it showed
		}
		if err := r.repo.UpdateCheckRun(ctx, c.CheckRunID, run); err != nil {
			return err
		}
	}
	return r.t.deps.State.Runs.Abandon(ctx, runs...)
}
