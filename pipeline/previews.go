package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/gitref"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/pipeline/state"
	"github.com/revelations-studio/deploybot/templates"
)

// CheckPreview is the name of the preview's check run.
const CheckPreview = "deploybot/preview"

// previewTimeout bounds one sync of a PR (build, deploy, health checks).
const previewTimeout = 30 * time.Minute

// deployTimeout bounds a deploy job: its run, and the wait for its tests
// when the pipeline file gates it (gateWithin).
const deployTimeout = previewTimeout + gateWithin

// syncOn makes a PR's preview match the PR, whatever intent woke it: every
// PR event is a reason to look at the PR as GitHub has it now and converge
// to it. Deliveries arriving late or out of order therefore cannot deploy
// an old commit, and a retried or rescued job simply converges again.
func syncOn[T intent.Intent](p *previews) func(ctx context.Context, job *river.Job[T]) error {
	return func(ctx context.Context, job *river.Job[T]) error {
		_, err := p.sync(ctx, job.ID, job.Args.Delivery(), intent.PRNumber(job.Args), syncOptions{})
		return snoozeIfLocked(err)
	}
}

// syncOptions are what commands add to a sync.
type syncOptions struct {
	explicit bool   // a person asked (a command or a button): drafts deploy too
	force    bool   // rebuild even if the head is already deployed
	destroy  bool   // tear down although the PR is open
	resetDB  bool   // reset the PR's database branch from its parent first
	approve  string // a maintainer approved this head SHA of a fork PR
	// waitLock waits for the PR's lock instead of failing with errLocked:
	// a comment's commands run in order and must not be replayed.
	waitLock bool
}

// errApprovalStale refuses a fork approval when the PR moved on since the
// maintainer looked at it.
var errApprovalStale = errors.New("the pull request has new commits since the approval")

type previews struct {
	deps  Deps
	gate  *gate
	tests *testRuns // fork heads, once approved, are tested
}

// preview is the stored state of a PR's preview, resources what it
// created (package state keeps them).
type (
	preview        = state.Preview
	resources      = state.Resources
	deployedWorker = state.DeployedWorker
)

// sync converges the PR's preview and returns its state afterwards.
func (p *previews) sync(ctx context.Context, jobID int64, m intent.Meta, number int, opts syncOptions) (*preview, error) {
	repoName := m.Repo.FullName()
	logger := jobLogger(ctx, p.deps.Logger).With().Str("repo", repoName).Int("pr", number).Logger()
	ctx = logger.WithContext(ctx)

	repo, err := p.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", repoName, err)
	}
	// The pipeline file comes from the base branch, almost always the
	// default one: it is read while the pull request is read and the lock
	// taken, and used if the base is that branch. (A job that finds the PR
	// busy and snoozes wastes that read: a conditional GET, answered 304.)
	type fetched struct {
		raw []byte
		err error
	}
	var prefetch chan fetched
	if m.Action != "closed" && !opts.destroy && m.Repo.DefaultBranch != "" {
		prefetch = make(chan fetched, 1)
		go func() {
			raw, err := repo.File(ctx, repoconfig.Path, m.Repo.DefaultBranch)
			prefetch <- fetched{raw, err}
		}()
	}
	pr, unlock, err := p.takeOver(ctx, repo, m, number, jobID, opts)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := p.load(ctx, repoName, number, m.InstallationID)
	if err != nil {
		return nil, err
	}
	if err := p.concludeAbandoned(ctx, repo, repoName, number); err != nil {
		return nil, err
	}
	run := &previewRun{p: p, repo: repo, meta: m, pr: pr, st: st, jobID: jobID, logger: logger, resetDB: opts.resetDB, force: opts.force}

	if pr.State == "closed" || opts.destroy {
		return st, run.teardown(ctx)
	}
	if opts.approve != "" {
		if pr.HeadSHA != opts.approve {
			return st, errApprovalStale
		}
		st.ApprovedSHA = pr.HeadSHA
		if err := p.save(ctx, st); err != nil {
			return nil, err
		}
	}
	if pr.Fork && st.ApprovedSHA == pr.HeadSHA {
		p.tests.queueForkTests(ctx, m, pr) // fork code is tested once a maintainer approved its head (tests.go)
	}
	// The pipeline file always comes from the base branch: a PR must not
	// choose what runs with the repository's secrets.
	var raw []byte
	if prefetch != nil && pr.BaseRef == m.Repo.DefaultBranch {
		f := <-prefetch
		raw, err = f.raw, f.err
	} else {
		raw, err = repo.File(ctx, repoconfig.Path, pr.BaseRef)
	}
	if errors.Is(err, github.ErrNotFound) {
		logger.Info().Str("base", pr.BaseRef).Msg("no pipeline file on the base branch: nothing to deploy")
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s@%s: %w", repoconfig.Path, pr.BaseRef, err)
	}
	file, fileErr := repoconfig.ParseWith(repoconfig.Path+"@"+pr.BaseRef, raw, fileAt(ctx, repo, pr.BaseRef))
	switch decideSync(m, pr, st, file, fileErr, opts) {
	case syncIgnored:
		logger.Info().Str("action", m.Action).Msg("the pipeline file does not deploy on this action")
		return st, nil
	case syncDraft:
		return st, run.showOnly(ctx, templates.Draft, "This pull request is a draft: mark it ready for review (or comment `/deploy`) to deploy a preview.")
	case syncAwaitApproval:
		return st, run.awaitApproval(ctx)
	case syncUpToDate:
		logger.Info().Str("sha", pr.HeadSHA).Msg("preview already deployed at the head commit")
		return st, nil
	}
	return st, run.deploy(ctx, file, fileErr)
}

