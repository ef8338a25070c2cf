package commands

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// render shows the results in comment order, one string each:
// "L2 redeploy reset-db" for a command, "L3 ! reason" for a problem.
func render(cmds []Command, problems []Problem) []string {
	type item struct {
		line int
		s    string
	}
	var items []item
	for _, c := range cmds {
		s := fmt.Sprintf("L%d %s", c.Line, c.Name)
		if c.ResetDB {
			s += " reset-db"
		}
		if c.SHA != "" {
			s += " " + c.SHA
		}
		items = append(items, item{c.Line, s})
	}
	for _, p := range problems {
		items = append(items, item{p.Line, fmt.Sprintf("L%d ! %s", p.Line, p.Reason)})
	}
	slices.SortStableFunc(items, func(a, b item) int { return a.line - b.line })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.s
	}
	return out
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []string
	}{
		// The commands.
		{"empty", "", nil},
		{"deploy", "/deploy", []string{"L1 deploy"}},
		{"redeploy", "/redeploy", []string{"L1 redeploy"}},
		{"redeploy reset-db", "/redeploy --reset-db", []string{"L1 redeploy reset-db"}},
		{"destroy", "/destroy", []string{"L1 destroy"}},
		{"help", "/help", []string{"L1 help"}},
		{"trailing whitespace", "/deploy  \t ", []string{"L1 deploy"}},
		{"trailing newline", "/deploy\n", []string{"L1 deploy"}},
		{"trailing no-break space", "/deploy\u00a0", []string{"L1 deploy"}},
		{"tab between arguments", "/redeploy\t--reset-db", []string{"L1 redeploy reset-db"}},
		{"spaces between arguments", "/redeploy     --reset-db   ", []string{"L1 redeploy reset-db"}},
		{"after prose", "thanks!\n  /redeploy --reset-db", []string{"L2 redeploy reset-db"}},
		{"several in order, duplicates kept", "/deploy\nok\n/destroy\n\n/deploy", []string{"L1 deploy", "L3 destroy", "L5 deploy"}},
		{"commands and problems in order", "/depoy\n/deploy\n/destroy now", []string{
			`L1 ! unknown command "/depoy" (did you mean /deploy?)`, "L2 deploy", "L3 ! /destroy takes no arguments"}},

		// Case: names fold, the option does not.
		{"capitalised", "/Deploy", []string{"L1 deploy"}},
		{"upper case", "/DESTROY", []string{"L1 destroy"}},
		{"mixed case with option", "/ReDePloY --reset-db", []string{"L1 redeploy reset-db"}},
		{"option is case-sensitive", "/redeploy --RESET-DB", []string{`L1 ! unknown option "--RESET-DB" for /redeploy (use --reset-db)`}},
		{"only ASCII folds", "/de\u017ftroy", []string{`L1 ! unknown command "/deſtroy" (did you mean /destroy?)`}},

		// Only at the start of a line.
		{"in a sentence", "please /deploy", nil},
		{"in a list item", "- /deploy", nil},
		{"after an emoji", "🚀/deploy", nil},
		{"after a no-break space", "\u00a0/deploy", nil},

		// Indentation: up to 3 spaces is a paragraph, 4 or a tab is code.
		{"1 space", " /deploy", []string{"L1 deploy"}},
		{"2 spaces", "  /deploy", []string{"L1 deploy"}},
		{"3 spaces", "   /deploy", []string{"L1 deploy"}},
		{"4 spaces", "    /deploy", nil},
		{"8 spaces", "        /deploy", nil},
		{"tab", "\t/deploy", nil},
		{"space then tab", " \t/deploy", nil},
		{"indented code then command", "    /destroy\n/deploy", []string{"L2 deploy"}},

		// Quotations.
		{"quoted", "> /deploy", nil},
		{"quoted without space", ">/deploy", nil},
		{"quoted after indentation", "   > /deploy", nil},
		{"nested quote", "> > /destroy", nil},
		{"quoted near miss is silent", "> /depoy", nil},
		{"quote reply then command", "> /destroy\n\n/deploy", []string{"L3 deploy"}},
		{"line after a quote counts", "> @alice said\n/deploy", []string{"L2 deploy"}},

		// Inline code.
		{"inline code", "`/deploy`", nil},
		{"double backtick code", "``/deploy``", nil},
		{"triple backtick inline code is not a fence", "```/deploy```\n/help", []string{"L2 help"}},
		{"two backticks are not a fence", "``\n/deploy", []string{"L2 deploy"}},

		// Fenced code blocks.
		{"backtick fence", "```\n/deploy\n```\n/destroy", []string{"L4 destroy"}},
		{"tilde fence", "~~~\n/deploy\n~~~\n/help", []string{"L4 help"}},
		{"fence with info string", "```sh\n/deploy\n/redeploy --reset-db\n```", nil},
		{"tilde info may hold backticks", "~~~ `x`\n/deploy\n~~~\n/help", []string{"L4 help"}},
		{"shorter fence does not close", "````\n/deploy\n```\n/destroy\n````\n/help", []string{"L6 help"}},
		{"longer fence closes", "```\n/deploy\n``````\n/help", []string{"L4 help"}},
		{"other fence char does not close", "~~~\n/deploy\n```\n/destroy\n~~~\n/help", []string{"L6 help"}},
		{"fence nested in a longer fence", "~~~~\n```\n/deploy\n```\n/destroy\n~~~~\n/help", []string{"L7 help"}},
		{"unclosed fence runs to the end", "look:\n```\n/deploy\n\n/destroy", nil},
		{"unclosed tilde fence", "~~~~~\n/deploy", nil},
		{"empty fenced block", "```\n```\n/deploy", []string{"L3 deploy"}},
		{"fence indented 3 spaces", "   ```\n/deploy\n   ```\n/help", []string{"L4 help"}},
		{"fence indented 4 spaces is code, not a fence", "    ```\n/deploy", []string{"L2 deploy"}},
		{"closing fence indented 4 spaces does not close", "```\n/deploy\n    ```\n/destroy", nil},
		{"closing fence with text does not close", "```\n/deploy\n``` x\n/destroy", nil},
		{"closing fence with trailing spaces closes", "```\n/deploy\n```  \t\n/help", []string{"L4 help"}},
		{"fence with CRLF", "```\r\n/deploy\r\n```\r\n/help\r\n", []string{"L4 help"}},
		{"fence inside a quote does not open", "> ```\n/deploy", []string{"L2 deploy"}},
		{"long fence line still opens", "```" + strings.Repeat("x", 2000) + "\n/deploy", nil},
		{"long closing fence still closes", "```\n/deploy\n" + strings.Repeat("`", 2000) + "\n/help", []string{"L4 help"}},

		// Line endings, BOM, bytes.
		{"CRLF", "/deploy\r\n/destroy\r\n", []string{"L1 deploy", "L2 destroy"}},
		{"CRLF blank lines", "hello\r\n\r\n/redeploy --reset-db\r\n", []string{"L3 redeploy reset-db"}},
		{"lone CR is not a line break", "/deploy\r/destroy", []string{`L1 ! /deploy takes only a commit SHA (7 to 40 hex digits, e.g. /deploy 1a2b3c4), not "/destroy"`}},
		{"BOM at the start", "\uFEFF/deploy", []string{"L1 deploy"}},
		{"BOM later is not ignored", "hi\n\uFEFF/deploy", nil},
		{"invalid UTF-8 before", "\xff\xfe/deploy", nil},
		{"invalid UTF-8 argument", "/deploy \xff", []string{`L1 ! /deploy takes only a commit SHA (7 to 40 hex digits, e.g. /deploy 1a2b3c4), not "\xff"`}},
		{"invalid UTF-8 in a name", "/dep\xffloy", []string{`L1 ! unknown command "/dep\xffloy" (did you mean /deploy?)`}},
		{"NUL", "/deploy\x00", []string{`L1 ! unknown command "/deploy\x00" (did you mean /deploy?)`}},

		// Arguments.
		{"deploy takes no word", "/deploy now", []string{`L1 ! /deploy takes only a commit SHA (7 to 40 hex digits, e.g. /deploy 1a2b3c4), not "now"`}},
		{"deploy takes no option", "/deploy --reset-db", []string{`L1 ! /deploy takes only a commit SHA (7 to 40 hex digits, e.g. /deploy 1a2b3c4), not "--reset-db"`}},

		// /deploy <sha>: 7 to 40 hex digits, any case, stored in lower case.
		{"deploy sha", "/deploy 1a2b3c4", []string{"L1 deploy 1a2b3c4"}},
		{"deploy full sha", "/deploy 0123456789abcdef0123456789abcdef01234567", []string{"L1 deploy 0123456789abcdef0123456789abcdef01234567"}},
		{"deploy sha upper case", "/Deploy\t1A2B3C4D", []string{"L1 deploy 1a2b3c4d"}},
		{"deploy sha of digits", "/deploy 1234567", []string{"L1 deploy 1234567"}},
		{"deploy sha trailing space", "/deploy 1a2b3c4 \u00a0", []string{"L1 deploy 1a2b3c4"}},
		{"deploy sha too short", "/deploy 1a2b3c", []string{`L1 ! the commit SHA "1a2b3c" has 6 hex digits; write 7 to 40`}},
		{"deploy sha too long", "/deploy 0123456789abcdef0123456789abcdef012345678", []string{`L1 ! the commit SHA "0123456789abcdef0123456789abcdef0123456…" has 41 hex digits; write 7 to 40`}},
		{"deploy sha not hex", "/deploy 1a2b3g4", []string{`L1 ! /deploy takes only a commit SHA (7 to 40 hex digits, e.g. /deploy 1a2b3c4), not "1a2b3g4"`}},
		{"deploy sha with 0x", "/deploy 0x1a2b3c4", []string{`L1 ! /deploy takes only a commit SHA (7 to 40 hex digits, e.g. /deploy 1a2b3c4), not "0x1a2b3c4"`}},
		{"deploy sha then a word", "/deploy 1a2b3c4 please", []string{`L1 ! unexpected argument "please" for /deploy (it takes one commit SHA)`}},
		{"deploy two shas", "/deploy 1a2b3c4 5d6e7f8", []string{`L1 ! unexpected argument "5d6e7f8" for /deploy (it takes one commit SHA)`}},
		{"deploy sha in code", "`/deploy 1a2b3c4`\n> /deploy 1a2b3c4", nil},
		{"redeploy takes no sha", "/redeploy 1a2b3c4", []string{`L1 ! unexpected argument "1a2b3c4" for /redeploy (its only option is --reset-db)`}},
		{"destroy takes no sha", "/destroy 1a2b3c4", []string{"L1 ! /destroy takes no arguments"}},

		{"destroy takes none", "/destroy --force", []string{"L1 ! /destroy takes no arguments"}},
		{"help takes none", "/help me", []string{"L1 ! /help takes no arguments"}},
		{"unknown option", "/redeploy --reset", []string{`L1 ! unknown option "--reset" for /redeploy (use --reset-db)`}},
		{"option with value", "/redeploy --reset-db=true", []string{`L1 ! unknown option "--reset-db=true" for /redeploy (use --reset-db)`}},
		{"short option", "/redeploy -r", []string{`L1 ! unknown option "-r" for /redeploy (use --reset-db)`}},
		{"plain argument", "/redeploy now", []string{`L1 ! unexpected argument "now" for /redeploy (its only option is --reset-db)`}},
		{"argument after the option", "/redeploy --reset-db please", []string{`L1 ! unexpected argument "please" for /redeploy (its only option is --reset-db)`}},
		{"option twice", "/redeploy --reset-db --reset-db", []string{"L1 ! /redeploy takes --reset-db only once"}},
		{"mention as argument", "/redeploy @alice", []string{`L1 ! unexpected argument "@alice" for /redeploy (its only option is --reset-db)`}},
		{"long argument is shortened", "/redeploy --" + strings.Repeat("x", 100), []string{
			`L1 ! unknown option "--` + strings.Repeat("x", 37) + `…" for /redeploy (use --reset-db)`}},

		// Near misses get a suggestion.
		{"deletion", "/depoy", []string{`L1 ! unknown command "/depoy" (did you mean /deploy?)`}},
		{"transposition", "/deplyo", []string{`L1 ! unknown command "/deplyo" (did you mean /deploy?)`}},
		{"two edits", "/dpeloy", []string{`L1 ! unknown command "/dpeloy" (did you mean /deploy?)`}},
		{"truncated redeploy", "/redeplo", []string{`L1 ! unknown command "/redeplo" (did you mean /redeploy?)`}},
		{"destory", "/destory", []string{`L1 ! unknown command "/destory" (did you mean /destroy?)`}},
		{"hlep", "/hlep", []string{`L1 ! unknown command "/hlep" (did you mean /help?)`}},
		{"halp", "/halp", []string{`L1 ! unknown command "/halp" (did you mean /help?)`}},
		{"near miss keeps case in the quote", "/Depoy", []string{`L1 ! unknown command "/Depoy" (did you mean /deploy?)`}},
		{"near miss with arguments", "/depoy now", []string{`L1 ! unknown command "/depoy" (did you mean /deploy?)`}},
		{"plural", "/deploys", []string{`L1 ! unknown command "/deploys" (did you mean /deploy?)`}},
		{"tie goes to the first name", "/edeploy", []string{`L1 ! unknown command "/edeploy" (did you mean /deploy?)`}},
		{"prefix with suffix", "/deploy-now", []string{`L1 ! unknown command "/deploy-now" (did you mean /deploy?)`}},
		{"prefix glued", "/destroyall", []string{`L1 ! unknown command "/destroyall" (did you mean /destroy?)`}},
		{"longest prefix wins", "/redeploy-now", []string{`L1 ! unknown command "/redeploy-now" (did you mean /redeploy?)`}},
		{"prefix with case", "/DeployNow", []string{`L1 ! unknown command "/DeployNow" (did you mean /deploy?)`}},
		{"prefix with punctuation", "/deploy!", []string{`L1 ! unknown command "/deploy!" (did you mean /deploy?)`}},
		{"option glued to the name", "/redeploy--reset-db", []string{`L1 ! unknown command "/redeploy--reset-db" (did you mean /redeploy?)`}},
		{"prefix of a path", "/help/me", []string{`L1 ! unknown command "/help/me" (did you mean /help?)`}},
		{"long near miss is shortened", "/deploy" + strings.Repeat("z", 100), []string{
			`L1 ! unknown command "/deploy` + strings.Repeat("z", 32) + `…" (did you mean /deploy?)`}},

		// Not ours: ignored silently.
		{"other bot: build", "/build", nil},
		{"other bot: lgtm", "/lgtm", nil},
		{"other bot: assign", "/assign @x", nil},
		{"other bot: cc", "/cc", nil},
		{"other bot: hold (2 edits from help)", "/hold", nil},
		{"other bot: retest", "/retest", nil},
		{"other bot: test all", "/test all", nil},
		{"other bot: approve", "/approve", nil},
		{"other bot: close", "/close", nil},
		{"other bot: kind", "/kind bug", nil},
		{"other bot: ok-to-test", "/ok-to-test", nil},
		{"other bot: cherry-pick", "/cherry-pick release-1.0", nil},
		{"greeting: hey", "/hey", nil},
		{"greeting: hello", "/hello", nil},
		{"path", "/usr/bin/env bash", nil},
		{"path dev null", "/dev/null", nil},
		{"far from every name", "/restore", nil},
		{"short", "/de", nil},
		{"lone slash", "/", nil},
		{"double slash", "//", nil},
		{"code comment", "// deploy later", nil},
		{"double slash before a name", "//deploy", nil},
		{"slash then space", "/ deploy", nil},
		{"long word is not fuzzy-matched", "/dxxxxxxxxxxxxxxxxxxxxxxxxxploy", nil},

		// Long lines.
		{"1000-byte line counts", "/deploy" + strings.Repeat(" ", 993), []string{"L1 deploy"}},
		{"1001-byte line is ignored", "/deploy" + strings.Repeat(" ", 994), nil},
		{"1001-byte line with CRLF is ignored", "/deploy" + strings.Repeat(" ", 994) + "\r\n/help", []string{"L2 help"}},
		{"1000-byte line with CRLF counts", "/deploy" + strings.Repeat(" ", 993) + "\r\n", []string{"L1 deploy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmds, problems := Parse(tc.body)
			checkInvariants(t, tc.body, cmds, problems)
			if got := render(cmds, problems); !slices.Equal(got, tc.want) {
				t.Errorf("Parse(%q)\n got %q\nwant %q", tc.body, got, tc.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	cmds, problems := Parse("\uFEFF  /Redeploy   --reset-db \r\n" +
		"/deploy now " + strings.Repeat("ä", 200) + "\r\n" +
		"/depoy \xff\n")
	want := []Command{{Name: Redeploy, ResetDB: true, Line: 1, Text: "/Redeploy   --reset-db"}}
	if !slices.Equal(cmds, want) {
		t.Errorf("commands = %+v, want %+v", cmds, want)
	}
	wantP := []Problem{
		{Line: 2, Text: "/deploy now " + strings.Repeat("ä", 87) + "…", Reason: `/deploy takes only a commit SHA (7 to 40 hex digits, e.g. /deploy 1a2b3c4), not "now"`},
		{Line: 3, Text: "/depoy \uFFFD", Reason: `unknown command "/depoy" (did you mean /deploy?)`},
	}
	if !slices.Equal(problems, wantP) {
		t.Errorf("problems = %+v\nwant %+v", problems, wantP)
	}
	if n := utf8.RuneCountInString(problems[0].Text); n != 100 {
		t.Errorf("clipped text has %d runes, want 100", n)
	}
}

func TestLimit(t *testing.T) {
	t.Run("commands", func(t *testing.T) {
		cmds, problems := Parse(strings.Repeat("/deploy\n", 1000))
		if len(cmds) != 20 || len(problems) != 0 {
			t.Fatalf("got %d commands, %d problems; want 20, 0", len(cmds), len(problems))
		}
		if last := cmds[19].Line; last != 20 {
			t.Errorf("last command on line %d, want 20 (the first 20 lines)", last)
		}
	})
	t.Run("commands and problems together", func(t *testing.T) {
		cmds, problems := Parse(strings.Repeat("/deploy\n/depoy\n", 15))
		if len(cmds) != 10 || len(problems) != 10 {
			t.Fatalf("got %d commands, %d problems; want 10, 10", len(cmds), len(problems))
		}
		if cmds[9].Line != 19 || problems[9].Line != 20 {
			t.Errorf("last results on lines %d and %d, want 19 and 20", cmds[9].Line, problems[9].Line)
		}
	})
	t.Run("ignored lines do not count", func(t *testing.T) {
		cmds, _ := Parse(strings.Repeat("/build\n> /deploy\n", 100) + "/deploy")
		if want := []string{"L201 deploy"}; !slices.Equal(render(cmds, nil), want) {
			t.Errorf("got %q, want %q", render(cmds, nil), want)
		}
	})
}

func TestUsage(t *testing.T) {
	for _, s := range []string{"`/deploy`", "`/redeploy`", "`/redeploy --reset-db`", "`/destroy`", "`/help`"} {
		if !strings.Contains(Usage, s) {
			t.Errorf("Usage does not mention %s:\n%s", s, Usage)
		}
	}
	if n := strings.Count(Usage, "\n"); n > 6 {
		t.Errorf("Usage has %d lines, want a few", n+1)
	}
}

// TestRealPayloads parses the comment bodies of real issue_comment webhook
// deliveries (testdata/SOURCES.md).
func TestRealPayloads(t *testing.T) {
	want := map[string][]string{
		// A real comment on a pull request for another CI bot: ignored.
		"created.on-pull-request.go-playground-webhooks.json": nil,
		"created.payload.json":                                nil,
		"edited.payload.json":                                 nil,
	}
	files, err := filepath.Glob("testdata/payloads/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Fatalf("found %d payloads, want %d", len(files), len(want))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var event struct {
				Comment struct {
					Body *string `json:"body"`
				} `json:"comment"`
			}
			if err := json.Unmarshal(b, &event); err != nil {
				t.Fatal(err)
			}
			if event.Comment.Body == nil || *event.Comment.Body == "" {
				t.Fatal("payload has no comment.body")
			}
			body := *event.Comment.Body
			cmds, problems := Parse(body)
			checkInvariants(t, body, cmds, problems)
			if got, w := render(cmds, problems), want[filepath.Base(file)]; !slices.Equal(got, w) {
				t.Errorf("Parse(%q) = %q, want %q", body, got, w)
			}
		})
	}
	// The go-playground comment really is a slash command, so the test above
	// shows that another bot's command is ignored, not that no line starts
	// with "/".
	b, err := os.ReadFile("testdata/payloads/created.on-pull-request.go-playground-webhooks.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"body": "/build"`) {
		t.Error(`go-playground payload no longer holds the comment "/build"`)
	}
}

// checkInvariants asserts what must hold for every comment: the properties
// FuzzParse checks, shared with the table tests.
func checkInvariants(t *testing.T, body string, cmds []Command, problems []Problem) {
	t.Helper()
	if n := len(cmds) + len(problems); n > 20 {
		t.Errorf("%d results, want at most 20", n)
	}
	// An independent split into lines, as a reader numbers them.
	lines := strings.Split(body, "\n")
	lines[0] = strings.TrimPrefix(lines[0], "\uFEFF")
	seen := map[int]bool{}
	lineOf := func(what string, n int) (string, bool) {
		if n < 1 || n > len(lines) {
			t.Errorf("%s on line %d of a %d-line comment", what, n, len(lines))
			return "", false
		}
		if seen[n] {
			t.Errorf("two results on line %d", n)
		}
		seen[n] = true
		return lines[n-1], true
	}
	prev := 0
	for _, c := range cmds {
		if c.Line <= prev {
			t.Errorf("command on line %d after one on line %d", c.Line, prev)
		}
		prev = c.Line
		line, ok := lineOf("command", c.Line)
		if !ok {
			continue
		}
		if trimmed := strings.TrimSpace(line); c.Text != trimmed {
			t.Errorf("command Text %q, but line %d trimmed is %q", c.Text, c.Line, trimmed)
		}
		if !strings.HasPrefix(c.Text, "/") {
			t.Errorf("command Text %q does not start with /", c.Text)
		}
		if indent := len(line) - len(strings.TrimLeft(line, " ")); indent > 3 || line[indent] != '/' {
			t.Errorf("command on line %q, which does not start with at most 3 spaces and /", line)
		}
		if len(strings.TrimSuffix(line, "\r")) > 1000 {
			t.Errorf("command on a %d-byte line", len(line))
		}
		if c.SHA != "" {
			if c.Name != Deploy {
				t.Errorf("%+v: SHA on %s", c, c.Name)
			}
			if len(c.SHA) < MinSHA || len(c.SHA) > MaxSHA || strings.Trim(c.SHA, "0123456789abcdef") != "" {
				t.Errorf("%+v: SHA is not 7 to 40 lower-case hex digits", c)
			}
			if !slices.Contains(strings.Fields(strings.ToLower(c.Text)), c.SHA) {
				t.Errorf("%+v: SHA is not in the line", c)
			}
		}
		switch c.Name {
		case Deploy, Destroy, Help:
			if c.ResetDB {
				t.Errorf("%+v: ResetDB on %s", c, c.Name)
			}
		case Redeploy:
		default:
			t.Errorf("command name %q is not one of the constants", c.Name)
		}
	}
	prev = 0
	for _, p := range problems {
		if p.Line <= prev {
			t.Errorf("problem on line %d after one on line %d", p.Line, prev)
		}
		prev = p.Line
		line, ok := lineOf("problem", p.Line)
		if !ok {
			continue
		}
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "/") || !strings.HasPrefix(p.Text, "/") {
			t.Errorf("problem on line %q, text %q: not a slash line", line, p.Text)
		}
		if n := utf8.RuneCountInString(p.Text); n > 100 {
			t.Errorf("problem Text has %d runes, want at most 100", n)
		}
		if !utf8.ValidString(p.Text) {
			t.Errorf("problem Text %q is not valid UTF-8", p.Text)
		}
		if utf8.ValidString(trimmed) && utf8.RuneCountInString(trimmed) <= 100 && p.Text != trimmed {
			t.Errorf("problem Text %q, but line %d trimmed is %q", p.Text, p.Line, trimmed)
		}
		if p.Reason == "" {
			t.Errorf("problem on line %d without a reason", p.Line)
		}
	}
}

