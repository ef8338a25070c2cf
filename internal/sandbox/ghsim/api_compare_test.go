package ghsim

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestCompareListsTheChangedFiles: a comparison lists the commits head has
// and base has not, and the files changed since their merge base (not
// what base changed meanwhile), at most 300 of them, on the first page.
func TestCompareListsTheChangedFiles(t *testing.T) {
	s := newSim(t, Options{})
	head := s.seed() // feature adds web/index.js to main's tree
	more, err := s.Commit(testRepo, "feature", map[string]string{"README.md": "changed\n", "api/x.js": "1\n"}, "more")
	must(t, err)
	_, err = s.Commit(testRepo, "main", map[string]string{"docs/only-on-main.md": "x\n"}, "main moves on")
	must(t, err)
	auth := "token " + s.token()

	var got struct {
		Status   string `json:"status"`
		AheadBy  int    `json:"ahead_by"`
		BehindBy int    `json:"behind_by"`
		Files    []struct{ Filename, Status string }
	}
	resp, body := s.do("GET", "/repos/acme/app/compare/main..."+more, auth, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("compare: %d %s", resp.StatusCode, body)
	}
	validateResponse(t, "GET /repos/{owner}/{repo}/compare/{basehead}", 200, body)
	must(t, json.Unmarshal(body, &got))
	if got.Status != "diverged" || got.AheadBy != 2 || got.BehindBy != 1 {
		t.Errorf("status %s, ahead %d, behind %d; want diverged, 2, 1", got.Status, got.AheadBy, got.BehindBy)
	}
	if fmt.Sprint(got.Files) != "[{README.md modified} {api/x.js added} {web/index.js added}]" {
		t.Errorf("files: %v", got.Files)
	}

	resp, body = s.do("GET", "/repos/acme/app/compare/"+head+"..."+more+"?page=2&per_page=1", auth, nil)
	got.Files = nil
	must(t, json.Unmarshal(body, &got))
	if resp.StatusCode != 200 || got.Files != nil {
		t.Errorf("page 2: %d, files %v (files are on the first page only)", resp.StatusCode, got.Files)
	}
	if resp, _ := s.do("GET", "/repos/acme/app/compare/main...no-such-branch", auth, nil); resp.StatusCode != 404 {
		t.Errorf("unknown head: %d, want 404", resp.StatusCode)
	}

	many := map[string]string{}
	for i := range 301 {
		many[fmt.Sprintf("gen/%03d.txt", i)] = "x\n"
	}
	big, err := s.Commit(testRepo, "big", many, "many files")
	must(t, err)
	_, body = s.do("GET", "/repos/acme/app/compare/main..."+big, auth, nil)
	must(t, json.Unmarshal(body, &got))
	if len(got.Files) != 300 {
		t.Errorf("%d files listed, want GitHub's 300 at most", len(got.Files))
	}
}
