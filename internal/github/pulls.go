package github

import (
	"context"
	"fmt"
	"strings"

	gh "github.com/google/go-github/v66/github"
)

// pullPageSize is GitHub's largest page: 1,000 open pull requests cost ten
// requests.
const pullPageSize = 100

// OpenPullRequests lists the repository's open pull requests, following
// the pages. It costs one request per 100 pull requests where asking for
// each one costs one per pull request, which is what lets the sweeper check
// a thousand previews within the installation's rate limit. The pages are
// not kept in the ETag cache (see withoutCache).
//
// The pages are read oldest first, so a pull request opened meanwhile only
// adds to the last page. GitHub pages by offset, though: one closed (or
// reopened) while the pages are read shifts the later ones, and an open
// pull request can then be missing from the list (or on two pages: it is
// kept once). A caller must take absence to mean "ask for that pull
// request", never "closed".
func (r *Reporter) OpenPullRequests(ctx context.Context) ([]PullRequest, error) {
	ctx = withoutCache(ctx)
	opts := &gh.PullRequestListOptions{
		State: "open", Sort: "created", Direction: "asc",
		ListOptions: gh.ListOptions{PerPage: pullPageSize},
	}
	var out []PullRequest
	seen := map[int]bool{}
	for {
		page, resp, err := r.client.PullRequests.List(ctx, r.owner, r.repo, opts)
		if err != nil {
			return nil, r.wrap(fmt.Sprintf("list open pull requests (page %d)", max(opts.Page, 1)), resp, err)
		}
		for _, pr := range page {
			if seen[pr.GetNumber()] {
				continue // shifted onto this page by a pull request closed meanwhile
			}
			seen[pr.GetNumber()] = true
			out = append(out, r.pullRequestOf(pr))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		if resp.NextPage <= opts.Page {
			return nil, fmt.Errorf("github: list open pull requests in %s: pages do not advance (next %d after %d)", r.FullName(), resp.NextPage, opts.Page)
		}
		opts.Page = resp.NextPage
	}
}

// pullRequestOf keeps what the bot needs of a pull request, from its own
// answer or a list item (which lacks "merged": merged_at says it).
func (r *Reporter) pullRequestOf(pr *gh.PullRequest) PullRequest {
	out := PullRequest{
		Number:  pr.GetNumber(),
		Title:   pr.GetTitle(),
		State:   pr.GetState(),
		Draft:   pr.GetDraft(),
		Merged:  pr.GetMerged() || pr.MergedAt != nil,
		Author:  pr.GetUser().GetLogin(),
		HeadSHA: pr.GetHead().GetSHA(),
		HeadRef: pr.GetHead().GetRef(),
		BaseRef: pr.GetBase().GetRef(),
	}
	out.HeadRepo = pr.GetHead().GetRepo().GetFullName()
	out.Fork = !strings.EqualFold(out.HeadRepo, r.FullName())
	return out
}
