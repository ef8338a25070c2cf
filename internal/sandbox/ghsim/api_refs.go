package ghsim

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// getRef answers GET /repos/{owner}/{repo}/git/ref/{ref} for branches
// ("heads/<name>"): where the branch points now, GitHub's "git-ref" object.
func (s *Server) getRef(r *http.Request) reply {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	const doc = "https://docs.github.com/rest/git/refs#get-a-reference"
	ref := apispec.PathParam(r.Context(), "ref")
	name, isBranch := strings.CutPrefix(ref, "heads/")
	sha, found := rp.branches[name]
	if !isBranch || !found {
		return fail(http.StatusNotFound, "Not Found", doc)
	}
	api := fmt.Sprintf("%s/repos/%s", s.baseURL, rp.fullName())
	return ok(map[string]any{
		"ref":     "refs/" + ref,
		"node_id": "REF_" + sha[:12],
		"url":     api + "/git/refs/" + ref,
		"object": map[string]any{
			"type": "commit",
			"sha":  sha,
			"url":  api + "/git/commits/" + sha,
		},
	})
}
