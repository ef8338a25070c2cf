package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/revelations-studio/deploybot/internal/commands"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// The web pages' buttons (internal/web): a signed-in person asks, on a
// run's page, for what a PR command or a check run's button does. The page
// only checks that the person may read the repository and that the form
// is theirs (CSRF); the job does the rest, as for a comment: the gate
// decides with the person's GitHub login (role, commands.allow/only, their
// teams), and the command's own code runs, so a page can never do more
// than a comment could. Every request and its outcome is a page_actions
// row, shown on the run's page: a refusal says so there (and why in the
// log, which alone may name the configuration).
//
// Fork pull requests: "Redeploy" on a fork whose head no maintainer
// approved shows "awaiting approval", like /redeploy and the check run's
// button. "Deploy this commit" is `/deploy <sha>` with the whole SHA of
// the run's commit: it approves that commit, and nothing if the pull
// request's head has moved on since (the reply says which is the head
// now), so a push racing the click is never approved by it.

// PageActions queues what people ask on the pages: the request's row and
// its job in one transaction.
type PageActions struct {
	store *state.Store
	queue *river.Client[pgx.Tx]
}

// NewPageActions returns the pages' way into the job queue (cmd/bot wires
// it into web.Options.Actions).
func NewPageActions(pool *pgxpool.Pool, queue *river.Client[pgx.Tx]) *PageActions {
	return &PageActions{store: state.New(pool), queue: queue}
}

// Request queues a: the installation and default branch are those of the
// latest delivery about its repository (a repository the bot never heard
// of has no runs to show either). It returns the request's id.
func (a *PageActions) Request(ctx context.Context, in intent.PageAction) (int64, error) {
	repoName := in.Repo.FullName()
	inst, branch, err := a.store.Deliveries.DefaultBranch(ctx, repoName)
	if err != nil {
		return 0, err
	}
	if inst == 0 {
		return 0, fmt.Errorf("request %s on %s: no delivery from GitHub names the App's installation on this repository", in.Action, repoName)
	}
	in.Event, in.InstallationID, in.Repo.DefaultBranch = "page", inst, branch
	row := state.PageAction{Repo: repoName, RunID: in.RunID, Action: in.Action, Stage: in.Stage, Actor: in.Sender}
	return a.store.Pages.Request(ctx, row, func(ctx context.Context, tx pgx.Tx, id int64) (int64, error) {
		in.ID, in.DeliveryID = id, fmt.Sprintf("page-%d", id)
		res, err := a.queue.InsertTx(ctx, tx, in, nil)
		if err != nil {
			return 0, err
		}
		return res.Job.ID, nil
	})
}

// Recent returns the last n requests on run's page, newest first.
func (a *PageActions) Recent(ctx context.Context, run int64, n int) ([]state.PageAction, error) {
	return a.store.Pages.Recent(ctx, run, n)
}

// Outcomes of a page action (page_actions.status).
const (
	pageDone    = "done"
	pageRefused = "refused"
	pageFailed  = "failed"
)

// pageAction is the page_action job.
func (q *requests) pageAction(ctx context.Context, job *river.Job[intent.PageAction]) error {
	err := q.pageActionAttempt(ctx, job)
	if err == nil {
		return nil
	}
	// The last attempt, or an error no retry mends (the job ends now: see
	// the worker middleware), must not leave the page saying "running".
	_, permanent := github.Permanent(err)
	if permanent || job.Attempt >= job.MaxAttempts {
		msg := "could not be carried out: GitHub or the bot's database kept failing (the bot's log says why)"
		if ferr := q.deps.State.Pages.Finish(context.WithoutCancel(ctx), job.Args.ID, pageFailed, msg, 0); ferr != nil {
			return errors.Join(err, ferr)
		}
	}
	return err
}

// pageActionAttempt is one attempt at a page action.
func (q *requests) pageActionAttempt(ctx context.Context, job *river.Job[intent.PageAction]) error {
	in := job.Args
	m := in.Meta
	repoName := m.Repo.FullName()
	logger := jobLogger(ctx, q.deps.Logger).With().Str("repo", repoName).Str("user", m.Sender).
		Str("action", in.Action).Int64("page_action", in.ID).Int64("on_run", in.RunID).Logger()
	ctx = logger.WithContext(ctx)
	pages := q.deps.State.Pages
	if err := pages.Running(ctx, in.ID); err != nil {
		return err
	}
	repo, err := q.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
	if err != nil {
		return err
	}
	if ok, why := q.gate.authorize(ctx, repo, repoName, m.Sender); !ok {
		logger.Warn().Str("reason", why).Msg("page action refused")
		return pages.Finish(ctx, in.ID, pageRefused, refusedOnPage(m.Sender, repoName), 0)
	}
	run, found, err := q.deps.State.Runs.Get(ctx, in.RunID)
	if err != nil {
		return err
	}
	if !found || run.Repo != repoName {
		return pages.Finish(ctx, in.ID, pageFailed, fmt.Sprintf("run %d of %s does not exist", in.RunID, repoName), 0)
	}
	logger.Info().Msg("page action")
	status, msg, result, err := q.carryOut(ctx, job.ID, repo, in, run)
	if err != nil {
		return err
	}
	if status != pageDone {
		logger.Warn().Str("outcome", status).Str("why", msg).Msg("page action not done")
	}
	return pages.Finish(ctx, in.ID, status, msg, result)
}

