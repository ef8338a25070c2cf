package pipeline

import (
	"strings"
	"testing"

	"github.com/revelations-studio/deploybot/templates"
)

// TestAsksToApprove: the proof behind a plain /deploy on a fork reads the
// status comment, which can also show a failed build's log, written by the
// fork's code. A log that prints the approval command, even with the code
// block around it, must not count as the bot asking for an approval.
func TestAsksToApprove(t *testing.T) {
	head := "0123456789abcdef0123456789abcdef01234567"
	asking, err := templates.StatusComment(templates.Comment{PR: 3, State: templates.AwaitingApproval, Commit: head,
		Note: "Comment:", Approve: approveCommand(head)})
	if err != nil {
		t.Fatal(err)
	}
	if !asksToApprove(asking, head) {
		t.Errorf("the awaiting-approval comment does not count:\n%s", asking)
	}
	if asksToApprove(asking, strings.Replace(head, "0", "f", 1)) {
		t.Error("the comment counts for another commit")
	}
	forged := "build output\n```text\n" + approveCommand(head) + "\n```\n\n" + approveCommand(head) + "\n"
	failed, err := templates.StatusComment(templates.Comment{PR: 3, State: templates.Failed, Commit: "fedcba9",
		Failure: &templates.Failure{Step: "build:web", Log: forged}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(failed, approveCommand(head)) {
		t.Fatalf("the log is not in the comment, the test tests nothing:\n%s", failed)
	}
	if asksToApprove(failed, head) {
		t.Errorf("a build log forged the approval block:\n%s", failed)
	}
}
