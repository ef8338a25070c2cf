// Package workspace unpacks a repository's source, as GitHub serves it
// (a gzip'd tarball whose entries sit under one "owner-repo-sha/" folder),
// into a fresh directory where the pipeline's commands then run.
//
// The tarball comes from a pull request, possibly from a fork, so its
// contents are hostile until proven otherwise. Extract refuses anything
// that could write or point outside the workspace: absolute names, ".."
// components, hard links, symbolic links whose target (followed through
// other links) leaves the directory, and entries placed under a symbolic
// link. A link to /etc or to the bot's credentials would otherwise let a
// build step read or publish them. Every write goes through os.Root, so
// even a mistake in these checks cannot escape the directory. Size, entry
// count and per-file limits stop archive bombs before they fill the disk,
// device and FIFO entries are skipped, and set-user-ID bits are dropped
// while executable bits are kept (scripts must still run).
package workspace

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Limits bound what one archive may unpack to. Zero fields take the
// defaults.
type Limits struct {
	// MaxBytes bounds the total size of the files (default 1 GiB).
	MaxBytes int64
	// MaxFiles bounds the entries created: files, directories and symbolic
	// links (default 100,000).
	MaxFiles int
	// MaxFileBytes bounds one file (default 256 MiB).
	MaxFileBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 1 << 30
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 100_000
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = 256 << 20
	}
	return l
}

// Stats says what was extracted.
type Stats struct {
	// Root is the top-level folder that was stripped, e.g.
	// "revelations-studio-codex-1a2b3c4".
	Root     string
	Files    int
	Dirs     int
	Symlinks int
	// Bytes is the total size of the files written.
	Bytes int64
	// Skipped counts device and FIFO entries, which are not created.
	Skipped int
}

// Kinds of EntryError, for errors.Is: an archive the bot refuses (the
// pull request's fault) as opposed to a failure of the bot or the disk.
var (
	// ErrUnsafe marks an entry that would escape the workspace or that the
	// workspace does not support (hard links, unknown types, duplicates).
	ErrUnsafe = errors.New("unsafe archive entry")
	// ErrLimit marks an archive over one of the Limits.
	ErrLimit = errors.New("archive limit exceeded")
)

// EntryError is an archive entry Extract refused.
type EntryError struct {
	// Entry is the name as it appears in the archive (untrusted text:
	// escape it before putting it in Markdown).
	Entry  string
	Reason string
	Kind   error // ErrUnsafe or ErrLimit
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("workspace: entry %q: %s", e.Entry, e.Reason)
}

func (e *EntryError) Unwrap() error { return e.Kind }

func unsafeEntry(name, format string, args ...any) error {
	return &EntryError{Entry: name, Reason: fmt.Sprintf(format, args...), Kind: ErrUnsafe}
}

func overLimit(name, format string, args ...any) error {
	return &EntryError{Entry: name, Reason: fmt.Sprintf(format, args...), Kind: ErrLimit}
}

// maxLinkHops is how many symbolic links one path may pass through, as in
// Linux (ELOOP after 40).
const maxLinkHops = 40

