package handlers

import (
	"context"

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
	var event struct {
		envelope
		// installation: the repositories of a created or deleted installation.
		Repositories []repository `json:"repositories"`
		// installation_repositories: what changed.
		RepositoriesAdded   []repository `json:"repositories_added"`
		RepositoriesRemoved []repository `json:"repositories_removed"`
	}
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	m, ok := meta(deliveryID, eventType, event.envelope)
	if !ok {
		return ignore(ctx, noInstallation)
	}
	added, removed := event.RepositoriesAdded, event.RepositoriesRemoved
	switch {
	case eventType == "installation" && event.Action == "created":
		added = event.Repositories
	case eventType == "installation" && event.Action == "deleted":
		removed = event.Repositories
	}
	return h.accept(ctx, intent.InstallationChanged{
		Meta:         m,
		Account:      event.Installation.Account.Login,
		ReposAdded:   fullNames(added),
		ReposRemoved: fullNames(removed),
	})
}

func fullNames(repos []repository) []string {
	var out []string
	for _, r := range repos {
		out = append(out, r.FullName)
	}
	return out
}
