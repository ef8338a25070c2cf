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
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/names"
	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/internal/runner"
	"github.com/revelations-studio/deploybot/internal/workspace"
	"github.com/revelations-studio/deploybot/pipeline/state"
	"github.com/revelations-studio/deploybot/templates"
)

// Test runs: every push to a branch other than the default one runs the
// test stages of the pipeline file, read from the DEFAULT branch (a push
// must not choose what runs). Each stage is its own check run on the pushed
// commit; stages run as a graph (in parallel where their needs allow), each
// in its own copy of the source, and the stages marked `database: true`
// share one ephemeral Neon branch, migrated before them and deleted when
// the run ends however it ends. A newer push to the branch cancels the
// older run. Failures are reported on the check runs, with annotations on
// the lines the output points at; they are not retried.

// CheckTests is the check run reporting a pipeline file that cannot be
// used; each stage's check run is named CheckTests + ": " + the stage.
const CheckTests = "deploybot/test"

const (
	checkTestPrefix = CheckTests + ": "
	// defaultStageTimeout bounds a stage whose pipeline file says nothing.
	defaultStageTimeout = 20 * time.Minute
	// migrateTimeout bounds the migration of the ephemeral branch.
	migrateTimeout = 15 * time.Minute
	// defaultTestCommands is how many test commands run at once in one
	// process when Deps.TestCommands is 0.
	defaultTestCommands = 4
	// testRunTimeout bounds a whole run (a River job); it must stay below
	// the queue's RescueStuckJobsAfter, or a long run would be started a
	// second time while the first still works.
	testRunTimeout = previewTimeout
	// maxTarball bounds the compressed source download.
	maxTarball = 1 << 30
	// forkKeyPrefix marks the runs of a fork pull request's head in
	// runs.branch (":" cannot appear in a branch name).
	forkKeyPrefix = "pull:"
)

// The setup steps of a test run; stage steps are named after their stage,
// and stage names cannot contain ':'.
const (
	stepSource   = "setup:source"
	stepDatabase = "setup:database"
	stepMigrate  = "setup:migrate"
)

// Why a test run was started (runs.reason). A push or a fork's new head
// supersedes every older run of its branch; a re-run only the older runs
// of the same commit.
const (
	reasonPush  = "push"
	reasonFork  = "fork"
	reasonRerun = "rerun"
)

// errSuperseded ends a run that a newer one replaced before it started.
var errSuperseded = errors.New("superseded by a newer run of the branch")

// testRuns runs the test stages of every repository; slots bounds the
// commands running at once across all of them.
type testRuns struct {
	p     *previews
	slots chan struct{}
}

// registerTests adds the test-run workers: pushes (TestRequested),
// "Re-run all checks" (CheckSuiteRequested) and the runs other workers ask
// for (a fork's approved head, "Re-run" on a stage's check run).
func registerTests(workers *river.Workers, p *previews) {
	n := p.deps.TestCommands
	if n <= 0 {
		n = defaultTestCommands
	}
	t := &testRuns{p: p, slots: make(chan struct{}, n)}
	river.AddWorker(workers, &pushTestWorker{t: t})
	river.AddWorker(workers, &checkSuiteWorker{t: t})
	river.AddWorker(workers, &testRunWorker{t: t})
}

// testRequest is one test run to do.
type testRequest struct {
	meta    intent.Meta
	key     string // runs.branch: the branch, or forkKeyPrefix+PR
	branch  string // the head branch: {branch} in names, DEPLOYBOT_BRANCH
	sha     string
	pr      int  // the fork pull request, or 0
	fork    bool // schema-only database, as forks.init_source says
	stage   string
	reason  string
	message string // the head commit's message, for [skip ci]
}

