// Package buildcache keeps folders of a run's checkout (node_modules, a
// package store) between runs, keyed by the hash of lockfiles, so that a
// setup command with nothing new to install finds it installed.
//
// Entries belong to a repository and a scope. A run restores from its own
// scope, then from the default branch's; it saves only to its own. So a
// pull request's branch can never plant files that production builds with
// (GitHub Actions scopes its caches the same way), and a fork's run saves
// nothing at all. Paths are checked component by component: a checkout
// whose folders are symlinks can neither make the cache read a host file
// nor make a restore write outside the checkout.
//
// The store is bounded: after a save, the entries least recently used go
// until the whole fits in its size.
package buildcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultScope is the default branch's scope (production, and its tests).
const DefaultScope = "default"

// Store is the cache on the bot's disk.
type Store struct {
	dir      string
	maxBytes int64
	mu       sync.Mutex // one save or eviction at a time
	now      func() time.Time
}

// New returns the store in dir, bounded to maxBytes (at least one entry
// is always kept).
func New(dir string, maxBytes int64) *Store {
	return &Store{dir: dir, maxBytes: maxBytes, now: time.Now}
}

// Key hashes the key files of a checkout (a missing one counts as empty,
// under its name), with the saved paths: another set of paths is another
// entry.
func Key(checkout string, files, paths []string) (string, error) {
	h := sha256.New()
	for _, name := range files {
		fmt.Fprintf(h, "file %q\n", name)
		p, err := inside(checkout, name)
		if err != nil {
			return "", err
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	for _, p := range paths {
		fmt.Fprintf(h, "path %q\n", p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// inside is rel under root, refusing a path that leaves root or passes
// through a symlink on the way (the last component may be anything).
func inside(root, rel string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash(rel))
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) || clean == "." {
		return "", fmt.Errorf("buildcache: %q is not a path inside the checkout", rel)
	}
	parts := strings.Split(clean, string(filepath.Separator))
	cur := root
	for _, part := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
			return "", fmt.Errorf("buildcache: %s in %q is not a folder of the checkout", part, rel)
		}
	}
	return filepath.Join(root, clean), nil
}

func (s *Store) entry(repo, scope, key string) string {
	sum := sha256.Sum256([]byte(repo + "\x00" + scope))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:12]), key)
}

// Restore copies the paths of the first entry of (repo, scope, key) found
// in scopes into checkout, replacing what is there, and returns its scope
// ("" when none has the key).
func (s *Store) Restore(ctx context.Context, repo string, scopes []string, key, checkout string, paths []string) (string, error) {
	for _, scope := range scopes {
		e := s.entry(repo, scope, key)
		if _, err := os.Stat(filepath.Join(e, ".complete")); err != nil {
			continue
		}
		now := s.now()
		_ = os.Chtimes(e, now, now) // recently used
		for _, p := range paths {
			src := filepath.Join(e, "files", filepath.FromSlash(filepath.Clean(p)))
			if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			dst, err := inside(checkout, p)
			if err != nil {
				return "", err
			}
			if err := os.RemoveAll(dst); err != nil { // a symlink goes, not its target
				return "", err
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return "", err
			}
			if err := CopyTree(ctx, src, dst); err != nil {
				return "", err
			}
		}
		return scope, nil
	}
	return "", nil
}

// Save stores the paths of checkout as (repo, scope, key), unless the
// entry exists, then evicts the least recently used entries beyond the
// store's size.
func (s *Store) Save(ctx context.Context, repo, scope, key, checkout string, paths []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(repo, scope, key)
	if _, err := os.Stat(filepath.Join(e, ".complete")); err == nil {
		return nil
	}
	tmp := e + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	for _, p := range paths {
		src, err := inside(checkout, p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("buildcache: %s is a symlink: only folders and files of the checkout are kept", p)
		}
		dst := filepath.Join(tmp, "files", filepath.FromSlash(filepath.Clean(p)))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		if err := CopyTree(ctx, src, dst); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o600); err != nil {
		return err
	}
	if err := os.RemoveAll(e); err != nil {
		return err
	}
	if err := os.Rename(tmp, e); err != nil {
		return err
	}
	return s.evict(e)
}

// evict removes the least recently used entries until the store fits in
// its size, keeping keep (the entry just saved).
func (s *Store) evict(keep string) error {
	type ent struct {
		path string
		used time.Time
		size int64
	}
	var all []ent
	var total int64
	repos, _ := os.ReadDir(s.dir)
	for _, r := range repos {
		keys, _ := os.ReadDir(filepath.Join(s.dir, r.Name()))
		for _, k := range keys {
			p := filepath.Join(s.dir, r.Name(), k.Name())
			fi, err := os.Stat(p)
			if err != nil || strings.HasSuffix(p, ".tmp") {
				continue
			}
			size := treeSize(p)
			all = append(all, ent{p, fi.ModTime(), size})
			total += size
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	for _, e := range all {
		if total <= s.maxBytes {
			break
		}
		if e.path == keep {
			continue
		}
		if err := os.RemoveAll(e.path); err != nil {
			return err
		}
		total -= e.size
	}
	return nil
}

func treeSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// CopyTree copies src to dst (which must not exist) as cp -a does:
// symlinks stay links, modes and times are kept. No shell is involved and
// the paths are the bot's own.
func CopyTree(ctx context.Context, src, dst string) error {
	if out, err := exec.CommandContext(ctx, "cp", "-a", "--", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("buildcache: copy %s: %v: %s", filepath.Base(src), err, strings.TrimSpace(string(out)))
	}
	return nil
}
