package github

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	gh "github.com/google/go-github/v66/github"
)

// StatusMarker is the hidden HTML comment that identifies the bot's status
// comment on pull request pr. It is how the comment is found again, across
// restarts, replicas and a lost database.
func StatusMarker(pr int) string {
	return fmt.Sprintf("<!-- deploybot:status pr=%d -->", pr)
}

// MaxCommentBytes is GitHub's limit on a comment body (65536 characters).
const MaxCommentBytes = 65536

// UpsertStatusComment makes the one status comment on pull request pr say
// body (the marker is added when body lacks it) and returns its ID.
//
// knownID, when not 0, is the comment's ID remembered from an earlier call:
// the comment is edited at once, with no listing and no read (the caller,
// which remembers what it sent, sends only a changed body). If that
// comment is gone, the comments are searched instead.
//
// The search reads all pages of comments and picks the bot's comments that
// carry the marker. None: one is created (and the search repeated, to catch
// a replica creating one at the same time). Several: the oldest is kept and
// the others are deleted. The kept comment is edited
// only when its body differs, so an unchanged status costs no write and
// sends no notification.
func (r *Reporter) UpsertStatusComment(ctx context.Context, pr int, body string, knownID int64) (int64, error) {
	marker := StatusMarker(pr)
	if !strings.Contains(body, marker) {
		body = marker + "\n" + body
	}
	body = TruncateMarkdown(body, MaxCommentBytes)
	op := fmt.Sprintf("update status comment on #%d", pr)

	if knownID != 0 {
		// The bot made this comment and remembers what it last wrote (the
		// caller sends only a changed body): edit it without reading it
		// first, one round trip instead of two.
		_, resp, err := r.client.Issues.EditComment(ctx, r.owner, r.repo, knownID, &gh.IssueComment{Body: &body})
		switch {
		case err == nil:
			return knownID, nil
		case resp == nil || resp.StatusCode != 404:
			return 0, r.wrap(op, resp, err)
		}
		// Deleted: search.
	}

	mine, err := r.statusComments(ctx, pr)
	if err != nil {
		return 0, r.wrap(op, nil, err)
	}
	if len(mine) == 0 {
		c, resp, err := r.client.Issues.CreateComment(ctx, r.owner, r.repo, pr, &gh.IssueComment{Body: &body})
		if err != nil {
			return 0, r.wrap(op, resp, err)
		}
		// Another replica may have created one at the same time. Looking
		// again closes that window: every racer keeps the oldest and
		// deletes the rest, so one comment remains.
		if mine, err = r.statusComments(ctx, pr); err != nil {
			return 0, r.wrap(op, nil, err)
		}
		if len(mine) <= 1 {
			return c.GetID(), nil
		}
	}
	keep := mine[0]
	for _, dup := range mine[1:] {
		resp, err := r.client.Issues.DeleteComment(ctx, r.owner, r.repo, dup.GetID())
		if err != nil && (resp == nil || resp.StatusCode != 404) {
			return 0, r.wrap(fmt.Sprintf("delete duplicate status comment %d on #%d", dup.GetID(), pr), resp, err)
		}
	}
	return keep.GetID(), r.editIfChanged(ctx, keep, body, op)
}

// Comment is a comment as GitHub has it now.
type Comment struct {
	ID   int64
	Body string
	// UpdatedAt is when GitHub last saved the body (its clock, whole
	// seconds): the body has read so since then.
	UpdatedAt time.Time
}

// StatusComment reads the bot's status comment on pull request pr, as
// UpsertStatusComment finds it (knownID first, else a search); found is
// false when there is none. It is read fresh from GitHub (a conditional
// request at most), so that what it says and since when can be trusted.
func (r *Reporter) StatusComment(ctx context.Context, pr int, knownID int64) (c Comment, found bool, err error) {
	op := fmt.Sprintf("read status comment on #%d", pr)
	if knownID != 0 {
		got, resp, err := r.client.Issues.GetComment(ctx, r.owner, r.repo, knownID)
		switch {
		case err == nil && r.isStatusComment(got, pr):
			return commentOf(got), true, nil
		case err != nil && (resp == nil || resp.StatusCode != 404):
			return Comment{}, false, r.wrap(op, resp, err)
		}
	}
	mine, err := r.statusComments(ctx, pr)
	switch {
	case err != nil:
		return Comment{}, false, r.wrap(op, nil, err)
	case len(mine) == 0:
		return Comment{}, false, nil
	}
	return commentOf(mine[0]), true, nil
}

