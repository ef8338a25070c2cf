package ghsim

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/sandbox/fault"
)

func TestAppJWTAndInstallationTokens(t *testing.T) {
	s := newSim(t, Options{})
	s.seed()
	path := fmt.Sprintf("/app/installations/%d/access_tokens", s.InstallationID())
	now := time.Now()

	otherKey, err := rsa.GenerateKey(rand.Reader, 1024)
	must(t, err)
	for name, auth := range map[string]string{
		"no credentials":  "",
		"not a JWT":       "Bearer abc",
		"wrong key":       "Bearer " + signJWT(t, otherKey, s.AppID(), now, now.Add(time.Minute)),
		"wrong app":       "Bearer " + signJWT(t, appKey(), 99, now, now.Add(time.Minute)),
		"expired":         "Bearer " + signJWT(t, appKey(), s.AppID(), now.Add(-10*time.Minute), now.Add(-time.Minute)),
		"longer than 10m": "Bearer " + signJWT(t, appKey(), s.AppID(), now, now.Add(time.Hour)),
	} {
		resp, body := s.do("POST", path, auth, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d %s, want 401", name, resp.StatusCode, body)
		}
	}
	resp, _ := s.do("POST", "/app/installations/42/access_tokens", "Bearer "+signJWT(t, appKey(), s.AppID(), now, now.Add(time.Minute)), nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown installation: %d, want 404", resp.StatusCode)
	}

	// The API wants an installation token, not the JWT nor a made-up one.
	for _, auth := range []string{"", "token ghs_madeup", "Bearer " + signJWT(t, appKey(), s.AppID(), now, now.Add(time.Minute))} {
		resp, body := s.do("GET", "/repos/acme/app/pulls/1", auth, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET pull with %q: %d %s, want 401", auth, resp.StatusCode, body)
		}
		if m := decode(t, body); m["message"] == nil || m["documentation_url"] == nil {
			t.Errorf("error %s lacks GitHub's message/documentation_url", body)
		}
	}
	tok := s.token()
	resp, body := s.do("GET", "/repos/acme/app/pulls/1", "token "+tok, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET pull with token: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-RateLimit-Remaining") != "4999" {
		t.Errorf("X-RateLimit-Remaining = %q, want 4999", resp.Header.Get("X-RateLimit-Remaining"))
	}
	st := s.Snapshot()
	if st.Tokens.Issued != 1 || st.Tokens.Live != 1 {
		t.Errorf("tokens = %+v, want 1 issued, 1 live", st.Tokens)
	}
	stateJSON, _ := json.Marshal(s.State())
	if strings.Contains(string(stateJSON), tok) {
		t.Error("State() reveals an installation token")
	}
}

