package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/templates"
)

// The sweeper is the safety net under the pipelines: a missed close event,
// a crash between creating and recording, a test run killed with its
// machine. Periodically (and on `bot sweep`) it compares what exists with
// what should, and removes what should not — but only what the bot made:
// previews it recorded, and Neon branches carrying its annotations.

// SweepInterval is how often the periodic sweep runs.
const SweepInterval = 10 * time.Minute

// testBranchMaxAge is when an ephemeral test branch is surely orphaned: no
// test run lasts this long.
const testBranchMaxAge = previewTimeout + 30*time.Minute

// testBranchGrace is how old a test branch must be before the sweep deletes
// it while no test run of its repository is active: a run creates its
// branch a moment before it records it.
const testBranchGrace = 5 * time.Minute

// SweepOptions tune one sweep.
type SweepOptions struct {
	// DryRun only reports.
	DryRun bool
	// Now is the sweep's notion of the time (default: the clock), against
	// which branch ages are measured.
	Now time.Time
	// CheckGrace is how long after its run ended an open check run is left
	// to the run's own conclusion (0: DefaultCheckGrace; negative: none).
	CheckGrace time.Duration
	// SkipBranches and SkipWorkers leave out the search for orphaned Neon
	// branches and Cloudflare Workers, for a `bot sweep` run without that
	// API's credentials: previews of closed PRs are still found (from the
	// bot's database and GitHub), and their teardown jobs, worked by the
	// running bot, reach every API.
	SkipBranches, SkipWorkers bool
}

// SweepAction is one thing the sweep did (or would do, when dry).
type SweepAction struct {
	Repo     string
	PR       int
	Resource string
	Reason   string
}

func (a SweepAction) String() string {
	pr := ""
	if a.PR != 0 {
		pr = fmt.Sprintf("#%d ", a.PR)
	}
	return fmt.Sprintf("%s %s%s: %s", a.Repo, pr, a.Resource, a.Reason)
}

// sweepArgs is the periodic sweep job.
type sweepArgs struct{}

func (sweepArgs) Kind() string { return "sweep" }

// sweepAll is the periodic sweep of every repository.
func sweepAll(deps Deps) func(ctx context.Context, _ *river.Job[sweepArgs]) error {
	return func(ctx context.Context, _ *river.Job[sweepArgs]) error {
		client := river.ClientFromContext[pgx.Tx](ctx)
		enqueue := func(ctx context.Context, args river.JobArgs) error {
			_, err := client.Insert(ctx, args, nil)
			return err
		}
		actions, err := Sweep(ctx, deps, enqueue, SweepOptions{})
		logger := jobLogger(ctx, deps.Logger)
		for _, a := range actions {
			logger.Info().Str("repo", a.Repo).Int("pr", a.PR).Str("resource", a.Resource).Str("reason", a.Reason).Msg("swept")
		}
		return err
	}
}

// previewSweepArgs tears down (or converges) one PR's preview for the
// sweeper, through the same sync as every PR event.
type previewSweepArgs struct {
	Repo           intent.Repo `json:"repo"`
	InstallationID int64       `json:"installation_id"`
	PR             int         `json:"pr"`
	Destroy        bool        `json:"destroy"`
}

func (previewSweepArgs) Kind() string { return "sweep_preview" }

// sweepPreview tears down (or converges) one PR's preview.
func (p *previews) sweepPreview(ctx context.Context, job *river.Job[previewSweepArgs]) error {
	a := job.Args
	m := intent.Meta{DeliveryID: fmt.Sprintf("sweep-%d", job.ID), Event: "sweep", InstallationID: a.InstallationID, Repo: a.Repo}
	_, err := p.sync(ctx, job.ID, m, a.PR, syncOptions{explicit: true, destroy: a.Destroy})
	return snoozeIfLocked(err)
}

func registerSweep(workers *river.Workers, p *previews) {
	addWorker(workers, 0, sweepAll(p.deps))
	addWorker(workers, deployTimeout, p.sweepPreview)
}

