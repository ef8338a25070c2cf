package handlers

import (
	"context"
	"strings"

	"github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// Push turns branch pushes into production deploys (default branch), test
// runs (other branches) and clean-ups (deleted branches).
type Push struct{ base }

// Handles implements githubapp.EventHandler.
func (Push) Handles() []string { return []string{"push"} }

// Handle implements githubapp.EventHandler.
func (h Push) Handle(ctx context.Context, eventType, deliveryID string, payload []byte) error {
	var event github.PushEvent
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	// A push payload's repository has its own type; meta wants the common one.
	repo := &github.Repository{
		ID:            event.GetRepo().ID,
		Name:          event.GetRepo().Name,
		Owner:         &github.User{Login: github.String(event.GetRepo().GetOwner().GetLogin())},
		DefaultBranch: event.GetRepo().DefaultBranch,
	}
	m, ok := meta(deliveryID, eventType, "", event.GetInstallation(), repo, event.GetSender())
	if !ok {
		return ignore(ctx, noInstallation)
	}
	branch, isBranch := strings.CutPrefix(event.GetRef(), "refs/heads/")
	if !isBranch {
		return ignore(ctx, "push to %s: only branch pushes start work", event.GetRef())
	}
	if event.GetDeleted() {
		return h.accept(ctx, intent.BranchDeleted{Meta: m, Branch: branch})
	}
	push := intent.Push{
		Branch:      branch,
		Before:      event.GetBefore(),
		After:       event.GetAfter(),
		HeadMessage: event.GetHeadCommit().GetMessage(),
		Forced:      event.GetForced(),
	}
	if branch == m.Repo.DefaultBranch {
		return h.accept(ctx, intent.ProductionPush{Meta: m, Push: push})
	}
	return h.accept(ctx, intent.TestRequested{Meta: m, Push: push})
}