// refusedOnPage is what a refused person reads on the page: what the
// configuration says is for the log only, as for a refused command.
func refusedOnPage(user, repo string) string {
	return fmt.Sprintf("@%s may not steer deploybot on %s: that takes the role, or the place in the repository's commands settings, "+
		"that the PR commands need (by default write, maintain or admin)", user, repo)
}

// carryOut does what in asks of run, as the matching command or button
// does. It returns the outcome, a message for the page when it is not
// done, and the job whose run it started; err only for what a retry may
// mend.
func (q *requests) carryOut(ctx context.Context, jobID int64, repo Repo, in intent.PageAction, run state.Detail) (status, msg string, result int64, err error) {
	m := in.Meta
	fail := func(format string, a ...any) (string, string, int64, error) {
		return pageFailed, fmt.Sprintf(format, a...), 0, nil
	}
	switch in.Action {
	case intent.PageRedeploy, intent.PageResetDB, intent.PageDeploy, intent.PageDestroy:
		if run.PR == 0 || in.PR != run.PR {
			return fail("run %d is not a pull request's: %s is for previews", run.ID, in.Action)
		}
		c := commands.Command{Name: commands.Redeploy, Text: "/redeploy"}
		switch in.Action {
		case intent.PageResetDB:
			c.ResetDB, c.Text = true, "/redeploy --reset-db"
		case intent.PageDeploy:
			// The whole SHA: on a fork it approves exactly the commit the
			// page showed, and refuses if the head moved on (gate.approval).
			c = commands.Command{Name: commands.Deploy, SHA: run.HeadSHA, Text: approveCommand(run.HeadSHA)}
		case intent.PageDestroy:
			c = commands.Command{Name: commands.Destroy, Text: "/destroy"}
		}
		cmd := intent.CommentCommand{Meta: m, PR: run.PR, Author: m.Sender}
		if why := q.run(ctx, jobID, repo, cmd, c); why != "" {
			return pageFailed, why, jobID, nil
		}
		return pageDone, "", jobID, nil

	case intent.PageRerun:
		switch run.Kind {
		case "test":
			if in.Stage != "" && !isStage(run, in.Stage) {
				return fail("run %d has no test stage %q", run.ID, in.Stage)
			}
			req, _, err := q.p.tests.rerunOf(ctx, repo, m, run.Branch, run.HeadSHA)
			if err != nil {
				return "", "", 0, err
			}
			id, err := insertJob(ctx, testRunArgs{Meta: m, Key: req.key, Branch: req.branch, SHA: req.sha, PR: req.pr, Fork: req.fork,
				Stage: in.Stage, Reason: reasonRerun})
			return pageDone, "", id, err
		case "production":
			branch := run.Branch
			if branch == "" {
				branch = m.Repo.DefaultBranch
			}
			id, err := insertJob(ctx, intent.ProductionPush{Meta: m, Push: intent.Push{Branch: branch, After: run.HeadSHA}, Redeploy: true})
			return pageDone, "", id, err
		}
		return fail("a %s run cannot be re-run from its page", run.Kind)

	case intent.PageRollback:
		if run.Kind != "production" || run.CheckRunID == 0 {
			return fail("only a production deploy can be rolled back to")
		}
		sha, _, found, err := q.deps.State.Runs.DeployedBy(ctx, run.Repo, run.CheckRunID)
		if err != nil {
			return "", "", 0, err
		}
		if !found || sha != run.HeadSHA {
			return fail("run %d left no Worker versions on record to roll back to: only a successful production deploy can be", run.ID)
		}
		id, err := insertJob(ctx, productionRollbackArgs{Meta: m, SHA: run.HeadSHA, CheckRunID: run.CheckRunID})
		return pageDone, "", id, err
	}
	return fail("there is no action %q", in.Action)
}

// isStage reports whether stage is one of a test run's stages (its steps
// but the setup ones).
func isStage(run state.Detail, stage string) bool {
	return !strings.HasPrefix(stage, "setup:") && slices.ContainsFunc(run.Steps, func(s state.Step) bool { return s.Name == stage })
}

// insertJob queues args from within a job, once per set of arguments (a
// retried page action queues nothing twice: its arguments name it), and
// returns the job's id.
func insertJob(ctx context.Context, args river.JobArgs) (int64, error) {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", args.Kind(), err)
	}
	res, err := client.Insert(ctx, args, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}})
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", args.Kind(), err)
	}
	return res.Job.ID, nil
}
