package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/pipeline/state"
)

// TestOutcomeWords: each kind of run's end reads as an operator would say
// it, at the level it deserves, naming the failing step.
func TestOutcomeWords(t *testing.T) {
	ok := func(name string) state.Step { return state.Step{Name: name, Status: StepSucceeded} }
	for _, c := range []struct {
		e                  state.Ended
		cause              error
		level              zerolog.Level
		outcome, msg, step string
	}{
		{state.Ended{Kind: "preview", Status: "succeeded", Steps: []state.Step{ok("build:web"), failed("deployment", "502")}}, nil, zerolog.InfoLevel, "ready", "preview ready (optional step deployment failed)", ""},
		{state.Ended{Kind: "preview", Status: "failed", Steps: []state.Step{ok("source"), failed("build:web", "runner: command exited with status 1"), failed("deployment", "x")}},
			errors.New("step build:web: runner: command exited with status 1"), zerolog.WarnLevel, "failed", "preview failed at build:web", "build:web"},
		{state.Ended{Kind: "preview", Status: "cancelled"}, context.Canceled, zerolog.InfoLevel, "superseded", "preview superseded", ""},
		{state.Ended{Kind: "preview", Status: statusBlocked, Steps: []state.Step{failed(gateStep, "unit failed")}}, errors.New("x"), zerolog.WarnLevel, "blocked", "preview held back: a test stage failed", gateStep},
		{state.Ended{Kind: "teardown", Status: "succeeded"}, nil, zerolog.InfoLevel, "done", "teardown done", ""},
		{state.Ended{Kind: "production", Status: "succeeded"}, nil, zerolog.InfoLevel, "deployed", "production deployed", ""},
		{state.Ended{Kind: "production", Status: "skipped"}, nil, zerolog.InfoLevel, "superseded", "production superseded", ""},
		{state.Ended{Kind: "production", Status: "failed", Steps: []state.Step{failed("health:web", "unhealthy"), ok("rollback:web")}}, errors.New("x"),
			zerolog.WarnLevel, "rolled_back", "production rolled back at health:web", "health:web"},
		{state.Ended{Kind: "production", Status: "failed", Steps: []state.Step{failed("health:web", "unhealthy"), failed("rollback:web", "503")}}, errors.New("x"),
			zerolog.ErrorLevel, "rollback_failed", "production deploy failed at health:web and its rollback did not finish (rollback:web failed): production may be mixed", "health:web"},
		{state.Ended{Kind: "production", Status: "failed", Steps: []state.Step{failed("build:web", "exit 1")}}, errors.New("x"), zerolog.WarnLevel, "failed", "production deploy failed at build:web", "build:web"},
		{state.Ended{Kind: "production", Status: "succeeded", Reason: "rollback", HeadSHA: "0123456789abcdef"}, nil, zerolog.InfoLevel, "rolled_back", "production rolled back to 0123456", ""},
		{state.Ended{Kind: "test", Status: "failed", Steps: []state.Step{ok("source"), failed("unit", "exit 1")}}, errors.New("x"), zerolog.WarnLevel, "failed", "tests failed at unit", "unit"},
		{state.Ended{Kind: "test", Status: "cancelled"}, errSuperseded, zerolog.InfoLevel, "superseded", "tests superseded", ""},
		{state.Ended{Kind: "test", Status: "failed"}, errors.New("no workspace"), zerolog.WarnLevel, "failed", "tests failed", ""},
	} {
		o := outcomeOf(c.e, c.cause)
		if o.level != c.level || o.outcome != c.outcome || o.message != c.msg || o.step != c.step {
			t.Errorf("%s %s: got %v %q %q step %q; want %v %q %q step %q", c.e.Kind, c.e.Status, o.level, o.outcome, o.message, o.step, c.level, c.outcome, c.msg, c.step)
		}
	}
}

