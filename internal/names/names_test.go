package names

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var (
	labelRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	scriptRE = regexp.MustCompile(`^[a-z0-9_][a-z0-9-_]{0,62}$`)
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"pr": "42", "branch": "feat/x", "sha": "0123456789abcdef", "sha7": "0123456", "repo": "codex"}
	for _, tc := range []struct{ pattern, want string }{
		{"codex-web-preview-{pr}", "codex-web-preview-42"},
		{"pr-{pr}", "pr-42"},
		{"push-{branch}-{sha}", "push-feat/x-0123456789abcdef"},
		{"{repo}-{sha7}-{sha7}", "codex-0123456-0123456"},
		{"no-placeholders", "no-placeholders"},
		{"{unknown}-{pr}", "{unknown}-42"}, // left visible, not emptied
		{"open-{pr", "open-{pr"},
		{"odd-{}-{pr}", "odd-{}-42"},
		{"{with space}", "{with space}"},
		{"", ""},
	} {
		if got := Expand(tc.pattern, vars); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.pattern, got, tc.want)
		}
	}
	// Values are inserted literally, never re-expanded.
	if got := Expand("x-{branch}", map[string]string{"branch": "{pr}", "pr": "1"}); got != "x-{pr}" {
		t.Errorf("value was re-expanded: %q", got)
	}
}

func TestPlaceholders(t *testing.T) {
	got, err := Placeholders("push-{branch}-{sha}-{branch}")
	if err != nil || strings.Join(got, ",") != "branch,sha" {
		t.Fatalf("Placeholders = %v, %v", got, err)
	}
	for _, bad := range []string{"pr-{pr", "pr-}pr", "pr-{}", "pr-{a-b}"} {
		if _, err := Placeholders(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Placeholders(%q) error = %v, want one naming the pattern", bad, err)
		}
	}
}

func TestDNSLabel(t *testing.T) {
	long := strings.Repeat("a", 70)
	for _, tc := range []struct{ in, want string }{
		{"pr-7", "pr-7"},
		{"codex-web-preview-123", "codex-web-preview-123"},
		{"Feature/Login_Page", "feature-login-page"},
		{"push-feat/x-0123456", "push-feat-x-0123456"},
		{"--leading and trailing--", "leading-and-trailing"},
		{"a---b___c...d", "a-b-c-d"},
		{"xn--punycode", "xn-punycode"},
		{"Ünïcode-brånch", "n-code-br-nch"},
		{"release/v1.2.3", "release-v1-2-3"},
		{strings.Repeat("a", 63), strings.Repeat("a", 63)},
		{long, strings.Repeat("a", 54) + "-" + hash(long)},
		{"", hash("")},
		{"///", hash("///")},
		{"日本語", hash("日本語")},
	} {
		got := DNSLabel(tc.in)
		if got != tc.want {
			t.Errorf("DNSLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !labelRE.MatchString(got) {
			t.Errorf("DNSLabel(%q) = %q is not a DNS label", tc.in, got)
		}
	}
	// A '-' just before the cut is not left dangling before the hash.
	in := strings.Repeat("a", 53) + "/" + strings.Repeat("b", 20)
	if got := DNSLabel(in); got != strings.Repeat("a", 53)+"-"+hash(in) {
		t.Errorf("DNSLabel(%q) = %q", in, got)
	}
}

// Long names that differ only after the cut must still name different
// previews, or two branches would share (and clobber) one environment.
func TestDNSLabelDistinctBeyondCut(t *testing.T) {
	prefix := "push-" + strings.Repeat("very-long-feature-branch-name-", 4)
	seen := map[string]string{}
	for _, suffix := range []string{"a", "b", "-0123456", "-0123457", "/x", "_x", "X"} {
		in := prefix + suffix
		got := DNSLabel(in)
		if len(got) != MaxLabel {
			t.Errorf("DNSLabel(%q) = %q: want exactly %d characters", in, got, MaxLabel)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("DNSLabel(%q) = DNSLabel(%q) = %q", in, prev, got)
		}
		seen[got] = in
	}
	// Same input, same name: a retried job finds what it created.
	if DNSLabel(prefix+"a") != DNSLabel(prefix+"a") {
		t.Error("DNSLabel is not deterministic")
	}
}

func TestScriptName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"codex-web-preview-7", "codex-web-preview-7"},
		{"Auth_Worker Preview 7", "auth_worker-preview-7"},
		{"_private", "_private"},
		{"-x-", "x"},
	} {
		got := ScriptName(tc.in)
		if got != tc.want || !scriptRE.MatchString(got) {
			t.Errorf("ScriptName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := ScriptName(strings.Repeat("worker_", 20))
	if len(long) > MaxScriptName || !scriptRE.MatchString(long) {
		t.Errorf("long script name %q", long)
	}
}

func TestBranchName(t *testing.T) {
	if got := BranchName("push-Feature/X-abc1234"); got != "push-feature-x-abc1234" {
		t.Errorf("BranchName = %q", got)
	}
	in := strings.Repeat("b", 300)
	got := BranchName(in)
	if len(got) != MaxBranchName || !strings.HasSuffix(got, "-"+hash(in)) {
		t.Errorf("BranchName(300×b) = %q (%d chars)", got, len(got))
	}
	if got := BranchName(strings.Repeat("c", 100)); got != strings.Repeat("c", 100) {
		t.Errorf("a 100-character name must not be cut: %q", got)
	}
}

func TestHostname(t *testing.T) {
	vars := map[string]string{"pr": "12", "branch": "v1.2/Fix_It", "repo": "Codex"}
	for _, tc := range []struct{ pattern, want string }{
		{"codex-preview-{pr}.revelations.studio", "codex-preview-12.revelations.studio"},
		{"{branch}.preview.example.com", "v1-2-fix-it.preview.example.com"},
		{"{repo}-{pr}.Example.COM", "codex-12.example.com"},
		{"api-preview-{pr}.revelations.studio", "api-preview-12.revelations.studio"},
	} {
		got, err := Hostname(tc.pattern, vars)
		if err != nil || got != tc.want {
			t.Errorf("Hostname(%q) = %q, %v; want %q", tc.pattern, got, err, tc.want)
		}
	}
	long := map[string]string{"branch": strings.Repeat("x", 200)}
	got, err := Hostname("{branch}.example.com", long)
	if err != nil || len(strings.Split(got, ".")[0]) != MaxLabel {
		t.Errorf("long branch hostname = %q, %v", got, err)
	}

	for _, tc := range []struct{ pattern, wantErr string }{
		{"", "empty"},
		{"preview-{nope}.example.com", "no value for {nope}"},
		{"preview-{pr}.exa_mple.com", `label "exa_mple"`},
		{"preview-{pr}..com", `label ""`},
		{"preview-{pr}.example.com.", `label ""`},
		{"{a}.{a}.{a}.{a}.{a}.example.com", "limit is 253"},
	} {
		_, err := Hostname(tc.pattern, map[string]string{"pr": "1", "a": strings.Repeat("a", 80)})
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Hostname(%q) error = %v, want it to mention %q", tc.pattern, err, tc.wantErr)
		}
	}
}

func TestIsDNSLabel(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "a-b": true, "0": true, strings.Repeat("a", 63): true,
		"": false, "-a": false, "a-": false, "A": false, "a_b": false, strings.Repeat("a", 64): false,
	} {
		if got := IsDNSLabel(s); got != want {
			t.Errorf("IsDNSLabel(%q) = %v", s, got)
		}
	}
}