func TestRequestsBreakingTheDescriptionGet422(t *testing.T) {
	s := newSim(t, Options{})
	sha := s.seed()
	auth := "token " + s.token()
	for name, tc := range map[string]struct {
		method, path string
		body         any
		want         string
	}{
		"check run without head_sha": {"POST", "/repos/acme/app/check-runs", map[string]any{"name": "deploybot/preview"}, "head_sha"},
		"unknown conclusion":         {"POST", "/repos/acme/app/check-runs", map[string]any{"name": "x", "head_sha": sha, "conclusion": "great"}, "conclusion"},
		"four actions": {"POST", "/repos/acme/app/check-runs", map[string]any{"name": "x", "head_sha": sha, "actions": []map[string]string{
			{"label": "a", "description": "a", "identifier": "a"}, {"label": "b", "description": "b", "identifier": "b"},
			{"label": "c", "description": "c", "identifier": "c"}, {"label": "d", "description": "d", "identifier": "d"}}}, "actions"},
		"label of 21 characters": {"POST", "/repos/acme/app/check-runs", map[string]any{"name": "x", "head_sha": sha, "actions": []map[string]string{
			{"label": strings.Repeat("x", 21), "description": "a", "identifier": "a"}}}, "label"},
		"unknown reaction":        {"POST", "/repos/acme/app/issues/comments/1/reactions", map[string]any{"content": "thumbsup"}, "content"},
		"deployment without ref":  {"POST", "/repos/acme/app/deployments", map[string]any{"environment": "preview"}, "ref"},
		"unknown status state":    {"POST", "/repos/acme/app/deployments/1/statuses", map[string]any{"state": "done"}, "state"},
		"per_page not an integer": {"GET", "/repos/acme/app/issues/1/comments?per_page=many", nil, "per_page"},
	} {
		resp, body := s.do(tc.method, tc.path, auth, tc.body)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s, want 422", name, resp.StatusCode, body)
			continue
		}
		m := decode(t, body)
		if msg, _ := m["message"].(string); !strings.Contains(msg, tc.want) || m["documentation_url"] == nil {
			t.Errorf("%s: error %s should name %q and have documentation_url", name, body, tc.want)
		}
	}
	// GitHub's rules beyond the description.
	resp, body := s.do("POST", "/repos/acme/app/check-runs", auth, map[string]any{"name": "x", "head_sha": strings.Repeat("0", 40)})
	if resp.StatusCode != 422 || !strings.Contains(string(body), "No commit found") {
		t.Errorf("check run on unknown commit: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do("POST", "/repos/acme/app/check-runs", auth, map[string]any{"name": "x", "head_sha": sha, "status": "completed"})
	if resp.StatusCode != 422 || !strings.Contains(string(body), "conclusion") {
		t.Errorf("completed check run without conclusion: %d %s", resp.StatusCode, body)
	}
	if n := len(s.Snapshot().CheckRuns); n != 0 {
		t.Errorf("%d check runs created by rejected requests", n)
	}
	if c := s.Snapshot().Requests["POST /repos/{owner}/{repo}/check-runs"]; c != 6 {
		t.Errorf("check-runs requests counted %d, want 6 (valid or not)", c)
	}
}

func TestCommentsPaginateWithLinkHeaders(t *testing.T) {
	s := newSim(t, Options{})
	s.seed()
	auth := "token " + s.token()
	for i := range 75 {
		_, err := s.AddComment(testRepo, 1, "alice", fmt.Sprintf("comment %d", i))
		must(t, err)
	}
	resp, body := s.do("GET", "/repos/acme/app/issues/1/comments?per_page=30", auth, nil)
	var page1 []map[string]any
	must(t, json.Unmarshal(body, &page1))
	link := resp.Header.Get("Link")
	if len(page1) != 30 || !strings.Contains(link, `page=2&per_page=30>; rel="next"`) || !strings.Contains(link, `page=3&per_page=30>; rel="last"`) {
		t.Fatalf("page 1: %d comments, Link %q", len(page1), link)
	}
	resp, body = s.do("GET", "/repos/acme/app/issues/1/comments?per_page=30&page=3", auth, nil)
	var page3 []map[string]any
	must(t, json.Unmarshal(body, &page3))
	if len(page3) != 15 || page3[14]["body"] != "comment 74" || strings.Contains(resp.Header.Get("Link"), `rel="next"`) {
		t.Errorf("page 3: %d comments, last %v, Link %q", len(page3), page3[len(page3)-1]["body"], resp.Header.Get("Link"))
	}
	_, body = s.do("GET", "/repos/acme/app/issues/1/comments", auth, nil)
	var def []map[string]any
	must(t, json.Unmarshal(body, &def))
	if len(def) != 30 {
		t.Errorf("default page size %d, want GitHub's 30", len(def))
	}
}

func TestConditionalGETAnswers304(t *testing.T) {
	s := newSim(t, Options{})
	s.seed()
	auth := "token " + s.token()
	resp, _ := s.do("GET", "/repos/acme/app/pulls/1", auth, nil)
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") == "" {
		t.Fatalf("no ETag/Cache-Control on GET: %v", resp.Header)
	}
	resp, body := s.do("GET", "/repos/acme/app/pulls/1", auth, nil, "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("revalidation: %d %q, want 304 without body", resp.StatusCode, body)
	}
	if resp.Header.Get("X-RateLimit-Remaining") != "4999" {
		t.Errorf("a 304 counted against the rate limit: remaining %s", resp.Header.Get("X-RateLimit-Remaining"))
	}
	_, err := s.PushPR(testRepo, 1, map[string]string{"web/index.js": "export default {v: 2}\n"}, "v2")
	must(t, err)
	resp, _ = s.do("GET", "/repos/acme/app/pulls/1", auth, nil, "If-None-Match", etag)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == etag {
		t.Errorf("after a push: %d with ETag %s, want 200 with a new ETag", resp.StatusCode, resp.Header.Get("ETag"))
	}
	if got := s.Snapshot().Responses["GET /repos/{owner}/{repo}/pulls/{pull_number}"]; got[304] != 1 || got[200] != 2 {
		t.Errorf("responses %v", got)
	}
}