// TestOutcomeLogLine: the outcome line carries the run's fields, and its
// error is cut short and never shows a URL's password.
func TestOutcomeLogLine(t *testing.T) {
	var buf bytes.Buffer
	start := time.Now()
	e := state.Ended{ID: 9, Kind: "preview", Repo: "acme/web", PR: 4, HeadSHA: "0123456789abcdef", Status: "failed", Started: start, Finished: start.Add(1500 * time.Millisecond),
		Steps: []state.Step{failed("migrate", "connect postgres://app:s3cret@db.example/app: refused "+strings.Repeat("x", 500))}}
	logOutcome(zerolog.New(&buf), e, outcomeOf(e, errors.New("step migrate: …")))
	var l map[string]any
	if err := json.Unmarshal(buf.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"level": "warn", "message": "preview failed at migrate", "repo": "acme/web", "pr": 4.0, "sha": "0123456", "run_id": 9.0,
		"kind": "preview", "outcome": "failed", "step": "migrate", "duration_ms": 1500.0}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, l[k], v, buf.String())
		}
	}
	msg, _ := l["error"].(string)
	if strings.Contains(msg, "s3cret") || !strings.Contains(msg, "postgres://app:***@db.example") || len([]rune(msg)) > maxLogValue+1 {
		t.Errorf("error field %q: want the password masked and at most %d characters", msg, maxLogValue)
	}
}

func failed(name, err string) state.Step { return state.Step{Name: name, Status: StepFailed, Err: err} }

// TestLogJobErrors: a failed attempt is a warning naming the job, the last
// one an error; snoozes and cancellations are not failures.
func TestLogJobErrors(t *testing.T) {
	job := &rivertype.JobRow{ID: 12, Kind: "preview_requested", Attempt: 2, MaxAttempts: 5}
	last := &rivertype.JobRow{ID: 13, Kind: "preview_requested", Attempt: 5, MaxAttempts: 5}
	remote, cancel := context.WithCancelCause(context.Background())
	cancel(river.ErrJobCancelledRemotely)
	for _, c := range []struct {
		name   string
		ctx    context.Context
		job    *rivertype.JobRow
		err    error
		level  string
		prefix string
	}{
		{"error", context.Background(), job, errors.New("read pull request: 401 Bad credentials"), "warn", "job failed"},
		{"last attempt", context.Background(), last, errors.New("boom"), "error", "job failed on its last attempt"},
		{"snooze", context.Background(), job, river.JobSnooze(time.Second), "debug", "job snoozed"},
		{"wrapped snooze", context.Background(), job, fmt.Errorf("x: %w", river.JobSnooze(time.Second)), "debug", "job snoozed"},
		{"job cancel", context.Background(), job, river.JobCancel(errors.New("gone")), "debug", "job cancelled"},
		{"cancelled remotely", remote, job, context.Canceled, "debug", "job cancelled"},
		{"success", context.Background(), job, nil, "", ""},
	} {
		var buf bytes.Buffer
		logJobError(c.ctx, zerolog.New(&buf), c.job, c.err)
		if c.level == "" {
			if buf.Len() != 0 {
				t.Errorf("%s: logged %s", c.name, buf.String())
			}
			continue
		}
		var l map[string]any
		if err := json.Unmarshal(buf.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v: %q", c.name, err, buf.String())
		}
		msg, _ := l["message"].(string)
		if l["level"] != c.level || !strings.HasPrefix(msg, c.prefix) {
			t.Errorf("%s: logged %s, want %s %q…", c.name, buf.String(), c.level, c.prefix)
		}
		if c.level != "debug" && (l["max_attempts"] != 5.0 || l["error"] != c.err.Error()) {
			t.Errorf("%s: logged %s: want max_attempts and the error", c.name, buf.String())
		}
	}
}

// TestLogDeliveryOfJobArgs: the delivery id and repository are read from
// any intent's arguments (intent.Meta is embedded), and are empty for the
// bot's own jobs.
func TestLogDeliveryOfJobArgs(t *testing.T) {
	m := metaOf([]byte(`{"delivery_id":"abc-1","event":"pull_request","repo":{"owner":"acme","name":"app"},"pr":{"number":3}}`))
	if m.DeliveryID != "abc-1" || m.Repo.FullName() != "acme/app" {
		t.Errorf("delivery id %q of %q, want abc-1 of acme/app", m.DeliveryID, m.Repo.FullName())
	}
	if m := metaOf([]byte(`{}`)); m.DeliveryID != "" || m.Repo.FullName() != "" {
		t.Errorf("delivery of a sweep job %+v, want none", m)
	}
}
