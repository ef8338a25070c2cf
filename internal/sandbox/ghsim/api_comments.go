package ghsim

import (
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"
)

type comment struct {
	id               int64
	issue            int
	author           string
	body             string
	created, updated time.Time
	viaApp           bool
	reactions        []*reaction
}

type reaction struct {
	id      int64
	user    string
	content string
	created time.Time
}

const maxCommentChars = 65536

// addComment stores a comment. Callers hold s.mu.
func (s *Server) addComment(rp *repo, issue int, author, body string) *comment {
	c := &comment{id: s.newID(), issue: issue, author: author, body: body, created: s.now(), updated: s.now(), viaApp: author == s.BotLogin()}
	rp.comments = append(rp.comments, c)
	return c
}

func (s *Server) commentObject(rp *repo, c *comment) map[string]any {
	var app any
	if c.viaApp {
		app = s.appObject()
	}
	url := fmt.Sprintf("%s/repos/%s/issues/comments/%d", s.baseURL, rp.fullName(), c.id)
	counts := map[string]int{}
	for _, r := range c.reactions {
		counts[r.content]++
	}
	return map[string]any{
		"id":                       c.id,
		"node_id":                  nodeID("IssueComment", c.id),
		"url":                      url,
		"html_url":                 fmt.Sprintf("%s/%s/pull/%d#issuecomment-%d", s.opts.WebURL, rp.fullName(), c.issue, c.id),
		"body":                     c.body,
		"user":                     s.userObject(c.author),
		"created_at":               timestamp(c.created),
		"updated_at":               timestamp(c.updated),
		"issue_url":                fmt.Sprintf("%s/repos/%s/issues/%d", s.baseURL, rp.fullName(), c.issue),
		"author_association":       association(rp, c.author),
		"performed_via_github_app": app,
		"reactions": map[string]any{
			"url":         url + "/reactions",
			"total_count": len(c.reactions),
			"+1":          counts["+1"],
			"-1":          counts["-1"],
			"laugh":       counts["laugh"],
			"confused":    counts["confused"],
			"heart":       counts["heart"],
			"hooray":      counts["hooray"],
			"eyes":        counts["eyes"],
			"rocket":      counts["rocket"],
		},
		"pin":       nil,
		"minimized": nil,
	}
}

// issueOf checks that the request's issue exists (pull requests are the
// only issues in the sandbox).
func (s *Server) issueOf(r *http.Request) (*repo, int, *reply) {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return nil, 0, rep
	}
	n := int(intParam(r, "issue_number"))
	if rp.pulls[n] == nil {
		nf := notFound()
		return nil, 0, &nf
	}
	return rp, n, nil
}

func (s *Server) listComments(r *http.Request) reply {
	rp, n, rep := s.issueOf(r)
	if rep != nil {
		return *rep
	}
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		since, _ = time.Parse(time.RFC3339, v)
	}
	var mine []*comment
	for _, c := range rp.comments {
		if c.issue == n && !c.updated.Before(since) {
			mine = append(mine, c)
		}
	}
	pg, link := page(s, r, mine)
	objs := make([]any, 0, len(pg))
	for _, c := range pg {
		objs = append(objs, s.commentObject(rp, c))
	}
	return paged(objs, link)
}

type commentInput struct {
	Body *string `json:"body"`
}

// commentBody decodes a comment's body as GitHub validates it.
func commentBody(r *http.Request, doc string) (commentInput, *reply) {
	var in commentInput
	if err := decodeBody(r, &in); err != nil {
		rep := fail(http.StatusBadRequest, err.Error(), doc)
		return in, &rep
	}
	return in, checkCommentBody(in, doc)
}

