package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/commands"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/templates"
)

// commandWorker carries out the slash commands of a new PR comment.
// Feedback stays small: 👀 when accepted, 🚀 when done, 😕 and a short
// reply when refused or failed. Progress shows in the status comment and
// the check run, not in new comments.
//
// Who may run commands is decided before anything else, so that nobody
// else can make the bot write: a comment by someone without permission
// gets no reply, only a 😕, and that at most once per refusalWindow per
// person and repository (reactToRefusal). "Did not understand" replies are
// for people who may run commands.
type commandWorker struct {
	river.WorkerDefaults[intent.CommentCommand]
	p *previews
}

func (w *commandWorker) Timeout(*river.Job[intent.CommentCommand]) time.Duration {
	return previewTimeout
}

func (w *commandWorker) Work(ctx context.Context, job *river.Job[intent.CommentCommand]) error {
	in := job.Args
	cmds, problems := commands.Parse(in.Body)
	if len(cmds) == 0 && len(problems) == 0 {
		return nil
	}
	m := in.Delivery()
	logger := w.p.deps.Logger.With().Str("repo", m.Repo.FullName()).Int("pr", in.PR).
		Str("user", in.Author).Int64("comment_id", in.CommentID).Logger()
	repo, err := w.p.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
	if err != nil {
		return err
	}
	fb := feedback{repo: repo, pr: in.PR, comment: in.CommentID, logger: logger}

	if ok, why := w.p.authorize(ctx, repo, m.Repo.FullName(), in.Author); !ok {
		react, err := w.p.reactToRefusal(ctx, m.Repo.FullName(), in.Author)
		if err != nil {
			logger.Warn().Err(err).Msg("recording a refused command: no reaction")
		}
		logger.Warn().Str("reason", why).Strs("commands", commandTexts(cmds)).Int("problems", len(problems)).
			Bool("reacted", react).Msg("command refused")
		if react {
			fb.react(ctx, github.ReactionConfused)
		}
		return nil
	}

	if len(problems) > 0 {
		var lines []string
		for _, p := range problems {
			lines = append(lines, fmt.Sprintf("- line %d, `%s`: %s", p.Line, strings.ReplaceAll(p.Text, "`", "'"), noMention(p.Reason)))
		}
		fb.refuse(ctx, "@"+in.Author+", I did not understand:\n\n"+strings.Join(lines, "\n")+"\n\n"+commands.Usage)
	}
	if len(cmds) == 0 {
		return nil
	}
	fb.react(ctx, github.ReactionEyes)

	var failures []string
	for _, c := range cmds {
		logger.Info().Str("command", c.Text).Msg("running command")
		if msg := w.run(ctx, job.ID, repo, in, c); msg != "" {
			failures = append(failures, fmt.Sprintf("`%s`: %s", c.Text, msg))
		}
	}
	if len(failures) > 0 {
		fb.refuse(ctx, "@"+in.Author+", "+strings.Join(failures, "\n")+"\n\nSee the status comment for details.")
		return nil
	}
	fb.react(ctx, github.ReactionRocket)
	return nil
}

// run carries out one command and returns why it failed ("" on success).
func (w *commandWorker) run(ctx context.Context, jobID int64, repo Repo, in intent.CommentCommand, c commands.Command) string {
	m := in.Delivery()
	var opts syncOptions
	switch c.Name {
	case commands.Help:
		body, err := templates.Help("")
		if err != nil {
			return err.Error()
		}
		if _, err = repo.Reply(ctx, in.PR, body); err != nil {
			return "could not post the help: " + err.Error()
		}
		return ""
	case commands.Deploy:
		opts = syncOptions{explicit: true}
		sha, refusal, err := w.p.approval(ctx, repo, in, c)
		switch {
		case err != nil:
			return err.Error()
		case refusal != "":
			return refusal
		}
		opts.approve = sha
	case commands.Redeploy:
		opts = syncOptions{explicit: true, force: true, resetDB: c.ResetDB}
	case commands.Destroy:
		opts = syncOptions{explicit: true, destroy: true}
	default:
		return "unknown command"
	}
	opts.waitLock = true
	st, err := w.p.sync(ctx, jobID, m, in.PR, opts)
	switch {
	case errors.Is(err, errApprovalStale):
		return "the head of this pull request changed while the command waited its turn, so nothing was deployed. " +
			"Review the new head and comment `/deploy <sha>` with its SHA (the status comment shows the command)."
	case err != nil:
		return err.Error()
	case st == nil:
		return "a newer request for this pull request took over"
	}
	want := templates.Ready
	if c.Name == commands.Destroy {
		want = templates.Destroyed
	}
	if st.State != want {
		return "the preview is " + strings.ReplaceAll(st.State, "_", " ")
	}
	return ""
}

