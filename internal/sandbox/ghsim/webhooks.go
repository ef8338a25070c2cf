package ghsim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// Event is a webhook ready to deliver: X-GitHub-Event and its JSON payload,
// built on a real payload of that event (templates/SOURCES.md).
type Event struct {
	Name    string // "pull_request", "issue_comment", "push", "check_run"
	Action  string // "" for push
	Payload []byte
}

// Delivery records one webhook delivery.
type Delivery struct {
	ID     string `json:"id"` // X-GitHub-Delivery
	Event  string `json:"event"`
	Action string `json:"action,omitempty"`
	URL    string `json:"url"`
	Status int    `json:"status"` // 0 when the request failed
	Error  string `json:"error,omitempty"`
	// Response is the start of the receiver's answer, as GitHub's
	// "Recent Deliveries" page shows it: why a delivery was refused or
	// ignored.
	Response string `json:"response,omitempty"`

	payload []byte
}

func (s *Server) installationObject() map[string]any {
	return map[string]any{"id": s.opts.InstallationID, "node_id": nodeID("Installation", s.opts.InstallationID)}
}

// envelope fills the parts every event shares. Sandbox owners are users,
// so the templates' organization is dropped.
func (s *Server) envelope(m map[string]any, rp *repo, sender string) {
	m["repository"] = s.repoObject(obj(m["repository"]), rp.fullName(), rp, false)
	m["sender"] = s.userObject(sender)
	m["installation"] = s.installationObject()
	delete(m, "organization")
}

func marshalEvent(name, action string, m map[string]any) (Event, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return Event{}, fmt.Errorf("ghsim: build %s event: %w", name, err)
	}
	return Event{Name: name, Action: action, Payload: data}, nil
}

// PullRequestEvent builds a pull_request event for the pull request's
// current state. action: opened, reopened, synchronize (after PushPR),
// closed (after ClosePR), ready_for_review, converted_to_draft, edited.
func (s *Server) PullRequestEvent(repoName string, number int, action string) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, p, err := s.pull(repoName, number)
	if err != nil {
		return Event{}, err
	}
	tmpl := "pull_request.opened.payload.json"
	sender := p.author
	switch action {
	case "opened", "reopened", "ready_for_review", "converted_to_draft", "edited":
	case "synchronize":
		tmpl = "pull_request.synchronize.payload.json"
	case "closed":
		tmpl = "pull_request.closed.payload.json"
		sender = rp.owner
		if p.state != "closed" {
			return Event{}, fmt.Errorf("ghsim: pull_request closed event for %s#%d: it is open (ClosePR first)", repoName, number)
		}
	default:
		return Event{}, fmt.Errorf("ghsim: pull_request event: unsupported action %q", action)
	}
	m := template(tmpl)
	m["action"] = action
	m["number"] = p.number
	m["pull_request"] = s.pullObject(obj(m["pull_request"]), rp, p)
	if action == "synchronize" {
		m["before"] = p.prevHead
		m["after"] = p.headSHA
	}
	if action == "edited" {
		m["changes"] = map[string]any{}
	}
	s.envelope(m, rp, sender)
	return marshalEvent("pull_request", action, m)
}

// IssueCommentEvent builds the issue_comment "created" event of comment
// commentID (see AddComment) on a pull request.
func (s *Server) IssueCommentEvent(repoName string, commentID int64) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, err := s.repo(repoName)
	if err != nil {
		return Event{}, err
	}
	var c *comment
	for _, x := range rp.comments {
		if x.id == commentID {
			c = x
		}
	}
	if c == nil {
		return Event{}, fmt.Errorf("ghsim: issue_comment event: no comment %d in %s", commentID, repoName)
	}
	p := rp.pulls[c.issue]
	m := template("issue_comment.created.with-installation.payload.json")
	m["action"] = "created"

	commentT := obj(m["comment"])
	cm := s.commentObject(rp, c)
	for k := range commentT {
		if v, ok := cm[k]; ok {
			commentT[k] = v
		}
	}
	m["comment"] = commentT

	issueURL := fmt.Sprintf("%s/repos/%s/issues/%d", s.baseURL, rp.fullName(), p.number)
	issue := obj(m["issue"])
	issue["url"] = issueURL
	issue["repository_url"] = s.baseURL + "/repos/" + rp.fullName()
	issue["labels_url"] = issueURL + "/labels{/name}"
	issue["comments_url"] = issueURL + "/comments"
	issue["events_url"] = issueURL + "/events"
	issue["html_url"] = fmt.Sprintf("%s/%s/pull/%d", s.opts.WebURL, rp.fullName(), p.number)
	issue["id"] = p.id
	issue["node_id"] = nodeID("PullRequest", p.id)
	issue["number"] = p.number
	issue["title"] = p.title
	issue["user"] = s.userObject(p.author)
	issue["labels"] = []any{}
	issue["state"] = p.state
	issue["locked"] = false
	issue["assignee"] = nil
	issue["assignees"] = []any{}
	issue["milestone"] = nil
	issue["comments"] = countComments(rp, p.number)
	issue["created_at"] = timestamp(p.created)
	issue["updated_at"] = timestamp(p.updated)
	issue["closed_at"] = nullableTime(p.closedAt)
	issue["author_association"] = association(rp, p.author)
	issue["active_lock_reason"] = nil
	issue["draft"] = p.draft
	issue["body"] = nil
	if r := obj(issue["reactions"]); len(r) > 0 {
		issue["reactions"] = rewrite(r, strings.NewReplacer(fmt.Sprint(r["url"]), issueURL+"/reactions"))
	}
	// A comment on a pull request is an issue comment whose issue has a
	// pull_request link: that is how receivers tell them apart.
	issue["pull_request"] = map[string]any{
		"url":       fmt.Sprintf("%s/repos/%s/pulls/%d", s.baseURL, rp.fullName(), p.number),
		"html_url":  fmt.Sprintf("%s/%s/pull/%d", s.opts.WebURL, rp.fullName(), p.number),
		"diff_url":  fmt.Sprintf("%s/%s/pull/%d.diff", s.opts.WebURL, rp.fullName(), p.number),
		"patch_url": fmt.Sprintf("%s/%s/pull/%d.patch", s.opts.WebURL, rp.fullName(), p.number),
		"merged_at": nullableTime(p.mergedAt),
	}
	m["issue"] = issue
	s.envelope(m, rp, c.author)
	return marshalEvent("issue_comment", "created", m)
}

