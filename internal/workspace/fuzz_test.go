package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Manifests describe archives in a line-based form the fuzzer can mutate
// meaningfully (a raw tar's checksums defeat most byte mutations):
//
//	g                  pax global header (as GitHub sends)
//	d NAME             folder
//	f NAME CONTENT     file (content is the rest of the line)
//	x NAME CONTENT     executable file
//	s NAME CONTENT     set-user-ID file
//	F NAME SIZE        file of SIZE zero bytes (at most 1 MiB)
//	B NAME SIZE        header promising SIZE bytes, with no data
//	l NAME TARGET      symbolic link
//	h NAME TARGET      hard link
//	p NAME / c NAME    FIFO / character device
var attackSeeds = map[string]string{
	"dotdot":             "f ../etc/passwd root::0:0",
	"dotdot-in-top":      "d top/\nf top/../../etc/passwd x",
	"absolute":           "f /abs x",
	"absolute-in-top":    "d top/\nf /top/abs x",
	"symlink-etc":        "d top/\nl top/etc /etc\nf top/etc/cron.d/x pwn",
	"symlink-up":         "d top/\nl top/up ../..\nf top/up/pwned x",
	"symlink-chain":      "d top/\nd top/sub/\nl top/sub/x ..\nl top/evil sub/x/..\nf top/evil/pwned x",
	"symlink-chain-deep": "d top/\nd top/a/\nd top/a/b/\nl top/a/b/c ../..\nl top/a/up b/c/..\nl top/out a/up/..",
	"dangling-then-dir":  "d top/\nl top/a b/../..\nd top/b/",
	"symlink-loop":       "d top/\nl top/a b/x\nl top/b a/y",
	"hardlink":           "d top/\nf top/f x\nh top/h top/f",
	"hardlink-out":       "d top/\nh top/passwd /etc/passwd",
	"write-through-link": "d top/\nd top/src/\nl top/l src\nf top/l/x y",
	"link-then-file":     "d top/\nf top/a x\nl top/l a\nf top/l overwrite",
	"two-tops":           "d top/\nf top/a x\nf other/b y",
	"oversize":           "d top/\nF top/big 100000",
	"declared-bomb":      "d top/\nB top/bomb 1099511627776",
	"many-files":         "d top/\n" + strings.Repeat("f top/n x\n", 1) + manyFiles(80),
	"too-many-bytes":     "d top/\nF top/a 60000\nF top/b 60000\nF top/c 60000\nF top/d 60000\nF top/e 60000",
	"specials":           "d top/\np top/fifo\nc top/null",
	"normal":             "g\nd top/\nd top/src/\nf top/src/a.ts export {}\nx top/run.sh #!/bin/sh\ns top/suid x\nl top/docs src\nl top/src/up ../run.sh\nf top/README.md hi",
}

func manyFiles(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "f top/file%d x\n", i)
	}
	return b.String()
}

// fuzzLimits are small so a fuzz iteration stays cheap.
var fuzzLimits = Limits{MaxBytes: 256 << 10, MaxFiles: 64, MaxFileBytes: 64 << 10}

func parseManifest(m string) []ent {
	var out []ent
	for _, line := range strings.Split(m, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		name, arg, _ := strings.Cut(rest, " ")
		size, _ := strconv.ParseInt(arg, 10, 64)
		switch kind {
		case "g":
			out = append(out, ent{typ: tar.TypeXGlobalHeader, name: "pax_global_header"})
		case "d":
			out = append(out, dir(name))
		case "f":
			out = append(out, file(name, arg))
		case "x", "s":
			e := file(name, arg)
			e.mode = 0o755
			if kind == "s" {
				e.mode = 0o6755
			}
			out = append(out, e)
		case "F":
			out = append(out, file(name, strings.Repeat("\x00", int(min(max(size, 0), 1<<20)))))
		case "B":
			if size > 0 {
				out = append(out, ent{typ: tar.TypeReg, name: name, mode: 0o644, size: size})
			}
		case "l":
			out = append(out, symlink(name, arg))
		case "h":
			out = append(out, hardlink(name, arg))
		case "p":
			out = append(out, special(tar.TypeFifo, name))
		case "c":
			out = append(out, special(tar.TypeChar, name))
		}
	}
	return out
}

