package ghsim

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// routeTable maps the description's route templates to handlers.
func (s *Server) routeTable() map[string]handlerFunc {
	return map[string]handlerFunc{
		routeAccessTokens:                 s.createAccessToken,
		routeApp:                          s.getApp,
		"GET /user":                       s.getUser,
		"GET /repos/{owner}/{repo}":       s.getRepo,
		routeManifestConversion:           s.convertManifest,
		"GET /repos/{owner}/{repo}/pulls": s.listPulls,
		"GET /repos/{owner}/{repo}/pulls/{pull_number}":                     s.getPull,
		"GET /repos/{owner}/{repo}/collaborators/{username}/permission":     s.getPermission,
		"GET /repos/{owner}/{repo}/contents/{path}":                         s.getContents,
		"GET /repos/{owner}/{repo}/tarball/{ref}":                           s.getTarball,
		"GET /repos/{owner}/{repo}/git/ref/{ref}":                           s.getRef,
		"GET /repos/{owner}/{repo}/compare/{basehead}":                      s.compare,
		"POST /repos/{owner}/{repo}/check-runs":                             s.createCheckRun,
		"GET /repos/{owner}/{repo}/check-runs/{check_run_id}":               s.getCheckRun,
		"PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}":             s.updateCheckRun,
		"GET /repos/{owner}/{repo}/commits/{ref}/check-runs":                s.listCheckRuns,
		"GET /repos/{owner}/{repo}/issues/{issue_number}/comments":          s.listComments,
		"POST /repos/{owner}/{repo}/issues/{issue_number}/comments":         s.createComment,
		"GET /repos/{owner}/{repo}/issues/comments/{comment_id}":            s.getComment,
		"PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}":          s.updateComment,
		"DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}":         s.deleteComment,
		"GET /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions":  s.listReactions,
		"POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions": s.createReaction,
		"GET /repos/{owner}/{repo}/deployments":                             s.listDeployments,
		"POST /repos/{owner}/{repo}/deployments":                            s.createDeployment,
		"GET /repos/{owner}/{repo}/deployments/{deployment_id}":             s.getDeployment,
		"GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses":    s.listDeploymentStatuses,
		"POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses":   s.createDeploymentStatus,
		routeTeamMembership: s.getTeamMembership,
	}
}

// repoOf finds the request's repository; GitHub answers 404 for unknown
// ones (and for ones the installation cannot see).
func (s *Server) repoOf(r *http.Request) (*repo, *reply) {
	rp := s.lookupRepo(apispec.PathParam(r.Context(), "owner"), apispec.PathParam(r.Context(), "repo"))
	if rp == nil {
		rep := notFound()
		return nil, &rep
	}
	return rp, nil
}

func intParam(r *http.Request, name string) int64 {
	n, _ := strconv.ParseInt(apispec.PathParam(r.Context(), name), 10, 64)
	return n
}

func (s *Server) getPull(r *http.Request) reply {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	p := rp.pulls[int(intParam(r, "pull_number"))]
	if p == nil {
		return fail(http.StatusNotFound, "Not Found", "https://docs.github.com/rest/pulls/pulls#get-a-pull-request")
	}
	return ok(s.pullObject(template("pull-request.json"), rp, p))
}

// coarse maps a role to the permission field, which knows only admin,
// write, read and none.
func coarse(role string) string {
	switch role {
	case "admin":
		return "admin"
	case "maintain", "write":
		return "write"
	case "triage", "read":
		return "read"
	default:
		return "none"
	}
}

func (s *Server) getPermission(r *http.Request) reply {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	user := apispec.PathParam(r.Context(), "username")
	role := rp.perms[user]
	if role == "" {
		// Sandbox repositories are public: anyone may read them.
		role = "read"
	}
	u := s.userObject(user)
	u["role_name"] = role
	u["permissions"] = rolePermissions(role)
	return ok(map[string]any{"permission": coarse(role), "role_name": role, "user": u})
}

// commitFor resolves the ref query parameter (default: the default branch).
func commitFor(rp *repo, ref string) (*commit, string, bool) {
	if ref == "" {
		ref = rp.defaultBranch
	}
	sha, ok := rp.resolve(ref)
	if !ok {
		return nil, ref, false
	}
	return rp.commits[sha], ref, true
}