// PushEvent builds the push event of the last update of branch (by Commit,
// PushPR on a same-repository pull request, or a merge by ClosePR).
func (s *Server) PushEvent(repoName, branch string) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, err := s.repo(repoName)
	if err != nil {
		return Event{}, err
	}
	var up *refUpdate
	for i := len(rp.updates) - 1; i >= 0; i-- {
		if rp.updates[i].branch == branch {
			up = &rp.updates[i]
			break
		}
	}
	if up == nil {
		return Event{}, fmt.Errorf("ghsim: push event: branch %q of %s was never updated", branch, repoName)
	}
	const zero = "0000000000000000000000000000000000000000"
	m := template("push.with-new-branch.payload.json")
	before := up.before
	if before == "" {
		before = zero
	}
	m["ref"] = "refs/heads/" + branch
	m["before"] = before
	m["after"] = up.after
	m["created"] = up.before == ""
	m["deleted"] = false
	m["forced"] = false
	m["base_ref"] = nil
	m["compare"] = fmt.Sprintf("%s/%s/compare/%.12s...%.12s", s.opts.WebURL, rp.fullName(), before, up.after)
	commits := []any{}
	for _, sha := range up.commits {
		commits = append(commits, s.pushCommit(rp, sha))
	}
	m["commits"] = commits
	m["head_commit"] = nil
	if len(up.commits) > 0 {
		m["head_commit"] = s.pushCommit(rp, up.after)
	}
	m["pusher"] = map[string]any{"name": up.pusher, "email": noreply(up.pusher)}
	s.envelope(m, rp, up.pusher)
	repoObj := obj(m["repository"])
	// Push payloads carry the owner's name and email, and these two times
	// as Unix times, unlike every other event.
	owner := obj(repoObj["owner"])
	owner["name"], owner["email"] = rp.owner, noreply(rp.owner)
	repoObj["pushed_at"] = epoch(s.now())
	repoObj["created_at"] = epoch(rp.commits[rp.commitOrder[0]].time)
	return marshalEvent("push", "", m)
}

func noreply(login string) string {
	return fmt.Sprintf("%d+%s@users.noreply.github.com", userID(login), login)
}

func (s *Server) pushCommit(rp *repo, sha string) map[string]any {
	c := rp.commits[sha]
	var parent map[string]string
	if len(c.parents) > 0 {
		parent = rp.commits[c.parents[0]].tree
	}
	added, modified, removed := []string{}, []string{}, []string{}
	for p, content := range c.tree {
		old, had := parent[p]
		switch {
		case !had:
			added = append(added, p)
		case old != content:
			modified = append(modified, p)
		}
	}
	for p := range parent {
		if _, ok := c.tree[p]; !ok {
			removed = append(removed, p)
		}
	}
	sort.Strings(added)
	sort.Strings(modified)
	sort.Strings(removed)
	person := map[string]any{"name": c.author, "email": noreply(c.author), "username": c.author}
	return map[string]any{
		"id":        sha,
		"tree_id":   treeHash(c.tree),
		"distinct":  true,
		"message":   c.message,
		"timestamp": timestamp(c.time),
		"url":       fmt.Sprintf("%s/%s/commit/%s", s.opts.WebURL, rp.fullName(), sha),
		"author":    person,
		"committer": person,
		"added":     added,
		"removed":   removed,
		"modified":  modified,
	}
}

