package handlers

import (
	"context"

	"github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// Installation records the App being installed, removed, suspended or given
// other repositories, so the bot can forget (and clean up after) repositories
// it no longer serves.
type Installation struct{ base }

// Handles implements githubapp.EventHandler.
func (Installation) Handles() []string {
	return []string{"installation", "installation_repositories"}
}

// Handle implements githubapp.EventHandler.
func (h Installation) Handle(ctx context.Context, eventType, deliveryID string, payload []byte) error {
	var (
		inst           *github.Installation
		action         string
		sender         *github.User
		added, removed []*github.Repository
	)
	if eventType == "installation" {
		var event github.InstallationEvent
		if err := parse(eventType, deliveryID, payload, &event); err != nil {
			return err
		}
		inst, action, sender = event.GetInstallation(), event.GetAction(), event.GetSender()
		switch action {
		case "created":
			added = event.Repositories
		case "deleted":
			removed = event.Repositories
		}
	} else {
		var event github.InstallationRepositoriesEvent
		if err := parse(eventType, deliveryID, payload, &event); err != nil {
			return err
		}
		inst, action, sender = event.GetInstallation(), event.GetAction(), event.GetSender()
		added, removed = event.RepositoriesAdded, event.RepositoriesRemoved
	}
	m, ok := meta(deliveryID, eventType, action, inst, nil, sender)
	if !ok {
		return ignore(ctx, noInstallation)
	}
	return h.accept(ctx, intent.InstallationChanged{
		Meta:         m,
		Account:      inst.GetAccount().GetLogin(),
		ReposAdded:   fullNames(added),
		ReposRemoved: fullNames(removed),
	})
}

func fullNames(repos []*github.Repository) []string {
	var out []string
	for _, r := range repos {
		out = append(out, r.GetFullName())
	}
	return out
}
