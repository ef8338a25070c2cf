package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/internal/commands"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/intent"
	"github.com/revelations-studio/deploybot/templates"
)

// requests carries out what people ask of a PR: the slash commands of a
// new PR comment, the preview check run's buttons.
// Feedback stays small: 👀 when accepted, 🚀 when done, 😕 and a short
// reply when refused or failed. Progress shows in the status comment and
// the check run, not in new comments.
//
// Who may run commands is decided before anything else, so that nobody
// else can make the bot write: a comment by someone without permission
// gets no reply, only a 😕, and that at most once per refusalWindow per
// person and repository (reactToRefusal). "Did not understand" replies are
// for people who may run commands.
type requests struct {
	deps Deps
	gate *gate
	p    *previews
}

// register adds the workers of comment commands and check-run actions.
func (q *requests) register(workers *river.Workers) {
	addWorker(workers, deployTimeout, q.command)
	addWorker(workers, deployTimeout, q.checkRunAction)
	addWorker(workers, deployTimeout, q.pageAction) // the web pages' buttons (page_actions.go)
}

func (q *requests) command(ctx context.Context, job *river.Job[intent.CommentCommand]) error {
	in := job.Args
	cmds, problems := commands.Parse(in.Body)
	if len(cmds) == 0 && len(problems) == 0 {
		return nil
	}
	m := in.Delivery()
	logger := jobLogger(ctx, q.deps.Logger).With().Str("repo", m.Repo.FullName()).Int("pr", in.PR).
		Str("user", in.Author).Int64("comment_id", in.CommentID).Logger()
	repo, err := q.deps.GitHub.Repo(ctx, m.InstallationID, m.Repo.Owner, m.Repo.Name)
	if err != nil {
		return err
	}
	fb := feedback{repo: repo, pr: in.PR, comment: in.CommentID, logger: logger}

	if ok, why := q.gate.authorize(ctx, repo, m.Repo.FullName(), in.Author); !ok {
		react, err := q.gate.reactToRefusal(ctx, m.Repo.FullName(), in.Author)
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
		if msg := q.run(ctx, job.ID, repo, in, c); msg != "" {
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
func (q *requests) run(ctx context.Context, jobID int64, repo Repo, in intent.CommentCommand, c commands.Command) string {
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
		sha, refusal, err := q.gate.approval(ctx, repo, in, c)
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
	st, err := q.p.sync(ctx, jobID, m, in.PR, opts)
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
	_ = r.postComment(ctx, templates.Comment{PR: r.pr.Number, State: templates.AwaitingApproval, Commit: head,
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

// checkRunAction answers the preview check run's buttons ("Redeploy",
// "Destroy") and GitHub's "Re-run", with the same authorization as
// comments. The clicker gets no comment reply: the check run and the status
// comment show what happened.
func (q *requests) checkRunAction(ctx context.Context, job *river.Job[intent.CheckRunAction]) error {
	in := job.Args
	if isTestCheck(in.Name) {
		return q.p.tests.queueTestRerun(ctx, in)
	}
	if in.Name == CheckProduction {
		return q.productionAction(ctx, in)
	}
	if in.Name != CheckPreview {
		return nil
	}
	m := in.Delivery()
	logger := jobLogger(ctx, q.deps.Logger).With().Str("repo", m.Repo.FullName()).Str("user", m.Sender).Str("action", m.Action).Logger()
	opts := syncOptions{explicit: true, force: true}
	switch {
	case m.Action == "rerequested", in.Identifier == IdentifierRedeploy:
	case in.Identifier == IdentifierDestroy:
		opts = syncOptions{explicit: true, destroy: true}
	default:
		return nil
	}
	pr, err := q.prOfCheckRun(ctx, in)
	if err != nil || pr == 0 {
		logger.Info().Err(err).Msg("no pull request for this check run")
		return err
	}
	repo, err := q.gate.open(ctx, m, logger, "check-run action")
	if repo == nil || err != nil {
		return err
	}
	_, err = q.p.sync(ctx, job.ID, m, pr, opts)
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
func (q *requests) prOfCheckRun(ctx context.Context, in intent.CheckRunAction) (int, error) {
	if len(in.PRs) == 1 {
		return in.PRs[0], nil
	}
	return q.deps.State.Runs.PullRequestOf(ctx, in.Delivery().Repo.FullName(), in.CheckRunID, in.HeadSHA)
}
