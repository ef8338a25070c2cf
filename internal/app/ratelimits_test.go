package app

import (
	"testing"

	"github.com/revelations-studio/deploybot/internal/config"
	"github.com/revelations-studio/deploybot/internal/github"
)

func TestRateLimitsFromBudget(t *testing.T) {
	if got := rateLimits(config.GitHubBudget{Reserve: 10, RequestsPerHour: 3000}, github.WritePace{}); got.Reserve != 0.1 || got.RequestsPerHour != 3000 {
		t.Errorf("10%%, 3000/h: %+v", got)
	}
	// 0% must switch pacing off, not fall back to github's default.
	if got := rateLimits(config.GitHubBudget{}, github.WritePace{}); got.Reserve >= 0 || got.RequestsPerHour != 0 {
		t.Errorf("0%%: %+v", got)
	}
}
