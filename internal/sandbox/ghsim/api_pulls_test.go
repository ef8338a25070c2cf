package ghsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// linkRels parses a Link header into rel → URL.
func linkRels(t *testing.T, header string) map[string]string {
	t.Helper()
	rels := map[string]string{}
	if header == "" {
		return rels
	}
	re := regexp.MustCompile(`^<([^>]+)>; rel="([a-z]+)"$`)
	for _, part := range strings.Split(header, ", ") {
		m := re.FindStringSubmatch(part)
		if m == nil {
			t.Fatalf("Link part %q is not <url>; rel=\"…\"", part)
		}
		rels[m[2]] = m[1]
	}
	return rels
}

// listPullsPage gets one page and returns its items' numbers and states,
// and its Link rels.
func (s *sim) listPullsPage(auth, path string) (numbers []int, states []string, rels map[string]string) {
	s.t.Helper()
	resp, body := s.do("GET", path, auth, nil)
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	validateResponse(s.t, "GET /repos/{owner}/{repo}/pulls", 200, body)
	var items []struct {
		Number int    `json:"number"`
		State  string `json:"state"`
	}
	must(s.t, json.Unmarshal(body, &items))
	for _, it := range items {
		numbers = append(numbers, it.Number)
		states = append(states, it.State)
	}
	return numbers, states, linkRels(s.t, resp.Header.Get("Link"))
}