// approval decides which commit a /deploy may run, and refuses (with a
// reply for the maintainer) when that is not certain to be the commit they
// meant. sha is the head commit the sync must still find, or "" for a
// plain /deploy on a pull request from the repository itself, whose code
// runs at every push anyway.
//
// A fork's code runs only with an approval of its exact commit, and a push
// can overtake the comment: GitHub may deliver the comment after the
// push's synchronize (slow or redelivered), and the bot reads the head
// when it acts. So on a fork the approved commit is the current head only
// when one of these holds:
//
//   - the comment names it in full: /deploy <40 hex digits>;
//   - the bot's status comment asked to approve that very head and GitHub
//     last saved it at least shownMargin before it created the
//     maintainer's comment (both times by GitHub's clock), so the head on
//     display when the comment was written is the head now. This admits
//     a plain /deploy and a short /deploy <sha> (which must also match).
//
// Anything else refuses and names the current head and the command to
// approve it. A short SHA alone is never enough on a fork: the fork's
// author writes both commits and can give a reviewed one and a malicious
// one the same 7-digit prefix in a few thousand tries (a birthday
// collision), then push the second while the approval is on its way.
//
// A /deploy <sha> that does not match the current head refuses on any pull
// request: it names a commit that is no longer the one that would run.
func (p *previews) approval(ctx context.Context, repo Repo, in intent.CommentCommand, c commands.Command) (sha, refusal string, err error) {
	pr, err := repo.PullRequest(ctx, in.PR)
	if err != nil {
		return "", "", err
	}
	head := pr.HeadSHA
	if c.SHA != "" && !strings.HasPrefix(head, c.SHA) {
		return "", fmt.Sprintf("it names commit `%s`, but the head of this pull request is now `%s`, so nothing was deployed. "+
			"If you have reviewed `%s`, comment `%s`.", c.SHA, short(head), short(head), approveCommand(head)), nil
	}
	switch {
	case pr.State == "closed", !pr.Fork && c.SHA == "":
		return "", "", nil // a closed PR is torn down, whatever the comment said
	case !pr.Fork, len(c.SHA) == len(head):
		return head, "", nil
	}
	shown, err := p.shownBefore(ctx, repo, in, head)
	if err != nil {
		return "", "", err
	}
	if !shown {
		return "", fmt.Sprintf("this pull request comes from a fork, and its head `%s` was not on display here before you wrote your comment "+
			"(it may have been pushed just before or after it), so nothing was deployed. "+
			"If you have reviewed `%s`, comment `%s`.", short(head), short(head), approveCommand(head)), nil
	}
	return head, "", nil
}

// shownMargin: how much earlier than the maintainer's comment GitHub must
// have saved the status comment that asked to approve the head. GitHub's
// times are whole seconds and come from more than one server; two seconds
// make the order certain, and nobody reviews a commit faster.
const shownMargin = 2 * time.Second

// shownBefore reports whether the PR's status comment, as GitHub has it now,
// asks to approve head and has said so since at least shownMargin before
// the comment in was created. A status comment edited since (even back to
// the same head) or a comment without a creation time proves nothing.
func (p *previews) shownBefore(ctx context.Context, repo Repo, in intent.CommentCommand, head string) (bool, error) {
	if in.CreatedAt.IsZero() {
		return false, nil
	}
	known, err := p.deps.State.Previews.CommentID(ctx, in.Repo.FullName(), in.PR)
	if err != nil {
		return false, err
	}
	c, found, err := repo.StatusComment(ctx, in.PR, known)
	if err != nil || !found {
		return false, err
	}
	return asksToApprove(c.Body, head) && !c.UpdatedAt.Add(shownMargin).After(in.CreatedAt), nil
}

// asksToApprove reports whether a status comment's body shows the command
// that approves head, in its code block. Only the block counts: a failed
// build's log, which the fork's code writes, is shown in the comment too,
// and could print "/deploy <sha of a commit to come>"; but a log cannot
// hold three backticks in a row (templates escapes them), so it cannot
// forge the block.
func asksToApprove(body, head string) bool {
	return strings.Contains(body, "\n```text\n"+approveCommand(head)+"\n```\n")
}

// awaitApproval shows on the status comment that the fork's head waits
// for a maintainer, with the command that approves exactly that commit.
// Unlike other states it is written again when only the head changed (the
// reporter skips an unchanged body): the command shown must be the
// current head's, and shownBefore relies on the time of that edit.
func (r *previewRun) awaitApproval(ctx context.Context) error {
	head := r.pr.HeadSHA
	r.st.State = templates.AwaitingApproval
	r.postComment(ctx, templates.Comment{PR: r.pr.Number, State: templates.AwaitingApproval, Commit: head,
		Note: fmt.Sprintf("This pull request comes from a fork, so its code is not deployed automatically. "+
			"A maintainer who has reviewed commit `%s` approves it for a preview by commenting:", short(head)),
		Approve: approveCommand(head),
		Footnote: "The command names the whole commit, so a commit pushed while it is on its way is never approved by mistake; " +
			"each new commit needs a new approval. A plain `/deploy` approves the head shown here when you comment."})
	return r.p.save(ctx, r.st)
}

