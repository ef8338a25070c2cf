package workspace

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// ent is one archive entry to build.
type ent struct {
	typ  byte
	name string
	body string
	link string
	mode int64
	// size, when set, is declared in the header instead of len(body) and
	// no data is written: a header promising more than the archive holds.
	size int64
}

func file(name, body string) ent     { return ent{typ: tar.TypeReg, name: name, body: body, mode: 0o644} }
func dir(name string) ent            { return ent{typ: tar.TypeDir, name: name, mode: 0o755} }
func symlink(name, to string) ent    { return ent{typ: tar.TypeSymlink, name: name, link: to} }
func hardlink(name, to string) ent   { return ent{typ: tar.TypeLink, name: name, link: to} }
func special(typ byte, n string) ent { return ent{typ: typ, name: n, mode: 0o644} }

// tarOf builds an uncompressed tar. Entries the writer refuses end the
// archive early (only fuzzing produces those).
func tarOf(entries ...ent) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if e.size > 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			return buf.Bytes()
		}
		if e.size > 0 {
			return buf.Bytes() // the promised data never comes
		}
		if h.Size > 0 {
			if _, err := io.WriteString(tw, e.body); err != nil {
				return buf.Bytes()
			}
		}
	}
	tw.Close()
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// github returns a tarball shaped like GitHub's: a pax global header with
// the commit, then everything under one folder.
func github(entries ...ent) []byte {
	all := []ent{{typ: tar.TypeXGlobalHeader, name: "pax_global_header"}, dir("owner-repo-1a2b3c4/")}
	return gz(tarOf(append(all, entries...)...))
}

const top = "owner-repo-1a2b3c4/"

func extract(t *testing.T, archive []byte, limits Limits) (string, Stats, error) {
	t.Helper()
	d := t.TempDir()
	target := filepath.Join(d, "ws")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := Extract(context.Background(), bytes.NewReader(archive), target, limits)
	return target, st, err
}

func TestExtractNormalTree(t *testing.T) {
	suid := file(top+"bin/suid", "#!/bin/sh\n")
	suid.mode = 0o4755
	ro := dir(top + "readonly/")
	ro.mode = 0o555
	script := file(top+"scripts/deploy.sh", "#!/bin/sh\necho deploy\n")
	script.mode = 0o755
	archive := github(
		dir(top+"src/"),
		file(top+"src/index.ts", "export {}\n"),
		file(top+"README.md", "# codex\n"),
		script,
		suid,
		ro,
		file(top+"readonly/f", "x"),
		symlink(top+"docs", "src"),
		symlink(top+"src/up", "../README.md"),
		file(top+"deep/er/still/file.txt", "implicit parents"),
		special(tar.TypeFifo, top+"fifo"),
		special(tar.TypeChar, top+"null"),
	)
	ws, st, err := extract(t, archive, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Root: "owner-repo-1a2b3c4", Files: 6, Dirs: 2, Symlinks: 2, Bytes: int64(len("export {}\n# codex\n#!/bin/sh\necho deploy\n#!/bin/sh\nximplicit parents")), Skipped: 2}
	if st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "docs/index.ts")); err != nil || string(b) != "export {}\n" {
		t.Errorf("through the inside link: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "src/up")); err != nil || string(b) != "# codex\n" {
		t.Errorf("relative link up: %q, %v", b, err)
	}
	for name, mode := range map[string]fs.FileMode{
		"README.md": 0o644, "scripts/deploy.sh": 0o755, "bin/suid": 0o755, "readonly": fs.ModeDir | 0o755,
	} {
		fi, err := os.Lstat(filepath.Join(ws, name))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode(), err, mode)
		}
	}
	for _, skipped := range []string{"fifo", "null"} {
		if _, err := os.Lstat(filepath.Join(ws, skipped)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was created: %v", skipped, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(ws, "owner-repo-1a2b3c4")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("top-level folder was not stripped")
	}
}

