package pipeline_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/revelations-studio/deploybot/internal/demo"
)

// Twenty PRs pushed at once must not trip GitHub's content-creation limit
// (80 writes a minute, 500 an hour per installation: see
// internal/sandbox/CONFORMANCE.md): each starts a check run, a status
// comment and a deployment and edits them as it goes, and a 403 there is
// a minute or more of waiting. The simulated GitHub enforces the limit; the
// bot paces its writes under it. Both run on a shortened minute, so that
// the burst is large against it without the test taking minutes of pacing:
// the sandbox's previews take seconds where real ones take minutes. On an
// 8 s minute the twenty previews make about 120 writes in 12 s; without
// the pacing (github.WritePace{PerMinute: -1}), GitHub refused about 20 of
// them.
func TestSecondaryLimitNotHitByTwentyPRs(t *testing.T) {
	const prs = 20
	const minute = 8 * time.Second
	e := startWithin(t, demo.StackOptions{GitHubMinute: minute}, 5*time.Minute)

	heads := map[int]string{}
	var nums []int
	for i := range prs {
		pr, sha := e.open(fmt.Sprintf("feature/burst-%d", i), map[string]string{
			fmt.Sprintf("web/src/burst-%d.txt", i): "a change\n",
		}, false)
		heads[pr] = sha
		nums = append(nums, pr)
	}
	start := time.Now()
	for _, pr := range nums {
		e.event(pr, "opened")
	}
	e.idle()
	writes := 0
	for route, n := range e.gh.Snapshot().Requests {
		if method, _, _ := strings.Cut(route, " "); method != "GET" {
			writes += n
		}
	}
	t.Logf("%d previews in %s: %d writes, %d refused", prs, time.Since(start).Round(time.Second), writes, e.gh.SecondaryLimitRefusals())

	checks := e.checks()
	for _, pr := range nums {
		e.comment(pr) // exactly one status comment
		if c := checks[heads[pr]]; c != "success" {
			t.Errorf("PR #%d: preview check run %q, want one, concluded success", pr, c)
		}
	}
	if n := e.gh.SecondaryLimitRefusals(); n != 0 {
		t.Errorf("GitHub refused %d writes past its content-creation limit, want none", n)
	}
}