// approveCommand is the comment that approves commit sha of a fork, as the
// status comment shows it to copy.
func approveCommand(sha string) string { return "/deploy " + sha }

// refusalWindow: a person without permission whose comments hold commands
// gets a 😕 on the first of them, then nothing for this long. The bot
// never replies to them: otherwise anyone on GitHub could make it write
// a comment per comment, spending the installation's API budget.
const refusalWindow = 10 * time.Minute

// reactToRefusal records a refused command of login on repo and reports
// whether it deserves a reaction: the first refusal in refusalWindow. The
// time is PostgreSQL's, and the row decides atomically, so replicas agree.
// Rows of the repository's other users older than the window go as well.
func (p *previews) reactToRefusal(ctx context.Context, repo, login string) (bool, error) {
	return p.deps.State.Refusals.Record(ctx, repo, login, refusalWindow)
}

// defaultRoles may run commands unless the repository's config says
// otherwise. The role name (not the coarse permission) is used, so that
// "triage" is not mistaken for "read" or "write".
var defaultRoles = []string{github.RoleAdmin, github.RoleMaintain, github.RoleWrite}

// authorize decides whether user may steer the bot on repo; why is for the
// log only (a refusal must not reveal the configuration).
//
// commands.allow and commands.only name users and teams ("@org/slug").
// The checks run in this order, and the first that decides wins:
//
//  1. only, when set (narrowing): the user must be listed, or else be an
//     active member of a listed team; otherwise refused, without asking
//     for the role.
//  2. allow (widening): a listed user is let in whatever the role.
//  3. the role: one of commands.roles (default admin, maintain, write)
//     lets the user in.
//  4. allow's teams: an active member of one is let in whatever the role.
//
// Users are compared first because that costs no request. allow's teams
// come after the role because most people who run commands are let in by
// their role, and because a widening rule that cannot be checked (GitHub
// down, the App without "Members: read") then never locks out someone
// their role lets in. A team lookup that fails counts as "not a member":
// the refusal's reason says why, at warning level where it is logged.
func (p *previews) authorize(ctx context.Context, repo Repo, repoName, user string) (bool, string) {
	rules := p.deps.Repositories[repoName].Commands
	if len(rules.Only) > 0 && !slices.Contains(rules.Only, user) {
		team, err := p.inTeams(ctx, repo, rules.Only, user)
		switch {
		case err != nil:
			return false, "commands.only: " + err.Error()
		case team == "":
			return false, "not in commands.only"
		}
	}
	if slices.Contains(rules.Allow, user) {
		return true, "in commands.allow"
	}
	role, err := p.roles.role(ctx, repo, repoName, user)
	if err != nil {
		return false, "role lookup failed: " + err.Error()
	}
	allowed := defaultRoles
	if len(rules.Roles) > 0 {
		allowed = rules.Roles
	}
	if slices.Contains(allowed, role) {
		return true, "role " + role
	}
	team, err := p.inTeams(ctx, repo, rules.Allow, user)
	switch {
	case err != nil:
		return false, "role " + role + ", and commands.allow: " + err.Error()
	case team != "":
		return true, "member of " + team + " in commands.allow"
	}
	return false, "role " + role
}