func TestExtractRefusesAttacks(t *testing.T) {
	zeros := strings.Repeat("\x00", 4<<20)
	zerosBomb := github(file(top+"a", zeros), file(top+"b", zeros), file(top+"c", zeros))
	for _, tc := range []struct {
		name    string
		archive []byte
		limits  Limits
		kind    error
		want    string // in the error message
	}{
		{"dotdot without top", gz(tarOf(file("../etc/passwd", "root::0:0"))), Limits{}, ErrUnsafe, `"../etc/passwd": path contains ".."`},
		{"dotdot inside top", github(file(top+"../../etc/passwd", "x")), Limits{}, ErrUnsafe, `path contains ".."`},
		{"absolute", gz(tarOf(file("/abs", "x"))), Limits{}, ErrUnsafe, `"/abs": absolute path`},
		{"absolute in pax name", github(file("/etc/cron.d/evil", "x")), Limits{}, ErrUnsafe, "absolute path"},
		{"symlink to /etc", github(symlink(top+"etc", "/etc")), Limits{}, ErrUnsafe, `symbolic link to absolute path "/etc"`},
		{"symlink up and out", github(symlink(top+"up", "../..")), Limits{}, ErrUnsafe, `target "../.." leaves the workspace`},
		{"symlink out and back in", github(dir(top+"a/"), symlink(top+"a/l", "../../ws/a")), Limits{}, ErrUnsafe, "leaves the workspace"},
		{"write through inside symlink", github(dir(top+"src/"), symlink(top+"l", "src"), file(top+"l/x", "x")), Limits{}, ErrUnsafe, `parent "l" is a symbolic link`},
		{"symlink then same-name file", github(file(top+"a", "x"), symlink(top+"l", "a"), file(top+"l", "y")), Limits{}, ErrUnsafe, "appears twice"},
		{
			// Each link stays inside on its own; together they lead out:
			// sub/x is the workspace itself, so sub/x/.. is its parent.
			"symlink chain", github(dir(top+"sub/"), symlink(top+"sub/x", ".."), symlink(top+"evil", "sub/x/..")),
			Limits{}, ErrUnsafe, "leads outside the workspace through other links",
		},
		{
			"symlink chain via dangling name", github(symlink(top+"a", "b/../.."), dir(top+"b/")),
			Limits{}, ErrUnsafe, "leaves the workspace",
		},
		{"symlink loop", github(symlink(top+"a", "b/x"), symlink(top+"b", "a/y")), Limits{}, ErrUnsafe, "loop"},
		{"hard link", github(file(top+"f", "x"), hardlink(top+"h", top+"f")), Limits{}, ErrUnsafe, "hard links are not allowed"},
		{"hard link out", github(hardlink(top+"passwd", "/etc/passwd")), Limits{}, ErrUnsafe, "hard links are not allowed"},
		{"second top-level folder", github(file("other/x", "x")), Limits{}, ErrUnsafe, `outside the top-level folder "owner-repo-1a2b3c4"`},
		{"file at top level", gz(tarOf(file("README.md", "x"))), Limits{}, ErrUnsafe, "top-level entry must be a folder"},
		{"duplicate file", github(file(top+"a", "1"), file(top+"a", "2")), Limits{}, ErrUnsafe, "appears twice"},
		{"file below file", github(file(top+"a", "1"), file(top+"a/b", "2")), Limits{}, ErrUnsafe, "collides with another entry"},
		{"unknown type", github(ent{typ: 'Z', name: top + "z"}), Limits{}, ErrUnsafe, "unsupported entry type"},
		{"oversize file", github(file(top+"big.bin", strings.Repeat("x", 2048))), Limits{MaxFileBytes: 1024}, ErrLimit, `"owner-repo-1a2b3c4/big.bin": file is 2048 bytes, the limit is 1024`},
		{"too many files", github(file(top+"1", ""), file(top+"2", ""), file(top+"3", ""), file(top+"4", "")), Limits{MaxFiles: 3}, ErrLimit, `"owner-repo-1a2b3c4/4": more than 3 entries`},
		{"too many bytes", github(file(top+"1", strings.Repeat("a", 600)), file(top+"2", strings.Repeat("b", 600))), Limits{MaxBytes: 1000}, ErrLimit, `"owner-repo-1a2b3c4/2": archive unpacks to more than 1000 bytes`},
		{"declared size bomb", github(ent{typ: tar.TypeReg, name: top + "bomb", mode: 0o644, size: 1 << 40}), Limits{}, ErrLimit, "file is 1099511627776 bytes, the limit is 268435456"},
		{
			// Well-compressed zeros: 12 MiB in a few kilobytes of gzip.
			"zeros bomb", zerosBomb,
			Limits{MaxBytes: 8 << 20}, ErrLimit, `"owner-repo-1a2b3c4/c": archive unpacks to more than 8388608 bytes`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, _, err := extract(t, tc.archive, tc.limits)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %v containing %q", err, tc.kind, tc.want)
			}
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Entry == "" {
				t.Errorf("err %v does not name the entry", err)
			}
			assertNothingOutside(t, filepath.Dir(ws), ws)
		})
	}
}