// TestListPullsPaginatesFiltersAndSorts: 250 open and 20 closed pull
// requests; following the Link headers from the first page yields every
// open one exactly once, newest first, and state, base, head, sort and
// direction filter and order as on GitHub.
func TestListPullsPaginatesFiltersAndSorts(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newSim(t, Options{Now: clock.Now})
	s.seed() // #1, open
	auth := "token " + s.token()
	for i := 2; i <= 270; i++ {
		clock.Advance(time.Second) // distinct creation times
		branch := fmt.Sprintf("f%d", i)
		_, err := s.Commit(testRepo, branch, map[string]string{"web/index.js": branch}, branch)
		must(t, err)
		_, err = s.OpenPR(testRepo, branch, "main", "PR "+branch, false, false)
		must(t, err)
	}
	open := map[int]bool{}
	for n := 1; n <= 270; n++ {
		open[n] = true
		if n%13 == 0 { // 20 closed, half of them merged
			_, err := s.ClosePR(testRepo, n, n%26 == 0)
			must(t, err)
			delete(open, n)
		}
	}
	if len(open) != 250 {
		t.Fatalf("set-up: %d open pull requests, want 250", len(open))
	}

	// Follow the Link headers, as a client does.
	path := "/repos/acme/app/pulls?state=open&per_page=100"
	var got []int
	for page := 1; path != ""; page++ {
		numbers, states, rels := s.listPullsPage(auth, path)
		for _, st := range states {
			if st != "open" {
				t.Fatalf("page %d holds a %s pull request", page, st)
			}
		}
		got = append(got, numbers...)
		wantLen := map[int]int{1: 100, 2: 100, 3: 50}[page]
		if len(numbers) != wantLen {
			t.Errorf("page %d: %d items, want %d", page, len(numbers), wantLen)
		}
		if page < 3 {
			if !strings.HasSuffix(rels["next"], fmt.Sprintf("page=%d&per_page=100&state=open", page+1)) || !strings.HasSuffix(rels["last"], "page=3&per_page=100&state=open") {
				t.Errorf("page %d: Link %v, want next page %d and last page 3", page, rels, page+1)
			}
		} else if _, ok := rels["next"]; ok {
			t.Errorf("last page has a next link: %v", rels)
		}
		if page > 1 && (!strings.HasSuffix(rels["first"], "page=1&per_page=100&state=open") || !strings.HasSuffix(rels["prev"], fmt.Sprintf("page=%d&per_page=100&state=open", page-1))) {
			t.Errorf("page %d: Link %v, want first page 1 and prev page %d", page, rels, page-1)
		}
		if page == 1 && (rels["first"] != "" || rels["prev"] != "") {
			t.Errorf("first page links back: %v", rels)
		}
		if page > 3 {
			t.Fatal("more than 3 pages")
		}
		path = strings.TrimPrefix(rels["next"], s.url)
	}
	seen := map[int]bool{}
	for i, n := range got {
		if seen[n] || !open[n] {
			t.Errorf("item %d: #%d (duplicate %v, open %v)", i, n, seen[n], open[n])
		}
		seen[n] = true
		if i > 0 && n >= got[i-1] {
			t.Errorf("not newest first: #%d after #%d", n, got[i-1])
		}
	}
	if len(seen) != 250 {
		t.Errorf("%d distinct open pull requests listed, want 250", len(seen))
	}

	// GitHub's defaults: open ones, 30 per page, newest first.
	numbers, _, rels := s.listPullsPage(auth, "/repos/acme/app/pulls")
	if len(numbers) != 30 || numbers[0] != got[0] || !strings.HasSuffix(rels["last"], "page=9&per_page=30") {
		t.Errorf("defaults: %d items from #%d, Link %v; want 30 from #%d, 9 pages", len(numbers), numbers[0], rels, got[0])
	}
	// Closed and all.
	closed, states, _ := s.listPullsPage(auth, "/repos/acme/app/pulls?state=closed&per_page=100")
	if len(closed) != 20 || strings.Join(states, "") != strings.Repeat("closed", 20) {
		t.Errorf("state=closed: %d items, states %v; want 20 closed", len(closed), states)
	}
	total := 0
	for p := 1; p <= 3; p++ {
		numbers, _, _ := s.listPullsPage(auth, fmt.Sprintf("/repos/acme/app/pulls?state=all&per_page=100&page=%d", p))
		total += len(numbers)
	}
	if total != 270 {
		t.Errorf("state=all: %d pull requests over 3 pages, want 270", total)
	}
	// Oldest first on request; sort=updated defaults to ascending.
	if numbers, _, _ := s.listPullsPage(auth, "/repos/acme/app/pulls?direction=asc&per_page=5"); fmt.Sprint(numbers) != "[1 2 3 4 5]" {
		t.Errorf("direction=asc: %v", numbers)
	}
	clock.Advance(time.Minute)
	_, err := s.PushPR(testRepo, 2, map[string]string{"web/index.js": "v2"}, "v2")
	must(t, err)
	if numbers, _, _ := s.listPullsPage(auth, "/repos/acme/app/pulls?sort=updated&direction=desc&per_page=1"); fmt.Sprint(numbers) != "[2]" {
		t.Errorf("sort=updated desc: %v, want the one just pushed to (#2)", numbers)
	}
	if numbers, _, _ := s.listPullsPage(auth, "/repos/acme/app/pulls?sort=updated&per_page=1"); fmt.Sprint(numbers) == "[2]" {
		t.Errorf("sort=updated without direction is ascending on GitHub; got the newest first")
	}
	// base and head.
	_, err = s.Commit(testRepo, "release", map[string]string{"README.md": "release\n"}, "release")
	must(t, err)
	_, err = s.Commit(testRepo, "hotfix", map[string]string{"README.md": "fix\n"}, "fix")
	must(t, err)
	hotfix, err := s.OpenPR(testRepo, "hotfix", "release", "Hotfix", false, false)
	must(t, err)
	if numbers, _, _ := s.listPullsPage(auth, "/repos/acme/app/pulls?base=release"); fmt.Sprint(numbers) != fmt.Sprint([]int{hotfix}) {
		t.Errorf("base=release: %v, want [%d]", numbers, hotfix)
	}
	if numbers, _, _ := s.listPullsPage(auth, "/repos/acme/app/pulls?head=acme:f7"); fmt.Sprint(numbers) != "[7]" {
		t.Errorf("head=acme:f7: %v, want [7]", numbers)
	}

	// The items are GitHub's pull-request-simple, key for key.
	_, body := s.do("GET", "/repos/acme/app/pulls?per_page=1", auth, nil)
	var items []any
	must(t, json.Unmarshal(body, &items))
	missing, extra := keyDiff(readJSON(t, "testdata/pull-request-simple.json"), items[0], "")
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("list item vs pull-request-simple.json: missing %v, extra %v", missing, extra)
	}
	// A state GitHub does not know is refused by the description.
	if resp, body := s.do("GET", "/repos/acme/app/pulls?state=merged", auth, nil); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("state=merged: %d %s, want 422", resp.StatusCode, body)
	}
	if resp, _ := s.do("GET", "/repos/acme/nope/pulls", auth, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown repository: %d, want 404", resp.StatusCode)
	}
}