// takeOver makes this job the PR's only one and returns with its lock and
// the pull request as it is now.
func (p *previews) takeOver(ctx context.Context, repo Repo, m intent.Meta, number int, jobID int64, opts syncOptions) (pr github.PullRequest, unlock func(), err error) {
	repoName := m.Repo.FullName()
	// A newer job of this PR takes over: runs still working are cancelled
	// (their commands killed, their check runs concluded), then this job
	// waits for the PR's lock. A run already deploying the head commit is
	// left to finish when nothing asks for more than that: a second event
	// for the same commit (GitHub sends several, redeliveries, a late
	// synchronize) would otherwise cancel good work only to redo it, and
	// this job finds the preview deployed once it gets the lock.
	keep, read := "", false
	if !opts.force && !opts.destroy && opts.approve == "" {
		if pr, err = repo.PullRequest(ctx, number); err != nil {
			return pr, nil, fmt.Errorf("read %s#%d: %w", repoName, number, err)
		}
		read = true
		if pr.State == "open" {
			keep = pr.HeadSHA
		}
	}
	if err := p.cancelOthers(ctx, repoName, number, jobID, keep); err != nil {
		return pr, nil, err
	}
	unlock, err = lockPR(ctx, p.deps, repoName, number)
	for opts.waitLock && errors.Is(err, errLocked) {
		read = false // the head may move while this job waits
		select {
		case <-ctx.Done():
			return pr, nil, ctx.Err()
		case <-time.After(lockRetry):
		}
		unlock, err = lockPR(ctx, p.deps, repoName, number)
	}
	if err != nil {
		return pr, nil, err
	}
	if !read {
		if pr, err = repo.PullRequest(ctx, number); err != nil {
			unlock()
			return pr, nil, fmt.Errorf("read %s#%d: %w", repoName, number, err)
		}
	}
	return pr, unlock, nil
}

// syncDecision is what a sync of an open pull request does once it has
// read the pipeline file.
type syncDecision int

const (
	syncDeploy        syncDecision = iota // build and deploy the head
	syncIgnored                           // the file does not deploy on this event's action
	syncDraft                             // a draft: show that it waits, deploy nothing
	syncAwaitApproval                     // a fork's head no maintainer approved: ask for it
	syncUpToDate                          // the head is already deployed
)

// decideSync decides what a sync of an open pull request does: the
// pipeline file's preview.on and drafts settings, the fork rule (its code
// runs only once a maintainer approved that exact head), and whether the
// head is deployed already. A command (opts.explicit) deploys drafts and
// ignores preview.on; /redeploy (opts.force) rebuilds a deployed head. A
// file with errors is deployed to say so on the pull request (run.deploy
// reports it), unless the fork rule stops it first.
func decideSync(m intent.Meta, pr github.PullRequest, st *preview, file *repoconfig.File, fileErr error, opts syncOptions) syncDecision {
	switch {
	case fileErr == nil && !opts.explicit && m.Event == "pull_request" && !contains(file.Preview.On, m.Action):
		return syncIgnored
	case fileErr == nil && pr.Draft && !file.Preview.Drafts && !opts.explicit:
		return syncDraft
	case pr.Fork && st.ApprovedSHA != pr.HeadSHA:
		return syncAwaitApproval
	case !opts.force && st.State == templates.Ready && st.DeployedSHA == pr.HeadSHA:
		return syncUpToDate
	}
	return syncDeploy
}

