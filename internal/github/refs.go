package github

import (
	"context"
	"fmt"
	"net/http"

	"github.com/revelations-studio/deploybot/internal/gitref"
)

// BranchHead is the commit branch points to now; found is false when the
// branch does not exist (any more). Push deliveries can arrive out of order:
// this is how a job tells the newest push from a stale one.
func (r *Reporter) BranchHead(ctx context.Context, branch string) (sha string, found bool, err error) {
	if err := gitref.CheckBranch(branch); err != nil {
		// go-github escapes each segment, but "." and ".." segments are
		// resolved away by URL parsing: refuse before any request.
		return "", false, fmt.Errorf("github: read the head of a branch in %s: %w", r.FullName(), err)
	}
	ref, resp, err := r.client.Git.GetRef(ctx, r.owner, r.repo, "heads/"+branch)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return "", false, nil
	}
	if err != nil {
		return "", false, r.wrap(fmt.Sprintf("read the head of branch %q", branch), resp, err)
	}
	return ref.GetObject().GetSHA(), true, nil
}
