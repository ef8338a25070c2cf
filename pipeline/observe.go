package pipeline

import (
	"context"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/pipeline/state"
)

// Observer is told how runs and their steps end, for the operator's
// metrics (internal/metrics implements it). Every value it is given comes
// from a small fixed set — a run kind, an outcome, a step kind, a status —
// never a pull request, a branch or a worker's name.
type Observer interface {
	// RunEnded: a run of kind (preview, teardown, production, test) ended
	// with outcome, the word its log line uses (ready, failed, …), after
	// took (0 when not known).
	RunEnded(kind, outcome string, took time.Duration)
	// StepEnded: a step of kind step (stepKind) of a run of runKind ended
	// with status (succeeded, failed, cancelled) after running for took.
	StepEnded(runKind, step, status string, took time.Duration)
}

// observeRun tells deps.Observer how run e ended.
func observeRun(deps Deps, e state.Ended, o outcome) {
	if deps.Observer == nil {
		return
	}
	var took time.Duration
	if !e.Started.IsZero() && !e.Finished.IsZero() {
		took = e.Finished.Sub(e.Started)
	}
	deps.Observer.RunEnded(e.Kind, o.outcome, took)
}

// observeSteps returns rec telling deps.Observer how each step of a run of
// kind ended; rec itself when there is no observer.
func observeSteps(deps Deps, kind string, rec stepRecorder) stepRecorder {
	if deps.Observer == nil {
		return rec
	}
	return observedSteps{stepRecorder: rec, obs: deps.Observer, kind: kind}
}

type observedSteps struct {
	stepRecorder
	obs  Observer
	kind string
}

// Update tells the observer of a step that ran and ended, then records
// it. Steps skipped, or cancelled before they started, did not run and
// have no duration.
func (o observedSteps) Update(ctx context.Context, run int64, s state.Step) error {
	switch s.Status {
	case StepSucceeded, StepFailed, StepCancelled:
		if !s.Started.IsZero() && !s.Finished.IsZero() {
			o.obs.StepEnded(o.kind, stepKind(o.kind, s.Name), s.Status, s.Finished.Sub(s.Started))
		}
	}
	return o.stepRecorder.Update(ctx, run, s)
}

// stepKind is what a step does, from its name: "build" for "build:web",
// "stage" for any test stage (whose names are the repository's). The
// result is one of a fixed set, so that a metric labelled by it has a
// bounded number of series whatever the pipeline files say.
func stepKind(runKind, name string) string {
	if runKind == "test" {
		switch name {
		case stepSource:
			return "source"
		case stepSetup:
			return "setup"
		case stepDatabase:
			return "database"
		case stepMigrate:
			return "migrate"
		}
		return "stage" // stage names have no ':' (tests.go)
	}
	prefix, _, _ := strings.Cut(name, ":")
	switch prefix {
	case "source", "setup", "validate", "database", "migrate", "build", "deploy", "health",
		"keep", "rollback", "remove", "deployment", gateStep:
		return prefix
	case "deployments": // the teardown's: marking them inactive
		return "deployment"
	}
	return "other"
}

// StepKinds are the values stepKind returns.
func StepKinds() []string {
	return []string{"source", "setup", "validate", "database", "migrate", "build", "deploy", "health",
		"keep", "rollback", "remove", "deployment", gateStep, "stage", "other"}
}
