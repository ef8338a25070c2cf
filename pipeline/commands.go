package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
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
	if ok, why := w.p.authorize(ctx, repo, m.Repo.FullName(), in.Author); !ok {
		logger.Warn().Str("reason", why).Strs("commands", commandTexts(cmds)).Msg("command refused")
		fb.refuse(ctx, fmt.Sprintf("@%s, you are not allowed to run deploybot commands on this repository. Ask a maintainer.", in.Author))
		return nil
	}
	fb.react(ctx, github.ReactionEyes)

	var failures []string
	for _, c := range cmds {
		logger.Info().Str("command", c.Text).Msg("running command")
		if msg := w.run(ctx, job.ID, in, c); msg != "" {
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
func (w *commandWorker) run(ctx context.Context, jobID int64, in intent.CommentCommand, c commands.Command) string {
	m := in.Delivery()
	var opts syncOptions
	switch c.Name {
	case commands.Help:
		body, err := templates.Help("")
		if err != nil {
			return err.Error()
		}
		repo, err := w.p.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
		if err == nil {
			_, err = repo.Reply(ctx, in.PR, body)
		}
		if err != nil {
			return "could not post the help: " + err.Error()
		}
		return ""
	case commands.Deploy:
		opts = syncOptions{explicit: true}
		sha, err := w.p.headAtComment(ctx, m, in.PR)
		if err != nil {
			return err.Error()
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
		return "the pull request has new commits since your comment; review them and comment `/deploy` again"
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

// headAtComment is the PR's head commit when the comment was written, from
// the pull_request deliveries received before it: a /deploy approves what
// the maintainer could have reviewed, not a commit pushed a moment later.
// When the bot has seen no delivery for the PR, the current head is taken.
func (p *previews) headAtComment(ctx context.Context, m intent.Meta, pr int) (string, error) {
	var sha string
	err := p.deps.Pool.QueryRow(ctx, `
		SELECT d.intent->'pr'->>'head_sha' FROM deliveries d
		WHERE d.repo = $1 AND d.pr_number = $2 AND d.event = 'pull_request'
		  AND d.received_at <= (SELECT received_at FROM deliveries WHERE delivery_id = $3)
		  AND d.intent->'pr'->>'head_sha' IS NOT NULL
		ORDER BY d.received_at DESC LIMIT 1`, m.Repo.FullName(), pr, m.DeliveryID).Scan(&sha)
	if errors.Is(err, pgx.ErrNoRows) {
		repo, err := p.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
		if err != nil {
			return "", err
		}
		cur, err := repo.PullRequest(ctx, pr)
		return cur.HeadSHA, err
	}
	return sha, err
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
	rules := p.deps.Config.Repositories[repoName].Commands
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
	var pr int
	err := p.deps.Pool.QueryRow(ctx, `
		SELECT pr_number FROM runs WHERE repo = $1 AND (check_run_id = $2 OR head_sha = $3) AND pr_number > 0
		ORDER BY id DESC LIMIT 1`, in.Delivery().Repo.FullName(), in.CheckRunID, in.HeadSHA).Scan(&pr)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return pr, err
}
