package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/revelations-studio/deploybot/internal/intent"
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
	// testBranchExpiry is when Neon deletes a test run's ephemeral branch
	// by itself (expires_at): a few hours past any run's end.
	testBranchExpiry = testRunTimeout + 3*time.Hour
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
	stepSetup    = "setup:run" // the pipeline file's setup command
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
	deps  Deps
	gate  *gate
	slots chan struct{}
}

// newTestRuns returns the test pipeline, with deps.TestCommands slots.
func newTestRuns(deps Deps, g *gate) *testRuns {
	n := deps.TestCommands
	if n <= 0 {
		n = defaultTestCommands
	}
	return &testRuns{deps: deps, gate: g, slots: make(chan struct{}, n)}
}

// registerTests adds the test-run workers: pushes (TestRequested),
// "Re-run all checks" (CheckSuiteRequested) and the runs other workers ask
// for (a fork's approved head, "Re-run" on a stage's check run).
func registerTests(workers *river.Workers, t *testRuns) {
	addWorker(workers, testRunTimeout, t.push)
	addWorker(workers, testRunTimeout, t.checkSuite)
	addWorker(workers, testRunTimeout, t.runJob)
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
	before  string // the branch's head before the push ("" or zeros: none)
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

// InsertOpts puts test runs on their own queue (intent.QueueTests).
func (testRunArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: intent.QueueTests} }

// isTestCheck reports whether a check run belongs to test runs: a stage's,
// or the one reporting an unusable pipeline file.
func isTestCheck(name string) bool {
	return name == CheckTests || strings.HasPrefix(name, checkTestPrefix)
}

func (a testRunArgs) request() testRequest {
	return testRequest{meta: a.Meta, key: a.Key, branch: a.Branch, sha: a.SHA, pr: a.PR, fork: a.Fork, stage: a.Stage, reason: a.Reason}
}

// push tests a pushed branch's head.
func (t *testRuns) push(ctx context.Context, job *river.Job[intent.TestRequested]) error {
	in := job.Args
	return t.run(ctx, job.ID, testRequest{
		meta: in.Meta, key: in.Branch, branch: in.Branch, sha: in.After, reason: reasonPush, message: in.HeadMessage, before: in.Before,
	})
}

// runJob is a test run another worker asked for.
func (t *testRuns) runJob(ctx context.Context, job *river.Job[testRunArgs]) error {
	return t.run(ctx, job.ID, job.Args.request())
}

// checkSuite answers "Re-run all checks" on a commit: every stage
// runs again. The "requested" GitHub sends on each push needs nothing: the
// push itself started the run.
func (t *testRuns) checkSuite(ctx context.Context, job *river.Job[intent.CheckSuiteRequested]) error {
	in := job.Args
	if in.Action != "rerequested" {
		return nil
	}
	m := in.Delivery()
	logger := jobLogger(ctx, t.deps.Logger).With().Str("repo", m.Repo.FullName()).Str("user", m.Sender).Str("sha", short(in.HeadSHA)).Logger()
	repo, err := t.gate.open(ctx, m, logger, "check-suite re-run")
	if repo == nil || err != nil {
		return err
	}
	// The suite also holds the preview's check run when the commit was a
	// PR's head: that re-runs as the preview's own "Re-run" (its lock, its
	// deadline), queued once however often this job is retried.
	if pr, err := t.previewAt(ctx, m.Repo.FullName(), in.HeadSHA, in.PRs); err != nil {
		return err
	} else if pr > 0 {
		rerun := intent.CheckRunAction{Meta: m, Name: CheckPreview, HeadSHA: in.HeadSHA, PRs: []int{pr}}
		client := river.ClientFromContext[pgx.Tx](ctx)
		if _, err := client.Insert(ctx, rerun, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}); err != nil {
			return fmt.Errorf("queue the preview re-run of #%d: %w", pr, err)
		}
	}
	req, ok, err := t.testRerun(ctx, repo, m, in.HeadSHA, in.HeadBranch, 0)
	if err != nil || !ok {
		logger.Info().Err(err).Msg("no test run to repeat for this commit")
		return err
	}
	return t.run(ctx, job.ID, req)
}
