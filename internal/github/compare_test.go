package github

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// TestChangedFiles: the files a branch changed since main, and a list cut
// at GitHub's 300 files is said to be incomplete.
func TestChangedFiles(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := context.Background()
	files, complete, err := e.rep.ChangedFiles(ctx, "main", e.headSHA)
	if err != nil || !complete || !slices.Equal(files, []string{"web/index.js"}) {
		t.Fatalf("ChangedFiles(main, feature) = %v, %v, %v; want [web/index.js], complete", files, complete, err)
	}
	many := map[string]string{}
	for i := range MaxChangedFiles + 5 {
		many[fmt.Sprintf("gen/%03d.txt", i)] = "x"
	}
	big, err := e.sim.Commit(repo, "big", many, "generated")
	must(t, err)
	if files, complete, err := e.rep.ChangedFiles(ctx, "main", big); err != nil || complete || len(files) != MaxChangedFiles {
		t.Errorf("ChangedFiles of %d files = %d files, complete %v, %v; want %d, incomplete", len(many), len(files), complete, err, MaxChangedFiles)
	}
	if _, _, err := e.rep.ChangedFiles(ctx, "main", "0000000000000000000000000000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown head: %v, want a not-found error", err)
	}
}
