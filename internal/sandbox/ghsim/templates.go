package ghsim

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Real GitHub payloads and answers (see templates/SOURCES.md) are the
// skeletons of what the simulator sends: it copies one, points its URLs at
// the sandbox and fills in its own values, so the shape (every key, nulls
// included) stays GitHub's.
//
//go:embed templates/*.json
var templateFiles embed.FS

// template returns a fresh copy of templates/name.
func template(name string) map[string]any {
	data, err := templateFiles.ReadFile("templates/" + name)
	if err != nil {
		panic(fmt.Sprintf("ghsim: template %s: %v", name, err)) // embedded: a build mistake
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		panic(fmt.Sprintf("ghsim: template %s: %v", name, err))
	}
	return m
}

// rewrite returns v with every string passed through r.
func rewrite(v any, r *strings.Replacer) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = rewrite(e, r)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = rewrite(e, r)
		}
		return x
	case string:
		return r.Replace(x)
	default:
		return v
	}
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}

// repoObject turns a template's repository object into fullName's. The
// owner's login is the part before the slash.
func (s *Server) repoObject(tmpl map[string]any, fullName string, rp *repo, fork bool) map[string]any {
	old, _ := tmpl["full_name"].(string)
	web, _ := url.Parse(s.opts.WebURL)
	host := "github.com"
	if web != nil && web.Host != "" {
		host = web.Host
	}
	r := strings.NewReplacer(
		"https://api.github.com/repos/"+old, s.baseURL+"/repos/"+fullName,
		"https://github.com/"+old, s.opts.WebURL+"/"+fullName,
		"git://github.com/"+old, "git://"+host+"/"+fullName,
		"git@github.com:"+old, "git@"+host+":"+fullName,
		"https://api.github.com", s.baseURL,
		"https://github.com", s.opts.WebURL,
	)
	m := rewrite(tmpl, r).(map[string]any)
	owner, name, _ := strings.Cut(fullName, "/")
	m["full_name"] = fullName
	m["name"] = name
	m["owner"] = s.userObject(owner)
	m["fork"] = fork
	m["private"] = rp != nil && rp.private
	if _, ok := m["visibility"]; ok {
		m["visibility"] = "public"
		if rp != nil && rp.private {
			m["visibility"] = "private"
		}
	}
	m["description"] = nil
	m["homepage"] = nil
	if rp != nil {
		m["id"] = rp.id
		m["node_id"] = nodeID("Repository", rp.id)
		m["default_branch"] = rp.defaultBranch
		m["open_issues_count"] = openPulls(rp)
		m["open_issues"] = openPulls(rp)
		if _, ok := m["master_branch"]; ok {
			m["master_branch"] = rp.defaultBranch
		}
	} else {
		id := userID(fullName)
		m["id"] = id
		m["node_id"] = nodeID("Repository", id)
	}
	return m
}

func openPulls(rp *repo) int {
	n := 0
	for _, p := range rp.pulls {
		if p.state == "open" {
			n++
		}
	}
	return n
}