func commentOf(c *gh.IssueComment) Comment {
	return Comment{ID: c.GetID(), Body: c.GetBody(), UpdatedAt: c.GetUpdatedAt().Time}
}

func (r *Reporter) editIfChanged(ctx context.Context, c *gh.IssueComment, body, op string) error {
	if c.GetBody() == body {
		return nil
	}
	_, resp, err := r.client.Issues.EditComment(ctx, r.owner, r.repo, c.GetID(), &gh.IssueComment{Body: &body})
	if err != nil {
		return r.wrap(op, resp, err)
	}
	return nil
}

// statusComments returns the bot's status comments on pr, oldest first.
func (r *Reporter) statusComments(ctx context.Context, pr int) ([]*gh.IssueComment, error) {
	var mine []*gh.IssueComment
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		page, resp, err := r.client.Issues.ListComments(ctx, r.owner, r.repo, pr, opts)
		if err != nil {
			if resp != nil && resp.StatusCode == 404 {
				return nil, notFoundError{err}
			}
			return nil, err
		}
		for _, c := range page {
			if r.isStatusComment(c, pr) {
				mine = append(mine, c)
			}
		}
		if resp.NextPage == 0 {
			break
		}
		if resp.NextPage <= opts.Page {
			return nil, errors.New("comment pages do not advance")
		}
		opts.Page = resp.NextPage
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].GetID() < mine[j].GetID() })
	return mine, nil
}

// isStatusComment: carries pr's marker, is on pr (a marker quoted on
// another pull request does not count) and was written by the bot.
func (r *Reporter) isStatusComment(c *gh.IssueComment, pr int) bool {
	if !strings.Contains(c.GetBody(), StatusMarker(pr)) {
		return false
	}
	if u := c.GetIssueURL(); u != "" && !strings.HasSuffix(u, fmt.Sprintf("/%d", pr)) {
		return false
	}
	u := c.GetUser()
	if r.botLogin != "" {
		return strings.EqualFold(u.GetLogin(), r.botLogin)
	}
	return u.GetType() == "Bot"
}

// Reactions GitHub accepts on comments.
const (
	ReactionPlusOne  = "+1"
	ReactionMinusOne = "-1"
	ReactionLaugh    = "laugh"
	ReactionConfused = "confused"
	ReactionHeart    = "heart"
	ReactionHooray   = "hooray"
	ReactionRocket   = "rocket"
	ReactionEyes     = "eyes"
)

// React adds reaction content (ReactionEyes, …) to issue or pull request
// comment commentID. Reacting twice with the same content is harmless:
// GitHub keeps one.
func (r *Reporter) React(ctx context.Context, commentID int64, content string) error {
	switch content {
	case ReactionPlusOne, ReactionMinusOne, ReactionLaugh, ReactionConfused,
		ReactionHeart, ReactionHooray, ReactionRocket, ReactionEyes:
	default:
		return fmt.Errorf("github: react to comment %d in %s: unknown reaction %q", commentID, r.FullName(), content)
	}
	_, resp, err := r.client.Reactions.CreateIssueCommentReaction(ctx, r.owner, r.repo, commentID, content)
	if err != nil {
		return r.wrap(fmt.Sprintf("react %q to comment %d", content, commentID), resp, err)
	}
	return nil
}

// Reply posts a new comment on pull request pr, e.g. the answer to /help or
// to a refused command. Unlike the status comment it is never edited.
func (r *Reporter) Reply(ctx context.Context, pr int, body string) (int64, error) {
	c, resp, err := r.client.Issues.CreateComment(ctx, r.owner, r.repo, pr, &gh.IssueComment{Body: &body})
	if err != nil {
		return 0, r.wrap(fmt.Sprintf("reply on #%d", pr), resp, err)
	}
	return c.GetID(), nil
}
