package handlers

import (
	"context"

	"github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// PullRequest turns PR lifecycle events into preview work.
type PullRequest struct{ base }

// Handles implements githubapp.EventHandler.
func (PullRequest) Handles() []string { return []string{"pull_request"} }

// Handle implements githubapp.EventHandler.
func (h PullRequest) Handle(ctx context.Context, eventType, deliveryID string, payload []byte) error {
	var event github.PullRequestEvent
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	m, ok := meta(deliveryID, eventType, event.GetAction(), event.GetInstallation(), event.GetRepo(), event.GetSender())
	if !ok {
		return ignore(ctx, noInstallation)
	}
	pr := pullRequest(event.GetPullRequest())

	switch event.GetAction() {
	case "opened", "reopened", "synchronize", "ready_for_review":
		return h.accept(ctx, intent.PreviewRequested{Meta: m, PR: pr})
	case "converted_to_draft":
		return h.accept(ctx, intent.PreviewDrafted{Meta: m, PR: pr})
	case "closed":
		return h.accept(ctx, intent.PreviewClosed{Meta: m, PR: pr, Merged: event.GetPullRequest().GetMerged()})
	}
	return ignore(ctx, "pull_request %q changes nothing the bot builds", event.GetAction())
}

func pullRequest(pr *github.PullRequest) intent.PullRequest {
	head, base := pr.GetHead(), pr.GetBase()
	headRepo := head.GetRepo().GetFullName()
	return intent.PullRequest{
		Number:   pr.GetNumber(),
		HeadSHA:  head.GetSHA(),
		HeadRef:  head.GetRef(),
		BaseRef:  base.GetRef(),
		HeadRepo: headRepo,
		// A deleted fork leaves head.repo null: still not our code.
		Fork:   headRepo != base.GetRepo().GetFullName() || headRepo == "",
		Draft:  pr.GetDraft(),
		Author: pr.GetUser().GetLogin(),
	}
}