// FuzzExtract: whatever the archive, nothing is written outside the target
// directory, nothing outside changes, and no link left in the target
// resolves to a place outside it.
func FuzzExtract(f *testing.F) {
	for _, name := range sortedSeeds() {
		f.Add(attackSeeds[name])
	}
	f.Fuzz(func(t *testing.T, manifest string) {
		extractContained(t, gz(tarOf(parseManifest(manifest)...)))
	})
}

// FuzzExtractArchive feeds raw tar bytes (gzip'd by the test), for what
// the tar reader itself makes of damaged input.
func FuzzExtractArchive(f *testing.F) {
	for _, name := range sortedSeeds() {
		if raw := tarOf(parseManifest(attackSeeds[name])...); len(raw) <= maxRawSeed {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		extractContained(t, gz(raw))
	})
}

// maxRawSeed keeps big archives (the size attacks, which FuzzExtract
// covers) out of the raw corpus: quoted, they would weigh megabytes.
const maxRawSeed = 16 << 10

func sortedSeeds() []string {
	var names []string
	for n := range attackSeeds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// extractContained extracts archive into base/ws/target next to sentinel
// files and checks the containment property.
func extractContained(t *testing.T, archive []byte) {
	base := t.TempDir()
	target := filepath.Join(base, "ws", "target")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{target, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sentinels := map[string]string{
		filepath.Join(outside, "keep"):       "outside",
		filepath.Join(base, "ws", "sibling"): "sibling",
	}
	for p, content := range sentinels {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	allowed := map[string]bool{base: true, filepath.Join(base, "ws"): true, outside: true}
	for p := range sentinels {
		allowed[p] = true
	}

	_, err := Extract(context.Background(), bytes.NewReader(archive), target, fuzzLimits)

	filepath.WalkDir(base, func(p string, d fs.DirEntry, werr error) error {
		if p == target || strings.HasPrefix(p, target+string(filepath.Separator)) {
			return nil
		}
		if !allowed[p] {
			t.Errorf("Extract (err %v) created %s outside the target", err, p)
		}
		return nil
	})
	for p, content := range sentinels {
		fi, lerr := os.Lstat(p)
		b, rerr := os.ReadFile(p)
		if lerr != nil || rerr != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 || string(b) != content {
			t.Errorf("Extract (err %v) changed %s: %v %v %q", err, p, lerr, rerr, b)
		}
	}
	filepath.WalkDir(target, func(p string, d fs.DirEntry, werr error) error {
		if werr != nil || d.Type()&fs.ModeSymlink == 0 {
			if werr == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
					t.Errorf("%s kept mode %v", p, fi.Mode())
				}
			}
			return nil
		}
		if err != nil {
			t.Errorf("Extract failed (%v) but left the link %s", err, p)
		}
		real, rerr := filepath.EvalSymlinks(p)
		if rerr == nil && real != target && !strings.HasPrefix(real, target+string(filepath.Separator)) {
			t.Errorf("link %s resolves to %s, outside the target", p, real)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrLimit) && !strings.Contains(err.Error(), "reading archive") && !strings.Contains(err.Error(), "no entries") {
		// Every refusal must be classified or name the archive as broken;
		// anything else would be reported as the bot's fault.
		t.Errorf("unclassified error: %v", err)
	}
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus files under testdata/fuzz")

// TestSeedCorpusFiles keeps testdata/fuzz/ in step with attackSeeds
// (go test -run TestSeedCorpusFiles -update-corpus rewrites it), so
// `go test -fuzz` starts from every attack even where f.Add is not read.
func TestSeedCorpusFiles(t *testing.T) {
	for _, name := range sortedSeeds() {
		manifest := attackSeeds[name]
		files := map[string]string{
			filepath.Join("testdata", "fuzz", "FuzzExtract", name): "go test fuzz v1\nstring(" + strconv.Quote(manifest) + ")\n",
		}
		if raw := tarOf(parseManifest(manifest)...); len(raw) <= maxRawSeed {
			files[filepath.Join("testdata", "fuzz", "FuzzExtractArchive", name)] = "go test fuzz v1\n[]byte(" + strconv.Quote(string(raw)) + ")\n"
		}
		for p, want := range files {
			if *updateCorpus {
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != want {
				t.Errorf("%s is missing or stale (%v): run go test -run TestSeedCorpusFiles -update-corpus", p, err)
			}
		}
	}
}