// Extract unpacks the gzip'd tar read from r into dir, which must exist and
// be empty, stripping the single top-level folder GitHub puts every entry
// under. On error the directory holds a partial tree (without any of the
// symbolic links): remove it.
func Extract(ctx context.Context, r io.Reader, dir string, limits Limits) (Stats, error) {
	limits = limits.withDefaults()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Stats{}, fmt.Errorf("workspace: extract into %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return Stats{}, fmt.Errorf("workspace: extract into %s: directory is not empty", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Stats{}, fmt.Errorf("workspace: extract into %s: %w", dir, err)
	}
	defer root.Close()

	gz, err := gzip.NewReader(ctxReader{ctx, r})
	if err != nil {
		if ctx.Err() != nil {
			return Stats{}, fmt.Errorf("workspace: extract into %s: %w", dir, ctx.Err())
		}
		return Stats{}, fmt.Errorf("workspace: archive is not gzip-compressed: %w", err)
	}
	defer gz.Close()
	// Entries whose data is never read (skipped ones) still cost
	// decompression; cap the whole stream too. Tar needs 512-byte headers,
	// padding and sometimes extended headers per entry: 4 KiB each is ample.
	stream := &limitReader{r: gz, left: limits.MaxBytes + int64(limits.MaxFiles+16)*4096}
	x := &extractor{
		root:     root,
		limits:   limits,
		symlinks: map[string]bool{},
	}
	if err := x.run(tar.NewReader(stream)); err != nil {
		// Links are checked in full only at the end; do not leave one
		// behind that might lead out, in case the caller keeps the tree.
		for _, l := range x.links {
			_ = root.Remove(l)
		}
		if ctx.Err() != nil && !errors.As(err, new(*EntryError)) {
			err = fmt.Errorf("workspace: extract into %s: %w", dir, ctx.Err())
		}
		return x.stats, err
	}
	return x.stats, nil
}

type extractor struct {
	root     *os.Root
	limits   Limits
	stats    Stats
	symlinks map[string]bool // relative paths of the links created
	links    []string
}

func (x *extractor) run(tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return archiveError(err)
		}
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
	if x.stats.Root == "" {
		return errors.New("workspace: archive has no entries")
	}
	// A link that stays inside on its own can still lead outside through
	// another ("sub/x" -> "..", then "evil" -> "sub/x/.."). With the whole
	// tree in place, follow every link as the kernel would.
	sort.Strings(x.links)
	for _, l := range x.links {
		if err := x.checkLinkResolves(l); err != nil {
			return err
		}
	}
	return nil
}

func archiveError(err error) error {
	if errors.Is(err, ErrLimit) {
		return err
	}
	return fmt.Errorf("workspace: reading archive: %w", err)
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil // GitHub's pax header naming the commit
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		x.stats.Skipped++
		return nil
	}
	name := hdr.Name
	rel, err := x.relative(name, hdr.Typeflag == tar.TypeDir)
	if err != nil || rel == "" {
		return err
	}
	if x.stats.Files+x.stats.Dirs+x.stats.Symlinks >= x.limits.MaxFiles {
		return overLimit(name, "more than %d entries (the limit)", x.limits.MaxFiles)
	}
	if err := x.checkParents(name, rel); err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := x.root.MkdirAll(rel, 0o755); err != nil {
			return x.fsError(name, err)
		}
		x.stats.Dirs++
	case tar.TypeReg: // archive/tar reports old-style '\x00' entries as TypeReg too
		return x.file(tr, hdr, name, rel)
	case tar.TypeSymlink:
		return x.symlink(hdr.Linkname, name, rel)
	case tar.TypeLink:
		return unsafeEntry(name, "hard links are not allowed (to %q)", hdr.Linkname)
	default:
		return unsafeEntry(name, "unsupported entry type %q", string(hdr.Typeflag))
	}
	return nil
}

// relative checks an archive name and returns it relative to the
// workspace, without the top-level folder. "" means the folder itself.
func (x *extractor) relative(name string, isDir bool) (string, error) {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return "", unsafeEntry(name, "empty name or NUL byte in name")
	}
	if strings.HasPrefix(name, "/") {
		return "", unsafeEntry(name, "absolute path")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", unsafeEntry(name, `path contains ".."`)
		}
		// The file system would refuse it anyway (ENAMETOOLONG); refusing
		// here names the entry and the rule instead of an OS error.
		if len(c) > maxNameBytes {
			return "", overLimit(name, "a path component is longer than %d bytes", maxNameBytes)
		}
	}
	if len(name) > maxPathBytes {
		return "", overLimit(name, "the path is longer than %d bytes", maxPathBytes)
	}
	clean := path.Clean(name) // only drops "." and repeated '/' now
	top, rest, _ := strings.Cut(clean, "/")
	if top == "." || top == "" {
		return "", unsafeEntry(name, "no top-level folder")
	}
	if x.stats.Root == "" {
		x.stats.Root = top
	} else if top != x.stats.Root {
		return "", unsafeEntry(name, "outside the top-level folder %q", x.stats.Root)
	}
	if rest == "" && !isDir {
		return "", unsafeEntry(name, "the top-level entry must be a folder")
	}
	return rest, nil
}

