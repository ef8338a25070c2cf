package github

import (
	"context"
	"fmt"

	gh "github.com/google/go-github/v66/github"
)

// MaxChangedFiles is the most files GitHub lists for a comparison: "it
// includes up to 300 changed files for the entire comparison" (Compare two
// commits, GitHub's REST reference). A list that long may be cut short.
const MaxChangedFiles = 300

// ChangedFiles lists the files that differ between base and head (their
// merge base and head, as GitHub compares). complete is false when GitHub
// may have left files out (MaxChangedFiles of them listed): a caller
// deciding what to skip must then assume anything changed.
func (r *Reporter) ChangedFiles(ctx context.Context, base, head string) (files []string, complete bool, err error) {
	// Files come with the first page only; one commit per page keeps the
	// answer small.
	cmp, resp, err := r.client.Repositories.CompareCommits(ctx, r.owner, r.repo, base, head, &gh.ListOptions{PerPage: 1})
	if err != nil {
		return nil, false, r.wrap(fmt.Sprintf("compare %.7s...%.7s", base, head), resp, err)
	}
	for _, f := range cmp.Files {
		files = append(files, f.GetFilename())
		if f.GetPreviousFilename() != "" { // a rename changes both paths
			files = append(files, f.GetPreviousFilename())
		}
	}
	return files, len(cmp.Files) < MaxChangedFiles, nil
}