func checkCommentBody(in commentInput, doc string) *reply {
	if in.Body == nil || *in.Body == "" {
		rep := unprocessable("Validation Failed", doc, map[string]any{"resource": "IssueComment", "code": "missing_field", "field": "body"})
		return &rep
	}
	if utf8.RuneCountInString(*in.Body) > maxCommentChars {
		rep := unprocessable("Validation Failed", doc, map[string]any{"resource": "IssueComment", "code": "custom", "field": "body",
			"message": fmt.Sprintf("body is too long (maximum is %d characters)", maxCommentChars)})
		return &rep
	}
	return nil
}

func (s *Server) createComment(r *http.Request) reply {
	const doc = "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
	rp, n, rep := s.issueOf(r)
	if rep != nil {
		return *rep
	}
	in, rep := commentBody(r, doc)
	if rep != nil {
		return *rep
	}
	c := s.addComment(rp, n, s.BotLogin(), *in.Body)
	return created(s.commentObject(rp, c)).withHeader("Location", fmt.Sprintf("%s/repos/%s/issues/comments/%d", s.baseURL, rp.fullName(), c.id))
}

func (s *Server) findComment(r *http.Request) (*repo, *comment, int, *reply) {
	rp, rep := s.repoOf(r)
	if rep != nil {
		return nil, nil, 0, rep
	}
	id := intParam(r, "comment_id")
	for i, c := range rp.comments {
		if c.id == id {
			return rp, c, i, nil
		}
	}
	nf := notFound()
	return nil, nil, 0, &nf
}

func (s *Server) getComment(r *http.Request) reply {
	rp, c, _, rep := s.findComment(r)
	if rep != nil {
		return *rep
	}
	return ok(s.commentObject(rp, c))
}

func (s *Server) updateComment(r *http.Request) reply {
	const doc = "https://docs.github.com/rest/issues/comments#update-an-issue-comment"
	rp, c, _, rep := s.findComment(r)
	if rep != nil {
		return *rep
	}
	in, rep := commentBody(r, doc)
	if rep != nil {
		return *rep
	}
	c.body = *in.Body
	c.updated = s.now()
	return ok(s.commentObject(rp, c))
}

func (s *Server) deleteComment(r *http.Request) reply {
	rp, _, i, rep := s.findComment(r)
	if rep != nil {
		return *rep
	}
	rp.comments = append(rp.comments[:i], rp.comments[i+1:]...)
	return noContent()
}

func (s *Server) reactionObject(rc *reaction) map[string]any {
	return map[string]any{
		"id":         rc.id,
		"node_id":    nodeID("Reaction", rc.id),
		"user":       s.userObject(rc.user),
		"content":    rc.content,
		"created_at": timestamp(rc.created),
	}
}

func (s *Server) listReactions(r *http.Request) reply {
	_, c, _, rep := s.findComment(r)
	if rep != nil {
		return *rep
	}
	want := r.URL.Query().Get("content")
	var rs []*reaction
	for _, rc := range c.reactions {
		if want == "" || rc.content == want {
			rs = append(rs, rc)
		}
	}
	pg, link := page(s, r, rs)
	objs := make([]any, 0, len(pg))
	for _, rc := range pg {
		objs = append(objs, s.reactionObject(rc))
	}
	return paged(objs, link)
}

// createReaction answers 200 with the existing reaction when the same user
// already reacted with the same content, as GitHub does.
func (s *Server) createReaction(r *http.Request) reply {
	_, c, _, rep := s.findComment(r)
	if rep != nil {
		return *rep
	}
	var in struct {
		Content string `json:"content"`
	}
	if err := decodeBody(r, &in); err != nil {
		return fail(http.StatusBadRequest, err.Error(), "https://docs.github.com/rest/reactions/reactions#create-reaction-for-an-issue-comment")
	}
	for _, rc := range c.reactions {
		if rc.user == s.BotLogin() && rc.content == in.Content {
			return ok(s.reactionObject(rc))
		}
	}
	rc := &reaction{id: s.newID(), user: s.BotLogin(), content: in.Content, created: s.now()}
	c.reactions = append(c.reactions, rc)
	return created(s.reactionObject(rc))
}