// maxNameBytes and maxPathBytes are Linux's NAME_MAX and PATH_MAX.
const (
	maxNameBytes = 255
	maxPathBytes = 4096
)

// checkParents refuses an entry below a symbolic link: the link's target is
// checked for itself, but ".." after a link resolves differently than it
// reads, so nothing is ever created through one.
func (x *extractor) checkParents(name, rel string) error {
	for p := path.Dir(rel); p != "."; p = path.Dir(p) {
		if x.symlinks[p] {
			return unsafeEntry(name, "parent %q is a symbolic link", p)
		}
	}
	return nil
}

func (x *extractor) file(tr *tar.Reader, hdr *tar.Header, name, rel string) error {
	if hdr.Size < 0 {
		return unsafeEntry(name, "negative size")
	}
	if hdr.Size > x.limits.MaxFileBytes {
		return overLimit(name, "file is %d bytes, the limit is %d", hdr.Size, x.limits.MaxFileBytes)
	}
	if x.stats.Bytes+hdr.Size > x.limits.MaxBytes {
		return overLimit(name, "archive unpacks to more than %d bytes (the limit)", x.limits.MaxBytes)
	}
	if dir := path.Dir(rel); dir != "." {
		if err := x.root.MkdirAll(dir, 0o755); err != nil {
			return x.fsError(name, err)
		}
	}
	// Git records only 644 and 755; anything executable becomes 755, and
	// set-user-ID, set-group-ID and sticky bits are dropped.
	perm := fs.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		perm = 0o755
	}
	// O_EXCL: a second entry with the same name (or one naming an existing
	// link) is refused instead of writing through it.
	f, err := x.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return x.fsError(name, err)
	}
	src := &readErrs{r: tr}
	n, err := io.Copy(f, src)
	if err == nil && n != hdr.Size {
		src.err, err = io.ErrUnexpectedEOF, io.ErrUnexpectedEOF
	}
	if err == nil {
		err = f.Chmod(perm) // exact mode, whatever the umask
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrLimit):
		return err
	case src.err != nil: // the archive is damaged, not the disk
		return fmt.Errorf("workspace: reading archive at entry %q: %w", name, src.err)
	default:
		return fmt.Errorf("workspace: entry %q: %w", name, err)
	}
	x.stats.Files++
	x.stats.Bytes += n
	return nil
}

func (x *extractor) symlink(target, name, rel string) error {
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return unsafeEntry(name, "empty symbolic link target")
	}
	if strings.HasPrefix(target, "/") {
		return unsafeEntry(name, "symbolic link to absolute path %q", target)
	}
	// Read as written, the target must stay inside at every step.
	depth := strings.Count(rel, "/") // components of the link's directory
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return unsafeEntry(name, "symbolic link target %q leaves the workspace", target)
			}
		default:
			depth++
		}
	}
	if dir := path.Dir(rel); dir != "." {
		if err := x.root.MkdirAll(dir, 0o755); err != nil {
			return x.fsError(name, err)
		}
	}
	if err := x.root.Symlink(target, rel); err != nil {
		return x.fsError(name, err)
	}
	x.symlinks[rel] = true
	x.links = append(x.links, rel)
	x.stats.Symlinks++
	return nil
}

