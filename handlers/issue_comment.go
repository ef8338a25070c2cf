package handlers

import (
	"context"
	"strings"

	"github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// IssueComment turns new PR comments that may hold slash commands into
// CommentCommand intents. Parsing and authorising the commands happens in
// the job, where the commenter's role can be looked up.
type IssueComment struct{ base }

// Handles implements githubapp.EventHandler.
func (IssueComment) Handles() []string { return []string{"issue_comment"} }

// Handle implements githubapp.EventHandler.
func (h IssueComment) Handle(ctx context.Context, eventType, deliveryID string, payload []byte) error {
	var event github.IssueCommentEvent
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	m, ok := meta(deliveryID, eventType, event.GetAction(), event.GetInstallation(), event.GetRepo(), event.GetSender())
	if !ok {
		return ignore(ctx, noInstallation)
	}
	comment := event.GetComment()

	// Edits do not count: re-running a command because someone fixed a typo
	// in an old comment would surprise everyone.
	if event.GetAction() != "created" {
		return ignore(ctx, "issue_comment %q: only new comments hold commands", event.GetAction())
	}
	if !event.GetIssue().IsPullRequest() {
		return ignore(ctx, "comment on issue #%d, not on a pull request", event.GetIssue().GetNumber())
	}
	if comment.GetUser().GetType() == "Bot" || strings.HasSuffix(comment.GetUser().GetLogin(), "[bot]") {
		return ignore(ctx, "comment by bot %s", comment.GetUser().GetLogin())
	}
	if !mayHoldCommand(comment.GetBody()) {
		return ignore(ctx, "comment holds no line starting with '/'")
	}
	return h.accept(ctx, intent.CommentCommand{
		Meta:              m,
		PR:                event.GetIssue().GetNumber(),
		CommentID:         comment.GetID(),
		Author:            comment.GetUser().GetLogin(),
		AuthorAssociation: comment.GetAuthorAssociation(),
		Body:              comment.GetBody(),
	})
}

// mayHoldCommand is a cheap filter so that ordinary conversation queues no
// job; the command parser decides what the lines really mean.
func mayHoldCommand(body string) bool {
	for line := range strings.Lines(body) {
		if strings.HasPrefix(strings.TrimLeft(line, " \t"), "/") {
			return true
		}
	}
	return false
}
