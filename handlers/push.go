package handlers

import (
	"context"
	"strings"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// Push turns branch pushes into production deploys (default branch), test
// runs (other branches) and clean-ups (deleted branches).
type Push struct{ base }

// Handles implements githubapp.EventHandler.
func (Push) Handles() []string { return []string{"push"} }

// Handle implements githubapp.EventHandler.
func (h Push) Handle(ctx context.Context, eventType, deliveryID string, payload []byte) error {
	var event struct {
		envelope
		Ref        string `json:"ref"`
		Before     string `json:"before"`
		After      string `json:"after"`
		Deleted    bool   `json:"deleted"`
		Forced     bool   `json:"forced"`
		HeadCommit *struct {
			Message string `json:"message"`
		} `json:"head_commit"`
	}
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	m, ok := meta(deliveryID, eventType, event.envelope)
	if !ok {
		return ignore(ctx, noInstallation)
	}
	branch, isBranch := strings.CutPrefix(event.Ref, "refs/heads/")
	if !isBranch {
		return ignore(ctx, "push to %s: only branch pushes start work", event.Ref)
	}
	if err := checkBranches(eventType, deliveryID, branch); err != nil {
		return err
	}
	if event.Deleted {
		return h.accept(ctx, intent.BranchDeleted{Meta: m, Branch: branch})
	}
	push := intent.Push{Branch: branch, Before: event.Before, After: event.After, Forced: event.Forced}
	if event.HeadCommit != nil {
		push.HeadMessage = event.HeadCommit.Message
	}
	if branch == m.Repo.DefaultBranch {
		return h.accept(ctx, intent.ProductionPush{Meta: m, Push: push})
	}
	return h.accept(ctx, intent.TestRequested{Meta: m, Push: push})
}
