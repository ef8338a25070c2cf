package gitref

import (
	"net/url"
	"os/exec"
	"strings"
	"testing"
)

// branches are checked against git itself where git is installed, so the
// table cannot drift from the rules it claims to implement.
var branches = []struct {
	name string
	ok   bool
}{
	{"main", true},
	{"feature/login", true},
	{"Production", true},
	{"dependabot/npm_and_yarn/web/vite-5.4.2", true},
	{"fix#12", true},
	{"100%", true},
	{"ünïcode", true},
	{"a.b", true},
	{"x/../../user", false},
	{"..", false},
	{"a..b", false},
	{".hidden", false},
	{"a/.hidden", false},
	{"a.lock", false},
	{"a/b.lock/c", false},
	{"a//b", false},
	{"/a", false},
	{"a/", false},
	{"a.", false},
	{"a b", false},
	{"a~1", false},
	{"a^", false},
	{"a:b", false},
	{"a?", false},
	{"a*", false},
	{"a[b", false},
	{"a\\b", false},
	{"a@{1}", false},
	{"@", true}, // refs/heads/@ is a valid ref; "@" alone is not
	{"a\x00b", false},
	{"a\tb", false},
	{"a\x7fb", false},
	{"-flag", false},
	{"", false},
	{"HEAD", false},
}

func TestCheckBranch(t *testing.T) {
	git, _ := exec.LookPath("git")
	for _, tc := range branches {
		err := CheckBranch(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckBranch(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "branch name") {
			t.Errorf("CheckBranch(%q) = %q: should name the branch", tc.name, err)
		}
		if git == "" || strings.IndexByte(tc.name, 0) >= 0 {
			continue // exec cannot pass a NUL byte
		}
		gitOK := exec.Command(git, "check-ref-format", "--branch", tc.name).Run() == nil
		if gitOK != tc.ok {
			t.Errorf("git check-ref-format --branch %q: ok=%v, the table says %v", tc.name, gitOK, tc.ok)
		}
	}
}

func TestCheckBranchMessage(t *testing.T) {
	err := CheckBranch("x/../../user")
	want := `branch name "x/../../user" contains ".."`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestEscapePathStaysInPlace(t *testing.T) {
	base, _ := url.Parse("https://api.github.com/")
	for _, tc := range branches {
		if !tc.ok {
			continue
		}
		p := "repos/o/r/git/ref/heads/" + EscapePath(tc.name)
		u, err := base.Parse(p)
		if err != nil {
			t.Fatalf("%q: %v", tc.name, err)
		}
		if u.Path != "/repos/o/r/git/ref/heads/"+tc.name || u.RawQuery != "" || u.Fragment != "" {
			t.Errorf("%q: resolved to path %q query %q fragment %q", tc.name, u.Path, u.RawQuery, u.Fragment)
		}
	}
}

func TestIsSHA(t *testing.T) {
	for s, want := range map[string]bool{
		strings.Repeat("a", 40):            true,
		strings.Repeat("0", 64):            true,
		strings.Repeat("A", 40):            false,
		strings.Repeat("a", 39):            false,
		"../../" + strings.Repeat("a", 34): false,
		"":                                 false,
	} {
		if IsSHA(s) != want {
			t.Errorf("IsSHA(%q) = %v", s, !want)
		}
	}
}

// FuzzCheckBranch: whatever CheckBranch accepts, git accepts too (no ".."
// and no "." component can survive), and its escaped path resolves to
// itself under a base URL — the property that keeps API calls in place.
func FuzzCheckBranch(f *testing.F) {
	for _, tc := range branches {
		f.Add(tc.name)
	}
	base, _ := url.Parse("https://api.github.com/")
	f.Fuzz(func(t *testing.T, name string) {
		if CheckBranch(name) != nil {
			return
		}
		for _, comp := range strings.Split(name, "/") {
			if comp == "" || comp == "." || comp == ".." {
				t.Fatalf("accepted %q with component %q", name, comp)
			}
		}
		u, err := base.Parse("repos/o/r/branches/" + EscapePath(name))
		if err != nil {
			t.Fatalf("accepted %q, but its path does not parse: %v", name, err)
		}
		if u.Path != "/repos/o/r/branches/"+name || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("accepted %q, but its path resolves to %q (query %q)", name, u.Path, u.RawQuery)
		}
	})
}
