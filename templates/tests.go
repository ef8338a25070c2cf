package templates

import (
	"strings"
	"time"
)

// TestStage is the output of one test stage's check run.
type TestStage struct {
	Stage   string
	Status  string // a step status: succeeded, failed, skipped, cancelled
	Note    string // a sentence above the table (why it was skipped, ...)
	Command string
	// Ran is whether the command ran (ExitCode means something).
	Ran      bool
	ExitCode int
	Duration time.Duration
	Commit   string
	Branch   string // user-controlled: shown in code, never as markdown
	Database string // the ephemeral Neon branch, if the stage had one
	// Annotations were sent with the check run; MoreAnnotations were found
	// beyond the limit.
	Annotations, MoreAnnotations int
	// Output is the end of the command's output; Omitted counts the bytes
	// before it that are not shown.
	Output  string
	Omitted int
}

// maxStageOutput keeps the text under GitHub's 65535-byte limit with room
// for the fences and the note.
const maxStageOutput = 60 << 10

// TestStageOutput renders the summary and the text of a stage's check run.
// The output is cut from the front: the end of a test run says what failed.
func TestStageOutput(s TestStage) (summary, text string, err error) {
	s.Branch = inlineCode(s.Branch)
	if len(s.Output) > maxStageOutput {
		cut := len(s.Output) - maxStageOutput
		if nl := strings.IndexByte(s.Output[cut:], '\n'); nl >= 0 && nl < 512 {
			cut += nl + 1
		}
		for cut < len(s.Output) && s.Output[cut]&0xC0 == 0x80 {
			cut++ // not inside a UTF-8 sequence
		}
		s.Output, s.Omitted = s.Output[cut:], s.Omitted+cut
	}
	if summary, err = render("test_stage_summary", s); err != nil {
		return "", "", err
	}
	if strings.TrimSpace(s.Output) == "" {
		return summary, "", nil
	}
	text, err = render("test_stage_text", s)
	return summary, text, err
}

// inlineCode keeps a user-controlled name inside its code span.
func inlineCode(s string) string {
	return strings.NewReplacer("`", "'", "\n", " ", "\r", " ").Replace(s)
}
