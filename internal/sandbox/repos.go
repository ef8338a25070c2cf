package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

// This file is the GitHub half of the control endpoints (see control.go):
// what a person does on github.com — create a repository, open, push to,
// close or merge a pull request, comment, give a collaborator a role,
// uninstall or suspend the App — done over HTTP through ghsim's Go API, and
// the webhooks GitHub would send for it delivered, signed, to the bot URL
// registered with PUT /hooks.

// SetHookURL registers where the simulated GitHub delivers webhooks for
// what the control endpoints do (the App's "Webhook URL"); "" delivers
// nothing.
func (s *Sandbox) SetHookURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookURL = u
}

// HookURL is the registered webhook URL ("" when none).
func (s *Sandbox) HookURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hookURL
}

// maxTreeBytes bounds the files one request reads from a directory: the
// simulated GitHub keeps every commit in memory.
const maxTreeBytes = 64 << 20

// change is the files of a commit: the files of dir (when given), then
// files over them.
type change struct {
	Dir     string            `json:"dir"`
	Files   map[string]string `json:"files"`
	Message string            `json:"message"`
}

// tree reads the change's files.
func (c change) tree() (map[string]string, error) {
	out := map[string]string{}
	if c.Dir != "" {
		read, err := readTree(c.Dir)
		if err != nil {
			return nil, err
		}
		out = read
	}
	for p, content := range c.Files {
		clean := strings.TrimPrefix(filepath.ToSlash(filepath.Clean(p)), "/")
		if p == "" || clean == "." || strings.HasPrefix(clean, "../") || clean == ".." {
			return nil, fmt.Errorf("files: %q is not a path inside the repository", p)
		}
		out[clean] = content
	}
	return out, nil
}

// readTree reads every regular file under dir (its .git folder and
// symbolic links excepted) as repository paths → contents.
func readTree(dir string) (map[string]string, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("dir: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("dir: %s is not a directory", dir)
	}
	files := map[string]string{}
	total := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if total += len(b); total > maxTreeBytes {
			return fmt.Errorf("%s holds more than %d MiB of files, more than the sandbox keeps in memory", dir, maxTreeBytes>>20)
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dir: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("dir: %s holds no files", dir)
	}
	return files, nil
}

// delivered is one webhook delivery as the control endpoints report it.
type delivered struct {
	ID     string `json:"id"`
	Event  string `json:"event"`
	Action string `json:"action,omitempty"`
	// Status is the bot's HTTP status (0: it could not be reached, see
	// Error), Response the start of its answer.
	Status   int    `json:"status"`
	Response string `json:"response,omitempty"`
	Error    string `json:"error,omitempty"`
}

// outcome is the answer of a control endpoint that changed the simulated
// GitHub.
type outcome struct {
	Repo       string      `json:"repo"`
	Number     int         `json:"number,omitempty"`
	SHA        string      `json:"sha,omitempty"`
	CommentID  int64       `json:"comment_id,omitempty"`
	Deliveries []delivered `json:"deliveries"`
	// Note says what was not delivered, and why.
	Note string `json:"note,omitempty"`
}

// deliver builds each event and delivers it to the registered URL, in
// order, as GitHub would for what just happened.
func (s *Sandbox) deliver(ctx context.Context, out *outcome, events ...func() (ghsim.Event, error)) error {
	out.Deliveries = []delivered{}
	hook := s.HookURL()
	if hook == "" {
		if len(events) > 0 {
			out.Note = "no bot URL registered (PUT /hooks {\"url\": …}): nothing was delivered"
		}
		return nil
	}
	for _, build := range events {
		ev, err := build()
		if err != nil {
			return err
		}
		d, err := s.GitHub.Deliver(ctx, hook, ev)
		rep := delivered{ID: d.ID, Event: d.Event, Action: d.Action, Status: d.Status, Response: d.Response}
		if err != nil {
			rep.Error = d.Error
		}
		out.Deliveries = append(out.Deliveries, rep)
	}
	return nil
}

