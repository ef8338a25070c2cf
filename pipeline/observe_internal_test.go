package pipeline

import (
	"slices"
	"testing"
)

// TestStepKinds: step names, which carry worker and stage names from the
// repository's pipeline file, become one of a fixed set of kinds; a test
// stage is a "stage" whatever it is called, even after a step of a deploy.
func TestStepKinds(t *testing.T) {
	for _, c := range []struct{ run, step, want string }{
		{"preview", "database", "database"},
		{"preview", "source", "source"},
		{"preview", "setup", "setup"},
		{"preview", "migrate", "migrate"},
		{"preview", "build:web", "build"},
		{"preview", "deploy:api-v2", "deploy"},
		{"preview", "health:web", "health"},
		{"preview", keepStep("web"), "keep"},
		{"preview", "deployment", "deployment"},
		{"preview", gateStep, "tests"},
		{"teardown", "remove:web", "remove"},
		{"teardown", "deployments", "deployment"},
		{"production", "validate", "validate"},
		{"production", "rollback:web", "rollback"},
		{"production", "something:new", "other"},
		{"test", stepSource, "source"},
		{"test", stepSetup, "setup"},
		{"test", stepDatabase, "database"},
		{"test", stepMigrate, "migrate"},
		{"test", "unit", "stage"},
		{"test", "build", "stage"},  // a stage named like a deploy step
		{"test", "source", "stage"}, // or like the preview's source step
	} {
		got := stepKind(c.run, c.step)
		if got != c.want {
			t.Errorf("stepKind(%q, %q) = %q, want %q", c.run, c.step, got, c.want)
		}
		if !slices.Contains(StepKinds(), got) {
			t.Errorf("stepKind(%q, %q) = %q, which StepKinds does not list", c.run, c.step, got)
		}
	}
}
