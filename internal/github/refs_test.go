package github

import (
	"context"
	"testing"

	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

func TestBranchHead(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := context.Background()
	sha, found, err := e.rep.BranchHead(ctx, "feature")
	if err != nil || !found || sha != e.headSHA {
		t.Fatalf("BranchHead(feature) = %q, %v, %v; want %.7s", sha, found, err, e.headSHA)
	}
	newer, err := e.sim.Commit(repo, "feature/deep/name", map[string]string{"a.txt": "1"}, "nested")
	if err != nil {
		t.Fatal(err)
	}
	if sha, found, err := e.rep.BranchHead(ctx, "feature/deep/name"); err != nil || !found || sha != newer {
		t.Fatalf("BranchHead(feature/deep/name) = %q, %v, %v; want %.7s", sha, found, err, newer)
	}
	if sha, found, err := e.rep.BranchHead(ctx, "gone"); err != nil || found || sha != "" {
		t.Fatalf("BranchHead(gone) = %q, %v, %v; want not found", sha, found, err)
	}
}