// fuzzSeeds are the inputs FuzzDNSLabel starts from; they are also
// committed under testdata/fuzz/FuzzDNSLabel (see TestSeedCorpusFiles).
var fuzzSeeds = []string{
	"pr-7", "Feature/Login", "", "---", "日本語", "xn--abc", "release/v1.2.3",
	strings.Repeat("a", 63), strings.Repeat("a", 64),
	"push-" + strings.Repeat("very-long-feature-branch-name-", 4) + "a",
	"push-" + strings.Repeat("very-long-feature-branch-name-", 4) + "b",
	strings.Repeat("a", 53) + "/" + strings.Repeat("b", 20),
	"\xff\xfe invalid utf-8",
}

// FuzzDNSLabel checks the properties every caller relies on, for any input:
// the result is a valid label, the same input gives the same label, a valid
// label maps to itself, and appending to a name that had to be shortened
// changes the result (the hash covers the whole input).
func FuzzDNSLabel(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := DNSLabel(s)
		if !labelRE.MatchString(got) {
			t.Fatalf("DNSLabel(%q) = %q is not a DNS label", s, got)
		}
		if again := DNSLabel(s); again != got {
			t.Fatalf("DNSLabel(%q) not deterministic: %q then %q", s, got, again)
		}
		if twice := DNSLabel(got); twice != got {
			t.Fatalf("DNSLabel(%q) = %q is not stable: DNSLabel of it is %q", s, got, twice)
		}
		if len(unshortened(s)) > MaxLabel {
			if other := DNSLabel(s + "0"); other == got {
				t.Fatalf("DNSLabel(%q) and DNSLabel(%q+\"0\") are both %q", s, s, got)
			}
		}
		if sc := ScriptName(s); !scriptRE.MatchString(sc) {
			t.Fatalf("ScriptName(%q) = %q is not a script name", s, sc)
		}
	})
}

// unshortened is the sanitized form before shortening, for deciding
// whether the fuzzed input had to be cut.
func unshortened(s string) string {
	return sanitize(s, 1<<30, false)
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus files under testdata/fuzz")

// TestSeedCorpusFiles keeps testdata/fuzz/FuzzDNSLabel in step with
// fuzzSeeds (go test -run TestSeedCorpusFiles -update-corpus rewrites it).
func TestSeedCorpusFiles(t *testing.T) {
	for i, s := range fuzzSeeds {
		p := filepath.Join("testdata", "fuzz", "FuzzDNSLabel", fmt.Sprintf("seed-%02d", i))
		want := "go test fuzz v1\nstring(" + strconv.Quote(s) + ")\n"
		if *updateCorpus {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (%v): run go test -run TestSeedCorpusFiles -update-corpus", p, err)
		}
	}
}