// testRunArgs is the job of a run asked for by another worker: the head of
// an approved fork pull request, or a re-run.
type testRunArgs struct {
	Meta   intent.Meta `json:"meta"`
	Key    string      `json:"key"`
	Branch string      `json:"branch"`
	SHA    string      `json:"sha"`
	PR     int         `json:"pr,omitempty"`
	Fork   bool        `json:"fork,omitempty"`
	// Stage re-runs this stage and the stages it needs ("" all).
	Stage  string `json:"stage,omitempty"`
	Reason string `json:"reason"`
}

func (testRunArgs) Kind() string { return "test_run" }

// isTestCheck reports whether a check run belongs to test runs: a stage's,
// or the one reporting an unusable pipeline file.
func isTestCheck(name string) bool {
	return name == CheckTests || strings.HasPrefix(name, checkTestPrefix)
}

func (a testRunArgs) request() testRequest {
	return testRequest{meta: a.Meta, key: a.Key, branch: a.Branch, sha: a.SHA, pr: a.PR, fork: a.Fork, stage: a.Stage, reason: a.Reason}
}

type pushTestWorker struct {
	river.WorkerDefaults[intent.TestRequested]
	t *testRuns
}

func (w *pushTestWorker) Timeout(*river.Job[intent.TestRequested]) time.Duration {
	return testRunTimeout
}

func (w *pushTestWorker) Work(ctx context.Context, job *river.Job[intent.TestRequested]) error {
	in := job.Args
	return w.t.run(ctx, job.ID, testRequest{
		meta: in.Meta, key: in.Branch, branch: in.Branch, sha: in.After, reason: reasonPush, message: in.HeadMessage,
	})
}

type testRunWorker struct {
	river.WorkerDefaults[testRunArgs]
	t *testRuns
}

func (w *testRunWorker) Timeout(*river.Job[testRunArgs]) time.Duration { return testRunTimeout }

func (w *testRunWorker) Work(ctx context.Context, job *river.Job[testRunArgs]) error {
	return w.t.run(ctx, job.ID, job.Args.request())
}

// checkSuiteWorker answers "Re-run all checks" on a commit: every stage
// runs again. The "requested" GitHub sends on each push needs nothing: the
// push itself started the run.
type checkSuiteWorker struct {
	river.WorkerDefaults[intent.CheckSuiteRequested]
	t *testRuns
}

func (w *checkSuiteWorker) Timeout(*river.Job[intent.CheckSuiteRequested]) time.Duration {
	return testRunTimeout
}

func (w *checkSuiteWorker) Work(ctx context.Context, job *river.Job[intent.CheckSuiteRequested]) error {
	in := job.Args
	if in.Action != "rerequested" {
		return nil
	}
	p := w.t.p
	m := in.Delivery()
	logger := p.deps.Logger.With().Str("repo", m.Repo.FullName()).Str("user", m.Sender).Str("sha", short(in.HeadSHA)).Logger()
	repo, err := p.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
	if err != nil {
		return err
	}
	if ok, why := p.authorize(ctx, repo, m.Repo.FullName(), m.Sender); !ok {
		logger.Warn().Str("reason", why).Msg("check-suite re-run refused")
		return nil
	}
	// The suite also holds the preview's check run when the commit was a
	// PR's head: that re-runs as the preview's own "Re-run" (its lock, its
	// deadline), queued once however often this job is retried.
	if pr, err := p.previewAt(ctx, m.Repo.FullName(), in.HeadSHA, in.PRs); err != nil {
		return err
	} else if pr > 0 {
		rerun := intent.CheckRunAction{Meta: m, Name: CheckPreview, HeadSHA: in.HeadSHA, PRs: []int{pr}}
		client := river.ClientFromContext[pgx.Tx](ctx)
		if _, err := client.Insert(ctx, rerun, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}); err != nil {
			return fmt.Errorf("queue the preview re-run of #%d: %w", pr, err)
		}
	}
	req, ok, err := p.testRerun(ctx, repo, m, in.HeadSHA, in.HeadBranch, 0)
	if err != nil || !ok {
		logger.Info().Err(err).Msg("no test run to repeat for this commit")
		return err
	}
	return w.t.run(ctx, job.ID, req)
}

