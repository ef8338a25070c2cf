package ghsim

import (
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// maxCompareFiles is how many changed files a comparison lists at most:
// "it includes up to 300 changed files for the entire comparison" (the
// endpoint's description in GitHub's OpenAPI document).
const maxCompareFiles = 300

// compare answers GET /repos/{owner}/{repo}/compare/{basehead}: the
// commits reachable from head but not from base, and the files changed
// between their merge base and head (a three-dot diff). Files are listed on
// the first page only, at most maxCompareFiles of them.
func (s *Server) compare(r *http.Request) reply {
	const doc = "https://docs.github.com/rest/commits/commits#compare-two-commits"
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	baseRef, headRef, found := strings.Cut(apispec.PathParam(r.Context(), "basehead"), "...")
	if !found {
		return notFound()
	}
	base, _, okBase := commitFor(rp, baseRef)
	head, _, okHead := commitFor(rp, headRef)
	if !okBase || !okHead || baseRef == "" || headRef == "" {
		return fail(http.StatusNotFound, "Not Found", doc)
	}
	baseAnc, headAnc := ancestors(rp, base.sha), ancestors(rp, head.sha)
	mergeBase := s.mergeBase(rp, head.sha, baseAnc)
	var commits []*commit // reachable from head, not from base, oldest first
	for _, sha := range rp.commitOrder {
		if headAnc[sha] && !baseAnc[sha] {
			commits = append(commits, rp.commits[sha])
		}
	}
	behind := 0
	for sha := range baseAnc {
		if !headAnc[sha] {
			behind++
		}
	}
	status := "diverged"
	switch {
	case len(commits) == 0 && behind == 0:
		status = "identical"
	case behind == 0:
		status = "ahead"
	case len(commits) == 0:
		status = "behind"
	}
	pageOf, link := page(s, r, commits)
	objs := make([]any, 0, len(pageOf))
	for _, c := range pageOf {
		objs = append(objs, s.commitObject(rp, c))
	}
	web := s.opts.WebURL + "/" + rp.fullName()
	api := s.baseURL + "/repos/" + rp.fullName()
	body := map[string]any{
		"url":               api + "/compare/" + base.sha + "..." + head.sha,
		"html_url":          web + "/compare/" + base.sha + "..." + head.sha,
		"permalink_url":     web + "/compare/" + rp.owner + ":" + base.sha[:7] + "..." + rp.owner + ":" + head.sha[:7],
		"diff_url":          web + "/compare/" + base.sha + "..." + head.sha + ".diff",
		"patch_url":         web + "/compare/" + base.sha + "..." + head.sha + ".patch",
		"base_commit":       s.commitObject(rp, base),
		"merge_base_commit": s.commitObject(rp, mergeBase),
		"status":            status,
		"ahead_by":          len(commits),
		"behind_by":         behind,
		"total_commits":     len(commits),
		"commits":           objs,
	}
	q := r.URL.Query()
	if q.Get("page") == "" || q.Get("page") == "1" {
		body["files"] = s.diffEntries(rp, head, mergeBase.tree, head.tree)
	}
	return paged(body, link)
}

// ancestors is sha and every commit it descends from.
func ancestors(rp *repo, sha string) map[string]bool {
	seen := map[string]bool{}
	todo := []string{sha}
	for len(todo) > 0 {
		c := rp.commits[todo[0]]
		todo = todo[1:]
		if c == nil || seen[c.sha] {
			continue
		}
		seen[c.sha] = true
		todo = append(todo, c.parents...)
	}
	return seen
}

// mergeBase is the newest ancestor of head that base descends from too.
func (s *Server) mergeBase(rp *repo, head string, baseAnc map[string]bool) *commit {
	order := slices.Clone(rp.commitOrder)
	slices.Reverse(order)
	headAnc := ancestors(rp, head)
	for _, sha := range order {
		if headAnc[sha] && baseAnc[sha] {
			return rp.commits[sha]
		}
	}
	return rp.commits[head]
}

// diffEntries are GitHub's diff-entry objects for the files that differ
// between two trees, by name, at most maxCompareFiles.
func (s *Server) diffEntries(rp *repo, head *commit, from, to map[string]string) []any {
	var names []string
	for name, content := range to {
		if old, ok := from[name]; !ok || old != content {
			names = append(names, name)
		}
	}
	for name := range from {
		if _, ok := to[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) > maxCompareFiles {
		names = names[:maxCompareFiles]
	}
	out := make([]any, 0, len(names))
	for _, name := range names {
		content, inHead := to[name]
		status, sha := "modified", blobSHA(content)
		switch _, inBase := from[name]; {
		case !inBase:
			status = "added"
		case !inHead:
			status, sha = "removed", blobSHA(from[name])
		}
		lines := strings.Count(content, "\n")
		out = append(out, map[string]any{
			"sha":          sha,
			"filename":     name,
			"status":       status,
			"additions":    lines,
			"deletions":    0,
			"changes":      lines,
			"blob_url":     s.opts.WebURL + "/" + rp.fullName() + "/blob/" + head.sha + "/" + name,
			"raw_url":      s.opts.WebURL + "/" + rp.fullName() + "/raw/" + head.sha + "/" + name,
			"contents_url": s.baseURL + "/repos/" + rp.fullName() + "/contents/" + name + "?ref=" + head.sha,
		})
	}
	return out
}

// commitObject is GitHub's commit object (as in a comparison).
func (s *Server) commitObject(rp *repo, c *commit) map[string]any {
	api := s.baseURL + "/repos/" + rp.fullName()
	web := s.opts.WebURL + "/" + rp.fullName()
	gitUser := map[string]any{"name": c.author, "email": c.author + "@users.noreply.github.com", "date": timestamp(c.time)}
	parents := make([]any, 0, len(c.parents))
	for _, p := range c.parents {
		parents = append(parents, map[string]any{"sha": p, "url": api + "/commits/" + p, "html_url": web + "/commit/" + p})
	}
	return map[string]any{
		"sha":          c.sha,
		"node_id":      "C_" + c.sha[:16],
		"url":          api + "/commits/" + c.sha,
		"html_url":     web + "/commit/" + c.sha,
		"comments_url": api + "/commits/" + c.sha + "/comments",
		"commit": map[string]any{
			"url":           api + "/git/commits/" + c.sha,
			"author":        gitUser,
			"committer":     gitUser,
			"message":       c.message,
			"comment_count": 0,
			"tree":          map[string]any{"sha": treeHash(c.tree), "url": api + "/git/trees/" + treeHash(c.tree)},
		},
		"author":    s.userObject(c.author),
		"committer": s.userObject(c.author),
		"parents":   parents,
	}
}
