// Package intent names what a webhook asks the bot to do.
//
// Handlers turn GitHub events into intents; each intent is also the argument
// of a durable River job (it implements river.JobArgs through Kind), so what
// a delivery asked for survives restarts and is retried until done. Intents
// carry only what the pipelines need to act, never a credential.
package intent

import (
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// QueueTests is the River queue of test runs. Deploys may wait for tests
// (needs_tests) while holding a worker of the default queue: test runs
// have workers of their own, so waiting deploys can never starve them.
const QueueTests = "tests"

// Intent is one kind of work requested by a delivery.
type Intent interface {
	// Kind is the River job kind, stable across releases: queued jobs are
	// matched to workers by it.
	Kind() string
	// Delivery is the metadata of the webhook that asked for it.
	Delivery() Meta
}

// Meta identifies the delivery and where it came from.
type Meta struct {
	DeliveryID     string `json:"delivery_id"`
	Event          string `json:"event"`
	Action         string `json:"action,omitempty"`
	InstallationID int64  `json:"installation_id"`
	Repo           Repo   `json:"repo"`
	// Sender is the login of the user or bot that triggered the event.
	Sender string `json:"sender,omitempty"`
}

// Delivery returns m; embedding Meta gives every intent its Delivery method.
func (m Meta) Delivery() Meta { return m }

// Repo is a repository by id and name (the name can change, the id cannot).
type Repo struct {
	ID            int64  `json:"id"`
	Owner         string `json:"owner"`
	Name          string `json:"name"`
	DefaultBranch string `json:"default_branch,omitempty"`
}

// FullName is "owner/name".
func (r Repo) FullName() string {
	if r.Owner == "" && r.Name == "" {
		return ""
	}
	return r.Owner + "/" + r.Name
}

// PullRequest is what the pipelines need to know about a PR.
type PullRequest struct {
	Number  int    `json:"number"`
	HeadSHA string `json:"head_sha"`
	HeadRef string `json:"head_ref"`
	BaseRef string `json:"base_ref"`
	// HeadRepo is the full name of the repository the head branch lives in;
	// it differs from the base repository for a fork.
	HeadRepo string `json:"head_repo"`
	Fork     bool   `json:"fork"`
	Draft    bool   `json:"draft"`
	Author   string `json:"author"`
}

// PreviewRequested asks for the PR's preview to be built at HeadSHA
// (opened, reopened, synchronize, ready_for_review).
type PreviewRequested struct {
	Meta
	PR PullRequest `json:"pr"`
}

// PreviewDrafted reports that a PR went back to draft.
type PreviewDrafted struct {
	Meta
	PR PullRequest `json:"pr"`
}

// PreviewClosed asks for the PR's preview to be torn down.
type PreviewClosed struct {
	Meta
	PR     PullRequest `json:"pr"`
	Merged bool        `json:"merged"`
}

// CommentCommand is a new PR comment that may hold slash commands; the
// pipelines parse and authorise it.
type CommentCommand struct {
	Meta
	PR                int    `json:"pr"`
	CommentID         int64  `json:"comment_id"`
	Author            string `json:"author"`
	AuthorAssociation string `json:"author_association"`
	Body              string `json:"body"`
	// CreatedAt is when GitHub says the comment was written (whole
	// seconds). A plain /deploy on a fork approves the head only if the
	// bot showed that head before this time; zero (a job queued by an
	// older bot) proves nothing.
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// CheckRunAction is a person pressing "Re-run" (Action "rerequested") or one
// of the bot's buttons (Action "requested_action", Identifier set) on a check
// run.
type CheckRunAction struct {
	Meta
	CheckRunID int64  `json:"check_run_id"`
	Name       string `json:"name"`
	HeadSHA    string `json:"head_sha"`
	Identifier string `json:"identifier,omitempty"`
	PRs        []int  `json:"prs,omitempty"`
}

// PageAction is a signed-in person pressing one of the web pages' buttons
// on a run's page (internal/web). Meta.Event is "page", Meta.Action the
// button (one of the Page* names), Meta.Sender the person's GitHub login;
// InstallationID and Repo are what the bot last heard of the repository.
// The worker authorizes Sender exactly like a PR command's author, and
// reads the commit, branch and check run to act on from the run itself.
type PageAction struct {
	Meta
	// ID is the request's row in page_actions, where its outcome is shown.
	ID int64 `json:"id"`
	// RunID is the run whose page the button was on.
	RunID int64 `json:"run_id"`
	PR    int   `json:"pr,omitempty"`
	// Stage is the test stage to re-run ("" all of them).
	Stage string `json:"stage,omitempty"`
}

// The buttons of the run pages: each does what the matching PR command or
// check-run button does.
const (
	PageRedeploy = "redeploy"          // preview: /redeploy
	PageResetDB  = "redeploy-reset-db" // preview: /redeploy --reset-db
	PageDeploy   = "deploy"            // preview: /deploy <the page's SHA>, approving a fork's commit
	PageDestroy  = "destroy"           // preview: /destroy
	PageRerun    = "rerun"             // test run: a stage (or all); production: deploy the commit again
	PageRollback = "rollback"          // production: "Roll back to this"
)

// CheckSuiteRequested asks for the checks of a commit to run (Action
// "requested", sent by GitHub on a push) or run again ("rerequested").
type CheckSuiteRequested struct {
	Meta
	CheckSuiteID int64  `json:"check_suite_id"`
	HeadSHA      string `json:"head_sha"`
	HeadBranch   string `json:"head_branch"`
	PRs          []int  `json:"prs,omitempty"`
}

// Push is the common part of a branch push.
type Push struct {
	Branch string `json:"branch"`
	Before string `json:"before"`
	After  string `json:"after"`
	// HeadMessage is the head commit's message, for "[skip ci]".
	HeadMessage string `json:"head_message,omitempty"`
	Forced      bool   `json:"forced,omitempty"`
}

// ProductionPush is a push to the default branch: a production deploy.
type ProductionPush struct {
	Meta
	Push
	// Redeploy: someone asked to deploy this commit again ("Re-run" on its
	// production check run), which a repeated delivery never does.
	Redeploy bool `json:"redeploy,omitempty"`
}

// TestRequested is a push to any other branch: run its test stages.
type TestRequested struct {
	Meta
	Push
}

// BranchDeleted is a deleted branch, whose ephemeral resources can go.
type BranchDeleted struct {
	Meta
	Branch string `json:"branch"`
}

// InstallationChanged is the App being installed, removed, suspended or
// given other repositories.
type InstallationChanged struct {
	Meta
	Account      string   `json:"account"`
	ReposAdded   []string `json:"repos_added,omitempty"`
	ReposRemoved []string `json:"repos_removed,omitempty"`
}

func (PreviewRequested) Kind() string    { return "preview_requested" }
func (PreviewDrafted) Kind() string      { return "preview_drafted" }
func (PreviewClosed) Kind() string       { return "preview_closed" }
func (CommentCommand) Kind() string      { return "comment_command" }
func (CheckRunAction) Kind() string      { return "check_run_action" }
func (CheckSuiteRequested) Kind() string { return "check_suite_requested" }
func (PageAction) Kind() string          { return "page_action" }

// PageActionAttempts bounds a page action's tries: a person waits on the
// page, so an action that keeps failing is shown failed within minutes
// (River's backoff: 1 s, 16 s, 81 s, 256 s) rather than retried for days.
const PageActionAttempts = 5

// InsertOpts bounds the action's attempts (PageActionAttempts).
func (PageAction) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: PageActionAttempts}
}
func (ProductionPush) Kind() string { return "production_push" }
func (TestRequested) Kind() string  { return "test_requested" }

