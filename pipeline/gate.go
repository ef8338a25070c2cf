package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/commands"
	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/intent"
)

// gate decides who may steer the bot on a repository, with commands,
// buttons or re-runs, and says why not: the role GitHub gives the person,
// the repository's allow and only lists, the approval of a fork's exact
// commit, and the single 😕 a refused person gets. Every pipeline asks it
// the same way.
type gate struct {
	deps  Deps
	roles roleCache
}

// open opens the repository of m for what its sender asks (what, for the
// log). When the sender may not, it logs why and returns a nil Repo: a
// refused button or re-run gets no other answer.
func (g *gate) open(ctx context.Context, m intent.Meta, logger zerolog.Logger, what string) (Repo, error) {
	repo, err := g.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
	if err != nil {
		return nil, err
	}
	if ok, why := g.authorize(ctx, repo, m.Repo.FullName(), m.Sender); !ok {
		logger.Warn().Str("reason", why).Msg(what + " refused")
		return nil, nil
	}
	return repo, nil
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
func (g *gate) approval(ctx context.Context, repo Repo, in intent.CommentCommand, c commands.Command) (sha, refusal string, err error) {
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
	shown, err := g.shownBefore(ctx, repo, in, head)
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
func (g *gate) shownBefore(ctx context.Context, repo Repo, in intent.CommentCommand, head string) (bool, error) {
	if in.CreatedAt.IsZero() {
		return false, nil
	}
	known, err := g.deps.State.Previews.CommentID(ctx, in.Repo.FullName(), in.PR)
	if err != nil {
		return false, err
	}
	c, found, err := repo.StatusComment(ctx, in.PR, known)
	if err != nil || !found {
		return false, err
	}
	return asksToApprove(c.Body, head) && !c.UpdatedAt.Add(shownMargin).After(in.CreatedAt), nil
}

// refusalWindow: a person without permission whose comments hold commands
// gets a 😕 on the first of them, then nothing for this long. The bot
// never replies to them: otherwise anyone on GitHub could make it write
// a comment per comment, spending the installation's API budget.
const refusalWindow = 10 * time.Minute

// reactToRefusal records a refused command of login on repo and reports
// whether it deserves a reaction: the first refusal in refusalWindow. The
// time is PostgreSQL's, and the row decides atomically, so replicas agree.
// Rows of the repository's other users older than the window go as well.
func (g *gate) reactToRefusal(ctx context.Context, repo, login string) (bool, error) {
	return g.deps.State.Refusals.Record(ctx, repo, login, refusalWindow)
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
func (g *gate) authorize(ctx context.Context, repo Repo, repoName, user string) (bool, string) {
	rules := g.deps.Repositories[repoName].Commands
	if len(rules.Only) > 0 && !slices.Contains(rules.Only, user) {
		team, err := g.inTeams(ctx, repo, rules.Only, user)
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
	role, err := g.roles.role(ctx, repo, repoName, user)
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
	team, err := g.inTeams(ctx, repo, rules.Allow, user)
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
func (g *gate) inTeams(ctx context.Context, repo Repo, entries []string, user string) (string, error) {
	var firstErr error
	for _, e := range entries {
		team, ok := config.ParseTeam(e)
		if !ok {
			continue
		}
		// The error names the team and, for a missing permission, which one
		// (github.ErrMissingPermission).
		member, err := g.roles.member(ctx, repo, team, user)
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
