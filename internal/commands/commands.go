// Package commands finds the slash commands (/deploy, /redeploy, /destroy,
// /help) that people write in pull-request comments to steer the bot.
// /deploy may name the commit it approves ("/deploy 1a2b3c4"), so that an
// approval of a fork's code holds for exactly the commit the maintainer
// reviewed, whatever is pushed while the comment is on its way.
//
// Comment bodies are attacker-controlled text, so the parser is strict about
// what counts as a command, total (any byte string is a valid input, nothing
// panics), linear in the size of the comment, and caps how many results one
// comment can produce. It follows the Markdown that GitHub renders closely
// enough that what looks like a command to a reader is one, and what a reader
// sees as code or as a quotation of somebody else is not: quoting a comment
// that said "/destroy" must never destroy anything again.
package commands

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Names of the commands.
const (
	Deploy   = "deploy"
	Redeploy = "redeploy"
	Destroy  = "destroy"
	Help     = "help"
)

// resetDB is the only option of any command (/redeploy). It is matched
// exactly: a destructive switch should not have spellings.
const resetDB = "--reset-db"

// The length of the commit SHA /deploy accepts, in hex digits: git's own
// shortest abbreviation, up to a whole SHA-1.
const (
	MinSHA = 7
	MaxSHA = 40
)

// Limits that keep a hostile comment cheap to handle.
const (
	// maxLineBytes: longer lines are never commands. A real command line is
	// short; this bounds the work per line and the size of what is echoed.
	maxLineBytes = 1000
	// maxResults caps commands plus problems per comment, so that a pasted
	// wall of commands cannot start hundreds of runs or a huge reply.
	maxResults = 20
	// maxTextRunes bounds Problem.Text, which is echoed in replies.
	maxTextRunes = 100
	// maxQuotedRunes bounds the user's word quoted in Problem.Reason.
	maxQuotedRunes = 40
	// maxFuzzyRunes: a word longer than this is more than 2 edits away from
	// every name (the longest, "redeploy", has 8 letters).
	maxFuzzyRunes = 10
)

// Command is one command found in a comment, in comment order.
type Command struct {
	Name    string // one of the constants
	ResetDB bool   // /redeploy --reset-db
	SHA     string // /deploy <sha>: 7 to 40 hex digits, lower case; "" when none is named
	Line    int    // 1-based line in the comment
	Text    string // the line as written (trimmed), for replies and logs
}

// Problem is a line that starts like one of the bot's commands but is not a
// valid one (unknown name close to ours, or bad arguments); the bot answers
// it with Usage.
//
// Text and Reason contain text the commenter wrote (Reason at most one word
// of it, Go-quoted and shortened): render them as untrusted Markdown.
type Problem struct {
	Line   int
	Text   string // the line as written (trimmed, at most 100 runes, invalid UTF-8 replaced by U+FFFD)
	Reason string // e.g. `unknown command "/depoy" (did you mean /deploy?)`
}

// Usage is the short usage text for replies to problems (markdown, a few lines).
const Usage = "Write one command alone at the start of a line:\n" +
	"- `/deploy` deploy the preview; `/deploy <sha>` only if that commit is the head (on a fork: approves that commit)\n" +
	"- `/redeploy` rebuild the preview; `/redeploy --reset-db` also resets its database branch\n" +
	"- `/destroy` delete the preview\n" +
	"- `/help` explain the commands"

// Parse finds the commands in a comment body.
//
// A command is a line that starts, after at most 3 spaces, with "/name" and
// nothing else but its arguments. Lines inside fenced code blocks (``` or
// ~~~), indented code (4+ spaces or a tab), quotations ("> ") and inline
// code are not commands. Lines longer than 1000 bytes are ignored. Slash
// words that are not ours (other bots' "/lgtm", paths like "/usr/bin") are
// ignored silently; near misses ("/depoy", "/deploy-now") and bad arguments
// become Problems. The only arguments are /redeploy's --reset-db and the
// commit /deploy may name: 7 to 40 hex digits, any case (Command.SHA holds
// them in lower case; whether they name the right commit is the caller's
// question). At most 20 results (commands plus problems) are returned;
// the rest of the comment is not read.
func Parse(body string) (cmds []Command, problems []Problem) {
	body = strings.TrimPrefix(body, "\uFEFF")
	var open fence // the fenced code block the current line is in, if any
	for lineNo := 1; body != "" && len(cmds)+len(problems) < maxResults; lineNo++ {
		var line string
		if i := strings.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, ""
		}
		line = strings.TrimSuffix(line, "\r")

		// Fences are tracked on every line, long or not: skipping a long
		// closing fence would turn the rest of the comment into code.
		if open.n > 0 {
			if open.closedBy(line) {
				open = fence{}
			}
			continue
		}
		if f, ok := opening(line); ok {
			open = f
			continue
		}
		if len(line) > maxLineBytes {
			continue
		}
		// Only "/" after at most 3 spaces starts a command. That alone
		// rules out indented code (a tab or a 4th space), quotations
		// (">" first) and inline code ("`" first), like list items and
		// any other prose.
		rest, ok := afterIndent(line)
		if !ok || rest[0] != '/' {
			continue
		}
		c, p, found := parseLine(rest)
		switch {
		case !found:
		case p.Reason != "":
			p.Line = lineNo
			problems = append(problems, p)
		default:
			c.Line = lineNo
			cmds = append(cmds, c)
		}
	}
	return cmds, problems
}

