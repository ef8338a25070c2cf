package github

import (
	"context"
	"fmt"
	"net/http"
)

// BranchHead is the commit branch points to now; found is false when the
// branch does not exist (any more). Push deliveries can arrive out of order:
// this is how a job tells the newest push from a stale one.
func (r *Reporter) BranchHead(ctx context.Context, branch string) (sha string, found bool, err error) {
	ref, resp, err := r.client.Git.GetRef(ctx, r.owner, r.repo, "heads/"+branch)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return "", false, nil
	}
	if err != nil {
		return "", false, r.wrap(fmt.Sprintf("read the head of branch %q", branch), resp, err)
	}
	return ref.GetObject().GetSHA(), true, nil
}
