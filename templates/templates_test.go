package templates

import (
	"strings"
	"testing"
	"time"
)

func TestStatusComment(t *testing.T) {
	at := time.Date(2026, 11, 26, 14, 5, 0, 0, time.UTC)
	got, err := StatusComment(Comment{
		PR: 7, State: Failed, Commit: "0123456789abcdef",
		Rows: []Row{
			{Kind: "database", Name: "pr-7", Status: Ready, Commit: "0123456789abcdef", Updated: at},
			{Kind: "worker", Name: "web | main", Status: Failed, URL: "https://codex-preview-7.revelations.studio", Commit: "0123456789abcdef", Updated: at},
			{Kind: "worker", Name: "auth", Status: Queued},
		},
		Failure:  &Failure{Step: "build:web", Log: "npm ERR! ```oops```\n"},
		CheckURL: "https://github.com/o/r/runs/1",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"### ❌ Preview failed for `0123456`",
		"| 🗄️ | pr-7 | ✅ Ready | — | `0123456` | 2026-11-26 14:05 |",
		`| ⚙️ | web \| main | ❌ Failed | https://codex-preview-7.revelations.studio |`,
		"| ⚙️ | auth | ⏳ Queued | — | — | — |",
		"<code>build:web</code> failed",
		"[Details](https://github.com/o/r/runs/1)",
		"<code>/help</code>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("comment lacks %q:\n%s", want, got)
		}
	}
	// The log's backticks cannot close the fence: exactly one pair of fences.
	if n := strings.Count(got, "```"); n != 2 {
		t.Errorf("%d fences in:\n%s", n, got)
	}
}

// TestAwaitingApproval: the command that approves a fork's head stands alone
// in a code block, so that it is copied whole (GitHub adds a copy button).
func TestAwaitingApproval(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	got, err := StatusComment(Comment{PR: 7, State: AwaitingApproval, Commit: sha,
		Note: "Review and comment:", Approve: "/deploy " + sha, Footnote: "Each new commit needs a new approval."})
	if err != nil {
		t.Fatal(err)
	}
	want := "Review and comment:\n\n```text\n/deploy " + sha + "\n```\n\nEach new commit needs a new approval.\n"
	if !strings.Contains(got, want) || !strings.Contains(got, "### 🔒 Preview awaiting approval for `0123456`") {
		t.Errorf("comment:\n%s\nwant the headline and:\n%s", got, want)
	}
}

func TestCheckOutput(t *testing.T) {
	c := Check{
		Workers: []CheckWorker{{Name: "web", Script: "codex-web-preview-7", URL: "https://x", Checked: true, Healthy: true}},
		Steps: []CheckStep{
			{Name: "database", Status: "succeeded", Duration: 1500 * time.Millisecond},
			{Name: "build:web", Status: "failed", Duration: 2 * time.Second, Log: "error TS2304"},
		},
	}
	sum, err := CheckSummary(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| web | `codex-web-preview-7` | https://x | ✅ |", "| `database` | ✅ succeeded | 1.5s |", "| `build:web` | ❌ failed | 2s |"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	text, err := CheckText(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "#### `build:web` (failed)") || !strings.Contains(text, "error TS2304") || strings.Contains(text, "`database`") {
		t.Errorf("text:\n%s", text)
	}
}

func TestHelp(t *testing.T) {
	got, err := Help("")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"/deploy", "`/deploy <sha>`", "/redeploy", "--reset-db", "/destroy", "/help", "admin, maintain or write"} {
		if !strings.Contains(got, cmd) {
			t.Errorf("help lacks %q", cmd)
		}
	}
}