// parseLine reads a line that starts with '/'. found is false when the line
// is none of the bot's business; otherwise either p.Reason is set or c is the
// command.
func parseLine(s string) (c Command, p Problem, found bool) {
	text := strings.TrimRightFunc(s, unicode.IsSpace)
	word, args := field(text)
	name := word[1:]
	if name == "" || name[0] == '/' {
		return c, p, false // "/", "//", "// a code comment", "//host/path"
	}
	canon := known(name)
	if canon == "" {
		guess := suggest(name)
		if guess == "" {
			return c, p, false // another bot's command or a path
		}
		return c, problem(text, fmt.Sprintf("unknown command %s (did you mean /%s?)", quote(word), guess)), true
	}

	c = Command{Name: canon, Text: text}
	if canon == Deploy && args != "" {
		sha, more := field(args)
		switch reason := checkSHA(sha); {
		case reason != "":
			return c, problem(text, reason), true
		case more != "":
			return c, problem(text, fmt.Sprintf("unexpected argument %s for /deploy (it takes one commit SHA)", quote(more))), true
		}
		c.SHA = strings.ToLower(sha)
		return c, p, true
	}
	for args != "" {
		var arg string
		arg, args = field(args)
		switch {
		case canon != Redeploy:
			return c, problem(text, fmt.Sprintf("/%s takes no arguments", canon)), true
		case arg == resetDB && c.ResetDB:
			return c, problem(text, "/redeploy takes "+resetDB+" only once"), true
		case arg == resetDB:
			c.ResetDB = true
		case strings.HasPrefix(arg, "-"):
			return c, problem(text, fmt.Sprintf("unknown option %s for /redeploy (use %s)", quote(arg), resetDB)), true
		default:
			return c, problem(text, fmt.Sprintf("unexpected argument %s for /redeploy (its only option is %s)", quote(arg), resetDB)), true
		}
	}
	return c, p, true
}

// checkSHA says what is wrong with the argument of /deploy, "" if nothing:
// it must be 7 to 40 hex digits (either case, as git prints and accepts them).
func checkSHA(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return fmt.Sprintf("/deploy takes only a commit SHA (%d to %d hex digits, e.g. /deploy 1a2b3c4), not %s", MinSHA, MaxSHA, quote(s))
		}
	}
	if len(s) < MinSHA || len(s) > MaxSHA {
		return fmt.Sprintf("the commit SHA %s has %d hex digits; write %d to %d", quote(s), len(s), MinSHA, MaxSHA)
	}
	return ""
}

func problem(text, reason string) Problem {
	return Problem{Text: strings.ToValidUTF8(clip(text, maxTextRunes), "\uFFFD"), Reason: reason}
}

// field returns the first whitespace-separated field of s and what follows
// it. Whitespace is Unicode's, as for strings.TrimSpace, so that Text and
// the fields agree on where the line ends.
func field(s string) (first, rest string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		return s[:i], strings.TrimLeftFunc(s[i:], unicode.IsSpace)
	}
	return s, ""
}

// names lists the commands in the order used to break ties between
// suggestions.
func names() [4]string { return [4]string{Deploy, Redeploy, Destroy, Help} }

// known returns the command called name, ignoring ASCII case, or "". Only
// ASCII folds: "/deſtroy" (long s) is not /destroy, though Unicode case
// folding would say so.
func known(name string) string {
	for _, k := range names() {
		if len(name) == len(k) && hasPrefixFold(name, k) {
			return k
		}
	}
	return ""
}