func (s *Sandbox) handleGitHubControl(mux *http.ServeMux) {
	gh := s.GitHub
	mux.HandleFunc("PUT /hooks", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			URL string `json:"url"`
		}
		if !decodeStrict(w, r, &in) {
			return
		}
		if in.URL != "" {
			if u, err := url.Parse(in.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				http.Error(w, fmt.Sprintf("url: %q is not an http(s) URL such as http://127.0.0.1:8080/api/github/hook", in.URL), http.StatusBadRequest)
				return
			}
		}
		s.SetHookURL(in.URL)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /hooks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"url": s.HookURL()})
	})

	mux.HandleFunc("POST /repos", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Repo          string `json:"repo"`
			DefaultBranch string `json:"default_branch"`
			Sample        bool   `json:"sample"`
			Dir           string `json:"dir"`
		}
		if !decodeStrict(w, r, &in) {
			return
		}
		owner, name, ok := strings.Cut(in.Repo, "/")
		if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
			http.Error(w, fmt.Sprintf("repo: %q is not owner/name", in.Repo), http.StatusBadRequest)
			return
		}
		if in.Sample == (in.Dir != "") {
			http.Error(w, `give either "sample": true or "dir": a directory whose files the repository starts with`, http.StatusBadRequest)
			return
		}
		if in.DefaultBranch == "" {
			in.DefaultBranch = "main"
		}
		var files map[string]string
		var err error
		if in.Sample {
			if s.Sample == nil {
				http.Error(w, "sample: this sandbox has no sample repository", http.StatusBadRequest)
				return
			}
			files, err = s.Sample()
		} else {
			files, err = readTree(in.Dir)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := gh.CreateRepo(owner, name, in.DefaultBranch); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		sha, err := gh.Commit(in.Repo, in.DefaultBranch, files, "Initial commit")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// The App is installed on a repository that already has its first
		// commit, as when installing it on an existing one: no push event.
		writeJSON(w, http.StatusCreated, outcome{Repo: in.Repo, SHA: sha, Deliveries: []delivered{}})
	})

	mux.HandleFunc("PUT /repos/{owner}/{name}/installation", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Installed *bool `json:"installed"`
		}
		if !decodeStrict(w, r, &in) {
			return
		}
		if in.Installed == nil {
			http.Error(w, `installed: true or false is required`, http.StatusBadRequest)
			return
		}
		if err := gh.SetInstalled(repoName(r), *in.Installed); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /installation", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			State ghsim.InstallationState `json:"state"`
		}
		if !decodeStrict(w, r, &in) {
			return
		}
		if err := gh.SetInstallationState(in.State); err != nil {
			http.Error(w, "state: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	mux.HandleFunc("PUT /repos/{owner}/{name}/collaborators/{user}", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Permission string `json:"permission"`
		}
		if !decodeStrict(w, r, &in) {
			return
		}
		if in.Permission == "none" {
			in.Permission = ""
		}
		if err := gh.SetPermission(repoName(r), r.PathValue("user"), in.Permission); err != nil {
			http.Error(w, err.Error(), statusOf(err))
			return
		}
		// GitHub sends a `member` event, but only to Apps subscribed to
		// it, and the bot's App is not: nothing to deliver.
		writeJSON(w, http.StatusOK, outcome{Repo: repoName(r), Deliveries: []delivered{},
			Note: "the App does not subscribe to member events: GitHub delivers nothing for a role change"})
	})

	mux.HandleFunc("POST /repos/{owner}/{name}/pulls", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			change
			Head  string `json:"head"`
			Base  string `json:"base"`
			Title string `json:"title"`
			Fork  bool   `json:"fork"`
			Draft bool   `json:"draft"`
		}
		if !decodeStrict(w, r, &in) {
			return
		}
		repo := repoName(r)
		if in.Head == "" {
			http.Error(w, "head: the pull request's branch is required", http.StatusBadRequest)
			return
		}
		files, err := in.tree()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if in.Base == "" {
			in.Base = defaultBranch(gh, repo)
		}
		if in.Title == "" {
			in.Title = in.Head
		}
		if in.Message == "" {
			in.Message = in.Title
		}
		var sha string
		if len(files) > 0 {
			if sha, err = gh.Commit(repo, in.Head, files, in.Message); err != nil {
				http.Error(w, err.Error(), statusOf(err))
				return
			}
		}
		n, err := gh.OpenPR(repo, in.Head, in.Base, in.Title, in.Fork, in.Draft)
		if err != nil {
			http.Error(w, err.Error(), statusOf(err))
			return
		}
		out := outcome{Repo: repo, Number: n, SHA: sha}
		var events []func() (ghsim.Event, error)
		if len(files) > 0 && !in.Fork { // a fork's push happens in the fork
			events = append(events, func() (ghsim.Event, error) { return gh.PushEvent(repo, in.Head) })
		}
		events = append(events, func() (ghsim.Event, error) { return gh.PullRequestEvent(repo, n, "opened") })
		s.answer(w, r, http.StatusCreated, &out, events...)
	})

	mux.HandleFunc("POST /repos/{owner}/{name}/pulls/{number}/commits", func(w http.ResponseWriter, r *http.Request) {
		var in change
		if !decodeStrict(w, r, &in) {
			return
		}
		repo := repoName(r)
		n, ok := pullNumber(w, r)
		if !ok {
			return
		}
		files, err := in.tree()
		if err == nil && len(files) == 0 {
			err = errors.New(`a push needs "files" or "dir"`)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if in.Message == "" {
			in.Message = "Update"
		}
		sha, err := gh.PushPR(repo, n, files, in.Message)
		if err != nil {
			http.Error(w, err.Error(), statusOf(err))
			return
		}
		out := outcome{Repo: repo, Number: n, SHA: sha}
		var events []func() (ghsim.Event, error)
		if head, fork := pullHead(gh, repo, n); !fork {
			events = append(events, func() (ghsim.Event, error) { return gh.PushEvent(repo, head) })
		}
		events = append(events, func() (ghsim.Event, error) { return gh.PullRequestEvent(repo, n, "synchronize") })
		s.answer(w, r, http.StatusCreated, &out, events...)
	})

	mux.HandleFunc("POST /repos/{owner}/{name}/pulls/{number}/close", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Merge bool `json:"merge"`
		}
		if !decodeStrict(w, r, &in) {
			return
		}
		repo := repoName(r)
		n, ok := pullNumber(w, r)
		if !ok {
			return
		}
		base := pullBase(gh, repo, n)
		sha, err := gh.ClosePR(repo, n, in.Merge)
		if err != nil {
			http.Error(w, err.Error(), statusOf(err))
			return
		}
		out := outcome{Repo: repo, Number: n, SHA: sha}
		events := []func() (ghsim.Event, error){func() (ghsim.Event, error) { return gh.PullRequestEvent(repo, n, "closed") }}
		if in.Merge {
			events = append(events, func() (ghsim.Event, error) { return gh.PushEvent(repo, base) })
		}
		s.answer(w, r, http.StatusOK, &out, events...)
	})

	mux.HandleFunc("POST /repos/{owner}/{name}/pulls/{number}/comments", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			User string `json:"user"`
			Body string `json:"body"`
		}
		if !decodeStrict(w, r, &in) {
			return
		}
		repo := repoName(r)
		n, ok := pullNumber(w, r)
		if !ok {
			return
		}
		if in.User == "" || in.Body == "" {
			http.Error(w, `"user" (who comments) and "body" are required`, http.StatusBadRequest)
			return
		}
		id, err := gh.AddComment(repo, n, in.User, in.Body)
		if err != nil {
			http.Error(w, err.Error(), statusOf(err))
			return
		}
		out := outcome{Repo: repo, Number: n, CommentID: id}
		s.answer(w, r, http.StatusCreated, &out, func() (ghsim.Event, error) { return gh.IssueCommentEvent(repo, id) })
	})

	mux.HandleFunc("POST /deliveries/{id}/redeliver", func(w http.ResponseWriter, r *http.Request) {
		d, err := gh.Redeliver(r.Context(), r.PathValue("id"))
		if d.ID == "" && err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		rep := delivered{ID: d.ID, Event: d.Event, Action: d.Action, Status: d.Status, Response: d.Response}
		if err != nil {
			rep.Error = d.Error
		}
		writeJSON(w, http.StatusOK, rep)
	})
}

