package annotate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// repo is the tree the recorded outputs were produced in.
var repo = fstest.MapFS{
	"go.mod":               {Data: []byte("module example.com/shop\n\ngo 1.26\n")},
	"main_test.go":         {Data: []byte("package shop\n")},
	"pkg/sub/calc.go":      {Data: []byte("package sub\n")},
	"pkg/sub/calc_test.go": {Data: []byte("package sub\n")},
	"src/main.c":           {Data: []byte("int main(void) {}\n")},
	"fullOfProblems.js":    {Data: []byte("function addOne(i) {}\n")},
	"src/lib/price.ts":     {Data: []byte("export {}\n")},
	"src/routes/login.ts":  {Data: []byte("export {}\n")},
}

func testdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// brief renders annotations one per line for comparison.
func brief(as []Annotation) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "%s %s:%d:%d %q", a.Level, a.Path, a.Line, a.Column, a.Message)
		if a.Title != "" {
			fmt.Fprintf(&b, " (%s)", a.Title)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestRecordedOutputs(t *testing.T) {
	const root = "/tmp/deploybot-ws-123"
	cases := []struct {
		file string
		root string
		want string
	}{
		{file: "go-vet.txt", want: `failure pkg/sub/calc.go:7:47 "fmt.Sprintf format %s has arg n of wrong type int"
`},
		// Without -v the log follows "--- FAIL"; the bare file names are
		// found in their package's folder through go.mod's module path.
		{file: "go-test.txt", want: `failure main_test.go:5:0 "root broke" (TestRoot failed)
failure pkg/sub/calc_test.go:6:0 "adding" (TestAdd failed)
failure pkg/sub/calc_test.go:8:0 "Add(2, 2) = 4, want 5\nmore detail\nand more" (TestAdd failed)
failure pkg/sub/calc_test.go:18:0 "bad n 2" (TestTable/n#01 failed)
`},
		// With -v the log comes first, and passing tests log too.
		{file: "go-test-v.txt", want: `failure main_test.go:5:0 "root broke" (TestRoot failed)
failure pkg/sub/calc_test.go:6:0 "adding" (TestAdd failed)
failure pkg/sub/calc_test.go:8:0 "Add(2, 2) = 4, want 5\nmore detail\nand more" (TestAdd failed)
failure pkg/sub/calc_test.go:18:0 "bad n 2" (TestTable/n#01 failed)
`},
		{file: "gcc.txt", want: `failure src/main.c:3:10 "error: ‘undefined_var’ undeclared (first use in this function)"
notice src/main.c:3:10 "note: each undeclared identifier is reported only once for each function it appears in"
warning src/main.c:2:7 "warning: unused variable ‘unused’ [-Wunused-variable]"
`},
		// Absolute paths under the workspace, which has a space in it.
		{file: "eslint-unix.txt", root: "/var/lib/jenkins/workspace/Releases/ESLint Release/eslint", want: `failure fullOfProblems.js:1:10 "'addOne' is defined but never used. [Error/no-unused-vars]"
failure fullOfProblems.js:2:9 "Use the isNaN function to compare with NaN. [Error/use-isnan]"
failure fullOfProblems.js:3:16 "Unexpected space before unary operator '++'. [Error/space-unary-ops]"
warning fullOfProblems.js:3:20 "Missing semicolon. [Warning/semi]"
warning fullOfProblems.js:4:12 "Unnecessary 'else' after 'return'. [Warning/no-else-return]"
warning fullOfProblems.js:5:1 "Expected indentation of 8 spaces but found 6. [Warning/indent]"
failure fullOfProblems.js:5:7 "Function 'addOne' expected a return value. [Error/consistent-return]"
warning fullOfProblems.js:5:13 "Missing semicolon. [Warning/semi]"
failure fullOfProblems.js:7:2 "Unnecessary semicolon. [Error/no-extra-semi]"
`},
		{file: "tsc.txt", want: `failure src/lib/price.ts:12:5 "error TS2322: Type 'string' is not assignable to type 'number'."
failure src/routes/login.ts:3:10 "error TS2305: Module '\"../lib/auth\"' has no exported member 'login'."
failure src/routes/login.ts:27:18 "error TS2345: Argument of type 'User | undefined' is not assignable to parameter of type 'User'."
`},
		{file: "tsc-pretty.txt", want: `failure src/lib/price.ts:12:5 "error TS2322: Type 'string' is not assignable to type 'number'."
failure src/routes/login.ts:3:10 "error TS2305: Module '\"../lib/auth\"' has no exported member 'login'."
`},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			r := c.root
			if r == "" {
				r = root
			}
			got := brief(Parse(testdata(t, c.file), Options{Root: r, Files: repo}))
			if got != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

func TestPathsStayInTheRepository(t *testing.T) {
	const root = "/work/ws-1"
	out := strings.Join([]string{
		"/work/ws-1/src/lib/price.ts:1:1: inside the workspace",
		"/work/ws-10/src/lib/price.ts:1:1: a neighbour that shares a prefix",
		"/etc/passwd:1:1: outside",
		"../../etc/passwd:1:1: climbing out",
		"src/../../etc/passwd:1:1: climbing out in the middle",
		"./src/routes/login.ts:2:1: dot-slash is fine",
		"src/./lib//price.ts:3: messy but inside",
		"C:\\src\\a.ts:1:1: windows",
		"localhost:5432: connection refused",
		"12:30:01: a time of day",
		"src/lib/missing.ts:1:1: not in the repository",
		"src/lib/price.ts:0:1: line zero",
		"src/lib/price.ts:99999999999999999999:1: overflow",
		"src/lib/price.ts:4:",
	}, "\n")
	got := brief(Parse(out, Options{Root: root, Files: repo}))
	want := `failure src/lib/price.ts:1:1 "inside the workspace"
failure src/routes/login.ts:2:1 "dot-slash is fine"
failure src/lib/price.ts:3:0 "messy but inside"
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	// Without the tree, only the shape of a path is checked.
	got = brief(Parse(out, Options{Root: root}))
	want = `failure src/lib/price.ts:1:1 "inside the workspace"
failure src/routes/login.ts:2:1 "dot-slash is fine"
failure src/lib/price.ts:3:0 "messy but inside"
failure src/lib/missing.ts:1:1 "not in the repository"
`
	if got != want {
		t.Errorf("without files, got:\n%s\nwant:\n%s", got, want)
	}
}

func TestColoursDuplicatesAndLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("\x1b[1m\x1b[31msrc/lib/price.ts:1:2: error: red\x1b[0m\r\n")
	b.WriteString("src/lib/price.ts:1:2: error: red\n") // the same again
	for i := 1; i <= 300; i++ {
		fmt.Fprintf(&b, "src/lib/price.ts:%d: warning: number %d\n", i+1, i)
	}
	got := Parse(b.String(), Options{Files: repo})
	if len(got) != DefaultMax {
		t.Fatalf("%d annotations, want the default limit %d", len(got), DefaultMax)
	}
	if got[0].Message != "error: red" || got[0].Level != Failure || got[1].Message != "warning: number 1" || got[1].Level != Warning {
		t.Errorf("first two: %+v", got[:2])
	}
	if n := len(Parse(b.String(), Options{Files: repo, Max: 50})); n != 50 {
		t.Errorf("Max 50 gave %d", n)
	}
}

func TestLongMessagesAreCut(t *testing.T) {
	msg := strings.Repeat("é", maxMessage)
	got := Parse("src/lib/price.ts:1:1: "+msg, Options{Files: repo})
	if len(got) != 1 || len(got[0].Message) > maxMessage || !strings.HasSuffix(got[0].Message, "…") {
		t.Fatalf("got %d annotations, message of %d bytes", len(got), len(got[0].Message))
	}
}

// A test that passed, in -v output of a run where nothing failed, gives no
// annotations: its log lines are not problems.
func TestPassingTestsAreQuiet(t *testing.T) {
	out := "=== RUN   TestOK\n    calc_test.go:12: fine\n--- PASS: TestOK (0.00s)\nPASS\nok  \texample.com/shop/pkg/sub\t0.003s\n"
	if got := Parse(out, Options{Files: repo}); len(got) != 0 {
		t.Errorf("annotations for a passing run: %+v", got)
	}
}

// Bare names go test prints are found by name when go.mod does not say
// where the package is, and dropped when the name is ambiguous.
func TestGoFileLookup(t *testing.T) {
	files := fstest.MapFS{
		"a/x_test.go":    {Data: []byte("package a\n")},
		"b/x_test.go":    {Data: []byte("package b\n")},
		"c/only_test.go": {Data: []byte("package c\n")},
	}
	out := "--- FAIL: TestX (0.00s)\n    x_test.go:3: ambiguous\n    only_test.go:4: unique\nFAIL\nFAIL\tother.example/c\t0.1s\n"
	got := brief(Parse(out, Options{Files: files}))
	want := `failure c/only_test.go:4:0 "unique" (TestX failed)
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
