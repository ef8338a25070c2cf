package ghsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	gh "github.com/google/go-github/v66/github"

	"github.com/revelations-studio/deploybot/internal/apispec"
)

// keyDiff compares the keys of want (a real GitHub document) and got,
// recursively through objects and the first element of arrays (an App's
// "permissions" map excepted: its keys are whatever was granted). It returns
// the keys got lacks and the keys it has in addition, as JSON paths.
func keyDiff(want, got any, path string) (missing, extra []string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			if got == nil {
				return nil, nil // a nullable object that is null here
			}
			return []string{path + " (not an object)"}, nil
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				missing = append(missing, path+"."+k)
				continue
			}
			if k == "permissions" {
				continue // a map of granted permissions, not a fixed shape
			}
			m, e := keyDiff(wv, gv, path+"."+k)
			missing, extra = append(missing, m...), append(extra, e...)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				extra = append(extra, path+"."+k)
			}
		}
	case []any:
		g, ok := got.([]any)
		if ok && len(w) > 0 && len(g) > 0 {
			return keyDiff(w[0], g[0], path+"[0]")
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return missing, extra
}

func readJSON(t *testing.T, path string) any {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	var v any
	must(t, json.Unmarshal(data, &v))
	return v
}

// validateResponse checks body against the response schema the official
// description gives for route and status.
func validateResponse(t *testing.T, route string, status int, body []byte) {
	t.Helper()
	method, path, _ := strings.Cut(route, " ")
	doc := apispec.MustLoad("github").Doc()
	op := doc.Paths.Value(path).GetOperation(method)
	resp := op.Responses.Status(status)
	if resp == nil || resp.Value.Content.Get("application/json") == nil {
		t.Fatalf("%s: no %d JSON response in the description", route, status)
	}
	var v any
	must(t, json.Unmarshal(body, &v))
	if err := resp.Value.Content.Get("application/json").Schema.Value.VisitJSON(v); err != nil {
		t.Errorf("%s %d: answer breaks the description: %v", route, status, err)
	}
}