func TestContentsAndTarball(t *testing.T) {
	s := newSim(t, Options{})
	head := s.seed()
	auth := "token " + s.token()

	resp, body := s.do("GET", "/repos/acme/app/contents/.github/deploybot.yml?ref="+head, auth, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("contents: %d %s", resp.StatusCode, body)
	}
	m := decode(t, body)
	raw, _ := base64.StdEncoding.DecodeString(strings.ReplaceAll(m["content"].(string), "\n", ""))
	if m["encoding"] != "base64" || string(raw) != "workers: [web]\n" || m["sha"] != "445f077fca77cce3495ed7ea282abf9c6f6752d9" /* git hash-object */ {
		t.Errorf("contents %v (decoded %q)", m, raw)
	}
	resp, _ = s.do("GET", "/repos/acme/app/contents/missing.yml?ref="+head, auth, nil)
	if resp.StatusCode != 404 {
		t.Errorf("missing file: %d, want 404", resp.StatusCode)
	}
	first := s.Snapshot().Repos[0].Commits[0].SHA // the empty initial commit
	resp, _ = s.do("GET", "/repos/acme/app/contents/.github/deploybot.yml?ref="+first, auth, nil)
	if resp.StatusCode != 404 {
		t.Errorf("file at a commit before it existed: %d, want 404", resp.StatusCode)
	}

	resp, body = s.do("GET", "/repos/acme/app/tarball/"+head, auth, nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, s.url+codeloadPrefix) {
		t.Fatalf("tarball: %d %s Location %q, want 302 to the download host", resp.StatusCode, body, loc)
	}
	dl, err := http.Get(loc) // no Authorization: the URL carries its own token
	must(t, err)
	defer dl.Body.Close()
	if dl.StatusCode != 200 {
		t.Fatalf("download: %s", dl.Status)
	}
	gz, err := gzip.NewReader(dl.Body)
	must(t, err)
	tr := tar.NewReader(gz)
	top := fmt.Sprintf("acme-app-%s/", head[:7])
	files := map[string]string{}
	sawGlobal := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		if h.Typeflag == tar.TypeXGlobalHeader {
			sawGlobal = h.PAXRecords["comment"] == head
			continue
		}
		if !strings.HasPrefix(h.Name, top) {
			t.Errorf("entry %q outside %q", h.Name, top)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[strings.TrimPrefix(h.Name, top)] = string(b)
		}
	}
	if !sawGlobal {
		t.Error("no pax global header carrying the commit SHA")
	}
	if files["web/index.js"] != "export default {}\n" || files[".github/deploybot.yml"] == "" || len(files) != 3 {
		t.Errorf("tarball files %v", files)
	}
	bad, err := http.Get(strings.Replace(loc, "token=", "token=x", 1))
	must(t, err)
	bad.Body.Close()
	if bad.StatusCode != 404 {
		t.Errorf("download with a wrong token: %s, want 404", bad.Status)
	}
}

