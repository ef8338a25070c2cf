package cloudflare

import (
	"testing"
)

// TestAssetsIgnore: gitignore's rules as git's documentation
// (git-scm.com/docs/gitignore, "PATTERN FORMAT") states them, which
// wrangler applies to .assetsignore.
func TestAssetsIgnore(t *testing.T) {
	cases := []struct {
		patterns string
		path     string
		want     bool
	}{
		// A pattern without a slash matches at any depth.
		{"*.map", "app.js.map", true},
		{"*.map", "js/deep/app.js.map", true},
		{"*.map", "app.js", false},
		{"secret.txt", "a/b/secret.txt", true},
		// A slash at the start or in the middle anchors it at the root.
		{"/secret.txt", "secret.txt", true},
		{"/secret.txt", "a/secret.txt", false},
		{"doc/frotz", "doc/frotz", true},
		{"doc/frotz", "a/doc/frotz", false},
		// A trailing slash matches folders only, and so all beneath them.
		{"frotz/", "frotz/a.html", true},
		{"frotz/", "a/frotz/b/c.css", true},
		{"frotz/", "frotz", false},
		{"src", "src/x.js", true}, // a folder matched without the slash too
		// * and ? do not cross a slash; ** does.
		{"foo/*", "foo/test.json", true},
		{"foo/*", "foo/bar/hello.c", true}, // foo/bar is matched, so all in it
		{"a/*.js", "a/b/c.js", false},
		{"?.txt", "a.txt", true},
		{"?.txt", "ab.txt", false},
		{"**/foo", "foo", true},
		{"**/foo", "x/y/foo", true},
		{"**/foo/bar", "x/foo/bar", true},
		{"abc/**", "abc/x/y.z", true},
		{"abc/**", "abc", false},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "ab", false},
		// Classes.
		{"*.[oa]", "lib.o", true},
		{"*.[oa]", "lib.c", false},
		{"*.[!oa]", "lib.c", true},
		{"file[0-9].txt", "file7.txt", true},
		// The last matching pattern wins; ! puts a file back, but not one
		// whose folder is left out.
		{"*.html\n!index.html", "index.html", false},
		{"*.html\n!index.html", "about.html", true},
		{"build/\n!build/keep.js", "build/keep.js", true},
		// Comments, blank lines, escapes, trailing spaces.
		{"# a comment\n\n*.log", "x.log", true},
		{"# *.css", "x.css", false},
		{`\#notes`, "#notes", true},
		{`\!important`, "!important", true},
		{"*.tmp   ", "x.tmp", true},
		{"*.tmp\r\n*.bak\r\n", "x.bak", true},
		{"", "anything", false},
		{"[", "[", false}, // an unclosed class is no pattern
		// Case does not matter, as in the ignore package wrangler uses.
		{"*.MAP", "app.js.map", true},
		{"Drafts/", "drafts/a.html", true},
	}
	for _, c := range cases {
		if got := parseAssetsIgnore(c.patterns).ignored(c.path); got != c.want {
			t.Errorf("patterns %q, path %q: ignored %v, want %v", c.patterns, c.path, got, c.want)
		}
	}
}

// FuzzAssetsIgnore: any .assetsignore and any path are read without a
// panic, and a folder that is left out takes everything beneath it along.
func FuzzAssetsIgnore(f *testing.F) {
	f.Add("*.map\n!keep.map\nbuild/\n/a/**/b\n[!x]?.txt\n\\#x", "a/b/c.map")
	f.Add("**", "x")
	f.Add("[]a]\n\\", "]")
	f.Fuzz(func(t *testing.T, patterns, path string) {
		ig := parseAssetsIgnore(patterns)
		if ig.ignored(path) {
			return
		}
		for i := range len(path) {
			if path[i] == '/' && ig.matches(path[:i], true) {
				t.Fatalf("%q is kept although its folder %q is left out", path, path[:i])
			}
		}
	})
}

func TestAssetContentType(t *testing.T) {
	for name, want := range map[string]string{
		"index.html":        "text/html; charset=utf-8",
		"css/Site.CSS":      "text/css; charset=utf-8",
		"app.js":            "text/javascript; charset=utf-8",
		"data.json":         "application/json",
		"logo.svg":          "image/svg+xml",
		"font.woff2":        "font/woff2",
		"module.wasm":       "application/wasm",
		"LICENSE":           "application/null",
		"archive.unknown42": "application/null",
	} {
		if got := assetContentType(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}
