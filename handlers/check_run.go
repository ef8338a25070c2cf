package handlers

import (
	"context"

	"github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// CheckRun turns "Re-run" and the bot's check-run buttons into intents.
type CheckRun struct{ base }

// Handles implements githubapp.EventHandler.
func (CheckRun) Handles() []string { return []string{"check_run"} }

// Handle implements githubapp.EventHandler.
func (h CheckRun) Handle(ctx context.Context, eventType, deliveryID string, payload []byte) error {
	var event github.CheckRunEvent
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	m, ok := meta(deliveryID, eventType, event.GetAction(), event.GetInstallation(), event.GetRepo(), event.GetSender())
	if !ok {
		return ignore(ctx, noInstallation)
	}
	// created and completed echo the bot's own writes.
	if a := event.GetAction(); a != "rerequested" && a != "requested_action" {
		return ignore(ctx, "check_run %q needs no work", a)
	}
	run := event.GetCheckRun()
	var identifier string
	if ra := event.GetRequestedAction(); ra != nil {
		identifier = ra.Identifier
	}
	return h.accept(ctx, intent.CheckRunAction{
		Meta:       m,
		CheckRunID: run.GetID(),
		Name:       run.GetName(),
		HeadSHA:    run.GetHeadSHA(),
		Identifier: identifier,
		PRs:        prNumbers(run.PullRequests),
	})
}

func prNumbers(prs []*github.PullRequest) []int {
	var out []int
	for _, pr := range prs {
		out = append(out, pr.GetNumber())
	}
	return out
}
