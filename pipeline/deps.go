package pipeline

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/buildcache"
	"github.com/revelations-studio/deploybot/internal/cloudflare"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/neon"
	"github.com/revelations-studio/deploybot/internal/runner"
	"github.com/revelations-studio/deploybot/internal/workspace"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// Deps are the side effects the pipelines need, injected by cmd/bot: the
// real clients in production, the same clients pointed at the sandbox in
// tests and the demo.
type Deps struct {
	// State is the pipelines' state in the bot's database (all their SQL).
	State *state.Store
	// Repositories maps "owner/name" to what the bot needs to deploy it
	// (its Cloudflare account and zone, its secret values, who may run
	// commands): the only part of the bot's config the pipelines read,
	// with MasterKey and WorkersLimit.
	Repositories map[string]config.Repository
	// MasterKey derives the generated secrets (empty when not set).
	MasterKey config.Secret
	// WorkersLimit is cloudflare.workers_limit: the account plan's number of
	// Workers, warned about as it nears.
	WorkersLimit int
	GitHub       GitHub
	Neon         Databases
	// Cloudflare returns the Workers API of one account.
	Cloudflare func(accountID string) (Workers, error)
	// Health requests deployed hostnames; HealthScheme is "https" in
	// production ("http" for the sandbox's edge).
	Health       *http.Client
	HealthScheme string
	// HealthWithin bounds a worker's health check when its pipeline file
	// says nothing (default 5 minutes).
	HealthWithin time.Duration
	// WorkDir holds the runs' workspaces (one folder per run, removed after).
	WorkDir string
	// Cache keeps what setup commands install between runs (setup.cache);
	// nil keeps nothing.
	Cache *buildcache.Store
	// Commands runs the repository's commands (build, migrate, tests).
	Commands Commands
	Logger   zerolog.Logger
	// Observer is told how runs and steps end (the metrics); nil: no one.
	Observer Observer
	// TestCommands bounds the test-stage and test-migration commands that
	// run at once in this process, across all test runs (default 4).
	TestCommands int
	// GateEvery is how often a deploy that waits for tests reads their
	// results (default 5 s).
	GateEvery time.Duration
	// RunURL is the address of a run's page (internal/web), where check
	// runs' details, deployments' logs and the status comment's "Details"
	// link; nil when the bot has no public URL (they link the check run).
	RunURL func(runID int64) string
}

// runPage is the address of run id's page, "" when there is none.
func (d Deps) runPage(id int64) string {
	if d.RunURL == nil || id == 0 {
		return ""
	}
	return d.RunURL(id)
}

// stepPage is the address of a step on its run's page.
func (d Deps) stepPage(id int64, step string) string {
	page := d.runPage(id)
	if page == "" {
		return ""
	}
	return page + "#" + (&url.URL{Fragment: "step-" + step}).EscapedFragment()
}

// Commands runs the repository's commands; *runner.Runner implements it,
// in a sandbox where the bot does not exist unless configured otherwise.
type Commands interface {
	Run(ctx context.Context, c runner.Command) (runner.Result, error)
	// Isolated reports whether commands run in a sandbox; without one,
	// code from forks is refused.
	Isolated() bool
}

// GitHub opens a repository as an installation of the App.
type GitHub interface {
	Repo(ctx context.Context, installationID int64, owner, name string) (Repo, error)
}

