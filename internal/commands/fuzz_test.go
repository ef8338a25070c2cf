package commands

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks properties of Parse that hold for any comment, using
// oracles that do not share its code: wrapping the whole comment in a fence
// that nothing inside can close, or quoting or indenting every line, must
// leave no command and no problem. The seed corpus is testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, body string) {
		cmds, problems := Parse(body)
		checkInvariants(t, body, cmds, problems)

		again, againP := Parse(body)
		if !reflect.DeepEqual(cmds, again) || !reflect.DeepEqual(problems, againP) {
			t.Fatalf("Parse is not deterministic on %q", body)
		}

		for _, tc := range []struct{ name, body string }{
			// A fence longer than any run of its character in the body is
			// never closed, so it runs to the end.
			{"in a backtick fence", longerFence(body, '`') + "\n" + body},
			{"in a tilde fence", longerFence(body, '~') + " info\n" + body},
			{"quoted", "> " + strings.ReplaceAll(body, "\n", "\n> ")},
			{"quoted without space", ">" + strings.ReplaceAll(body, "\n", "\n>")},
			{"indented 4 spaces", "    " + strings.ReplaceAll(body, "\n", "\n    ")},
			{"indented with a tab", "\t" + strings.ReplaceAll(body, "\n", "\n\t")},
		} {
			if c, p := Parse(tc.body); len(c)+len(p) > 0 {
				t.Fatalf("%s: %q gave commands %+v, problems %+v; want none", tc.name, tc.body, c, p)
			}
		}

		// The same fence, closed after the body: exactly the command that
		// follows counts, on the line where it is.
		fence := longerFence(body, '`')
		closed := fence + "\n" + body + "\n" + fence + "\n/deploy"
		c, p := Parse(closed)
		if n := strings.Count(closed, "\n") + 1; len(p) != 0 || len(c) != 1 || c[0].Name != Deploy || c[0].Line != n {
			t.Fatalf("%q gave commands %+v, problems %+v; want only /deploy on line %d", closed, c, p, n)
		}
	})
}

// longerFence returns a fence of char that is longer than every run of char
// in body (and at least 3 long), so no line of body can close it.
func longerFence(body string, char byte) string {
	longest, n := 0, 0
	for i := 0; i < len(body); i++ {
		if body[i] == char {
			n++
			longest = max(longest, n)
		} else {
			n = 0
		}
	}
	return strings.Repeat(string(char), max(3, longest+1))
}