// pullObject fills a template's pull_request object with p.
func (s *Server) pullObject(tmpl map[string]any, rp *repo, p *pull) map[string]any {
	oldRepo := "octocat/Hello-World"
	if base := obj(obj(tmpl["base"])["repo"]); base["full_name"] != nil {
		oldRepo, _ = base["full_name"].(string)
	}
	oldNumber := fmt.Sprint(tmpl["number"])
	headT, baseT := obj(tmpl["head"]), obj(tmpl["base"])
	headRepoT, baseRepoT := obj(headT["repo"]), obj(baseT["repo"])
	delete(tmpl, "head")
	delete(tmpl, "base")
	oldHeadSHA, _ := headT["sha"].(string)
	r := strings.NewReplacer(
		"https://api.github.com/repos/"+oldRepo+"/pulls/"+oldNumber, fmt.Sprintf("%s/repos/%s/pulls/%d", s.baseURL, rp.fullName(), p.number),
		"https://api.github.com/repos/"+oldRepo+"/issues/"+oldNumber, fmt.Sprintf("%s/repos/%s/issues/%d", s.baseURL, rp.fullName(), p.number),
		"https://github.com/"+oldRepo+"/pull/"+oldNumber, fmt.Sprintf("%s/%s/pull/%d", s.opts.WebURL, rp.fullName(), p.number),
		"https://api.github.com/repos/"+oldRepo+"/statuses/"+oldHeadSHA, fmt.Sprintf("%s/repos/%s/statuses/%s", s.baseURL, rp.fullName(), p.headSHA),
		"https://api.github.com/repos/"+oldRepo, s.baseURL+"/repos/"+rp.fullName(),
		"https://github.com/"+oldRepo, s.opts.WebURL+"/"+rp.fullName(),
		"https://api.github.com", s.baseURL,
		"https://github.com", s.opts.WebURL,
	)
	m := rewrite(tmpl, r).(map[string]any)
	m["id"] = p.id
	m["node_id"] = nodeID("PullRequest", p.id)
	m["number"] = p.number
	m["state"] = p.state
	m["title"] = p.title
	m["body"] = nil
	m["draft"] = p.draft
	m["locked"] = false
	m["user"] = s.userObject(p.author)
	m["created_at"] = timestamp(p.created)
	m["updated_at"] = timestamp(p.updated)
	m["closed_at"] = nullableTime(p.closedAt)
	m["merged_at"] = nullableTime(p.mergedAt)
	m["merge_commit_sha"] = nil
	if p.merged {
		m["merge_commit_sha"] = p.mergeSHA
	}
	// merged and merged_by are not in a pull-request-simple (list items).
	if _, ok := m["merged"]; ok {
		m["merged"] = p.merged
		m["merged_by"] = nil
		if p.merged {
			m["merged_by"] = s.userObject(rp.owner)
		}
	}
	m["assignee"] = nil
	m["assignees"] = []any{}
	m["requested_reviewers"] = []any{}
	m["requested_teams"] = []any{}
	m["labels"] = []any{}
	m["milestone"] = nil
	m["auto_merge"] = nil
	m["author_association"] = association(rp, p.author)
	if _, ok := m["mergeable"]; ok {
		m["mergeable"] = true
		m["rebaseable"] = true
		m["mergeable_state"] = "clean"
		m["comments"] = countComments(rp, p.number)
		m["review_comments"] = 0
		m["commits"] = len(newCommits(rp, rp.branches[p.base], p.headSHA))
		m["additions"], m["deletions"], m["changed_files"] = 0, 0, 0
		m["maintainer_can_modify"] = false
	}

	headOwner := strings.SplitN(p.headRepo, "/", 2)[0]
	var headRepoRP *repo
	if !p.fork {
		headRepoRP = rp
	}
	m["head"] = map[string]any{
		"label": headOwner + ":" + p.head,
		"ref":   p.head,
		"sha":   p.headSHA,
		"user":  s.userObject(headOwner),
		"repo":  s.repoObject(headRepoT, p.headRepo, headRepoRP, p.fork),
	}
	m["base"] = map[string]any{
		"label": rp.owner + ":" + p.base,
		"ref":   p.base,
		"sha":   rp.branches[p.base],
		"user":  s.userObject(rp.owner),
		"repo":  s.repoObject(baseRepoT, rp.fullName(), rp, false),
	}
	return m
}

func association(rp *repo, login string) string {
	switch {
	case strings.EqualFold(login, rp.owner):
		return "OWNER"
	case rp.perms[login] != "":
		return "COLLABORATOR"
	default:
		return "CONTRIBUTOR"
	}
}

func countComments(rp *repo, number int) int {
	n := 0
	for _, c := range rp.comments {
		if c.issue == number {
			n++
		}
	}
	return n
}

func epoch(t time.Time) int64 { return t.Unix() }