// suggest returns the command that name was probably meant to be, or "" if
// name does not look like one of ours: a name with one of ours as a prefix
// ("deploy-now", "destroyall"), else the closest name within a few edits
// ("depoy", "hlep").
func suggest(name string) string {
	best := ""
	for _, k := range names() {
		if len(name) > len(k) && hasPrefixFold(name, k) && len(k) > len(best) {
			best = k
		}
	}
	if best != "" {
		return best
	}
	var buf [maxFuzzyRunes]rune
	n := 0
	for _, r := range name {
		if n == len(buf) {
			return ""
		}
		buf[n] = asciiLower(r)
		n++
	}
	bestDist := 0
	for _, k := range names() {
		// A third of the name's length, so at most 2 for the long names
		// but 1 for "help": with 2, other bots' "/hold" and greetings like
		// "/hey" and "/hello" would get a reply.
		limit := len(k) / 3
		if n < len(k)-limit || n > len(k)+limit {
			continue // the length difference alone is too many edits
		}
		if d := distance(buf[:n], k); d <= limit && (best == "" || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best
}

// distance is the optimal string alignment distance between a and the
// ASCII word b: insertions, deletions, substitutions and transpositions of
// adjacent letters each cost 1. a has at most maxFuzzyRunes runes and b at
// most 8 letters, so the table is small (distances fit a byte) and lives on
// the stack.
func distance(a []rune, b string) int {
	var d [maxFuzzyRunes + 1][maxFuzzyRunes + 1]uint8
	for i := 0; i <= len(a); i++ {
		d[i][0] = uint8(i)
	}
	for j := 0; j <= len(b); j++ {
		d[0][j] = uint8(j)
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := uint8(1)
			if a[i-1] == rune(b[j-1]) {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == rune(b[j-2]) && a[i-2] == rune(b[j-1]) {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return int(d[len(a)][len(b)])
}

// hasPrefixFold reports whether s starts with the lower-case ASCII word
// prefix, ignoring ASCII case in s.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if asciiLower(rune(s[i])) != rune(prefix[i]) {
			return false
		}
	}
	return true
}

func asciiLower(r rune) rune {
	if 'A' <= r && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// quote shows a word of the comment in a Reason: Go-quoted, so control
// characters and invalid UTF-8 are visible, and shortened.
func quote(s string) string {
	return strconv.Quote(clip(s, maxQuotedRunes))
}

// clip shortens s to at most n runes (an invalid byte counts as one),
// marking a cut with "…".
func clip(s string, n int) string {
	i := 0
	for k := 0; k < n-1; k++ {
		if i == len(s) {
			return s
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	if i == len(s) {
		return s
	}
	// One rune left in the budget: either it is the last one, or it
	// becomes the "…".
	if _, size := utf8.DecodeRuneInString(s[i:]); i+size == len(s) {
		return s
	}
	return s[:i] + "…"
}

// afterIndent strips at most 3 leading spaces, the indentation Markdown
// allows before a paragraph or a fence; ok is false when nothing is left.
func afterIndent(line string) (rest string, ok bool) {
	i := 0
	for i < 3 && i < len(line) && line[i] == ' ' {
		i++
	}
	return line[i:], i < len(line)
}

// fence is an open fenced code block: its character and length. The zero
// value means no block is open.
type fence struct {
	char byte
	n    int
}

// opening returns the fence that line opens, if it opens one: at most 3
// spaces, then 3 or more backticks or tildes. A backtick fence's info string
// cannot contain a backtick ("```code```" is inline code), as in CommonMark.
func opening(line string) (fence, bool) {
	s, ok := afterIndent(line)
	if !ok || (s[0] != '`' && s[0] != '~') {
		return fence{}, false
	}
	n := run(s, s[0])
	if n < 3 || (s[0] == '`' && strings.IndexByte(s[n:], '`') >= 0) {
		return fence{}, false
	}
	return fence{char: s[0], n: n}, true
}

// closedBy reports whether line closes f: at most 3 spaces, at least as
// many of the same character, then only spaces or tabs.
func (f fence) closedBy(line string) bool {
	s, ok := afterIndent(line)
	if !ok {
		return false
	}
	n := run(s, f.char)
	return n >= f.n && strings.Trim(s[n:], " \t") == ""
}

// run counts the leading c bytes of s.
func run(s string, c byte) int {
	n := 0
	for n < len(s) && s[n] == c {
		n++
	}
	return n
}
