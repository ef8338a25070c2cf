// Package annotate turns the output of test and lint commands into check-run
// annotations: the red and yellow marks GitHub shows on the lines of a pull
// request's diff.
//
// It understands the formats most tools print when they are not talking to
// a terminal:
//
//	path:line:col: message          gcc, clang, go vet, go build, eslint --format unix
//	path:line: message              gcc without columns, many linters
//	path(line,col): message         tsc
//	path:line:col - message         tsc --pretty
//	--- FAIL: TestX (0.00s)         go test, followed (or, with -v, preceded)
//	    file_test.go:12: message    by the test's log lines
//
// The output comes from commands running code that a push chose, so it is
// untrusted: any path that is absolute outside the workspace, or that climbs
// out of it with "..", is dropped rather than cleaned up, and every message
// is bounded. Paths inside the workspace are made relative to the
// repository root, which is what GitHub expects.
package annotate

import (
	"bufio"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Levels, as GitHub names them.
const (
	Failure = "failure"
	Warning = "warning"
	Notice  = "notice"
)

// DefaultMax is how many annotations Parse returns at most unless told.
const DefaultMax = 200

// Bounds on what one annotation carries; GitHub allows more, people read less.
const (
	maxMessage      = 4 << 10 // bytes
	maxLineNumber   = 10_000_000
	maxContinuation = 20 // extra lines of one go test message
	maxIndexed      = 50_000
)

// Annotation is one mark on one line of a file.
type Annotation struct {
	// Path is slash-separated and relative to the repository root; it
	// never starts with "/" and has no ".." element.
	Path string
	// Line is 1 or more; Column is 0 when the tool did not say.
	Line, Column int
	// Level is Failure, Warning or Notice.
	Level   string
	Message string
	// Title is a short heading (the failing test's name), or "".
	Title string
}

// Options say where the output was produced.
type Options struct {
	// Root is the absolute directory the command ran in: the repository's
	// root in the workspace. Absolute paths inside it are made relative to
	// it; other absolute paths are dropped. "" drops every absolute path.
	Root string
	// Files, when not nil, is the repository's tree (os.DirFS(Root)).
	// Annotations on files that do not exist in it are dropped (a line such
	// as "localhost:5432: connection refused" is not about a file), and the
	// bare file names go test prints (relative to their package) are found
	// in it. Without it, a path must at least look like one (contain a '.'
	// or a '/').
	Files fs.FS
	// Max bounds the number of annotations returned (DefaultMax when 0).
	Max int
}

var (
	ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

	// A path: no spaces, quotes, parentheses or colons (so a Windows drive
	// or a URL scheme never starts one).
	pathRE = `([^\s:()"'<>|]+)`
	// path:line:col: message and path:line: message
	colonRE = regexp.MustCompile(`^` + pathRE + `:(\d+)(?::(\d+))?:\s*(\S.*)$`)
	// tsc --pretty: path:line:col - message
	dashRE = regexp.MustCompile(`^` + pathRE + `:(\d+):(\d+)\s+-\s+(\S.*)$`)
	// tsc: path(line,col): message
	parenRE = regexp.MustCompile(`^` + pathRE + `\((\d+),(\d+)\):\s*(\S.*)$`)

	goRunRE    = regexp.MustCompile(`^=== (?:RUN|CONT|NAME|PAUSE)\s+(\S+)`)
	goResultRE = regexp.MustCompile(`^\s*--- (FAIL|PASS|SKIP): (\S+)`)
	goLogRE    = regexp.MustCompile(`^(\s+)([^\s:()"'<>|]+\.go):(\d+): ?(.*)$`)
	goPkgRE    = regexp.MustCompile(`^(?:FAIL|ok)\s+(\S+)\s`)

	warningRE = regexp.MustCompile(`(?i)\bwarning\b`)
	noteRE    = regexp.MustCompile(`(?i)^(?:note|info)\b`)
)

// candidate is an annotation before its path is checked; go test lines wait
// for the test's result and their package.
type candidate struct {
	Annotation
	goTest  string // the test it belongs to ("" for compiler-style lines)
	pkg     string // go test: the import path, once known
	isGo    bool
	indent  int // go test: indentation of the log line
	bareDir bool
}

// Parse returns the annotations found in output, in the order they appear,
// without duplicates, at most opts.Max of them.
func Parse(output string, opts Options) []Annotation {
	limit := opts.Max
	if limit <= 0 {
		limit = DefaultMax
	}
	var (
		cands    []*candidate
		current  string                // the go test whose output this is
		results  = map[string]string{} // go test → FAIL, PASS or SKIP
		sawFail  bool
		lastGo   *candidate // the go test line continuation lines extend
		extra    int
		pkgStart int // first candidate without a package yet
	)
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	sc.Split(scanLines)
	for sc.Scan() {
		line := strings.TrimRight(ansi.ReplaceAllString(sc.Text(), ""), "\r \t")
		if !utf8.ValidString(line) {
			line = strings.ToValidUTF8(line, "\uFFFD")
		}
		if lastGo != nil && line != "" && indentOf(line) > lastGo.indent && extra < maxContinuation &&
			!goLogRE.MatchString(line) && !goResultRE.MatchString(line) {
			lastGo.Message += "\n" + strings.TrimSpace(line)
			extra++
			continue
		}
		lastGo = nil
		if m := goRunRE.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		if m := goResultRE.FindStringSubmatch(line); m != nil {
			results[m[2]] = m[1]
			current = m[2]
			if m[1] == "FAIL" {
				sawFail = true
			}
			continue
		}
		if m := goLogRE.FindStringSubmatch(line); m != nil {
			n, ok := lineNumber(m[3])
			if !ok {
				continue
			}
			c := &candidate{
				Annotation: Annotation{Path: m[2], Line: n, Level: Failure, Message: strings.TrimSpace(m[4])},
				goTest:     current, isGo: true, indent: len(m[1]),
				bareDir: !strings.Contains(m[2], "/"),
			}
			if current != "" {
				c.Title = current + " failed"
			}
			cands = append(cands, c)
			lastGo, extra = c, 0
			continue
		}
		if m := goPkgRE.FindStringSubmatch(line); m != nil || line == "FAIL" {
			if m != nil {
				for _, c := range cands[pkgStart:] {
					if c.isGo && c.pkg == "" {
						c.pkg = m[1]
					}
				}
				pkgStart = len(cands)
			}
			if strings.HasPrefix(line, "FAIL") {
				sawFail = true
			}
			current = ""
			continue
		}
		if c := compilerLine(line, opts.Root); c != nil {
			cands = append(cands, c)
		}
	}

	r := resolver{opts: opts}
	seen := map[string]bool{}
	var out []Annotation
	for _, c := range cands {
		if len(out) >= limit {
			break
		}
		if c.isGo {
			switch results[c.goTest] {
			case "FAIL":
			case "":
				if !sawFail {
					continue
				}
			default:
				continue // the log of a test that passed or was skipped
			}
		}
		p, ok := r.path(c)
		if !ok {
			continue
		}
		a := c.Annotation
		a.Path = p
		a.Message = bound(a.Message)
		if a.Message == "" {
			continue
		}
		key := a.Path + "\x00" + strconv.Itoa(a.Line) + "\x00" + strconv.Itoa(a.Column) + "\x00" + a.Message
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, a)
	}
	return out
}