// CheckRunEvent builds a check_run event for check run id. action:
// created, completed, rerequested, or requested_action (a user clicked the
// button whose identifier is given).
func (s *Server) CheckRunEvent(repoName string, id int64, action, identifier string) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, err := s.repo(repoName)
	if err != nil {
		return Event{}, err
	}
	var cr *checkRun
	for _, x := range rp.checkRuns {
		if x.id == id {
			cr = x
		}
	}
	if cr == nil {
		return Event{}, fmt.Errorf("ghsim: check_run event: no check run %d in %s", id, repoName)
	}
	switch action {
	case "created", "completed", "rerequested":
	case "requested_action":
		found := false
		for _, a := range cr.actions {
			found = found || a.Identifier == identifier
		}
		if !found {
			return Event{}, fmt.Errorf("ghsim: check_run requested_action: check run %d has no action %q", id, identifier)
		}
	default:
		return Event{}, fmt.Errorf("ghsim: check_run event: unsupported action %q", action)
	}
	m := template("check_run.requested_action.payload.json")
	m["action"] = action
	if action == "requested_action" {
		m["requested_action"] = map[string]any{"identifier": identifier}
	} else {
		delete(m, "requested_action")
	}
	run := s.checkRunObject(rp, cr)
	tmplRun := obj(m["check_run"])
	suite := obj(tmplRun["check_suite"])
	old, _ := obj(m["repository"])["full_name"].(string)
	suite = rewrite(suite, strings.NewReplacer("https://api.github.com/repos/"+old, s.baseURL+"/repos/"+rp.fullName(), "https://api.github.com", s.baseURL)).(map[string]any)
	branch := ""
	for name, sha := range rp.branches {
		if sha == cr.headSHA {
			branch = name
		}
	}
	suite["id"] = obj(run["check_suite"])["id"]
	suite["node_id"] = nodeID("CheckSuite", obj(run["check_suite"])["id"].(int64))
	suite["head_branch"] = branch
	suite["head_sha"] = cr.headSHA
	suite["status"] = cr.status
	suite["conclusion"] = run["conclusion"]
	suite["before"] = nil
	suite["after"] = cr.headSHA
	suite["pull_requests"] = run["pull_requests"]
	suite["app"] = s.appObject()
	suite["url"] = fmt.Sprintf("%s/repos/%s/check-suites/%d", s.baseURL, rp.fullName(), suite["id"])
	run["check_suite"] = suite
	m["check_run"] = run
	s.envelope(m, rp, rp.owner)
	return marshalEvent("check_run", action, m)
}

// maxResponseKept bounds the part of a receiver's answer a Delivery keeps.
const maxResponseKept = 1 << 10

// Deliver posts ev to url as GitHub does: signed with the webhook secret
// (X-Hub-Signature-256, and the legacy SHA-1 X-Hub-Signature), with
// X-GitHub-Event and a fresh X-GitHub-Delivery.
func (s *Server) Deliver(ctx context.Context, url string, ev Event) (Delivery, error) {
	buf := make([]byte, 16)
	_, _ = rand.Read(buf)
	buf[6] = buf[6]&0x0f | 0x40 // UUID v4
	buf[8] = buf[8]&0x3f | 0x80
	h := hex.EncodeToString(buf)
	id := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	return s.deliver(ctx, url, Delivery{ID: id, Event: ev.Name, Action: ev.Action, URL: url, payload: ev.Payload})
}

// Redeliver sends delivery id again, same X-GitHub-Delivery and payload,
// as "Redeliver" in GitHub's UI does.
func (s *Server) Redeliver(ctx context.Context, id string) (Delivery, error) {
	s.mu.Lock()
	var d *Delivery
	for i := range s.deliveries {
		if s.deliveries[i].ID == id {
			d = &s.deliveries[i]
		}
	}
	var again Delivery
	if d != nil {
		again = Delivery{ID: d.ID, Event: d.Event, Action: d.Action, URL: d.URL, payload: d.payload}
	}
	s.mu.Unlock()
	if d == nil {
		return Delivery{}, fmt.Errorf("ghsim: redeliver: no delivery %q", id)
	}
	return s.deliver(ctx, again.URL, again)
}

func (s *Server) deliver(ctx context.Context, url string, d Delivery) (Delivery, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(d.payload))
	if err != nil {
		return d, fmt.Errorf("ghsim: deliver %s: %w", d.Event, err)
	}
	mac256 := hmac.New(sha256.New, []byte(s.opts.WebhookSecret))
	mac256.Write(d.payload)
	mac1 := hmac.New(sha1.New, []byte(s.opts.WebhookSecret))
	mac1.Write(d.payload)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/ghsim")
	req.Header.Set("X-GitHub-Event", d.Event)
	req.Header.Set("X-GitHub-Delivery", d.ID)
	req.Header.Set("X-GitHub-Hook-ID", "1")
	req.Header.Set("X-GitHub-Hook-Installation-Target-ID", fmt.Sprint(s.opts.AppID))
	req.Header.Set("X-GitHub-Hook-Installation-Target-Type", "integration")
	req.Header.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(mac1.Sum(nil)))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac256.Sum(nil)))
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		d.Error = err.Error()
	} else {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseKept))
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		d.Status = resp.StatusCode
		d.Response = strings.TrimSpace(string(body))
	}
	s.mu.Lock()
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()
	if err != nil {
		return d, fmt.Errorf("ghsim: deliver %s %s to %s: %w", d.Event, d.ID, url, err)
	}
	return d, nil
}