func blobSHA(content string) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00%s", len(content), content)
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) getContents(r *http.Request) reply {
	const doc = "https://docs.github.com/rest/repos/contents#get-repository-content"
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	path := strings.Trim(apispec.PathParam(r.Context(), "path"), "/")
	c, ref, found := commitFor(rp, r.URL.Query().Get("ref"))
	if !found {
		return fail(http.StatusNotFound, "No commit found for the ref "+ref, doc)
	}
	if content, isFile := c.tree[path]; isFile {
		if strings.Contains(r.Header.Get("Accept"), "application/vnd.github.raw") {
			return reply{status: http.StatusOK, body: rawBody(content)}
		}
		return ok(s.contentObject(rp, ref, path, content, true))
	}
	// A directory: its direct entries.
	var entries []map[string]any
	seen := map[string]bool{}
	for p, content := range c.tree {
		rest, ok := strings.CutPrefix(p, path+"/")
		if path == "" {
			rest, ok = p, true
		}
		if !ok {
			continue
		}
		name, _, isDir := strings.Cut(rest, "/")
		if seen[name] {
			continue
		}
		seen[name] = true
		full := strings.TrimPrefix(path+"/"+name, "/")
		if isDir {
			entries = append(entries, s.dirEntry(rp, ref, full))
		} else {
			e := s.contentObject(rp, ref, full, content, false)
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		return fail(http.StatusNotFound, "Not Found", doc)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i]["name"].(string) < entries[j]["name"].(string) })
	return ok(entries)
}

// rawBody marks a reply body sent as is (Accept: application/vnd.github.raw).
type rawBody string

func (s *Server) contentObject(rp *repo, ref, path, content string, withContent bool) map[string]any {
	sha := blobSHA(content)
	self := fmt.Sprintf("%s/repos/%s/contents/%s?ref=%s", s.baseURL, rp.fullName(), path, url.QueryEscape(ref))
	git := fmt.Sprintf("%s/repos/%s/git/blobs/%s", s.baseURL, rp.fullName(), sha)
	html := fmt.Sprintf("%s/%s/blob/%s/%s", s.opts.WebURL, rp.fullName(), ref, path)
	m := map[string]any{
		"type":         "file",
		"size":         len(content),
		"name":         path[strings.LastIndex(path, "/")+1:],
		"path":         path,
		"sha":          sha,
		"url":          self,
		"git_url":      git,
		"html_url":     html,
		"download_url": fmt.Sprintf("%s/raw/%s/%s/%s", s.baseURL, rp.fullName(), ref, path),
		"_links":       map[string]any{"self": self, "git": git, "html": html},
	}
	if withContent {
		m["encoding"] = "base64"
		m["content"] = wrap60(base64.StdEncoding.EncodeToString([]byte(content)))
	}
	return m
}

func (s *Server) dirEntry(rp *repo, ref, path string) map[string]any {
	self := fmt.Sprintf("%s/repos/%s/contents/%s?ref=%s", s.baseURL, rp.fullName(), path, url.QueryEscape(ref))
	html := fmt.Sprintf("%s/%s/tree/%s/%s", s.opts.WebURL, rp.fullName(), ref, path)
	sha := blobSHA("tree:" + path)
	git := fmt.Sprintf("%s/repos/%s/git/trees/%s", s.baseURL, rp.fullName(), sha)
	return map[string]any{
		"type": "dir", "size": 0, "name": path[strings.LastIndex(path, "/")+1:], "path": path, "sha": sha,
		"url": self, "git_url": git, "html_url": html, "download_url": nil,
		"_links": map[string]any{"self": self, "git": git, "html": html},
	}
}

// wrap60 breaks base64 into lines as GitHub does.
func wrap60(s string) string {
	var b strings.Builder
	for len(s) > 60 {
		b.WriteString(s[:60])
		b.WriteByte('\n')
		s = s[60:]
	}
	b.WriteString(s)
	b.WriteByte('\n')
	return b.String()
}