// checkLinkResolves follows link the way the kernel would, within the
// extracted tree, and fails if any step goes above the workspace. Parts of
// the path that do not exist (yet) are followed as written, so a dangling
// link cannot be made to point outside later by creating what it names.
func (x *extractor) checkLinkResolves(link string) error {
	target, err := x.root.Readlink(link)
	if err != nil {
		return x.fsError(link, err)
	}
	var at []string // resolved location: real directories only
	if d := path.Dir(link); d != "." {
		at = strings.Split(d, "/")
	}
	todo := strings.Split(target, "/")
	hops, missing := 0, false
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return unsafeEntry(x.archiveName(link), "symbolic link target %q leads outside the workspace through other links", target)
			}
			at = at[:len(at)-1]
			continue
		}
		at = append(at, c)
		if missing {
			continue
		}
		p := strings.Join(at, "/")
		fi, err := x.root.Lstat(p)
		if err != nil {
			missing = true
			continue
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		hops++
		if hops > maxLinkHops {
			return unsafeEntry(x.archiveName(link), "symbolic link loop")
		}
		next, err := x.root.Readlink(p)
		if err != nil {
			return x.fsError(link, err)
		}
		if strings.HasPrefix(next, "/") {
			return unsafeEntry(x.archiveName(link), "symbolic link leads to absolute path %q", next)
		}
		at = at[:len(at)-1]
		todo = append(strings.Split(next, "/"), todo...)
	}
	return nil
}

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

func (x *extractor) archiveName(rel string) string {
	return x.stats.Root + "/" + rel
}

// fsError turns a refusal by the file system into an EntryError where the
// archive is to blame (duplicates, a file where a folder should be, os.Root
// stopping an escape) and keeps other errors (disk full) as they are.
func (x *extractor) fsError(name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrExist), isNotDir(err):
		return unsafeEntry(name, "appears twice or collides with another entry")
	case strings.Contains(err.Error(), "path escapes from parent"):
		return unsafeEntry(name, "path escapes the workspace")
	case errors.Is(err, syscall.ELOOP):
		// A folder entry over a link that loops (top/b -> b/..//.): os.Root
		// refuses to follow it; the archive is to blame.
		return unsafeEntry(name, "passes through a symbolic link that loops")
	}
	return fmt.Errorf("workspace: entry %q: %w", name, err)
}

// readErrs remembers a read error, to tell a damaged archive from a
// failing disk after io.Copy.
type readErrs struct {
	r   io.Reader
	err error
}

func (r *readErrs) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// ctxReader stops reading once ctx is done, so a slow or endless download
// ends with the run.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

var errArchiveTooBig = fmt.Errorf("workspace: decompressed archive is larger than the limits allow: %w", ErrLimit)

// limitReader fails, rather than pretending the stream ended, once more
// than left bytes were read.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errArchiveTooBig
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// Workspace is a fresh directory for one run's source.
type Workspace struct {
	dir string
}

// New creates an empty, private directory under parent ("" means the
// system's temporary directory).
func New(parent string) (*Workspace, error) {
	dir, err := os.MkdirTemp(parent, "deploybot-ws-")
	if err != nil {
		return nil, fmt.Errorf("workspace: create under %q: %w", parent, err)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &Workspace{dir: dir}, nil
}

// Dir is the workspace's absolute path.
func (w *Workspace) Dir() string { return w.dir }

// Extract unpacks a GitHub tarball into the workspace; see Extract.
func (w *Workspace) Extract(ctx context.Context, r io.Reader, limits Limits) (Stats, error) {
	return Extract(ctx, r, w.dir, limits)
}

// Remove deletes the workspace and everything in it; see RemoveAll. It may
// be called more than once.
func (w *Workspace) Remove() error {
	return RemoveAll(w.dir)
}

// RemoveAll deletes the tree at dir even when parts of it are read-only,
// as tools such as Go's module cache leave them, by restoring owner
// permissions on its directories first. Symbolic links are removed, never
// followed.
func RemoveAll(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, werr error) error {
		if d != nil && d.IsDir() { // IsDir is false for a link to a folder
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err = os.RemoveAll(dir); err != nil {
		return fmt.Errorf("workspace: remove %s: %w", dir, err)
	}
	return nil
}
