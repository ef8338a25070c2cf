// Package templates renders what the bot writes on GitHub: the PR's status
// comment, check-run output and the /help reply. The markdown lives in
// embedded text/template files next to this one, so wording can change
// without touching the pipelines.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
	"time"
)

//go:embed *.md.tmpl
var files embed.FS

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"statusIcon":  func(s string) string { return statuses[s].icon },
	"statusLabel": func(s string) string { return statuses[s].label },
	"stepIcon":    stepIcon,
	"headline":    headline,
	"cell":        cell,
	"short":       short,
	"fence":       fence,
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04")
	},
	"duration": func(d time.Duration) string {
		if d <= 0 {
			return "—"
		}
		return d.Round(100 * time.Millisecond).String()
	},
}).ParseFS(files, "*.md.tmpl"))

// Row and preview states.
const (
	Queued           = "queued"
	Building         = "building"
	Ready            = "ready"
	Failed           = "failed"
	Destroyed        = "destroyed"
	Cancelled        = "cancelled"
	AwaitingApproval = "awaiting_approval"
	Draft            = "draft"
	WaitingForTests  = "waiting_for_tests"
)

var statuses = map[string]struct{ icon, label string }{
	Queued:           {"⏳", "Queued"},
	Building:         {"🔨", "Building"},
	Ready:            {"✅", "Ready"},
	Failed:           {"❌", "Failed"},
	Destroyed:        {"🗑️", "Destroyed"},
	Cancelled:        {"⏹️", "Cancelled"},
	AwaitingApproval: {"🔒", "Awaiting approval"},
	Draft:            {"📝", "Draft"},
	WaitingForTests:  {"⏳", "Waiting for tests"},
}

// Comment is the PR's status comment.
type Comment struct {
	PR      int
	State   string // one of the states above
	Commit  string
	Rows    []Row
	Failure *Failure
	Note    string // a sentence under the table (e.g. how to approve a fork)
	// Approve is the command that approves the fork's head ("/deploy
	// <sha>"), shown alone in a code block so that it is copied whole;
	// Footnote follows it.
	Approve  string
	Footnote string
	CheckURL string
}

// Row is one worker or the database branch.
type Row struct {
	Kind    string // "database" or "worker"
	Name    string
	Status  string
	URL     string
	Commit  string
	Updated time.Time
}

// Failure is the failing step and the end of its output.
type Failure struct {
	Step string
	Log  string
}

// StatusComment renders c (without the hidden marker, which the reporter
// adds).
func StatusComment(c Comment) (string, error) { return render("status_comment.md.tmpl", c) }

// Check is a check run's output.
type Check struct {
	Note    string
	Workers []CheckWorker
	Steps   []CheckStep
}

// CheckWorker is a worker's line in the summary.
type CheckWorker struct {
	Name, Script, URL string
	Checked, Healthy  bool
}

// CheckStep is a step's line, and its log for the details text.
type CheckStep struct {
	Name     string
	Status   string
	Duration time.Duration
	Log      string
}

// CheckSummary renders the summary: workers, URLs, step timings.
func CheckSummary(c Check) (string, error) { return render("check_summary.md.tmpl", c) }

// CheckText renders each step's log tail; the reporter trims it to GitHub's
// size limit.
func CheckText(c Check) (string, error) { return render("check_text.md.tmpl", c) }

// Help renders the /help reply; extra is appended to the line about who may
// use commands (e.g. an allowlist), and must not reveal configuration.
func Help(extra string) (string, error) {
	return render("help.md.tmpl", struct{ Extra string }{extra})
}

func render(name string, data any) (string, error) {
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("templates: render %s: %w", name, err)
	}
	return b.String(), nil
}

func headline(c Comment) string {
	label := map[string]string{
		Queued:           "⏳ Preview queued",
		Building:         "🔨 Preview building",
		Ready:            "✅ Preview ready",
		Failed:           "❌ Preview failed",
		Destroyed:        "🗑️ Preview destroyed",
		Cancelled:        "⏹️ Preview cancelled",
		AwaitingApproval: "🔒 Preview awaiting approval",
		Draft:            "📝 No preview for drafts",
		WaitingForTests:  "⏳ Preview waiting for tests",
	}[c.State]
	if c.Commit != "" {
		label += fmt.Sprintf(" for `%s`", short(c.Commit))
	}
	return label
}

func stepIcon(status string) string {
	switch status {
	case "succeeded":
		return "✅"
	case "failed":
		return "❌"
	case "running":
		return "🔨"
	case "cancelled":
		return "⏹️"
	case "skipped":
		return "⏭️"
	}
	return "⏳"
}

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// fence keeps log text from closing its code fence early.
func fence(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "```", "`\u200b``")
}