// BenchmarkParse parses comments of GitHub's maximum size (65536 bytes).
func BenchmarkParse(b *testing.B) {
	const conversation = "Thanks for the review! I changed the handler as you suggested.\n" +
		"> Could you also check the retry path?\n\n" +
		"```go\n/deploy\nfunc main() { fmt.Println(\"/destroy\") }\n```\n" +
		"    /redeploy in indented code\n" +
		"- list item with `/help` in it\n" +
		"/lgtm\n\n"
	for _, bc := range []struct{ name, chunk, tail string }{
		// A long review: prose, code, quotes, another bot's command.
		{"conversation", conversation, ""},
		// The same, ending with two commands and a near miss.
		{"conversation with commands", conversation, "/deploy\n/redeploy --reset-db\n/destory\n"},
		// Every line starts with "/", none is ours: the most work per line.
		{"slash lines", "/usr/bin/env bash\n/hold\n/assign @someone\n/cherry-pick release-1\n/retest\n", ""},
	} {
		n := 65536 - len(bc.tail)
		// Whole chunks (no fence cut in half), padded with blank lines.
		body := strings.Repeat(bc.chunk, n/len(bc.chunk))
		body += strings.Repeat("\n", n-len(body)) + bc.tail
		cmds, problems := Parse(body)
		if want := strings.Count(bc.tail, "\n"); len(cmds)+len(problems) != want {
			b.Fatalf("%d results, want %d", len(cmds)+len(problems), want)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				Parse(body)
			}
			b.ReportMetric(float64(len(cmds)+len(problems)), "results")
		})
	}
}