// InsertOpts puts test runs on their own queue (QueueTests).
func (TestRequested) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueTests} }
func (BranchDeleted) Kind() string                 { return "branch_deleted" }
func (InstallationChanged) Kind() string           { return "installation_changed" }

// Key names what an intent acts on when that is itself unique, so that one
// event delivered under two delivery ids (two webhooks pointing at the bot,
// a replayed payload) is acted on once: a comment's commands run once per
// comment. "" for intents whose repetition is harmless or meaningful (a push
// is converged to the branch's head; a button may be pressed twice).
func Key(in Intent) string {
	switch in := in.(type) {
	case CommentCommand:
		if in.CommentID != 0 {
			return fmt.Sprintf("comment:%s:%d", in.Repo.FullName(), in.CommentID)
		}
	}
	return ""
}

// PRNumber is the pull request an intent concerns, or 0.
func PRNumber(in Intent) int {
	switch in := in.(type) {
	case PreviewRequested:
		return in.PR.Number
	case PreviewDrafted:
		return in.PR.Number
	case PreviewClosed:
		return in.PR.Number
	case CommentCommand:
		return in.PR
	case PageAction:
		return in.PR
	case CheckRunAction:
		if len(in.PRs) == 1 {
			return in.PRs[0]
		}
	case CheckSuiteRequested:
		if len(in.PRs) == 1 {
			return in.PRs[0]
		}
	}
	return 0
}
