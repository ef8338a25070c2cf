package ghsim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// reply is a handler's answer, written by dispatch.
type reply struct {
	status int
	body   any // JSON-encoded; nil: no body
	header http.Header
}

func ok(v any) reply      { return reply{status: http.StatusOK, body: v} }
func created(v any) reply { return reply{status: http.StatusCreated, body: v} }
func noContent() reply    { return reply{status: http.StatusNoContent} }

func fail(status int, msg, doc string, errs ...any) reply {
	if doc == "" {
		doc = docsRoot
	}
	return reply{status: status, body: apiError{Message: msg, DocumentationURL: doc, Status: strconv.Itoa(status), Errors: errs}}
}

func notFound() reply { return fail(http.StatusNotFound, "Not Found", "") }

// unprocessable is GitHub's 422 for a request that is well-formed but
// refers to something wrong.
func unprocessable(msg, doc string, errs ...any) reply {
	return fail(http.StatusUnprocessableEntity, msg, doc, errs...)
}

func (rep reply) withHeader(k, v string) reply {
	if rep.header == nil {
		rep.header = http.Header{}
	}
	rep.header.Add(k, v)
	return rep
}

// write sends rep. Successful GETs carry a weak ETag and GitHub's caching
// headers; a matching If-None-Match gets 304 without a body.
func (s *Server) write(w http.ResponseWriter, r *http.Request, rep reply) {
	h := w.Header()
	for k, vs := range rep.header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("X-GitHub-Media-Type", "github.v3; format=json")
	h.Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	if rep.body == nil {
		w.WriteHeader(rep.status)
		return
	}
	ctype := "application/json; charset=utf-8"
	var body []byte
	if raw, isRaw := rep.body.(rawBody); isRaw {
		body, ctype = []byte(raw), "text/plain; charset=utf-8"
	} else {
		var err error
		if body, err = json.Marshal(rep.body); err != nil {
			body, _ = json.Marshal(apiError{Message: "ghsim: " + err.Error(), DocumentationURL: docsRoot})
			rep.status = http.StatusInternalServerError
		}
	}
	if r.Method == http.MethodGet && rep.status == http.StatusOK {
		sum := sha256.Sum256(body)
		etag := `W/"` + hex.EncodeToString(sum[:]) + `"`
		h.Set("ETag", etag)
		h.Set("Cache-Control", "private, max-age=60, s-maxage=60")
		h.Set("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP")
		if etagMatches(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Type", ctype)
	w.WriteHeader(rep.status)
	_, _ = w.Write(body)
}

// etagMatches compares weakly, as If-None-Match requires.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	strip := func(t string) string { return strings.TrimPrefix(strings.TrimSpace(t), "W/") }
	for _, t := range strings.Split(header, ",") {
		if t = strings.TrimSpace(t); t == "*" || strip(t) == strip(etag) {
			return true
		}
	}
	return false
}

// page cuts items to the page asked for by page/per_page (GitHub's default
// 30, at most 100) and adds a Link header like GitHub's.
func page[T any](s *Server, r *http.Request, items []T) ([]T, string) {
	q := r.URL.Query()
	per, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || per <= 0 {
		per = 30
	}
	per = min(per, 100)
	n, err := strconv.Atoi(q.Get("page"))
	if err != nil || n <= 0 {
		n = 1
	}
	last := max((len(items)+per-1)/per, 1)
	start := min((n-1)*per, len(items))
	end := min(start+per, len(items))
	link := func(p int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(per))
		u := s.baseURL + r.URL.Path + "?" + q.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u, rel)
	}
	var links []string
	if n < last {
		links = append(links, link(n+1, "next"), link(last, "last"))
	}
	if n > 1 {
		links = append(links, link(1, "first"), link(min(n-1, last), "prev"))
	}
	return items[start:end], strings.Join(links, ", ")
}

func paged(body any, link string) reply {
	rep := ok(body)
	if link != "" {
		rep = rep.withHeader("Link", link)
	}
	return rep
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func nullableTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return timestamp(t)
}

func nodeID(kind string, id int64) string {
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("0%d:%s%d", len(kind), kind, id)))
}

// userID gives every login a stable ID.
func userID(login string) int64 {
	sum := sha256.Sum256([]byte(strings.ToLower(login)))
	var id int64
	for _, b := range sum[:4] {
		id = id<<8 | int64(b)
	}
	return id%9_000_000 + 1_000_000
}

// userObject is GitHub's simple-user.
func (s *Server) userObject(login string) map[string]any {
	typ := "User"
	if strings.HasSuffix(login, "[bot]") {
		typ = "Bot"
	}
	api := s.baseURL + "/users/" + url.PathEscape(login)
	id := userID(login)
	return map[string]any{
		"login":               login,
		"id":                  id,
		"node_id":             nodeID("User", id),
		"avatar_url":          "https://avatars.githubusercontent.com/u/" + strconv.FormatInt(id, 10) + "?v=4",
		"gravatar_id":         "",
		"url":                 api,
		"html_url":            s.opts.WebURL + "/" + login,
		"followers_url":       api + "/followers",
		"following_url":       api + "/following{/other_user}",
		"gists_url":           api + "/gists{/gist_id}",
		"starred_url":         api + "/starred{/owner}{/repo}",
		"subscriptions_url":   api + "/subscriptions",
		"organizations_url":   api + "/orgs",
		"repos_url":           api + "/repos",
		"events_url":          api + "/events{/privacy}",
		"received_events_url": api + "/received_events",
		"type":                typ,
		"site_admin":          false,
	}
}

// appObject is GitHub's integration (the App), as shown on check runs.
func (s *Server) appObject() map[string]any {
	owner := s.userObject("deploybot-owner")
	return map[string]any{
		"id":           s.opts.AppID,
		"slug":         s.opts.AppSlug,
		"node_id":      nodeID("Integration", s.opts.AppID),
		"owner":        owner,
		"name":         s.opts.AppSlug,
		"description":  "",
		"external_url": s.opts.WebURL + "/apps/" + s.opts.AppSlug,
		"html_url":     s.opts.WebURL + "/apps/" + s.opts.AppSlug,
		"created_at":   "2024-01-01T00:00:00Z",
		"updated_at":   "2024-01-01T00:00:00Z",
		"permissions":  appPermissions(),
		"events":       []string{"check_run", "issue_comment", "pull_request", "push"},
	}
}
