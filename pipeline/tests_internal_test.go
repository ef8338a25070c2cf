package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/revelations-studio/deploybot/internal/repoconfig"
)

func TestSkipCIMessages(t *testing.T) {
	for msg, want := range map[string]bool{
		"Fix typo [skip ci]":       true,
		"[CI SKIP] docs\n\nmore":   true,
		"docs\n\n[skip ci]":        true,
		"skip ci":                  false,
		"[skip-ci]":                false,
		"Run the CI [skip] please": false,
		"":                         false,
	} {
		if got := skipCI(msg); got != want {
			t.Errorf("skipCI(%q) = %v", msg, got)
		}
	}
}

func TestSelectStages(t *testing.T) {
	all := []repoconfig.Stage{
		{Name: "lint"}, {Name: "unit"}, {Name: "build", Needs: []string{"lint"}},
		{Name: "e2e", Needs: []string{"build", "unit"}}, {Name: "docs"},
	}
	for stage, want := range map[string]string{
		"":      "[lint unit build e2e docs]",
		"e2e":   "[lint unit build e2e]",
		"build": "[lint build]",
		"docs":  "[docs]",
	} {
		got, ok := selectStages(all, stage)
		var names []string
		for _, s := range got {
			names = append(names, s.Name)
		}
		if !ok || fmt.Sprint(names) != want {
			t.Errorf("selectStages(%q) = %v, %v; want %s", stage, names, ok, want)
		}
	}
	if _, ok := selectStages(all, "gone"); ok {
		t.Error("a stage no longer in the file was selected")
	}
}

// TestCommandSlots: the process-wide limit holds across runs, and a
// cancelled run stops waiting for a slot.
func TestCommandSlots(t *testing.T) {
	tr := &testRuns{slots: make(chan struct{}, 2)}
	ctx := context.Background()
	r1, err := tr.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := tr.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	waiting, cancel := context.WithCancel(ctx)
	go func() {
		_, err := tr.acquire(waiting)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a third command started with two slots: %v", err)
	default:
	}
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	r1()
	r3, err := tr.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2()
	r3()
}

func TestRootCause(t *testing.T) {
	r := &testRun{needs: map[string][]string{
		stepSource: nil, stepDatabase: nil, stepMigrate: {stepSource, stepDatabase},
		"unit": {stepSource}, "integration": {stepSource, "unit", stepMigrate}, "e2e": {stepSource, "integration"},
	}}
	states := []StepState{
		{Name: stepSource, Status: StepSucceeded}, {Name: stepDatabase, Status: StepSucceeded},
		{Name: stepMigrate, Status: StepFailed}, {Name: "unit", Status: StepSucceeded},
		{Name: "integration", Status: StepSkipped}, {Name: "e2e", Status: StepSkipped},
	}
	if got := r.rootCause("e2e", states).Name; got != stepMigrate {
		t.Errorf("root cause of e2e: %s, want %s", got, stepMigrate)
	}
}