// sweepJob is the periodic job that runs the sweep on one replica (River's
// leader), also right after start-up: a restart is when leftovers are likely.
func sweepJob(every time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return sweepArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

// Sweep finds what the bot created and should no longer exist, and removes
// it (or, when dry, only reports it):
//   - previews of PRs that are closed (a missed close event) or past the
//     pipeline file's preview TTL: torn down by a queued sync job, which also
//     repairs the status comment and deactivates the deployments;
//   - Neon branches with the bot's annotations whose preview the bot does
//     not remember, and ephemeral test branches older than any test run;
//   - Workers tagged as previews of a configured repository (scriptTags)
//     whose preview the bot does not remember, with their hostnames.
//
// "Does not remember" covers a database restored from an old backup or
// replaced, and a crash between creating and recording. Anything changed in
// the last few minutes is left alone, and the database is asked again
// before each deletion: a preview may be in the making while the sweep runs.
//
// A repository's open PRs are listed once per sweep (a request per 100) and
// its pipeline file read once per base branch; only a preview whose PR is
// not in that list is asked about alone. A repository whose list cannot be
// read is skipped, with the error, until the next sweep.
//
// enqueue queues the teardown jobs (the running bot works them).
func Sweep(ctx context.Context, deps Deps, enqueue func(context.Context, river.JobArgs) error, opts SweepOptions) ([]SweepAction, error) {
	sw := &sweep{deps: deps, enqueue: enqueue, dry: opts.DryRun, now: opts.Now, known: map[string]bool{}, checkGrace: max(cmp.Or(opts.CheckGrace, DefaultCheckGrace), 0)}
	if sw.now.IsZero() {
		sw.now = time.Now()
	}
	if err := sw.previews(ctx); err != nil {
		return nil, err
	}
	if !opts.SkipBranches {
		sw.branches(ctx)
	}
	sw.concludeStranded(ctx)
	if !opts.SkipWorkers {
		for account, repos := range cloudflareAccounts(deps) {
			acts, err := sweepWorkers(ctx, deps, account, repos, sw.known, sw.now, sw.dry)
			sw.actions = append(sw.actions, acts...)
			sw.fail(err)
		}
	}
	return sw.actions, errors.Join(sw.errs...)
}

// sweep is one pass of the sweeper: what it found to do and what failed.
type sweep struct {
	deps    Deps
	enqueue func(context.Context, river.JobArgs) error
	dry     bool
	now     time.Time
	known   map[string]bool // "repo#pr" with a preview row
	// checkGrace: see SweepOptions.CheckGrace.
	checkGrace time.Duration
	actions    []SweepAction
	errs       []error
}

func (sw *sweep) fail(err error) {
	if err != nil {
		sw.errs = append(sw.errs, err)
	}
}

// previews queues the teardown of each recorded preview whose pull request
// is closed (or gone), or that outlived its TTL.
func (sw *sweep) previews(ctx context.Context) error {
	list, err := sw.deps.State.Previews.Held(ctx)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	repos := map[sweptRepoKey]*sweptRepo{}
	for _, x := range list {
		sw.known[fmt.Sprintf("%s#%d", x.Repo, x.PR)] = true
		if x.State == templates.Destroyed {
			continue // open or closed, nothing to do
		}
		owner, name, _ := strings.Cut(x.Repo, "/")
		key := sweptRepoKey{x.Repo, x.InstallationID}
		sr := repos[key]
		if sr == nil {
			sr = openSweptRepo(ctx, sw.deps, x.InstallationID, owner, name)
			repos[key] = sr
			sw.fail(sr.err) // once per repository; the next sweep tries again
		}
		if sr.err != nil {
			continue
		}
		pr, listed := sr.open[x.PR]
		closed := false
		if !listed {
			// Closed, deleted, or opened (or shifted between pages) while
			// the list was read: ask.
			pr, err = sr.repo.PullRequest(ctx, x.PR)
			closed = err == nil && pr.State == "closed"
			if errors.Is(err, github.ErrNotFound) {
				closed, err = true, nil // a deleted PR (or repository) is as good as closed
			}
			if err != nil {
				sw.fail(err)
				continue
			}
		}
		var reason string
		destroy := false
		if closed {
			reason = "pull request is closed"
		} else if ttl := sr.ttl(ctx, pr.BaseRef); ttl > 0 && sw.now.Sub(x.Updated) > ttl {
			reason, destroy = fmt.Sprintf("preview unchanged for longer than its TTL (%s)", ttl), true
		}
		if reason == "" {
			continue
		}
		sw.actions = append(sw.actions, SweepAction{Repo: x.Repo, PR: x.PR, Resource: "preview", Reason: reason})
		if sw.dry {
			continue
		}
		sw.fail(sw.enqueue(ctx, previewSweepArgs{
			Repo: intent.Repo{Owner: owner, Name: name}, InstallationID: x.InstallationID, PR: x.PR, Destroy: destroy,
		}))
	}
	return nil
}

// branches deletes the Neon branches of configured repositories that no
// preview or test run needs. The projects are named in the repositories'
// pipeline files: the previews remember theirs, and each configured
// repository's file on its default branch names the one its test branches
// live in.
func (sw *sweep) branches(ctx context.Context) {
	projects := map[string]bool{}
	if pairs, err := sw.deps.State.Previews.Projects(ctx); err == nil {
		for _, p := range pairs {
			if p[1] != "" {
				projects[p[1]] = true
			}
		}
	}
	for repoName := range sw.deps.Repositories {
		project, err := defaultBranchProject(ctx, sw.deps, repoName)
		sw.fail(err)
		if project != "" {
			projects[project] = true
		}
	}
	for project := range projects {
		branches, err := sw.deps.Neon.ListBranches(ctx, project, neon.Filter{})
		if err != nil {
			sw.fail(err)
			continue
		}
		for _, b := range branches {
			sw.branch(ctx, project, b)
		}
	}
}

// branch judges one branch of a swept project.
func (sw *sweep) branch(ctx context.Context, project string, b neon.Branch) {
	repoName := b.Annotations[neon.AnnotationRepo]
	if _, ours := sw.deps.Repositories[repoName]; !ours {
		// Another bot's, sharing the project (or a repository this one no
		// longer serves): not this bot's to judge.
		return
	}
	pr, _ := strconv.Atoi(b.Annotations[neon.AnnotationPR])
	var reason string
	switch b.Annotations[neon.AnnotationPurpose] {
	case neon.PurposeTest:
		age := sw.now.Sub(b.CreatedAt)
		switch {
		case age > testBranchMaxAge:
			reason = fmt.Sprintf("test branch older than any test run (%s)", age.Round(time.Minute))
		case age > testBranchGrace && !testsActive(ctx, sw.deps, repoName):
			reason = "test branch left by a test run that ended (no test run of the repository is active)"
		}
	case neon.PurposePreview:
		if pr == 0 || sw.known[fmt.Sprintf("%s#%d", repoName, pr)] || sw.now.Sub(b.CreatedAt) < orphanGrace ||
			previewRecorded(ctx, sw.deps, repoName, pr) {
			return // the preview sweep owns it, or it is being made
		}
		reason = "preview branch of a pull request the bot has no preview for"
	}
	if reason == "" {
		return
	}
	sw.actions = append(sw.actions, SweepAction{Repo: repoName, PR: pr, Resource: "neon branch " + b.Name, Reason: reason})
	if sw.dry {
		return
	}
	// The listing chose it by its annotations; deleting by name checks them
	// again, in case the name changed hands since.
	sw.fail(sw.deps.Neon.DeleteBranchNamed(ctx, project, b.Name, neon.TagsOf(b)))
}

// orphanGrace is how long a preview's Worker or branch may exist unrecorded
// before the sweep takes it for an orphan: a run records its preview just
// before creating them, and the sweep read the records a moment ago.
const orphanGrace = 5 * time.Minute

// previewRecorded asks the database again whether repo#pr has a preview
// with resources, for a sweep about to delete something it thought orphaned.
// When unsure, it says yes: never delete what may be in use.
func previewRecorded(ctx context.Context, deps Deps, repo string, pr int) bool {
	return deps.State.Previews.Holds(ctx, repo, pr)
}

// cloudflareAccounts groups the configured repositories by Cloudflare account.
func cloudflareAccounts(deps Deps) map[string]map[string]config.RepoCloudflare {
	out := map[string]map[string]config.RepoCloudflare{}
	for name, rc := range deps.Repositories {
		if rc.Cloudflare.AccountID == "" {
			continue
		}
		if out[rc.Cloudflare.AccountID] == nil {
			out[rc.Cloudflare.AccountID] = map[string]config.RepoCloudflare{}
		}
		out[rc.Cloudflare.AccountID][name] = rc.Cloudflare
	}
	return out
}

// sweepWorkers deletes the preview Workers of one account that the bot
// tagged for one of repos but has no preview for, hostnames first. Workers
// without the bot's tags, or tagged for a repository this bot is not
// configured for (another installation sharing the account), are not its.
func sweepWorkers(ctx context.Context, deps Deps, account string, repos map[string]config.RepoCloudflare, known map[string]bool, now time.Time, dry bool) ([]SweepAction, error) {
	cf, err := deps.Cloudflare(account)
	if err != nil {
		return nil, err
	}
	scripts, err := cf.ListScripts(ctx, "")
	if err != nil {
		return nil, err
	}
	var actions []SweepAction
	var errs []error
	var domains []cloudflare.CustomDomain
	domainsRead := false
	for _, s := range scripts {
		repo, pr, ok := taggedPreview(s.Tags)
		rc, ours := repos[repo]
		if !ok || !ours || known[fmt.Sprintf("%s#%d", repo, pr)] || now.Sub(s.ModifiedOn) < orphanGrace ||
			previewRecorded(ctx, deps, repo, pr) {
			continue
		}
		actions = append(actions, SweepAction{Repo: repo, PR: pr, Resource: "worker " + s.Name,
			Reason: "preview Worker of a pull request the bot has no preview for"})
		if dry {
			continue
		}
		if !domainsRead {
			if domains, err = cf.ListCustomDomains(ctx, ""); err != nil {
				return actions, err
			}
			domainsRead = true
		}
		detached := true
		for _, d := range domains {
			if d.Service == s.Name {
				if err := cf.DetachHostname(ctx, cloudflare.ModeCustomDomain, cloudflare.Hostname{ZoneID: d.ZoneID, Name: d.Hostname, Script: s.Name}); err != nil {
					errs, detached = append(errs, err), false
				}
			}
		}
		if rc.ZoneID != "" {
			routes, err := cf.ListRoutes(ctx, rc.ZoneID, "")
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, r := range routes {
				if r.Script == s.Name {
					h := cloudflare.Hostname{ZoneID: rc.ZoneID, Name: strings.TrimSuffix(r.Pattern, "/*"), Script: s.Name}
					if err := cf.DetachHostname(ctx, cloudflare.ModeDNSRoute, h); err != nil {
						errs, detached = append(errs, err), false
					}
				}
			}
		}
		if !detached {
			continue // the Worker stays until its hostnames are gone: the next sweep
		}
		if err := cf.DeleteScript(ctx, s.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return actions, errors.Join(errs...)
}

// sweptRepoKey is a repository as one installation sees it.
type sweptRepoKey struct {
	repo string
	inst int64
}

// sweptRepo is what one sweep reads of a repository, once: its open pull
// requests (a request per 100, where asking for each preview's PR would
// cost one per preview: 1,000 previews every SweepInterval would spend more
// than the installation's hourly rate limit) and the preview TTL of each
// base branch's pipeline file.
type sweptRepo struct {
	repo Repo
	open map[int]github.PullRequest
	ttls map[string]time.Duration // by base branch
	err  error
}

func openSweptRepo(ctx context.Context, deps Deps, inst int64, owner, name string) *sweptRepo {
	repo, err := deps.GitHub.Repo(ctx, inst, owner, name)
	if err != nil {
		return &sweptRepo{err: err}
	}
	prs, err := repo.OpenPullRequests(ctx)
	if errors.Is(err, github.ErrNotFound) {
		// The repository is gone (or out of the installation's sight):
		// each PR's own lookup then says so, and its preview goes.
		prs, err = nil, nil
	}
	if err != nil {
		return &sweptRepo{err: err}
	}
	sr := &sweptRepo{repo: repo, open: make(map[int]github.PullRequest, len(prs)), ttls: map[string]time.Duration{}}
	for _, pr := range prs {
		sr.open[pr.Number] = pr
	}
	return sr
}

// ttl is previewTTL of base, read once per sweep.
func (sr *sweptRepo) ttl(ctx context.Context, base string) time.Duration {
	d, ok := sr.ttls[base]
	if !ok {
		d = previewTTL(ctx, sr.repo, base)
		sr.ttls[base] = d
	}
	return d
}

// testsActive reports whether a test run of repo is queued or running.
func testsActive(ctx context.Context, deps Deps, repo string) bool {
	return deps.State.Runs.TestsActive(ctx, repo) // when unsure, active: never delete a branch in use
}

// defaultBranchProject is the Neon project named by repo's pipeline file on
// its default branch ("" when the bot has never heard from the repository
// or it has no file).
func defaultBranchProject(ctx context.Context, deps Deps, repoName string) (string, error) {
	inst, branch, err := deps.State.Deliveries.DefaultBranch(ctx, repoName)
	if err != nil || branch == "" {
		return "", err
	}
	owner, name, _ := strings.Cut(repoName, "/")
	repo, err := deps.GitHub.Repo(ctx, inst, owner, name)
	if err != nil {
		return "", err
	}
	raw, err := repo.File(ctx, repoconfig.Path, branch)
	if errors.Is(err, github.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	f, err := repoconfig.ParseWith(repoconfig.Path, raw, fileAt(ctx, repo, branch))
	if err != nil {
		return "", nil // the pipelines report a broken file; the sweep skips it
	}
	return f.Database.Project, nil
}

// previewTTL reads preview.ttl from the pipeline file on base (0 = none).
func previewTTL(ctx context.Context, repo Repo, base string) time.Duration {
	raw, err := repo.File(ctx, repoconfig.Path, base)
	if err != nil {
		return 0
	}
	f, err := repoconfig.ParseWith(repoconfig.Path, raw, fileAt(ctx, repo, base))
	if err != nil || f.Preview.TTL == "" {
		return 0
	}
	d, _ := time.ParseDuration(f.Preview.TTL)
	return d
}