func TestExtractArchiveErrors(t *testing.T) {
	good := github(file(top+"a", "x"))
	for _, tc := range []struct {
		name    string
		archive []byte
		want    string
	}{
		{"not gzip", []byte("<html>rate limited</html>"), "not gzip-compressed"},
		{"truncated", good[:len(good)/2], "reading archive"},
		{"empty archive", gz(tarOf()), "no entries"},
		{"data promised but missing", github(ent{typ: tar.TypeReg, name: top + "short", mode: 0o644, size: 100}), "unexpected EOF"},
	} {
		_, _, err := extract(t, tc.archive, Limits{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestExtractNeedsEmptyDir(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "old"), nil, 0o644)
	_, err := Extract(context.Background(), bytes.NewReader(github()), d, Limits{})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("err = %v", err)
	}
}

func TestExtractStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Extract(ctx, bytes.NewReader(github(file(top+"a", "x"))), t.TempDir(), Limits{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestWorkspaceLifecycle(t *testing.T) {
	parent := t.TempDir()
	w, err := New(parent)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(w.Dir()) || filepath.Dir(w.Dir()) != parent {
		t.Fatalf("Dir() = %s", w.Dir())
	}
	if _, err := w.Extract(context.Background(), bytes.NewReader(github(file(top+"a/b", "x"))), Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("still there: %v", err)
	}
	if err := w.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := New(filepath.Join(parent, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("New under a missing parent: %v", err)
	}
}

// readOnlyTree leaves a workspace the way builds do: read-only folders
// (Go's module cache), a folder without any permission, and a link to a
// folder outside, which must be removed, not followed.
func readOnlyTree(t *testing.T, root, outside string) {
	t.Helper()
	for _, d := range []string{"mod/cache/x", "locked/inner"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, d, "f"), []byte("x"), 0o444)
	}
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"mod/cache/x", "mod/cache", "mod"} {
		os.Chmod(filepath.Join(root, d), 0o555)
	}
	os.Chmod(filepath.Join(root, "locked/inner"), 0o000)
	os.Chmod(filepath.Join(root, "locked"), 0o500)
}

func TestRemoveReadOnlyTree(t *testing.T) {
	if os.Getenv("WORKSPACE_REMOVE_HELPER") != "" {
		t.Skip("helper mode runs TestRemoveHelper only")
	}
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "keep"), []byte("k"), 0o644)
	parent := filepath.Join(base, "parent")
	os.MkdirAll(parent, 0o755)
	w, err := New(parent)
	if err != nil {
		t.Fatal(err)
	}
	readOnlyTree(t, w.Dir(), outside)

	if os.Getuid() != 0 {
		if err := w.Remove(); err != nil {
			t.Fatal(err)
		}
	} else {
		// Root ignores permissions, so the test would prove nothing: remove
		// as an ordinary user in a child process instead.
		removeAsNobody(t, base, w.Dir())
	}
	if _, err := os.Lstat(w.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("workspace still exists: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "keep")); err != nil || string(b) != "k" {
		t.Errorf("the link was followed: outside/keep %q, %v", b, err)
	}
}

func removeAsNobody(t *testing.T, base, dir string) {
	t.Helper()
	const nobody = 65534
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(base, "workspace.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Skip(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// nobody must reach the tree and own it, as a build user would.
	for p := base; p != "/"; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(p, fi.Mode().Perm()|0o011)
		}
	}
	filepath.WalkDir(filepath.Dir(dir), func(p string, d fs.DirEntry, err error) error {
		os.Lchown(p, nobody, nobody)
		return nil
	})
	cmd := exec.Command(bin, "-test.run=^TestRemoveHelper$", "-test.v")
	cmd.Env = []string{"WORKSPACE_REMOVE_HELPER=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("removing as uid %d: %v\n%s", nobody, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestRemoveHelper") {
		t.Fatalf("helper did not run:\n%s", out)
	}
}

// TestRemoveHelper is the child process of TestRemoveReadOnlyTree.
func TestRemoveHelper(t *testing.T) {
	dir := os.Getenv("WORKSPACE_REMOVE_HELPER")
	if dir == "" {
		t.Skip("only run by TestRemoveReadOnlyTree")
	}
	if os.Getuid() == 0 {
		t.Fatal("helper runs as root")
	}
	if err := os.RemoveAll(dir); err == nil {
		t.Fatal("plain os.RemoveAll succeeded: the tree is not read-only, the test proves nothing")
	}
	if err := RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
}

// assertNothingOutside checks that base holds nothing but the workspace
// dir (and what tests put there on purpose).
func assertNothingOutside(t *testing.T, base, ws string) {
	t.Helper()
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if p := filepath.Join(base, e.Name()); p != ws {
			t.Errorf("extraction created %s outside the workspace", p)
		}
	}
}
