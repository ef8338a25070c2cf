package sandbox_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// hookRecorder is a webhook receiver that checks each delivery's signature
// as the bot does and answers 202 with a reason, or 401.
type hookRecorder struct {
	mu     sync.Mutex
	events []string // "event action"
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	mac := hmac.New(sha256.New, []byte("s"))
	mac.Write(body)
	if r.Header.Get("X-Hub-Signature-256") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p struct {
		Action string `json:"action"`
	}
	_ = json.Unmarshal(body, &p)
	h.mu.Lock()
	h.events = append(h.events, strings.TrimSpace(r.Header.Get("X-GitHub-Event")+" "+p.Action))
	h.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, "taken: "+r.Header.Get("X-GitHub-Event"))
}

type outcome struct {
	Repo       string `json:"repo"`
	Number     int    `json:"number"`
	SHA        string `json:"sha"`
	Note       string `json:"note"`
	Deliveries []struct {
		ID       string `json:"id"`
		Event    string `json:"event"`
		Action   string `json:"action"`
		Status   int    `json:"status"`
		Response string `json:"response"`
		Error    string `json:"error"`
	} `json:"deliveries"`
}

// TestGitHubControlEndpoints drives a pull request's life over HTTP, as the
// README's recipe does, and checks the webhooks GitHub would send arrive
// signed, in order, with the receiver's answer reported back.
func TestGitHubControlEndpoints(t *testing.T) {
	sb, _, base := start(t)
	sb.Sample = func() (map[string]string, error) { return map[string]string{"README.md": "sample\n"}, nil }
	hooks := &hookRecorder{}
	bot := httptest.NewServer(hooks)
	t.Cleanup(bot.Close)

	call := func(method, path, body string, wantStatus int) outcome {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, resp.StatusCode, b, wantStatus)
		}
		var out outcome
		if len(b) > 0 && b[0] == '{' {
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
		return out
	}
	events := func(out outcome) []string {
		var got []string
		for _, d := range out.Deliveries {
			got = append(got, strings.TrimSpace(d.Event+" "+d.Action))
			if d.Status != http.StatusAccepted || d.Response != "taken: "+d.Event || d.ID == "" {
				t.Errorf("delivery %+v: want status 202, the receiver's answer and an id", d)
			}
		}
		return got
	}
	expect := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, ", ") != strings.Join(want, ", ") {
			t.Errorf("%s delivered %q, want %q", what, got, want)
		}
	}

	// A repository from a directory (its .git left out), one from the sample.
	dir := t.TempDir()
	for p, c := range map[string]string{"app/index.js": "export default {}\n", ".git/HEAD": "ref: refs/heads/main\n"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	created := call("POST", "/repos", `{"repo":"acme/shop","dir":"`+dir+`"}`, http.StatusCreated)
	if created.SHA == "" {
		t.Error("creating a repository gives no commit SHA")
	}
	call("POST", "/repos", `{"repo":"acme/sample","sample":true,"default_branch":"trunk"}`, http.StatusCreated)
	st := sb.GitHub.Snapshot()
	if len(st.Repos) != 2 || strings.Join(st.Repos[0].Commits[1].Files, ",") != "app/index.js" || st.Repos[1].DefaultBranch != "trunk" {
		t.Fatalf("repositories: %+v", st.Repos)
	}

	// Without a bot URL the change is made and the answer says nothing went.
	quiet := call("POST", "/repos/acme/shop/pulls", `{"head":"quiet","files":{"q.txt":"q"}}`, http.StatusCreated)
	if len(quiet.Deliveries) != 0 || !strings.Contains(quiet.Note, "PUT /hooks") {
		t.Errorf("a PR opened without a bot URL: %+v", quiet)
	}

	call("PUT", "/hooks", `{"url":"`+bot.URL+`/api/github/hook"}`, http.StatusNoContent)
	opened := call("POST", "/repos/acme/shop/pulls", `{"head":"feature/x","title":"Add x","files":{"x.txt":"1"}}`, http.StatusCreated)
	expect("opening a PR", events(opened), "push", "pull_request opened")
	if opened.Number != 2 || opened.SHA == "" {
		t.Errorf("opened: %+v, want PR #2 and its head", opened)
	}
	pushed := call("POST", "/repos/acme/shop/pulls/2/commits", `{"files":{"x.txt":"2"},"message":"Fix x"}`, http.StatusCreated)
	expect("a push", events(pushed), "push", "pull_request synchronize")
	commented := call("POST", "/repos/acme/shop/pulls/2/comments", `{"user":"acme","body":"/redeploy"}`, http.StatusCreated)
	expect("a comment", events(commented), "issue_comment created")
	role := call("PUT", "/repos/acme/shop/collaborators/alice", `{"permission":"write"}`, http.StatusOK)
	if len(role.Deliveries) != 0 || sb.GitHub.Snapshot().Repos[0].Permissions["alice"] != "write" {
		t.Errorf("collaborator: %+v, permissions %v", role, sb.GitHub.Snapshot().Repos[0].Permissions)
	}
	fork := call("POST", "/repos/acme/shop/pulls", `{"head":"contrib","files":{"f.txt":"f"},"fork":true}`, http.StatusCreated)
	expect("a fork's PR", events(fork), "pull_request opened") // its push happens in the fork
	merged := call("POST", "/repos/acme/shop/pulls/2/close", `{"merge":true}`, http.StatusOK)
	expect("a merge", events(merged), "pull_request closed", "push")
	call("POST", "/deliveries/"+merged.Deliveries[1].ID+"/redeliver", ``, http.StatusOK)
	hooks.mu.Lock()
	n := len(hooks.events)
	last := hooks.events[n-1]
	hooks.mu.Unlock()
	if n != 9 || last != "push" {
		t.Errorf("the receiver got %d deliveries ending with %q, want 9 ending with the redelivered push", n, last)
	}

	call("PUT", "/repos/acme/shop/installation", `{"installed":false}`, http.StatusNoContent)
	if sb.GitHub.Snapshot().Repos[0].Installed {
		t.Error("the repository is still in the installation")
	}
	call("PUT", "/installation", `{"state":"suspended"}`, http.StatusNoContent)
	if sb.GitHub.Snapshot().Installation != "suspended" {
		t.Error("the installation is not suspended")
	}

	// Mistakes are 400s (404s for what does not exist) naming what is wrong.
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/repos", `{"repo":"shop","sample":true}`, `"shop" is not owner/name`},
		{"POST", "/repos", `{"repo":"acme/x","sample":true,"dir":"/tmp"}`, `either "sample": true or "dir"`},
		{"POST", "/repos", `{"repo":"acme/x","dir":"/no/such/dir"}`, "no such file"},
		{"POST", "/repos", `{"repo":"acme/shop","sample":true}`, "exists"},
		{"POST", "/repos", `{"repo":"acme/x","sampel":true}`, "sampel"},
		{"POST", "/repos/acme/nope/pulls", `{"head":"x","files":{"a":"b"}}`, "no repository"},
		{"POST", "/repos/acme/shop/pulls", `{"head":"y","files":{"../etc/passwd":"b"}}`, "not a path inside the repository"},
		{"POST", "/repos/acme/shop/pulls/2/commits", `{"files":{"a":"b"}}`, "closed"},
		{"POST", "/repos/acme/shop/pulls/9/close", `{}`, "no pull request"},
		{"PUT", "/repos/acme/shop/collaborators/bob", `{"permission":"owner"}`, `unknown role "owner"`},
		{"PUT", "/hooks", `{"url":"127.0.0.1:8080"}`, "not an http(s) URL"},
		{"PUT", "/installation", `{"state":"gone"}`, "state"},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(string(b), c.want) {
			t.Errorf("%s %s %s: %d %s, want a 4xx saying %q", c.method, c.path, c.body, resp.StatusCode, b, c.want)
		}
	}
}