// TestAnswersHaveGitHubsShape compares every kind of answer with GitHub's
// own examples (testdata) key by key, and validates it against the
// response schema of the official description.
func TestAnswersHaveGitHubsShape(t *testing.T) {
	s := newSim(t, Options{})
	head := s.seed()
	must(t, s.SetPermission(testRepo, "alice", "maintain"))
	auth := "token " + s.token()

	type call struct {
		fixture string
		route   string
		status  int
		path    string
		body    any
		// extra keys the simulator sends that the example lacks; each is
		// in GitHub's schema and in real answers.
		extra []string
	}
	resp, body := s.do("POST", "/repos/acme/app/check-runs", auth, map[string]any{
		"name": "deploybot/preview", "head_sha": head, "status": "in_progress",
		"output":  map[string]any{"title": "Deploying", "summary": "…", "text": "log"},
		"actions": []map[string]string{{"label": "Redeploy", "description": "Deploy again", "identifier": "redeploy"}},
	})
	if resp.StatusCode != 201 {
		t.Fatalf("create check run: %d %s", resp.StatusCode, body)
	}
	checkRunID := decode(t, body)["id"]
	_, body = s.do("POST", "/repos/acme/app/issues/1/comments", auth, map[string]any{"body": "status"})
	commentID := decode(t, body)["id"]
	_, body = s.do("POST", "/repos/acme/app/deployments", auth, map[string]any{"ref": head, "environment": "preview", "auto_merge": false, "required_contexts": []string{}})
	deploymentID := decode(t, body)["id"]

	calls := []call{
		{"check-run.json", "GET /repos/{owner}/{repo}/check-runs/{check_run_id}", 200, fmt.Sprintf("/repos/acme/app/check-runs/%.0f", checkRunID), nil, nil},
		{"check-run.json", "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", 200, fmt.Sprintf("/repos/acme/app/check-runs/%.0f", checkRunID),
			map[string]any{"conclusion": "success", "output": map[string]any{"title": "Done", "summary": "ok"}}, nil},
		{"issue-comment.json", "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", 200, fmt.Sprintf("/repos/acme/app/issues/comments/%.0f", commentID),
			map[string]any{"body": "status v2"}, []string{".performed_via_github_app", ".reactions"}},
		{"issue-comment.json", "GET /repos/{owner}/{repo}/issues/comments/{comment_id}", 200, fmt.Sprintf("/repos/acme/app/issues/comments/%.0f", commentID),
			nil, []string{".performed_via_github_app", ".reactions"}},
		{"deployment.json", "GET /repos/{owner}/{repo}/deployments/{deployment_id}", 200, fmt.Sprintf("/repos/acme/app/deployments/%.0f", deploymentID), nil, nil},
		{"deployment-status.json", "POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses", 201, fmt.Sprintf("/repos/acme/app/deployments/%.0f/statuses", deploymentID),
			map[string]any{"state": "success", "environment_url": "https://codex-preview-1.example.com", "log_url": "https://logs.example.com/1"}, nil},
		{"pull-request.json", "GET /repos/{owner}/{repo}/pulls/{pull_number}", 200, "/repos/acme/app/pulls/1", nil, nil},
	}
	for _, c := range calls {
		method, _, _ := strings.Cut(c.route, " ")
		resp, body := s.do(method, c.path, auth, c.body)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %s", c.route, resp.StatusCode, body)
			continue
		}
		var got any
		must(t, json.Unmarshal(body, &got))
		missing, extra := keyDiff(readJSON(t, "testdata/"+c.fixture), got, "")
		extra = without(extra, c.extra)
		if len(missing) > 0 || len(extra) > 0 {
			t.Errorf("%s vs %s: missing %v, extra %v", c.route, c.fixture, missing, extra)
		}
		validateResponse(t, c.route, c.status, body)
	}

	// The list and small answers have no example file; the description
	// alone checks them.
	for route, path := range map[string]string{
		"GET /repos/{owner}/{repo}/pulls":                                  "/repos/acme/app/pulls",
		"GET /repos/{owner}/{repo}/collaborators/{username}/permission":    "/repos/acme/app/collaborators/alice/permission",
		"GET /repos/{owner}/{repo}/contents/{path}":                        "/repos/acme/app/contents/.github/deploybot.yml",
		"GET /repos/{owner}/{repo}/commits/{ref}/check-runs":               "/repos/acme/app/commits/" + head + "/check-runs",
		"GET /repos/{owner}/{repo}/issues/{issue_number}/comments":         "/repos/acme/app/issues/1/comments",
		"GET /repos/{owner}/{repo}/deployments":                            "/repos/acme/app/deployments",
		"GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses":   fmt.Sprintf("/repos/acme/app/deployments/%.0f/statuses", deploymentID),
		"GET /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions": fmt.Sprintf("/repos/acme/app/issues/comments/%.0f/reactions", commentID),
		"GET /repos/{owner}/{repo}/compare/{basehead}":                     "/repos/acme/app/compare/main..." + head,
	} {
		resp, body := s.do("GET", path, auth, nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", route, resp.StatusCode, body)
			continue
		}
		validateResponse(t, route, 200, body)
	}
	resp, body = s.do("POST", fmt.Sprintf("/repos/acme/app/issues/comments/%.0f/reactions", commentID), auth, map[string]any{"content": "eyes"})
	if resp.StatusCode != 201 {
		t.Fatalf("reaction: %d %s", resp.StatusCode, body)
	}
	validateResponse(t, "POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", 201, body)
	resp, _ = s.do("POST", fmt.Sprintf("/repos/acme/app/issues/comments/%.0f/reactions", commentID), auth, map[string]any{"content": "eyes"})
	if resp.StatusCode != 200 || len(s.Snapshot().Reactions) != 1 {
		t.Errorf("the same reaction again: %d, %d reactions; GitHub answers 200 and keeps one", resp.StatusCode, len(s.Snapshot().Reactions))
	}

	// The installation token answer.
	now := time.Now()
	jwt := signJWT(t, appKey(), s.AppID(), now.Add(-time.Second), now.Add(time.Minute))
	_, body = s.do("POST", fmt.Sprintf("/app/installations/%d/access_tokens", s.InstallationID()), "Bearer "+jwt, nil)
	var got any
	must(t, json.Unmarshal(body, &got))
	missing, _ := keyDiff(readJSON(t, "testdata/installation-token.json"), got, "")
	// The example lists repositories, which GitHub sends only for tokens
	// limited to selected repositories; ours cover all.
	if missing = without(missing, []string{".repositories"}); len(missing) > 0 {
		t.Errorf("installation token: missing %v", missing)
	}
	validateResponse(t, routeAccessTokens, 201, body)
}

func without(list, drop []string) []string {
	var out []string
	for _, x := range list {
		keep := true
		for _, d := range drop {
			if x == d || strings.HasPrefix(x, d+".") || strings.HasPrefix(x, d+"[") {
				keep = false
			}
		}
		if keep {
			out = append(out, x)
		}
	}
	return out
}