// cancelOthers cancels the running jobs of other syncs of the PR, except
// runs deploying keep (a head SHA; "" cancels all).
func (p *previews) cancelOthers(ctx context.Context, repo string, pr int, jobID int64, keep string) error {
	ids, err := p.deps.State.Runs.RunningJobs(ctx, repo, pr, jobID, keep)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	for _, id := range ids {
		if _, err := client.JobCancel(ctx, id); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Int64("cancel_job_id", id).Msg("cancelling the superseded run")
		}
	}
	return nil
}

// concludeAbandoned ends the runs of this PR that are still marked running.
// Holding the PR's lock, no other job can be working on them: their process
// died (a crash, a kill, a lost machine). Their check runs would otherwise
// spin forever on the PR; they are concluded as cancelled, and this sync
// converges the preview from where they stopped.
func (p *previews) concludeAbandoned(ctx context.Context, repo Repo, repoName string, number int) error {
	runs, err := p.deps.State.Runs.AbandonedPreviews(ctx, repoName, number)
	if err != nil {
		return err
	}
	return concludeAbandoned(ctx, p.deps.State.Runs, repo, CheckPreview, runs)
}

// concludeAbandoned concludes the check runs, named check, of runs the
// store found still running while the caller holds the lock those runs
// took: none of them is really running (the process that ran them
// stopped). Each run is ended only once its check run is concluded, so a
// bot stopped in between leaves it to the next.
func concludeAbandoned(ctx context.Context, runs state.Runs, repo Repo, check string, abandoned []state.Abandoned) error {
	for _, a := range abandoned {
		zerolog.Ctx(ctx).Warn().Int64("run_id", a.ID).Str("kind", a.Kind).Msg("concluding a run abandoned by a stopped bot")
		if a.CheckRunID == 0 && gitref.IsSHA(a.HeadSHA) {
			// The process may have died after GitHub created the check run
			// and before its id was recorded: find it by the run's id.
			id, _, err := repo.CheckRunByExternalID(ctx, a.HeadSHA, check, strconv.FormatInt(a.ID, 10))
			if err != nil {
				return fmt.Errorf("find the check run of abandoned run %d: %w", a.ID, err)
			}
			a.CheckRunID = id
		}
		if a.CheckRunID != 0 {
			if err := repo.UpdateCheckRun(ctx, a.CheckRunID, github.CheckRun{
				Name: check, Status: github.StatusCompleted, Conclusion: github.ConclusionCancelled, CompletedAt: time.Now(),
				Output: &github.CheckOutput{Title: "Interrupted", Summary: "The bot stopped during this run; a new run took over and converges from where it stopped."},
			}); err != nil {
				return fmt.Errorf("conclude check run %d of abandoned run %d: %w", a.CheckRunID, a.ID, err)
			}
		}
		if err := runs.Abandon(ctx, a.ID); err != nil {
			return err
		}
	}
	return nil
}

// lockPR serialises the syncs of one PR across workers and replicas.
func lockPR(ctx context.Context, deps Deps, repo string, pr int) (func(), error) {
	l, err := deps.State.Lock(ctx, fmt.Sprintf("deploybot:preview:%s#%d", repo, pr))
	if err != nil {
		return nil, err
	}
	return l.Release, nil
}

// errLocked says another job holds the lock this one needs. The job is
// snoozed (not failed): it frees its worker and connection instead of
// blocking them, and tries again shortly.
var errLocked = state.ErrLocked

// lockRetry is how long a job waiting for a lock snoozes.
const lockRetry = 500 * time.Millisecond

// snoozeIfLocked turns errLocked into a River snooze.
func snoozeIfLocked(err error) error {
	if errors.Is(err, errLocked) {
		return river.JobSnooze(lockRetry)
	}
	return err
}

func (p *previews) load(ctx context.Context, repo string, pr int, installationID int64) (*preview, error) {
	return p.deps.State.Previews.Load(ctx, repo, pr, installationID)
}

// save stores st, even when ctx is cancelled: what a cancelled run created
// must still be remembered.
func (p *previews) save(ctx context.Context, st *preview) error {
	return p.deps.State.Previews.Save(ctx, st)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
