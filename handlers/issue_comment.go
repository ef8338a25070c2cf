package handlers

import (
	"context"
	"strings"
	"time"

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
	var event struct {
		envelope
		Issue struct {
			Number int `json:"number"`
			// Present only when the issue is a pull request.
			PullRequest *struct{} `json:"pull_request"`
		} `json:"issue"`
		Comment struct {
			ID                int64     `json:"id"`
			Body              string    `json:"body"`
			User              account   `json:"user"`
			AuthorAssociation string    `json:"author_association"`
			CreatedAt         time.Time `json:"created_at"`
		} `json:"comment"`
	}
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	m, ok := meta(deliveryID, eventType, event.envelope)
	if !ok {
		return ignore(ctx, noInstallation)
	}
	comment := event.Comment

	// Edits do not count: re-running a command because someone fixed a typo
	// in an old comment would surprise everyone.
	if event.Action != "created" {
		return ignore(ctx, "issue_comment %s: only new comments hold commands", event.Action)
	}
	if event.Issue.PullRequest == nil {
		return ignore(ctx, "comment on issue #%d, not on a pull request", event.Issue.Number)
	}
	if comment.User.Type == "Bot" || strings.HasSuffix(comment.User.Login, "[bot]") {
		return ignore(ctx, "comment by bot %s", comment.User.Login)
	}
	if !mayHoldCommand(comment.Body) {
		return ignore(ctx, "comment holds no line starting with '/'")
	}
	return h.accept(ctx, intent.CommentCommand{
		Meta:              m,
		PR:                event.Issue.Number,
		CommentID:         comment.ID,
		Author:            comment.User.Login,
		AuthorAssociation: comment.AuthorAssociation,
		Body:              comment.Body,
		CreatedAt:         comment.CreatedAt,
	})
}

// mayHoldCommand is a cheap filter so that ordinary conversation queues no
// job; the command parser decides what the lines really mean.
func mayHoldCommand(body string) bool {
	for line := range strings.Lines(strings.TrimPrefix(body, "\uFEFF")) {
		if strings.HasPrefix(strings.TrimLeft(line, " \t"), "/") {
			return true
		}
	}
	return false
}