// previewAt is the PR whose preview was built at sha (one of prs, when
// GitHub named them), or 0.
func (p *previews) previewAt(ctx context.Context, repo, sha string, prs []int) (int, error) {
	return p.deps.State.Runs.PreviewAt(ctx, repo, sha, prs)
}

// queueTestRerun answers "Re-run" on a stage's check run (or on the check
// run of an unusable pipeline file): that stage, and the stages it needs,
// run again at the check run's commit. It is called by checkRunWorker and
// authorizes the person like a command.
func (p *previews) queueTestRerun(ctx context.Context, in intent.CheckRunAction) error {
	m := in.Delivery()
	if m.Action != "rerequested" {
		return nil
	}
	logger := p.deps.Logger.With().Str("repo", m.Repo.FullName()).Str("user", m.Sender).Str("check_run", in.Name).Logger()
	repo, err := p.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
	if err != nil {
		return err
	}
	if ok, why := p.authorize(ctx, repo, m.Repo.FullName(), m.Sender); !ok {
		logger.Warn().Str("reason", why).Msg("test re-run refused")
		return nil
	}
	req, ok, err := p.testRerun(ctx, repo, m, in.HeadSHA, "", in.CheckRunID)
	if err != nil || !ok {
		logger.Info().Err(err).Msg("no test run to repeat for this check run")
		return err
	}
	req.stage = strings.TrimPrefix(in.Name, checkTestPrefix)
	if in.Name == CheckTests {
		req.stage = ""
	}
	return p.queueTestRun(ctx, testRunArgs{
		Meta: m, Key: req.key, Branch: req.branch, SHA: req.sha, PR: req.pr, Fork: req.fork, Stage: req.stage, Reason: reasonRerun,
	})
}

// queueForkTests asks for the test stages to run on the head of a fork
// pull request. The caller decides whether fork code may run at all; the
// run gets no secrets and a database branch made as forks.init_source
// says (schema-only unless the repository chose otherwise). Each head runs
// once, however many syncs look at it.
func (p *previews) queueForkTests(ctx context.Context, m intent.Meta, pr github.PullRequest) {
	args := testRunArgs{
		// Only what identifies the head, so that River's uniqueness by
		// arguments makes the job once per commit.
		Meta: intent.Meta{InstallationID: m.InstallationID, Repo: m.Repo},
		Key:  forkKeyPrefix + strconv.Itoa(pr.Number), Branch: pr.HeadRef, SHA: pr.HeadSHA, PR: pr.Number, Fork: true,
		Reason: reasonFork,
	}
	if err := p.queueTestRun(ctx, args); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("queueing the tests of the fork's head")
	}
}

func (p *previews) queueTestRun(ctx context.Context, args testRunArgs) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return fmt.Errorf("queue a test run of %s@%s: %w", args.Meta.Repo.FullName(), short(args.SHA), err)
	}
	if _, err := client.Insert(ctx, args, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}); err != nil {
		return fmt.Errorf("queue a test run of %s@%s: %w", args.Meta.Repo.FullName(), short(args.SHA), err)
	}
	return nil
}