// The download host (codeload.github.com on GitHub) lives under this path
// on the simulator's own address.
const codeloadPrefix = "/_codeload/"

// grant is a short-lived download token embedded in a redirect URL.
type grant struct {
	repo    string
	sha     string
	expires time.Time
}

func (s *Server) getTarball(r *http.Request) reply {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return *rep
	}
	ref := apispec.PathParam(r.Context(), "ref")
	sha, ok := rp.resolve(ref)
	if !ok {
		return fail(http.StatusNotFound, "Not Found", "https://docs.github.com/rest/repos/contents#download-a-repository-archive-tar")
	}
	buf := make([]byte, 16)
	_, _ = rand.Read(buf)
	tok := hex.EncodeToString(buf)
	s.grants[tok] = grant{repo: rp.fullName(), sha: sha, expires: s.now().Add(5 * time.Minute)}
	loc := fmt.Sprintf("%s%s%s/legacy.tar.gz/%s?token=%s", s.baseURL, codeloadPrefix, rp.fullName(), sha, tok)
	return reply{status: http.StatusFound}.withHeader("Location", loc)
}

// serveCodeload serves the archive a tarball redirect points to.
func (s *Server) serveCodeload(w http.ResponseWriter, r *http.Request) {
	const route = "GET " + codeloadPrefix + "{owner}/{repo}/legacy.tar.gz/{sha}"
	rec := &recorder{ResponseWriter: w}
	defer func() { s.record(route, rec.status) }()
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, codeloadPrefix), "/")
	tok := r.URL.Query().Get("token")
	s.mu.Lock()
	g, granted := s.grants[tok]
	now := s.now()
	var c *commit
	var rp *repo
	if granted && len(parts) == 4 && parts[2] == "legacy.tar.gz" && strings.EqualFold(g.repo, parts[0]+"/"+parts[1]) && g.sha == parts[3] && now.Before(g.expires) {
		rp = s.lookupRepo(parts[0], parts[1])
		if rp != nil {
			c = rp.commits[g.sha]
		}
	}
	var archive []byte
	var name string
	if c != nil {
		name = fmt.Sprintf("%s-%s-%s", rp.owner, rp.name, c.sha[:7])
		archive = tarball(name, c)
	}
	s.mu.Unlock()
	if r.Method != http.MethodGet || c == nil {
		http.Error(rec, "404: Not Found", http.StatusNotFound)
		return
	}
	rec.Header().Set("Content-Type", "application/x-gzip")
	rec.Header().Set("Content-Disposition", "attachment; filename="+name+".tar.gz")
	rec.Header().Set("Content-Length", strconv.Itoa(len(archive)))
	rec.WriteHeader(http.StatusOK)
	_, _ = rec.Write(archive)
}

// tarball builds GitHub's archive layout: a pax global header carrying the
// commit SHA, then everything under one folder named top.
func tarball(top string, c *commit) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": c.sha}, Format: tar.FormatPAX})
	paths := make([]string, 0, len(c.tree))
	for p := range c.tree {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	dirs := map[string]bool{}
	writeDir := func(d string) {
		if !dirs[d] {
			dirs[d] = true
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + "/" + d, Mode: 0o775, ModTime: c.time, Format: tar.FormatPAX})
		}
	}
	writeDir("")
	for _, p := range paths {
		segs := strings.Split(p, "/")
		for i := 1; i < len(segs); i++ {
			writeDir(strings.Join(segs[:i], "/") + "/")
		}
		content := c.tree[p]
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: top + "/" + p, Mode: 0o664, Size: int64(len(content)), ModTime: c.time, Format: tar.FormatPAX})
		_, _ = tw.Write([]byte(content))
	}
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

// rolePermissions are the "permissions" flags GitHub gives a role (a
// collaborator's, or a user token's on a repository): each role has the
// rights of those below it.
func rolePermissions(role string) map[string]any {
	return map[string]any{
		"admin":    role == "admin",
		"maintain": role == "admin" || role == "maintain",
		"push":     coarse(role) == "admin" || coarse(role) == "write",
		"triage":   role != "read",
		"pull":     true,
	}
}
