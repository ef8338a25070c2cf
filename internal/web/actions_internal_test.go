package web

import (
	"testing"

	"github.com/revelations-studio/deploybot/pipeline/state"
)

// TestOffers: each kind of run offers the actions its check run and the
// PR commands have, and no other; a stage re-run names one of the test
// run's stages, never a setup step.
func TestOffers(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	preview := state.Detail{Kind: "preview", PR: 3, HeadSHA: sha, Status: "failed"}
	teardown := state.Detail{Kind: "teardown", PR: 3, HeadSHA: sha, Status: "succeeded"}
	test := state.Detail{Kind: "test", Branch: "feature/x", HeadSHA: sha, Status: "failed",
		Steps: []state.Step{{Name: "setup:source"}, {Name: "unit"}, {Name: "integration"}}}
	prod := state.Detail{Kind: "production", Branch: "main", HeadSHA: sha, Status: "succeeded", CheckRunID: 9}
	failedProd := prod
	failedProd.Status = "failed"
	for _, c := range []struct {
		run           state.Detail
		action, stage string
		want          bool
	}{
		{preview, "redeploy", "", true},
		{preview, "redeploy-reset-db", "", true},
		{preview, "deploy", "", true},
		{preview, "destroy", "", true},
		{teardown, "redeploy", "", true},
		{preview, "rerun", "", false},
		{preview, "rollback", "", false},
		{preview, "destroy", "unit", false},
		{state.Detail{Kind: "preview", PR: 3, HeadSHA: "abc"}, "deploy", "", false}, // no whole SHA to approve
		{test, "rerun", "", true},
		{test, "rerun", "unit", true},
		{test, "rerun", "setup:source", false},
		{test, "rerun", "nosuch", false},
		{test, "redeploy", "", false},
		{test, "destroy", "", false},
		{prod, "rerun", "", true},
		{prod, "rollback", "", true},
		{failedProd, "rollback", "", false}, // nothing it deployed to go back to
		{failedProd, "rerun", "", true},
		{prod, "rerun", "unit", false},
		{prod, "destroy", "", false},
		{prod, "", "", false},
	} {
		if got := offers(c.run, c.action, c.stage); got != c.want {
			t.Errorf("%s run: offers(%q, %q) = %v, want %v", c.run.Kind, c.action, c.stage, got, c.want)
		}
	}
}