// inTeams returns the first team among entries that user is an active
// member of ("" for none). Every team is asked until one says yes, so that
// one team GitHub cannot answer for does not hide the others; when none
// says yes, the first failure is returned.
func (p *previews) inTeams(ctx context.Context, repo Repo, entries []string, user string) (string, error) {
	var firstErr error
	for _, e := range entries {
		team, ok := config.ParseTeam(e)
		if !ok {
			continue
		}
		// The error names the team and, for a missing permission, which one
		// (github.ErrMissingPermission).
		member, err := p.roles.member(ctx, repo, team, user)
		if member {
			return team.String(), nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return "", firstErr
}

// roleCache remembers briefly what authorization learnt from GitHub,
// collaborators' roles and team memberships: a burst of commands and button
// clicks costs one API call per answer, and a revoked role or membership
// takes effect within roleTTL. Failures are not remembered, so a permission
// granted to the App or an outage over takes effect at the next command.
type roleCache struct {
	mu      sync.Mutex
	roles   map[string]cached[string] // repository and user → role
	members map[string]cached[bool]   // team and user → active member
	now     func() time.Time
}

type cached[V any] struct {
	value   V
	expires time.Time
}

const roleTTL = time.Minute

func (c *roleCache) role(ctx context.Context, repo Repo, repoName, user string) (string, error) {
	return remember(c, &c.roles, repoName+"\x00"+user, func() (string, error) {
		return repo.CollaboratorRole(ctx, user)
	})
}

// member is keyed in lower case: GitHub compares logins and slugs without
// regard to case.
func (c *roleCache) member(ctx context.Context, repo Repo, team config.Team, user string) (bool, error) {
	return remember(c, &c.members, strings.ToLower(team.String()+"\x00"+user), func() (bool, error) {
		return repo.TeamMember(ctx, team.Org, team.Slug, user)
	})
}

// remember answers from *m while its entry for key is fresh, else from
// fetch, whose answer it keeps for roleTTL.
func remember[V any](c *roleCache, m *map[string]cached[V], key string, fetch func() (V, error)) (V, error) {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	c.mu.Lock()
	e, ok := (*m)[key]
	c.mu.Unlock()
	if ok && now().Before(e.expires) {
		return e.value, nil
	}
	v, err := fetch()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if *m == nil {
		*m = map[string]cached[V]{}
	}
	(*m)[key] = cached[V]{value: v, expires: now().Add(roleTTL)}
	c.mu.Unlock()
	return v, nil
}

// noMention keeps words a user typed from notifying people when the bot
// quotes them ("@alice" → "@​alice").
func noMention(s string) string { return strings.ReplaceAll(s, "@", "@\u200b") }

// feedback is the small set of signals a command gets on its comment.
type feedback struct {
	repo    Repo
	pr      int
	comment int64
	logger  zerolog.Logger
}

func (f feedback) react(ctx context.Context, content string) {
	if f.comment == 0 {
		return
	}
	if err := f.repo.React(ctx, f.comment, content); err != nil {
		f.logger.Warn().Err(err).Str("reaction", content).Msg("reacting to the command")
	}
}

func (f feedback) refuse(ctx context.Context, reply string) {
	f.react(ctx, github.ReactionConfused)
	if _, err := f.repo.Reply(ctx, f.pr, reply); err != nil {
		f.logger.Warn().Err(err).Msg("replying to the command")
	}
}

func commandTexts(cmds []commands.Command) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = c.Text
	}
	return out
}

// checkRunWorker answers the preview check run's buttons ("Redeploy",
// "Destroy") and GitHub's "Re-run", with the same authorization as
// comments. The clicker gets no comment reply: the check run and the status
// comment show what happened.
type checkRunWorker struct {
	river.WorkerDefaults[intent.CheckRunAction]
	p *previews
}

func (w *checkRunWorker) Timeout(*river.Job[intent.CheckRunAction]) time.Duration {
	return previewTimeout
}

func (w *checkRunWorker) Work(ctx context.Context, job *river.Job[intent.CheckRunAction]) error {
	in := job.Args
	if isTestCheck(in.Name) {
		return w.p.queueTestRerun(ctx, in)
	}
	if in.Name != CheckPreview {
		return nil
	}
	m := in.Delivery()
	logger := w.p.deps.Logger.With().Str("repo", m.Repo.FullName()).Str("user", m.Sender).Str("action", m.Action).Logger()
	opts := syncOptions{explicit: true, force: true}
	switch {
	case m.Action == "rerequested", in.Identifier == IdentifierRedeploy:
	case in.Identifier == IdentifierDestroy:
		opts = syncOptions{explicit: true, destroy: true}
	default:
		return nil
	}
	pr, err := w.p.prOfCheckRun(ctx, in)
	if err != nil || pr == 0 {
		logger.Info().Err(err).Msg("no pull request for this check run")
		return err
	}
	repo, err := w.p.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
	if err != nil {
		return err
	}
	if ok, why := w.p.authorize(ctx, repo, m.Repo.FullName(), m.Sender); !ok {
		logger.Warn().Str("reason", why).Msg("check-run action refused")
		return nil
	}
	_, err = w.p.sync(ctx, job.ID, m, pr, opts)
	if errors.Is(err, errApprovalStale) {
		return nil
	}
	return snoozeIfLocked(err)
}

// Identifiers of the preview check run's buttons.
const (
	IdentifierRedeploy = "redeploy"
	IdentifierDestroy  = "destroy"
)

// prOfCheckRun finds the PR a preview check run belongs to. GitHub lists it
// in the event except for PRs from forks; the bot's own runs know it.
func (p *previews) prOfCheckRun(ctx context.Context, in intent.CheckRunAction) (int, error) {
	if len(in.PRs) == 1 {
		return in.PRs[0], nil
	}
	return p.deps.State.Runs.PullRequestOf(ctx, in.Delivery().Repo.FullName(), in.CheckRunID, in.HeadSHA)
}