// TestWebhooksHaveGitHubsShape builds every event the bot handles and
// compares it key by key with the real payload it is built on; go-github
// must parse it, and the delivery must be signed.
func TestWebhooksHaveGitHubsShape(t *testing.T) {
	const secret = "webhook-secret"
	s := newSim(t, Options{WebhookSecret: secret})
	s.seed()
	auth := "token " + s.token()
	_, err := s.PushPR(testRepo, 1, map[string]string{"web/index.js": "v2"}, "v2")
	must(t, err)
	commentID, err := s.AddComment(testRepo, 1, "alice", "/redeploy")
	must(t, err)
	_, body := s.do("POST", "/repos/acme/app/check-runs", auth, map[string]any{
		"name": "deploybot/preview", "head_sha": s.Snapshot().PullRequests[0].HeadSHA, "status": "in_progress",
		"actions": []map[string]string{{"label": "Redeploy", "description": "Deploy again", "identifier": "redeploy"}},
	})
	checkRunID := int64(decode(t, body)["id"].(float64))

	type build struct {
		template string
		ev       func() (Event, error)
		// differences from the template that are right: the installation
		// (always sent to Apps), organization (sandbox owners are users),
		// and a pull request comment's issue.pull_request link.
		extra, missing []string
	}
	builds := []build{
		{"pull_request.opened.payload.json", func() (Event, error) { return s.PullRequestEvent(testRepo, 1, "opened") }, nil, nil},
		{"pull_request.synchronize.payload.json", func() (Event, error) { return s.PullRequestEvent(testRepo, 1, "synchronize") }, nil, nil},
		{"push.with-new-branch.payload.json", func() (Event, error) { return s.PushEvent(testRepo, "feature") }, nil, nil},
		{"issue_comment.created.with-installation.payload.json", func() (Event, error) { return s.IssueCommentEvent(testRepo, commentID) },
			[]string{".issue.pull_request"}, []string{".organization"}},
		{"check_run.requested_action.payload.json", func() (Event, error) { return s.CheckRunEvent(testRepo, checkRunID, "requested_action", "redeploy") },
			nil, []string{".organization"}},
		{"pull_request.closed.payload.json", func() (Event, error) {
			if _, err := s.ClosePR(testRepo, 1, true); err != nil {
				return Event{}, err
			}
			return s.PullRequestEvent(testRepo, 1, "closed")
		}, nil, nil},
	}
	var received []*http.Request
	var bodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		received, bodies = append(received, r), append(bodies, b)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer hook.Close()

	for _, b := range builds {
		ev, err := b.ev()
		must(t, err)
		var got any
		must(t, json.Unmarshal(ev.Payload, &got))
		missing, extra := keyDiff(readJSON(t, "templates/"+b.template), got, "")
		if missing, extra = without(missing, b.missing), without(extra, b.extra); len(missing) > 0 || len(extra) > 0 {
			t.Errorf("%s: missing %v, extra %v", b.template, missing, extra)
		}
		d, err := s.Deliver(t.Context(), hook.URL, ev)
		must(t, err)
		if d.Status != http.StatusAccepted {
			t.Errorf("delivery status %d", d.Status)
		}
	}
	if len(received) != len(builds) {
		t.Fatalf("%d deliveries received", len(received))
	}
	for i, r := range received {
		if err := gh.ValidateSignature(r.Header.Get("X-Hub-Signature-256"), bodies[i], []byte(secret)); err != nil {
			t.Errorf("delivery %d: signature: %v", i, err)
		}
		if r.Header.Get("X-GitHub-Delivery") == "" {
			t.Errorf("delivery %d has no X-GitHub-Delivery", i)
		}
	}

	// go-github reads them like GitHub's.
	parse := func(i int) any {
		ev, err := gh.ParseWebHook(received[i].Header.Get("X-GitHub-Event"), bodies[i])
		must(t, err)
		return ev
	}
	st := s.Snapshot()
	pr := parse(1).(*gh.PullRequestEvent)
	if pr.GetAction() != "synchronize" || pr.GetAfter() != st.PullRequests[0].HeadSHA || pr.GetBefore() == pr.GetAfter() ||
		pr.GetPullRequest().GetHead().GetSHA() != st.PullRequests[0].HeadSHA || pr.GetInstallation().GetID() != s.InstallationID() ||
		pr.GetRepo().GetFullName() != testRepo {
		t.Errorf("synchronize event: %+v", pr)
	}
	push := parse(2).(*gh.PushEvent)
	if push.GetRef() != "refs/heads/feature" || push.GetAfter() != st.Repos[0].Branches["feature"] || len(push.Commits) != 1 {
		t.Errorf("push event: ref %s after %s commits %d", push.GetRef(), push.GetAfter(), len(push.Commits))
	}
	ic := parse(3).(*gh.IssueCommentEvent)
	if ic.GetComment().GetBody() != "/redeploy" || ic.GetSender().GetLogin() != "alice" || !ic.GetIssue().IsPullRequest() || ic.GetIssue().GetNumber() != 1 {
		t.Errorf("issue_comment event: %+v", ic)
	}
	cr := parse(4).(*gh.CheckRunEvent)
	if cr.GetRequestedAction().Identifier != "redeploy" || cr.GetCheckRun().GetID() != checkRunID || len(cr.GetCheckRun().PullRequests) != 1 {
		t.Errorf("check_run event: %+v", cr)
	}

	closed := parse(5).(*gh.PullRequestEvent)
	if closed.GetAction() != "closed" || !closed.GetPullRequest().GetMerged() || closed.GetPullRequest().GetMergeCommitSHA() != s.Snapshot().Repos[0].Branches["main"] {
		t.Errorf("closed event: merged %v, merge commit %s", closed.GetPullRequest().GetMerged(), closed.GetPullRequest().GetMergeCommitSHA())
	}

	// Redelivery keeps the delivery ID.
	again, err := s.Redeliver(t.Context(), s.Snapshot().Deliveries[0].ID)
	must(t, err)
	if again.ID != received[0].Header.Get("X-GitHub-Delivery") || received[len(received)-1].Header.Get("X-GitHub-Delivery") != again.ID {
		t.Error("redelivery changed X-GitHub-Delivery")
	}
}
