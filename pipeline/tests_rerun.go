package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/intent"
)

// What starts test runs besides pushes: "Re-run" on a stage's check run,
// and the approved head of a fork's pull request.

// previewAt is the PR whose preview was built at sha (one of prs, when
// GitHub named them), or 0.
func (t *testRuns) previewAt(ctx context.Context, repo, sha string, prs []int) (int, error) {
	return t.deps.State.Runs.PreviewAt(ctx, repo, sha, prs)
}

// queueTestRerun answers "Re-run" on a stage's check run (or on the check
// run of an unusable pipeline file): that stage, and the stages it needs,
// run again at the check run's commit. It is called by requests.checkRunAction and
// authorizes the person like a command.
func (t *testRuns) queueTestRerun(ctx context.Context, in intent.CheckRunAction) error {
	m := in.Delivery()
	if m.Action != "rerequested" {
		return nil
	}
	logger := jobLogger(ctx, t.deps.Logger).With().Str("repo", m.Repo.FullName()).Str("user", m.Sender).Str("check_run", in.Name).Logger()
	repo, err := t.gate.open(ctx, m, logger, "test re-run")
	if repo == nil || err != nil {
		return err
	}
	req, ok, err := t.testRerun(ctx, repo, m, in.HeadSHA, "", in.CheckRunID)
	if err != nil || !ok {
		logger.Info().Err(err).Msg("no test run to repeat for this check run")
		return err
	}
	req.stage = strings.TrimPrefix(in.Name, checkTestPrefix)
	if in.Name == CheckTests {
		req.stage = ""
	}
	return t.queueTestRun(ctx, testRunArgs{
		Meta: m, Key: req.key, Branch: req.branch, SHA: req.sha, PR: req.pr, Fork: req.fork, Stage: req.stage, Reason: reasonRerun,
	})
}

// queueForkTests asks for the test stages to run on the head of a fork
// pull request. The caller decides whether fork code may run at all; the
// run gets no secrets and a database branch made as forks.init_source
// says (schema-only unless the repository chose otherwise). Each head runs
// once, however many syncs look at it.
func (t *testRuns) queueForkTests(ctx context.Context, m intent.Meta, pr github.PullRequest) {
	args := testRunArgs{
		// Only what identifies the head, so that River's uniqueness by
		// arguments makes the job once per commit.
		Meta: intent.Meta{InstallationID: m.InstallationID, Repo: m.Repo},
		Key:  forkKeyPrefix + strconv.Itoa(pr.Number), Branch: pr.HeadRef, SHA: pr.HeadSHA, PR: pr.Number, Fork: true,
		Reason: reasonFork,
	}
	if err := t.queueTestRun(ctx, args); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("queueing the tests of the fork's head")
	}
}

func (t *testRuns) queueTestRun(ctx context.Context, args testRunArgs) error {
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
func (t *testRuns) testRerun(ctx context.Context, repo Repo, m intent.Meta, sha, headBranch string, checkRunID int64) (testRequest, bool, error) {
	repoName := m.Repo.FullName()
	tests := t.deps.State.Tests
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
	return t.rerunOf(ctx, repo, m, key, sha)
}

// rerunOf is a re-run of sha on the branch (or fork pull request) key of
// an earlier test run.
func (t *testRuns) rerunOf(ctx context.Context, repo Repo, m intent.Meta, key, sha string) (testRequest, bool, error) {
	repoName := m.Repo.FullName()
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
