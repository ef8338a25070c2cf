package annotate

import (
	"path"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"
)

// FuzzParse: whatever a command prints, Parse does not panic, and every
// annotation points at a line of a file inside the repository.
func FuzzParse(f *testing.F) {
	f.Add("src/a.go:1:2: boom")
	f.Add("--- FAIL: TestX (0.00s)\n    x_test.go:3: bad\nFAIL\nFAIL\tm/x\t0.1s\n")
	// The rest of the seeds are in testdata/fuzz/FuzzParse.
	files := fstest.MapFS{
		"src/a.go":    {Data: []byte("package a\n")},
		"x/x_test.go": {Data: []byte("package x\n")},
		"go.mod":      {Data: []byte("module m\n")},
		"weird :name": {Data: []byte("\n")},
	}
	f.Fuzz(func(t *testing.T, out string) {
		for _, opts := range []Options{
			{Root: "/ws/repo"},
			{Root: "/ws/repo", Files: files, Max: 7},
			{Root: "/"},
			{},
		} {
			got := Parse(out, opts)
			max := opts.Max
			if max == 0 {
				max = DefaultMax
			}
			if len(got) > max {
				t.Fatalf("%d annotations, more than %d", len(got), max)
			}
			for _, a := range got {
				switch {
				case a.Path == "" || strings.HasPrefix(a.Path, "/") || path.Clean(a.Path) != a.Path:
					t.Fatalf("path %q is not clean and relative", a.Path)
				case slices.Contains(strings.Split(a.Path, "/"), ".."):
					t.Fatalf("path %q climbs out of the repository", a.Path)
				case strings.ContainsAny(a.Path, "\x00\\") || !utf8.ValidString(a.Path):
					t.Fatalf("path %q has a NUL, a backslash or invalid UTF-8", a.Path)
				case a.Line < 1 || a.Column < 0:
					t.Fatalf("line %d column %d", a.Line, a.Column)
				case a.Level != Failure && a.Level != Warning && a.Level != Notice:
					t.Fatalf("level %q", a.Level)
				case a.Message == "" || len(a.Message) > maxMessage || !utf8.ValidString(a.Message):
					t.Fatalf("message of %d bytes: %q", len(a.Message), a.Message)
				}
				if opts.Files != nil {
					if _, ok := files[a.Path]; !ok {
						t.Fatalf("annotation on %q, which is not in the repository", a.Path)
					}
				}
			}
		}
	})
}