// Repo is what the pipelines read from and write to one repository;
// *github.Reporter implements it.
type Repo interface {
	PullRequest(ctx context.Context, n int) (github.PullRequest, error)
	BranchHead(ctx context.Context, branch string) (sha string, found bool, err error)
	// OpenPullRequests lists the open pull requests; one missing from the
	// list may still be open (see github.Reporter.OpenPullRequests).
	OpenPullRequests(ctx context.Context) ([]github.PullRequest, error)
	File(ctx context.Context, path, ref string) ([]byte, error)
	// ChangedFiles lists the files changed from base to head; complete is
	// false when GitHub may have left some out.
	ChangedFiles(ctx context.Context, base, head string) (files []string, complete bool, err error)
	Tarball(ctx context.Context, ref string) (io.ReadCloser, error)
	// CheckRunByExternalID finds a check run the bot created for a run
	// (external id = the run's id) whose id it never recorded.
	CheckRunByExternalID(ctx context.Context, sha, name, externalID string) (id int64, found bool, err error)
	CreateCheckRun(ctx context.Context, run github.CheckRun) (github.CheckRunRef, error)
	UpdateCheckRun(ctx context.Context, id int64, run github.CheckRun) error
	UpsertStatusComment(ctx context.Context, pr int, body string, knownID int64) (int64, error)
	// StatusComment reads the status comment as GitHub has it now: what it
	// says and since when (a fork approval's proof, commands.go).
	StatusComment(ctx context.Context, pr int, knownID int64) (github.Comment, bool, error)
	CreateDeployment(ctx context.Context, d github.Deployment) (int64, error)
	SetDeploymentStatus(ctx context.Context, id int64, s github.DeploymentStatus) error
	DeactivatePullRequestDeployments(ctx context.Context, env string, pr int, keep, since int64) (int, error)
	CollaboratorRole(ctx context.Context, user string) (string, error)
	TeamMember(ctx context.Context, org, teamSlug, user string) (bool, error)
	React(ctx context.Context, commentID int64, content string) error
	Reply(ctx context.Context, pr int, body string) (int64, error)
}

// Databases is the Neon API; *neon.Client implements it.
type Databases interface {
	EnsureBranch(ctx context.Context, projectID string, opts neon.BranchOptions) (neon.Branch, error)
	ConnectionURIs(ctx context.Context, projectID, branchID, database, role string) (neon.URIs, error)
	// OwnConnectionURIs gives the branch's role its own password once
	// (owned: the branch id recorded as done) and returns the id to record.
	OwnConnectionURIs(ctx context.Context, projectID string, b neon.Branch, owned string) (neon.URIs, string, error)
	// ResetConnectionURIs gives the branch's role a new password first, so
	// the URIs do not carry the parent's (production's) password.
	ResetConnectionURIs(ctx context.Context, projectID, branchID, database, role string) (neon.URIs, error)
	// DeleteBranchNamed and ResetBranch act only on a branch the bot made
	// for tags; any other is left alone (*neon.NotOwnedError).
	DeleteBranchNamed(ctx context.Context, projectID, name string, tags neon.Tags) error
	ResetBranch(ctx context.Context, projectID, name string, tags neon.Tags) error
	FindBranch(ctx context.Context, projectID, name string) (neon.Branch, bool, error)
	ListBranches(ctx context.Context, projectID string, f neon.Filter) ([]neon.Branch, error)
}

// Workers is one Cloudflare account's Workers API; *cloudflare.Client
// implements it.
type Workers interface {
	UploadWorker(ctx context.Context, s cloudflare.Script) (string, error)
	AttachHostname(ctx context.Context, mode cloudflare.HostnameMode, h cloudflare.Hostname) error
	DetachHostname(ctx context.Context, mode cloudflare.HostnameMode, h cloudflare.Hostname) error
	DeleteScript(ctx context.Context, name string) error
	CurrentDeployment(ctx context.Context, script string) (cloudflare.Deployment, error)
	Deploy(ctx context.Context, script, versionID string) (cloudflare.Deployment, error)
	ListScripts(ctx context.Context, prefix string) ([]cloudflare.ScriptInfo, error)
	LookupScript(ctx context.Context, name string) (cloudflare.ScriptLookup, error)
	ListCustomDomains(ctx context.Context, prefix string) ([]cloudflare.CustomDomain, error)
	ListRoutes(ctx context.Context, zoneID, prefix string) ([]cloudflare.Route, error)
}

// GitHubFunc adapts a function to GitHub.
type GitHubFunc func(ctx context.Context, installationID int64, owner, name string) (Repo, error)

// Repo calls f.
func (f GitHubFunc) Repo(ctx context.Context, installationID int64, owner, name string) (Repo, error) {
	return f(ctx, installationID, owner, name)
}

// newWorkspace makes a run's workspace under Deps.WorkDir, which a first
// run on a fresh machine has to create.
func newWorkspace(deps Deps) (*workspace.Workspace, error) {
	if err := os.MkdirAll(deps.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("workspace: create %s: %w", deps.WorkDir, err)
	}
	return workspace.New(deps.WorkDir)
}
