package handlers

import (
	"context"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// CheckRun turns "Re-run" and the bot's check-run buttons into intents.
type CheckRun struct{ base }

// Handles implements githubapp.EventHandler.
func (CheckRun) Handles() []string { return []string{"check_run"} }

// Handle implements githubapp.EventHandler.
func (h CheckRun) Handle(ctx context.Context, eventType, deliveryID string, payload []byte) error {
	var event struct {
		envelope
		CheckRun struct {
			ID           int64   `json:"id"`
			Name         string  `json:"name"`
			HeadSHA      string  `json:"head_sha"`
			PullRequests []prRef `json:"pull_requests"`
		} `json:"check_run"`
		RequestedAction *struct {
			Identifier string `json:"identifier"`
		} `json:"requested_action"`
	}
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	m, ok := meta(deliveryID, eventType, event.envelope)
	if !ok {
		return ignore(ctx, noInstallation)
	}
	// created and completed echo the bot's own writes.
	if a := event.Action; a != "rerequested" && a != "requested_action" {
		return ignore(ctx, "check_run %s needs no work", a)
	}
	run := event.CheckRun
	var identifier string
	if event.RequestedAction != nil {
		identifier = event.RequestedAction.Identifier
	}
	return h.accept(ctx, intent.CheckRunAction{
		Meta:       m,
		CheckRunID: run.ID,
		Name:       run.Name,
		HeadSHA:    run.HeadSHA,
		Identifier: identifier,
		PRs:        prNumbers(run.PullRequests),
	})
}
