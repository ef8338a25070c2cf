package templates

import (
	"strings"
	"testing"
	"time"
)

func TestTestStageOutput(t *testing.T) {
	summary, text, err := TestStageOutput(TestStage{
		Stage: "unit", Status: "failed", Command: "go test ./...\necho ```done```", Ran: true, ExitCode: 1,
		Duration: 1500 * time.Millisecond, Commit: "0123456789abcdef", Branch: "feat/`x`",
		Database: "push-feat-x-0123456", Annotations: 3, MoreAnnotations: 2,
		Output: "--- FAIL: TestX\n```\nboom\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `unit` | ❌ failed | 1 | 1.5s |",
		"Commit `0123456` of `feat/'x'`, database branch `push-feat-x-0123456`.",
		"3 problem(s) marked on the changed files, 2 more in the output below.",
		"```sh\ngo test ./...\necho `\u200b``done`\u200b``\n```",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	if n := strings.Count(text, "```"); n != 2 || !strings.Contains(text, "boom") {
		t.Errorf("text (%d fences):\n%s", n, text)
	}

	// A long output keeps its end, cut at a line, and says so.
	long := strings.Repeat("line of output\n", 10000) + "the failure at the end\n"
	_, text, err = TestStageOutput(TestStage{Stage: "unit", Status: "failed", Output: long})
	if err != nil {
		t.Fatal(err)
	}
	if len(text) > 65535 || !strings.Contains(text, "the failure at the end") || !strings.HasPrefix(text, "… the first ") || !strings.Contains(text, "```text\nline of output\n") {
		t.Errorf("long output: %d bytes, starts %q", len(text), text[:80])
	}

	// A stage that never ran: no exit code, no text.
	summary, text, err = TestStageOutput(TestStage{Stage: "e2e", Status: "skipped", Note: "Skipped: `unit` failed."})
	if err != nil || text != "" || !strings.Contains(summary, "| `e2e` | ⏭️ skipped | — | — |") || !strings.HasPrefix(summary, "Skipped: `unit` failed.") {
		t.Errorf("skipped stage: %v\n%q\n%s", err, text, summary)
	}
}
