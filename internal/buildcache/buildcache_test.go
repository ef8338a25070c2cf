package buildcache

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// checkout is a run's checkout with a lockfile and installed modules.
func checkout(t *testing.T, lock string) string {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "pnpm-lock.yaml"), lock)
	write(t, filepath.Join(dir, "node_modules/left-pad/index.js"), "module.exports = 1")
	return dir
}

func TestSaveAndRestore(t *testing.T) {
	ctx := context.Background()
	s := New(t.TempDir(), 1<<30)
	paths := []string{"node_modules"}
	first := checkout(t, "lock v1")
	key, err := Key(first, []string{"pnpm-lock.yaml"}, paths)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "acme/app", "branch:feature", key, first, paths); err != nil {
		t.Fatal(err)
	}

	fresh := t.TempDir()
	write(t, filepath.Join(fresh, "pnpm-lock.yaml"), "lock v1")
	if hit, err := s.Restore(ctx, "acme/app", []string{DefaultScope}, key, fresh, paths); err != nil || hit != "" {
		t.Errorf("the default branch restored a branch's entry: %q, %v", hit, err)
	}
	if hit, err := s.Restore(ctx, "acme/app", []string{"branch:feature", DefaultScope}, key, fresh, paths); err != nil || hit != "branch:feature" {
		t.Fatalf("restore = %q, %v; want the branch's entry", hit, err)
	}
	if got := read(filepath.Join(fresh, "node_modules/left-pad/index.js")); got != "module.exports = 1" {
		t.Errorf("restored module = %q", got)
	}
	if hit, _ := s.Restore(ctx, "other/repo", []string{"branch:feature"}, key, t.TempDir(), paths); hit != "" {
		t.Error("another repository restored the entry")
	}
	changed, _ := Key(checkout(t, "lock v2"), []string{"pnpm-lock.yaml"}, paths)
	if changed == key {
		t.Error("a new lockfile kept the key")
	}
}

// TestSymlinksNeverLeadOut: a checkout whose folders are symlinks can
// neither make a save read a host file nor make a restore write outside.
func TestSymlinksNeverLeadOut(t *testing.T) {
	ctx := context.Background()
	s := New(t.TempDir(), 1<<30)
	host := t.TempDir()
	write(t, filepath.Join(host, "secret"), "host secret")

	evil := t.TempDir()
	if err := os.Symlink(host, filepath.Join(evil, "node_modules")); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "acme/app", DefaultScope, "k1", evil, []string{"node_modules"}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("saving a symlinked folder: %v", err)
	}
	if err := s.Save(ctx, "acme/app", DefaultScope, "k2", evil, []string{"node_modules/secret"}); err == nil {
		t.Error("saved a file through a symlinked folder")
	}

	good := checkout(t, "lock")
	if err := s.Save(ctx, "acme/app", DefaultScope, "k3", good, []string{"node_modules"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(ctx, "acme/app", []string{DefaultScope}, "k3", evil, []string{"node_modules"}); err != nil {
		t.Fatal(err)
	}
	if got := read(filepath.Join(host, "secret")); got != "host secret" {
		t.Errorf("the restore wrote through the symlink: %q", got)
	}
	if _, err := os.Stat(filepath.Join(host, "left-pad")); err == nil {
		t.Error("the restore wrote into the symlink's target")
	}
	if got := read(filepath.Join(evil, "node_modules/left-pad/index.js")); got != "module.exports = 1" {
		t.Errorf("restored into the checkout: %q", got)
	}
}

// TestEvictsLeastRecentlyUsed: past its size, the store drops the entries
// used longest ago, never the one just saved.
func TestEvictsLeastRecentlyUsed(t *testing.T) {
	ctx := context.Background()
	s := New(t.TempDir(), 2500)
	clock := time.Now()
	s.now = func() time.Time { return clock }
	paths := []string{"node_modules"}
	save := func(key string) {
		c := t.TempDir()
		write(t, filepath.Join(c, "node_modules/blob"), strings.Repeat("x", 1000))
		if err := s.Save(ctx, "acme/app", DefaultScope, key, c, paths); err != nil {
			t.Fatal(err)
		}
		e := s.entry("acme/app", DefaultScope, key)
		clock = clock.Add(time.Minute)
		_ = os.Chtimes(e, clock, clock)
	}
	save("a")
	save("b")
	// a is used again: b is now the least recently used.
	clock = clock.Add(time.Minute)
	if hit, _ := s.Restore(ctx, "acme/app", []string{DefaultScope}, "a", t.TempDir(), paths); hit == "" {
		t.Fatal("a was not restored")
	}
	save("c")
	for key, want := range map[string]bool{"a": true, "b": false, "c": true} {
		_, err := os.Stat(s.entry("acme/app", DefaultScope, key))
		if got := err == nil; got != want {
			t.Errorf("entry %s kept = %v, want %v", key, got, want)
		}
	}
}