// compilerLine reads the one-line formats. The root is cut off first, so
// that a workspace whose path has a space in it still works.
func compilerLine(line, root string) *candidate {
	line = strings.TrimPrefix(strings.TrimLeft(line, " \t"), "vet: ")
	if root = strings.TrimRight(filepath.ToSlash(root), "/"); root != "" {
		line = strings.TrimPrefix(line, root+"/")
	}
	var m []string
	for _, re := range []*regexp.Regexp{parenRE, dashRE, colonRE} {
		if m = re.FindStringSubmatch(line); m != nil {
			break
		}
	}
	if m == nil {
		return nil
	}
	n, ok := lineNumber(m[2])
	if !ok {
		return nil
	}
	col, _ := strconv.Atoi(m[3])
	if col < 0 || col > maxLineNumber {
		col = 0
	}
	msg := strings.TrimSpace(m[4])
	level := Failure
	switch {
	case warningRE.MatchString(msg):
		level = Warning
	case noteRE.MatchString(msg):
		level = Notice
	}
	return &candidate{Annotation: Annotation{Path: m[1], Line: n, Column: col, Level: level, Message: msg}}
}

func lineNumber(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLineNumber {
		return 0, false
	}
	return n, true
}

// resolver checks paths against the workspace.
type resolver struct {
	opts    Options
	module  *string
	indexed bool
	byName  map[string][]string
}

