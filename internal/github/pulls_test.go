package github

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"

	"github.com/revelations-studio/deploybot/internal/sandbox/ghsim"
)

const routeListPulls = "GET /repos/{owner}/{repo}/pulls"

// openPRs opens pull requests up to number last (the env has #1), closes
// every tenth, and returns the open ones' numbers.
func (e *env) openPRs(last int) []int {
	e.t.Helper()
	open := []int{1}
	for i := 2; i <= last; i++ {
		branch := fmt.Sprintf("f%d", i)
		_, err := e.sim.Commit(repo, branch, map[string]string{"web/index.js": branch}, branch)
		must(e.t, err)
		fork := i == 7 // one from a fork, which takes the branch out of the repository
		n, err := e.sim.OpenPR(repo, branch, "main", "PR "+branch, fork, fork)
		must(e.t, err)
		if n%10 == 0 {
			_, err := e.sim.ClosePR(repo, n, n%20 == 0)
			must(e.t, err)
			continue
		}
		open = append(open, n)
	}
	return open
}

func numbersOf(prs []PullRequest) []int {
	var ns []int
	for _, p := range prs {
		ns = append(ns, p.Number)
	}
	return ns
}

// TestOpenPullRequestsFollowsPages: 250 open pull requests (and 27 closed)
// come back in three requests, each as the single-pull-request lookup sees
// it; asked again, the pages are revalidated (304, no rate limit), and a
// newly opened pull request is seen, last.
func TestOpenPullRequestsFollowsPages(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	open := e.openPRs(277)
	if len(open) != 250 {
		t.Fatalf("set-up: %d open", len(open))
	}

	prs, err := e.rep.OpenPullRequests(ctx)
	must(t, err)
	if got := numbersOf(prs); fmt.Sprint(got) != fmt.Sprint(open) {
		t.Fatalf("listed %d pull requests %v…, want the %d open ones oldest first", len(got), got[:min(len(got), 10)], len(open))
	}
	if n := e.requests(routeListPulls); n != 3 {
		t.Errorf("%d list requests for 250 pull requests, want 3 pages of 100", n)
	}
	for _, p := range prs {
		one, err := e.rep.PullRequest(ctx, p.Number)
		must(t, err)
		if p != one {
			t.Errorf("#%d listed as %+v, looked up as %+v", p.Number, p, one)
		}
	}
	if fork := prs[6]; fork.Number != 7 || !fork.Fork || !fork.Draft || fork.HeadRepo != ghsim.ForkOwner+"/"+name {
		t.Errorf("fork pull request listed as %+v", fork)
	}

	_, err = e.rep.OpenPullRequests(ctx)
	must(t, err)
	// The pages stay out of the ETag cache (they would crowd out what the
	// pipelines revalidate), and the pull requests read one by one above
	// stay in it.
	if got := e.state().Responses[routeListPulls]; got[200] != 6 || got[304] != 0 {
		t.Errorf("answers after listing twice: %v, want 6×200, no revalidation", got)
	}
	// With a cache that holds a page (100 PRs are about 1.7 MB here) but not
	// the listing, what was cached before the listing is still there after.
	small := e.cfg
	small.CacheBytes = 5 << 19
	rep := NewReporter(e.installationClient(small), owner, name)
	_, err = rep.PullRequest(ctx, prs[0].Number)
	must(t, err)
	_, err = rep.OpenPullRequests(ctx)
	must(t, err)
	before := e.state().Responses["GET /repos/{owner}/{repo}/pulls/{pull_number}"][304]
	_, err = rep.PullRequest(ctx, prs[0].Number)
	must(t, err)
	if after := e.state().Responses["GET /repos/{owner}/{repo}/pulls/{pull_number}"][304]; after != before+1 {
		t.Errorf("a pull request read before a listing was pushed out of the ETag cache by it (304s %d → %d)", before, after)
	}
	_, err = e.sim.Commit(repo, "late", map[string]string{"web/index.js": "late"}, "late")
	must(t, err)
	late, err := e.sim.OpenPR(repo, "late", "main", "Late", false, false)
	must(t, err)
	prs, err = e.rep.OpenPullRequests(ctx)
	must(t, err)
	if len(prs) != 251 || prs[250].Number != late {
		t.Errorf("after opening #%d: %d listed, last %+v", late, len(prs), prs[len(prs)-1])
	}
}

// hookTransport runs after(req) once a request's answer has arrived.
type hookTransport struct {
	mu    sync.Mutex
	after func(*http.Request)
}

func (h *hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	h.mu.Lock()
	after := h.after
	h.mu.Unlock()
	if err == nil && after != nil {
		after(r)
	}
	return resp, err
}

// TestOpenPullRequestsWhileThePagesShift: a pull request reopened between
// two pages pushes the first page's last item onto the second; it is
// listed once.
func TestOpenPullRequestsWhileThePagesShift(t *testing.T) {
	e := newEnv(t, ghsim.Options{})
	ctx := t.Context()
	open := e.openPRs(220) // 198 open: two pages
	hook := &hookTransport{}
	cfg := e.cfg
	cfg.Transport = hook
	rep := NewReporter(e.installationClient(cfg), owner, name)
	var once sync.Once
	hook.after = func(r *http.Request) {
		if r.URL.Path == "/repos/acme/app/pulls" && r.URL.Query().Get("page") == "" {
			once.Do(func() { must(t, e.sim.ReopenPR(repo, 10)) }) // #10 sorts onto page 1
		}
	}
	prs, err := rep.OpenPullRequests(ctx)
	must(t, err)
	got := numbersOf(prs)
	if !sort.IntsAreSorted(got) || len(got) != len(open) || fmt.Sprint(got) != fmt.Sprint(open) {
		t.Errorf("listed %d (%v…), want the %d open before the reopen, once each", len(got), got[95:min(len(got), 105)], len(open))
	}
}