// testRerun finds what a re-run of sha repeats: the branch (or fork pull
// request) of the bot's last test run of that commit, or of the check run
// checkRunID when given; headBranch when the bot never tested the commit.
func (p *previews) testRerun(ctx context.Context, repo Repo, m intent.Meta, sha, headBranch string, checkRunID int64) (testRequest, bool, error) {
	repoName := m.Repo.FullName()
	tests := p.deps.State.Tests
	var key string
	found := false
	if checkRunID != 0 {
		k, s, ok, err := tests.OfCheckRun(ctx, repoName, checkRunID)
		if err != nil {
			return testRequest{}, false, err
		}
		if ok {
			key, sha, found = k, s, true
		}
	}
	if !found {
		k, ok, err := tests.KeyOf(ctx, repoName, sha)
		if err != nil {
			return testRequest{}, false, err
		}
		key, found = k, ok
	}
	if !found {
		if headBranch == "" || headBranch == m.Repo.DefaultBranch {
			return testRequest{}, false, nil
		}
		key = headBranch
	}
	req := testRequest{meta: m, key: key, branch: key, sha: sha, reason: reasonRerun}
	if n, ok := strings.CutPrefix(key, forkKeyPrefix); ok {
		number, err := strconv.Atoi(n)
		if err != nil {
			return testRequest{}, false, fmt.Errorf("test run of %s@%s: bad branch key %q", repoName, short(sha), key)
		}
		pr, err := repo.PullRequest(ctx, number)
		if err != nil {
			return testRequest{}, false, fmt.Errorf("read %s#%d: %w", repoName, number, err)
		}
		req.branch, req.pr, req.fork = pr.HeadRef, number, pr.Fork
	}
	return req, true, nil
}

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
	deps := t.p.deps
	repoName := req.meta.Repo.FullName()
	logger := deps.Logger.With().Str("repo", repoName).Str("branch", req.branch).Str("sha", short(req.sha)).
		Str("reason", req.reason).Int64("job_id", jobID).Logger()
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
	dup, err := r.t.p.deps.State.Tests.Ran(ctx, state.TestRun{Repo: repoName, Key: req.key, SHA: req.sha, Reason: reasonPush}, r.jobID)
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
	deps := r.t.p.deps
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
	file, err := repoconfig.Parse(repoconfig.Path+"@"+base, raw)
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
	vars := map[string]string{"branch": r.req.branch, "sha": r.req.sha, "sha7": short(r.req.sha), "repo": r.req.meta.Repo.Name, "pr": ""}
	if r.req.pr > 0 {
		vars["pr"] = strconv.Itoa(r.req.pr)
	}
	r.dbName = names.BranchName(names.Expand(file.Database.TestBranch, vars))

	if err := r.createChecks(ctx); err != nil {
		r.concludeAll(ctx, nil, err)
		_ = r.finish(ctx, "failed", err)
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

	states, runErr := execute(ctx, deps.State.Steps, r.runID, r.steps(), func(s []StepState) { r.onChange(ctx, s) })
	r.dropDatabase(ctx)
	r.concludeAll(ctx, states, runErr)
	status := "succeeded"
	switch {
	case ctx.Err() != nil:
		status = "cancelled"
	case runErr != nil:
		status = "failed"
	}
	return r.finish(ctx, status, runErr) // failures are reported, not retried
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
	db := false
	for _, s := range r.stages {
		db = db || s.Database
	}
	if db {
		steps = append(steps,
			Step{Name: stepDatabase, Do: r.createDatabase},
			Step{Name: stepMigrate, Needs: []string{stepSource, stepDatabase}, Do: r.migrate},
		)
	}
	for _, s := range r.stages {
		needs := append([]string{stepSource}, s.Needs...)
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
	deps := r.t.p.deps
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
	b, err := deps.Neon.EnsureBranch(ctx, db.Project, neon.BranchOptions{
		Name: name, Parent: db.Parent, InitSource: init, Tags: r.dbTags(),
	})
	if err != nil {
		return err
	}
	// The stages (a fork's, once approved) must not learn the parent's
	// password, which the new branch's role still has.
	uris, err := deps.Neon.ResetConnectionURIs(ctx, db.Project, b.ID, "", "")
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
	err := r.t.p.deps.Neon.DeleteBranchNamed(ctx, r.file.Database.Project, r.dbName, r.dbTags())
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
	return runCommand(ctx, r.t.p.deps.Commands, log, runner.Command{
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
	env := map[string]string{
		"CI":                    "true",
		"DEPLOYBOT":             "true",
		"DEPLOYBOT_ENVIRONMENT": "test",
		"DEPLOYBOT_REPO":        r.req.meta.Repo.FullName(),
		"DEPLOYBOT_SHA":         r.req.sha,
		"DEPLOYBOT_BRANCH":      r.req.branch,
	}
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
	dir, _, err := r.unpack(ctx, "stage-"+s.Name)
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
	res, err := r.t.p.deps.Commands.Run(ctx, cmd)
	if res.Output != "" {
		log.Write([]byte(res.Output))
	}
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

func (r *testRun) result(stage string) (stageResult, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.results[stage]
	return res, ok
}

// record stores the run as queued (or directly as finished, for a skip).
func (r *testRun) record(ctx context.Context, status, msg string) error {
	id, err := r.t.p.deps.State.Tests.Record(ctx, state.TestRun{
		Repo: r.req.meta.Repo.FullName(), Key: r.req.key, SHA: r.req.sha, JobID: r.jobID, Reason: r.req.reason,
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
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	return r.t.p.deps.State.Runs.Finish(ctx, r.runID, status, msg)
}

// Runs are ordered by their job's id: River numbers jobs as they are
// queued, in the order the deliveries arrived, whereas a run's own row is
// written when its job starts.

// cancelOlder cancels the jobs of the older runs of the branch that this
// one replaces, running or waiting: River cancels the job's context, which
// kills its commands, concludes its check runs and deletes its branch. A
// new head replaces every older run; a re-run only those of its commit.
func (r *testRun) cancelOlder(ctx context.Context) error {
	tests := r.t.p.deps.State.Tests
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
	return r.t.p.deps.State.Tests.Newer(ctx, r.req.meta.Repo.FullName(), r.req.key, r.jobID, r.req.sha, []string{reasonPush, reasonFork})
}

// concludeAbandoned ends the branch's runs still marked running, and this
// job's earlier attempts: holding the branch's lock, no other job is
// working on them, so their process died. Their check runs would otherwise
// stay in progress forever. Their database branch is left to the sweeper
// (or replaced, when this run tests the same commit).
func (r *testRun) concludeAbandoned(ctx context.Context) error {
	checks, err := r.t.p.deps.State.Tests.Abandon(ctx, r.req.meta.Repo.FullName(), r.req.key, r.runID, r.jobID)
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
	return nil
}

// stepConclusion is the check-run conclusion of a finished step ("" while
// it is not finished).
func stepConclusion(status string) string {
	switch status {
	case StepSucceeded:
		return github.ConclusionSuccess
	case StepFailed:
		return github.ConclusionFailure
	case StepSkipped:
		return github.ConclusionSkipped
	case StepCancelled:
		return github.ConclusionCancelled
	}
	return ""
}

// createChecks creates every stage's check run, queued, and remembers them
// with the run's steps, so that a re-run or the next run finds them.
func (r *testRun) createChecks(ctx context.Context) error {
	// As in previewRun.startCheck: a cancelled run still learns the ids of
	// the check runs it created, so it can conclude them.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkCreateTimeout)
	defer cancel()
	for _, s := range r.stages {
		ref, err := r.repo.CreateCheckRun(ctx, github.CheckRun{
			Name: checkTestPrefix + s.Name, HeadSHA: r.req.sha, Status: github.StatusQueued,
			ExternalID: strconv.FormatInt(r.runID, 10),
			Output:     &github.CheckOutput{Title: "Queued", Summary: "Waiting for the stages it needs, the source and a free runner."},
		})
		if err != nil {
			return fmt.Errorf("create the check run of stage %s: %w", s.Name, err)
		}
		r.checks[s.Name] = ref.ID
		if err := r.t.p.deps.State.Tests.AttachCheckRun(ctx, r.runID, s.Name, ref.ID); err != nil {
			return err
		}
	}
	return nil
}

// markInProgress shows that a stage's command is starting.
func (r *testRun) markInProgress(ctx context.Context, stage string) {
	s := r.stage(stage)
	err := r.repo.UpdateCheckRun(context.WithoutCancel(ctx), r.checks[stage], github.CheckRun{
		Name: checkTestPrefix + stage, Status: github.StatusInProgress,
		Output: &github.CheckOutput{Title: "Running", Summary: "```sh\n" + s.Run + "\n```"},
	})
	if err != nil {
		r.logger.Warn().Err(err).Str("stage", stage).Msg("marking the check run in progress")
	}
}

func (r *testRun) stage(name string) repoconfig.Stage {
	for _, s := range r.stages {
		if s.Name == name {
			return s
		}
	}
	return repoconfig.Stage{Name: name}
}

// onChange concludes the check run of each stage that just finished.
func (r *testRun) onChange(ctx context.Context, states []StepState) {
	for _, st := range states {
		if _, ok := r.checks[st.Name]; !ok || r.concluded[st.Name] || stepConclusion(st.Status) == "" {
			continue
		}
		r.conclude(ctx, st, states, nil)
	}
}

// concludeAll concludes the check runs not concluded yet: after the run,
// or when it could not start (cause).
func (r *testRun) concludeAll(ctx context.Context, states []StepState, cause error) {
	byName := map[string]StepState{}
	for _, st := range states {
		byName[st.Name] = st
	}
	for _, s := range r.stages {
		if _, ok := r.checks[s.Name]; !ok || r.concluded[s.Name] {
			continue
		}
		st, ok := byName[s.Name]
		if !ok || stepConclusion(st.Status) == "" {
			st = StepState{Name: s.Name, Status: StepFailed, Err: errString(cause)}
			if ctx.Err() != nil {
				st.Status = StepCancelled
			}
		}
		r.conclude(ctx, st, states, cause)
	}
}

// conclude completes a stage's check run from its step's final state.
func (r *testRun) conclude(ctx context.Context, st StepState, states []StepState, cause error) {
	overtime := errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(cause, context.DeadlineExceeded)
	ctx = context.WithoutCancel(ctx)
	r.concluded[st.Name] = true
	s := r.stage(st.Name)
	res, ran := r.result(st.Name)
	out := templates.TestStage{
		Stage: st.Name, Status: st.Status, Command: s.Run, Ran: ran && res.ran, ExitCode: res.exitCode,
		Duration: st.Duration(), Commit: r.req.sha, Branch: r.req.branch, Output: res.output,
	}
	if s.Database {
		out.Database = r.dbName
	}
	run := github.CheckRun{Name: checkTestPrefix + st.Name, Status: github.StatusCompleted, CompletedAt: time.Now(),
		Conclusion: stepConclusion(st.Status)}
	var title string
	switch st.Status {
	case StepSucceeded:
		title = "Passed in " + st.Duration().Round(100*time.Millisecond).String()
	case StepFailed:
		switch {
		case res.timedOut:
			run.Conclusion, title = github.ConclusionTimedOut, "Timed out after "+res.timeout.String()
		case ran && res.ran:
			title = fmt.Sprintf("Failed with exit code %d", res.exitCode)
		default:
			title = "Could not run: " + firstLine(st.Err)
			out.Output = strings.TrimSpace(st.Log + "\n" + st.Err)
		}
	case StepSkipped:
		blame := r.rootCause(st.Name, states)
		switch {
		case blame.Status == StepCancelled:
			run.Conclusion, title = github.ConclusionCancelled, "Cancelled"
		case strings.HasPrefix(blame.Name, "setup:"):
			// Not this stage's fault, but it could not be tested: that
			// is a failure of the commit (a migration that breaks, say).
			run.Conclusion = github.ConclusionFailure
			title = setupTitle(blame.Name)
			out.Note = "This stage did not run: " + strings.ToLower(title[:1]) + title[1:] + "."
			out.Output = strings.TrimSpace(blame.Log + "\n" + blame.Err)
		default:
			title = "Skipped: " + blame.Name + " failed"
			out.Note = "Skipped because the stage `" + blame.Name + "`, which this one needs, did not pass."
		}
	case StepCancelled:
		run.Conclusion, title = github.ConclusionCancelled, "Cancelled"
		if overtime {
			run.Conclusion, title = github.ConclusionTimedOut, "The test run took longer than "+testRunTimeout.String()
		}
	}
	if run.Conclusion == github.ConclusionCancelled {
		out.Note = "Cancelled before it finished: a newer push to the branch (or a re-run) took over, or the bot stopped."
	}
	// A stage that passed shows only its warnings and notes: its other
	// "file:line: text" lines are not problems.
	var marks []annotate.Annotation
	for _, a := range res.annotations {
		if st.Status == StepFailed || a.Level != annotate.Failure {
			marks = append(marks, a)
		}
	}
	n := min(len(marks), github.MaxAnnotationsPerCall)
	out.Annotations, out.MoreAnnotations = n, len(marks)-n
	summary, text, err := templates.TestStageOutput(out)
	if err != nil {
		r.logger.Error().Err(err).Msg("rendering a stage's check run")
		summary = title
	}
	run.Output = &github.CheckOutput{Title: title, Summary: summary, Text: text}
	for _, a := range marks[:n] {
		run.Output.Annotations = append(run.Output.Annotations, github.Annotation{
			Path: a.Path, StartLine: a.Line, EndLine: a.Line, Level: a.Level, Message: a.Message, Title: a.Title,
		})
	}
	if err := r.repo.UpdateCheckRun(ctx, r.checks[st.Name], run); err != nil {
		r.logger.Warn().Err(err).Str("stage", st.Name).Msg("concluding the stage's check run")
	}
}

// rootCause follows a skipped step's needs to the step that failed or was
// cancelled and so stopped it.
func (r *testRun) rootCause(name string, list []StepState) StepState {
	states := map[string]StepState{}
	for _, st := range list {
		states[st.Name] = st
	}
	seen := map[string]bool{}
	var find func(string) (StepState, bool)
	find = func(n string) (StepState, bool) {
		if seen[n] {
			return StepState{}, false
		}
		seen[n] = true
		st := states[n]
		switch st.Status {
		case StepFailed, StepCancelled:
			return st, true
		}
		for _, need := range r.needs[n] {
			if st, ok := find(need); ok {
				return st, true
			}
		}
		return StepState{}, false
	}
	if st, ok := find(name); ok && st.Name != name {
		return st
	}
	return StepState{Name: "an earlier step", Status: StepFailed}
}

func setupTitle(step string) string {
	switch step {
	case stepSource:
		return "Setup failed: the source could not be fetched"
	case stepDatabase:
		return "Setup failed: the database branch could not be created"
	case stepMigrate:
		return "Setup failed: the migration failed"
	}
	return "Setup failed: " + step
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// badFile reports a pipeline file that cannot be used on one check run:
// without it there are no stages to show.
func (r *testRun) badFile(ctx context.Context, base string, fileErr error) error {
	_, err := r.repo.CreateCheckRun(context.WithoutCancel(ctx), github.CheckRun{
		Name: CheckTests, HeadSHA: r.req.sha, Conclusion: github.ConclusionFailure, CompletedAt: time.Now(),
		ExternalID: strconv.FormatInt(r.runID, 10),
		Output: &github.CheckOutput{Title: "The pipeline file has errors",
			Summary: "`" + repoconfig.Path + "` on the default branch `" + base + "` could not be used, so no tests ran:\n\n```text\n" + fileErr.Error() + "\n```"},
	})
	if err != nil {
		r.logger.Warn().Err(err).Msg("reporting the pipeline file's errors")
	}
	return r.finish(ctx, "failed", fileErr)
}