// path returns c's path relative to the repository root, or false.
func (r *resolver) path(c *candidate) (string, bool) {
	p, ok := relative(c.Path, r.opts.Root)
	if !ok {
		return "", false
	}
	if c.isGo && c.bareDir {
		// go test prints a file's name relative to its package.
		return r.goFile(p, c.pkg)
	}
	if r.opts.Files == nil {
		return p, strings.ContainsAny(p, "./")
	}
	return p, r.isFile(p)
}

// relative cleans p and makes it relative to root; false for anything that
// would point outside the repository.
func relative(p, root string) (string, bool) {
	if p == "" || strings.ContainsAny(p, "\x00\\") || !utf8.ValidString(p) {
		return "", false
	}
	if strings.HasPrefix(p, "/") {
		if root == "" {
			return "", false
		}
		base := path.Clean(filepath.ToSlash(root))
		clean := path.Clean(p)
		if base == "/" {
			p = strings.TrimPrefix(clean, "/")
		} else if rest, ok := strings.CutPrefix(clean, base+"/"); ok {
			p = rest
		} else {
			return "", false
		}
	}
	clean := path.Clean(p)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || strings.HasPrefix(clean, "/") {
		return "", false
	}
	return clean, true
}

func (r *resolver) isFile(p string) bool {
	fi, err := fs.Stat(r.opts.Files, p)
	return err == nil && fi.Mode().IsRegular()
}

// goFile finds the file go test named: in its package's folder when the
// module path tells where that is, else at the root, else the only file of
// that name in the repository.
func (r *resolver) goFile(name, pkg string) (string, bool) {
	if r.opts.Files == nil {
		return name, true
	}
	if mod := r.modulePath(); mod != "" && pkg != "" {
		if dir, ok := strings.CutPrefix(pkg, mod+"/"); ok {
			if p, ok := relative(dir+"/"+name, ""); ok && r.isFile(p) {
				return p, true
			}
		}
	}
	if r.isFile(name) {
		return name, true
	}
	r.index()
	if found := r.byName[name]; len(found) == 1 {
		return found[0], true
	}
	return "", false
}

func (r *resolver) modulePath() string {
	if r.module != nil {
		return *r.module
	}
	mod := ""
	if data, err := fs.ReadFile(r.opts.Files, "go.mod"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
				mod = strings.Trim(strings.TrimSpace(rest), `"`)
				break
			}
		}
	}
	r.module = &mod
	return mod
}

// index lists the repository's Go files by name, skipping folders that
// hold other people's code, and stopping after maxIndexed entries so that a
// huge tree costs bounded time.
func (r *resolver) index() {
	if r.indexed {
		return
	}
	r.indexed = true
	r.byName = map[string][]string{}
	n := 0
	_ = fs.WalkDir(r.opts.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if n++; n > maxIndexed {
			return fs.SkipAll
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", ".git", "vendor", "testdata":
				if p != "." {
					return fs.SkipDir
				}
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".go") {
			r.byName[d.Name()] = append(r.byName[d.Name()], p)
		}
		return nil
	})
}

func indentOf(s string) int {
	return len(s) - len(strings.TrimLeft(s, " \t"))
}

// bound trims a message and cuts it to maxMessage bytes on a character
// boundary.
func bound(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= maxMessage {
		return s
	}
	n := maxMessage - len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// scanLines is bufio.ScanLines that also ends a line at a lone '\r' (progress
// output) and never fails on a line too long: it is cut.
func scanLines(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	for i, b := range data {
		if b == '\n' {
			return i + 1, data[:i], nil
		}
		if b == '\r' && i+1 < len(data) && data[i+1] != '\n' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF || len(data) >= 1<<20-1 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
