package cloudflare

import (
	"regexp"
	"strings"
)

// assetsIgnore holds the patterns of an assets folder's .assetsignore,
// which wrangler applies with gitignore's rules (workers-shared's
// createAssetsIgnoreFunction, through the npm package ignore): files it
// matches are not uploaded.
type assetsIgnore struct {
	rules []ignoreRule
}

type ignoreRule struct {
	re      *regexp.Regexp
	negate  bool // "!pattern": matched paths are uploaded again
	dirOnly bool // "pattern/": matches folders (and so all beneath them)
}

// parseAssetsIgnore reads .assetsignore's text. Lines that cannot be read
// as a pattern are skipped, as git and the ignore package skip them.
func parseAssetsIgnore(text string) assetsIgnore {
	var out assetsIgnore
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if r, ok := parseIgnoreLine(line); ok {
			out.rules = append(out.rules, r)
		}
	}
	return out
}

func parseIgnoreLine(line string) (ignoreRule, bool) {
	// Trailing spaces go unless escaped with a backslash.
	for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, `\ `) {
		line = line[:len(line)-1]
	}
	if line == "" || strings.HasPrefix(line, "#") {
		return ignoreRule{}, false
	}
	var r ignoreRule
	if strings.HasPrefix(line, "!") {
		r.negate, line = true, line[1:]
	} else if strings.HasPrefix(line, `\!`) || strings.HasPrefix(line, `\#`) {
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") {
		r.dirOnly, line = true, strings.TrimRight(line, "/")
	}
	if line == "" {
		return ignoreRule{}, false
	}
	// A slash at the start or in the middle anchors the pattern at the
	// folder's root; without one it matches at any depth.
	anchored := strings.Contains(line, "/")
	line = strings.TrimPrefix(line, "/")
	body, ok := globRegexp(line)
	if !ok {
		return ignoreRule{}, false
	}
	prefix := "^"
	if !anchored && !strings.HasPrefix(body, "(?:.*/)?") {
		prefix = "^(?:.*/)?"
	}
	// Case-insensitive, as the ignore package wrangler uses matches by
	// default.
	re, err := regexp.Compile("(?i)" + prefix + body + "$")
	if err != nil {
		return ignoreRule{}, false
	}
	r.re = re
	return r, true
}

// globRegexp translates one gitignore glob into a regular expression over
// slash-separated paths: * and ? stay within a path segment, [...] is a
// class, a backslash quotes the next character, and ** spans segments at
// the start (**/), at the end (/**) and between them (/**/).
func globRegexp(g string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(g); i++ {
		c := g[i]
		switch {
		case c == '\\':
			if i+1 == len(g) {
				return "", false
			}
			i++
			b.WriteString(regexp.QuoteMeta(string(g[i])))
		case strings.HasPrefix(g[i:], "**/") && (i == 0 || g[i-1] == '/'):
			b.WriteString("(?:.*/)?")
			i += 2
		case strings.HasPrefix(g[i:], "**") && i+2 == len(g) && (i == 0 || g[i-1] == '/'):
			b.WriteString(".*")
			i++
		case c == '*':
			for i+1 < len(g) && g[i+1] == '*' { // other runs of * are one *
				i++
			}
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			end := strings.IndexByte(g[i+1:], ']')
			if end < 0 {
				return "", false
			}
			class := g[i+1 : i+1+end]
			if end == 0 { // "[]…]": the ] is a member
				rest := strings.IndexByte(g[i+2:], ']')
				if rest < 0 {
					return "", false
				}
				class = g[i+1 : i+2+rest]
				end = rest + 1
			}
			b.WriteString("[")
			if class[0] == '!' || class[0] == '^' {
				b.WriteString("^/")
				class = class[1:]
			}
			for j := 0; j < len(class); j++ {
				switch class[j] {
				case '\\', '[', ']', '^':
					b.WriteByte('\\')
				}
				b.WriteByte(class[j])
			}
			b.WriteString("]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String(), true
}

// ignored reports whether the file at rel (slash-separated, relative to
// the assets folder) is left out: it is when one of its folders is, or
// when the last pattern matching it says so.
func (ig assetsIgnore) ignored(rel string) bool {
	if len(ig.rules) == 0 {
		return false
	}
	for i := range len(rel) {
		if rel[i] == '/' && ig.matches(rel[:i], true) {
			return true
		}
	}
	return ig.matches(rel, false)
}

func (ig assetsIgnore) matches(p string, dir bool) bool {
	out := false
	for _, r := range ig.rules {
		if r.dirOnly && !dir {
			continue
		}
		if r.re.MatchString(p) {
			out = !r.negate
		}
	}
	return out
}
