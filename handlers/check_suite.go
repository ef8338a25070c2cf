package handlers

import (
	"context"

	"github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/intent"
)

// CheckSuite turns requests to run (or re-run) a commit's checks into
// intents.
type CheckSuite struct{ base }

// Handles implements githubapp.EventHandler.
func (CheckSuite) Handles() []string { return []string{"check_suite"} }

// Handle implements githubapp.EventHandler.
func (h CheckSuite) Handle(ctx context.Context, eventType, deliveryID string, payload []byte) error {
	var event github.CheckSuiteEvent
	if err := parse(eventType, deliveryID, payload, &event); err != nil {
		return err
	}
	m, ok := meta(deliveryID, eventType, event.GetAction(), event.GetInstallation(), event.GetRepo(), event.GetSender())
	if !ok {
		return ignore(ctx, noInstallation)
	}
	if a := event.GetAction(); a != "requested" && a != "rerequested" {
		return ignore(ctx, "check_suite %q needs no work", a)
	}
	suite := event.GetCheckSuite()
	return h.accept(ctx, intent.CheckSuiteRequested{
		Meta:         m,
		CheckSuiteID: suite.GetID(),
		HeadSHA:      suite.GetHeadSHA(),
		HeadBranch:   suite.GetHeadBranch(),
		PRs:          prNumbers(suite.PullRequests),
	})
}
