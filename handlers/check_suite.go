package handlers

import (
	"context"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// CheckSuite turns requests to run (or re-run) a commit's checks into
// intents.
type CheckSuite struct{ base }

// Handles implements githubapp.EventHandler.
func (CheckSuite) Handles() []string { return []string{"check_suite"} }

// Handle implements githubapp.EventHandler.
func (h CheckSuite) Handle(ctx context.Context, eventType, deliveryID string, payload []byte) error {
	var event struct {
		envelope
		CheckSuite struct {
			ID           int64   `json:"id"`
			HeadSHA      string  `json:"head_sha"`
			HeadBranch   string  `json:"head_branch"`
			PullRequests []prRef `json:"pull_requests"`
		} `json:"check_suite"`
	}
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	m, ok := meta(deliveryID, eventType, event.envelope)
	if !ok {
		return ignore(ctx, noInstallation)
	}
	if a := event.Action; a != "requested" && a != "rerequested" {
		return ignore(ctx, "check_suite %s needs no work", a)
	}
	suite := event.CheckSuite
	if suite.HeadBranch != "" { // null for a suite of a fork's commit
		if err := checkBranches(eventType, deliveryID, suite.HeadBranch); err != nil {
			return err
		}
	}
	return h.accept(ctx, intent.CheckSuiteRequested{
		Meta:         m,
		CheckSuiteID: suite.ID,
		HeadSHA:      suite.HeadSHA,
		HeadBranch:   suite.HeadBranch,
		PRs:          prNumbers(suite.PullRequests),
	})
}