func TestDeploymentRules(t *testing.T) {
	s := newSim(t, Options{})
	head := s.seed()
	auth := "token " + s.token()
	resp, body := s.do("POST", "/repos/acme/app/check-runs", auth, map[string]any{"name": "deploybot/preview", "head_sha": head, "status": "in_progress"})
	if resp.StatusCode != 201 {
		t.Fatalf("check run: %d %s", resp.StatusCode, body)
	}
	// GitHub's defaults: all checks must pass, and the ref is brought up
	// to date with the default branch.
	resp, body = s.do("POST", "/repos/acme/app/deployments", auth, map[string]any{"ref": head, "environment": "preview", "auto_merge": false})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "deploybot/preview") {
		t.Errorf("deployment while a check runs, required_contexts absent: %d %s, want 409", resp.StatusCode, body)
	}
	_, err := s.Commit(testRepo, "main", map[string]string{"README.md": "newer\n"}, "main moves on")
	must(t, err)
	resp, body = s.do("POST", "/repos/acme/app/deployments", auth, map[string]any{"ref": head, "environment": "preview", "required_contexts": []string{}})
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("deployment of a ref behind main with auto_merge default: %d %s, want 202", resp.StatusCode, body)
	}
	create := func(env string) float64 {
		resp, body := s.do("POST", "/repos/acme/app/deployments", auth, map[string]any{
			"ref": head, "environment": env, "auto_merge": false, "required_contexts": []string{}, "payload": map[string]any{"pr": 1}})
		if resp.StatusCode != 201 {
			t.Fatalf("deployment: %d %s", resp.StatusCode, body)
		}
		return decode(t, body)["id"].(float64)
	}
	first, other := create("preview"), create("staging")
	for _, id := range []float64{first, other} {
		resp, body := s.do("POST", fmt.Sprintf("/repos/acme/app/deployments/%.0f/statuses", id), auth, map[string]any{"state": "success", "environment_url": "https://a.example"})
		if resp.StatusCode != 201 {
			t.Fatalf("status: %d %s", resp.StatusCode, body)
		}
	}
	second := create("preview")
	resp, body = s.do("POST", fmt.Sprintf("/repos/acme/app/deployments/%.0f/statuses", second), auth, map[string]any{"state": "success", "description": strings.Repeat("x", 141)})
	if resp.StatusCode != 422 {
		t.Errorf("description of 141 characters: %d %s, want 422", resp.StatusCode, body)
	}
	s.do("POST", fmt.Sprintf("/repos/acme/app/deployments/%.0f/statuses", second), auth, map[string]any{"state": "success"})
	states := map[float64]string{}
	for _, d := range s.Snapshot().Deployments {
		states[float64(d.ID)] = d.Statuses[len(d.Statuses)-1].State
	}
	if states[first] != "inactive" || states[other] != "success" || states[second] != "success" {
		t.Errorf("after success of a newer preview deployment (auto_inactive default): %v", states)
	}
	_, body = s.do("GET", fmt.Sprintf("/repos/acme/app/deployments/%.0f/statuses?per_page=1", first), auth, nil)
	var latest []map[string]any
	must(t, json.Unmarshal(body, &latest))
	if len(latest) != 1 || latest[0]["state"] != "inactive" {
		t.Errorf("statuses are not newest first: %s", body)
	}
}

func TestPrimaryRateLimit(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	s := newSim(t, Options{RateLimit: 2, Now: clock.Now})
	s.seed()
	auth := "token " + s.token()
	for i := range 2 {
		resp, _ := s.do("GET", "/repos/acme/app/pulls/1", auth, nil)
		if resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Remaining") != fmt.Sprint(1-i) {
			t.Fatalf("request %d: %d remaining %s", i, resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
		}
	}
	resp, body := s.do("GET", "/repos/acme/app/pulls/1", auth, nil)
	if resp.StatusCode != 403 || resp.Header.Get("X-RateLimit-Remaining") != "0" || !strings.Contains(string(body), "rate limit") {
		t.Fatalf("third request: %d %s remaining %q", resp.StatusCode, body, resp.Header.Get("X-RateLimit-Remaining"))
	}
	clock.Advance(time.Hour)
	tok := s.token() // the old one expired with the hour
	resp, _ = s.do("GET", "/repos/acme/app/pulls/1", "token "+tok, nil)
	if resp.StatusCode != 200 {
		t.Errorf("after the reset: %d", resp.StatusCode)
	}
}