// answer delivers the events and writes out with status.
func (s *Sandbox) answer(w http.ResponseWriter, r *http.Request, status int, out *outcome, events ...func() (ghsim.Event, error)) {
	if err := s.deliver(r.Context(), out, events...); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, status, out)
}

func repoName(r *http.Request) string { return r.PathValue("owner") + "/" + r.PathValue("name") }

func pullNumber(w http.ResponseWriter, r *http.Request) (int, bool) {
	n, err := strconv.Atoi(r.PathValue("number"))
	if err != nil || n <= 0 {
		http.Error(w, fmt.Sprintf("%q is not a pull request number", r.PathValue("number")), http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

// statusOf maps ghsim's errors for what does not exist to 404, the rest
// (a closed pull request, a branch missing, an unknown role) to 400.
func statusOf(err error) int {
	if strings.Contains(err.Error(), "no repository") || strings.Contains(err.Error(), "no pull request") {
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

func defaultBranch(gh *ghsim.Server, repo string) string {
	for _, rp := range gh.Snapshot().Repos {
		if strings.EqualFold(rp.FullName, repo) {
			return rp.DefaultBranch
		}
	}
	return "main"
}

func pullHead(gh *ghsim.Server, repo string, n int) (head string, fork bool) {
	for _, p := range gh.Snapshot().PullRequests {
		if strings.EqualFold(p.Repo, repo) && p.Number == n {
			return p.Head, !strings.EqualFold(p.HeadRepo, p.Repo)
		}
	}
	return "", true
}

func pullBase(gh *ghsim.Server, repo string, n int) string {
	for _, p := range gh.Snapshot().PullRequests {
		if strings.EqualFold(p.Repo, repo) && p.Number == n {
			return p.Base
		}
	}
	return ""
}
