package handlers

import (
	"context"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// PullRequest turns PR lifecycle events into preview work.
type PullRequest struct{ base }

// Handles implements githubapp.EventHandler.
func (PullRequest) Handles() []string { return []string{"pull_request"} }

// Handle implements githubapp.EventHandler.
func (h PullRequest) Handle(ctx context.Context, eventType, deliveryID string, payload []byte) error {
	var event struct {
		envelope
		PullRequest pullRequest `json:"pull_request"`
	}
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	m, ok := meta(deliveryID, eventType, event.envelope)
	if !ok {
		return ignore(ctx, noInstallation)
	}
	pr := prIntent(event.PullRequest)

	switch event.Action {
	case "opened", "reopened", "synchronize", "ready_for_review", "converted_to_draft":
		// A close is still acted on whatever its names: tearing down is
		// always safe, and nothing may be left behind.
		if err := checkBranches(eventType, deliveryID, pr.HeadRef, pr.BaseRef); err != nil {
			return err
		}
	}
	switch event.Action {
	case "opened", "reopened", "synchronize", "ready_for_review":
		return h.accept(ctx, intent.PreviewRequested{Meta: m, PR: pr})
	case "converted_to_draft":
		return h.accept(ctx, intent.PreviewDrafted{Meta: m, PR: pr})
	case "closed":
		return h.accept(ctx, intent.PreviewClosed{Meta: m, PR: pr, Merged: event.PullRequest.Merged})
	}
	return ignore(ctx, "pull_request %s changes nothing the bot builds", event.Action)
}

func prIntent(pr pullRequest) intent.PullRequest {
	var headRepo, baseRepo string
	if pr.Head.Repo != nil {
		headRepo = pr.Head.Repo.FullName
	}
	if pr.Base.Repo != nil {
		baseRepo = pr.Base.Repo.FullName
	}
	return intent.PullRequest{
		Number:   pr.Number,
		HeadSHA:  pr.Head.SHA,
		HeadRef:  pr.Head.Ref,
		BaseRef:  pr.Base.Ref,
		HeadRepo: headRepo,
		// A deleted fork leaves head.repo null: still not our code.
		Fork:   headRepo == "" || headRepo != baseRepo,
		Draft:  pr.Draft,
		Author: pr.User.Login,
	}
}