func TestSecondaryRateLimitFault(t *testing.T) {
	s := newSim(t, Options{})
	s.seed()
	auth := "token " + s.token()
	s.Faults().Set(fault.Rule{Method: "POST", Path: "/repos/acme/app/issues/", Times: 1, Status: 403, RetryAfter: 2 * time.Second})
	resp, body := s.do("POST", "/repos/acme/app/issues/1/comments", auth, map[string]any{"body": "hi"})
	if resp.StatusCode != 403 || resp.Header.Get("Retry-After") != "2" || !strings.Contains(string(body), "secondary rate limit") {
		t.Fatalf("faulted request: %d %s Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	resp, _ = s.do("POST", "/repos/acme/app/issues/1/comments", auth, map[string]any{"body": "hi"})
	if resp.StatusCode != 201 || s.Faults().Injected() != 1 || len(s.Snapshot().Comments) != 1 {
		t.Errorf("after the one-shot fault: %d, injected %d, comments %d", resp.StatusCode, s.Faults().Injected(), len(s.Snapshot().Comments))
	}
}

func TestRepositoryModel(t *testing.T) {
	s := newSim(t, Options{})
	must(t, s.CreateRepo("acme", "app", "main"))
	a, err := s.Commit(testRepo, "main", map[string]string{"a.txt": "1"}, "one")
	must(t, err)
	s2 := newSim(t, Options{})
	must(t, s2.CreateRepo("acme", "app", "main"))
	b, err := s2.Commit(testRepo, "main", map[string]string{"a.txt": "1"}, "one")
	must(t, err)
	if a != b || len(a) != 40 {
		t.Errorf("SHAs of the same script differ or are not SHA-1 hex: %s %s", a, b)
	}
	_, err = s.Commit(testRepo, "contrib", map[string]string{"b.txt": "2"}, "two")
	must(t, err)
	n, err := s.OpenPR(testRepo, "contrib", "main", "From a fork", true, true)
	must(t, err)
	st := s.Snapshot()
	if _, ok := st.Repos[0].Branches["contrib"]; ok {
		t.Error("a fork pull request's branch is still in the base repository")
	}
	if p := st.PullRequests[0]; p.HeadRepo != ForkOwner+"/app" || p.Author != ForkOwner || !p.Draft {
		t.Errorf("fork pull request %+v", p)
	}
	head, err := s.PushPR(testRepo, n, map[string]string{"b.txt": "3"}, "three")
	must(t, err)
	merge, err := s.ClosePR(testRepo, n, true)
	must(t, err)
	st = s.Snapshot()
	if st.Repos[0].Branches["main"] != merge || st.PullRequests[0].HeadSHA != head || !st.PullRequests[0].Merged {
		t.Errorf("after merge: branches %v, pr %+v", st.Repos[0].Branches, st.PullRequests[0])
	}
	if _, err := s.PushPR(testRepo, n, nil, "late"); err == nil {
		t.Error("pushed to a closed pull request")
	}
	if err := s.SetPermission(testRepo, "bob", "owner"); err == nil {
		t.Error("accepted an unknown role")
	}
}

func TestSecondaryRateLimitOnContentCreation(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	s := newSim(t, Options{})
	s.realNow = clock.Now // the windows' real clock, stood still
	s.seed()
	auth := "token " + s.token()
	comment := map[string]any{"body": "hi"}
	for i := range 80 {
		if resp, body := s.do("POST", "/repos/acme/app/issues/1/comments", auth, comment); resp.StatusCode != 201 {
			t.Fatalf("write %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
	clock.Advance(20 * time.Second)
	resp, body := s.do("PATCH", "/repos/acme/app/issues/comments/"+fmt.Sprint(s.Snapshot().Comments[0].ID), auth, comment)
	if resp.StatusCode != 403 || resp.Header.Get("Retry-After") != "40" || !strings.Contains(string(body), "secondary rate limit") {
		t.Fatalf("81st write in the minute: %d %s Retry-After %q, want 403, 40 s, GitHub's message", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if resp, body := s.do("GET", "/repos/acme/app/issues/1/comments", auth, nil); resp.StatusCode != 200 {
		t.Errorf("a read past the write limit: %d %s", resp.StatusCode, body)
	}
	_ = s.token() // minting a token (a POST with the App's JWT) is not limited
	if n := s.SecondaryLimitRefusals(); n != 1 {
		t.Errorf("%d refusals counted, want 1", n)
	}
	clock.Advance(40 * time.Second) // the 80 writes leave the minute
	if resp, body := s.do("POST", "/repos/acme/app/issues/1/comments", auth, comment); resp.StatusCode != 201 {
		t.Fatalf("write once the minute freed its slots: %d %s", resp.StatusCode, body)
	}

	// The hour: 500 writes, then Retry-After until the oldest leaves it.
	h := newSim(t, Options{ContentPerHour: 5, ContentMinute: time.Second})
	h.realNow = clock.Now
	h.seed()
	auth = "token " + h.token()
	for i := range 5 {
		if resp, body := h.do("POST", "/repos/acme/app/issues/1/comments", auth, comment); resp.StatusCode != 201 {
			t.Fatalf("hour: write %d: %d %s", i+1, resp.StatusCode, body)
		}
		clock.Advance(2 * time.Second)
	}
	resp, _ = h.do("POST", "/repos/acme/app/issues/1/comments", auth, comment)
	if resp.StatusCode != 403 || resp.Header.Get("Retry-After") != "50" {
		t.Fatalf("6th write in the (60 s) hour: %d Retry-After %q, want 403, 50", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
