package pipeline

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/rs/zerolog"

	"github.com/revelations-studio/deploybot/pipeline/state"
)

// endRun records how run id ended (status as state.Runs.Finish takes it,
// cause its error) and tells the operator in one log line: every run of
// every kind ends here, so every run's outcome is in the log exactly once.
// The line is written with the job's logger (its delivery id) and the
// run's own fields, from the database row it ended.
func endRun(ctx context.Context, deps Deps, id int64, status string, cause error) error {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	ended, err := deps.State.Runs.End(ctx, id, status, msg)
	if err != nil {
		return err
	}
	if ended.Kind == "" {
		return nil // no such run: nothing ended
	}
	o := outcomeOf(ended, cause)
	logOutcome(jobLogger(ctx, deps.Logger), ended, o)
	observeRun(deps, ended, o)
	return nil
}

// logOutcome writes the line that says how run e ended (o).
func logOutcome(logger zerolog.Logger, e state.Ended, o outcome) {
	var ev *zerolog.Event
	switch o.level {
	case zerolog.ErrorLevel:
		ev = logger.Error()
	case zerolog.WarnLevel:
		ev = logger.Warn()
	default:
		ev = logger.Info()
	}
	ev = ev.Str("repo", e.Repo)
	if e.PR > 0 {
		ev = ev.Int("pr", e.PR)
	}
	if e.Branch != "" {
		ev = ev.Str("branch", e.Branch)
	}
	ev = ev.Str("sha", short(e.HeadSHA)).Int64("run_id", e.ID).Str("kind", e.Kind).Str("outcome", o.outcome)
	if e.Reason != "" {
		ev = ev.Str("reason", e.Reason)
	}
	if !e.Started.IsZero() && !e.Finished.IsZero() {
		ev = ev.Int64("duration_ms", e.Finished.Sub(e.Started).Milliseconds())
	}
	if o.step != "" {
		ev = ev.Str("step", o.step)
	}
	if o.err != "" {
		ev = ev.Str("error", logValue(o.err))
	}
	ev.Msg(o.message)
}

// outcome is what the log says of a run's end.
type outcome struct {
	level   zerolog.Level
	outcome string // ready, failed, superseded, deployed, rolled_back, …
	message string
	step    string // the failing step
	err     string // its error, or the run's
}

// outcomeOf words run e's end for its kind: "preview ready", "preview
// failed at build:web", "production rolled back", "tests failed at unit".
func outcomeOf(e state.Ended, cause error) outcome {
	o := outcome{level: zerolog.InfoLevel}
	var rollback []state.Step // a failed production run's
	for _, s := range e.Steps {
		switch {
		case strings.HasPrefix(s.Name, "rollback:"):
			rollback = append(rollback, s)
		case s.Status == StepFailed && o.step == "":
			o.step, o.err = s.Name, s.Err
		}
	}
	if o.err == "" && cause != nil && e.Status != "succeeded" {
		o.err = cause.Error()
	}
	subject := map[string]string{"preview": "preview", "teardown": "teardown", "production": "production", "test": "tests"}[e.Kind]
	if subject == "" {
		subject = e.Kind + " run"
	}
	at := ""
	if o.step != "" {
		at = " at " + o.step
	}
	timedOut := errors.Is(cause, context.DeadlineExceeded)
	switch e.Status {
	case "succeeded":
		o.outcome, o.message = map[string]string{"preview": "ready", "teardown": "done", "production": "deployed", "test": "passed"}[e.Kind], subject+" "
		if o.outcome == "" {
			o.outcome = "succeeded"
		}
		o.message += o.outcome
		if e.Kind == "production" && e.Reason == "rollback" {
			o.outcome, o.message = "rolled_back", "production rolled back to "+short(e.HeadSHA)
		}
		// An optional step (the preview's GitHub Deployment) may have
		// failed: the run still succeeded, the message says which.
		if o.step != "" {
			o.message += " (optional step " + o.step + " failed)"
		}
		o.step, o.err = "", ""
	case statusBlocked:
		o.level, o.outcome, o.message = zerolog.WarnLevel, "blocked", subject+" held back: a test stage failed"
	case "cancelled":
		o.outcome, o.message = "superseded", subject+" superseded"
		if timedOut {
			o.level, o.outcome, o.message = zerolog.WarnLevel, "timed_out", subject+" timed out"
		} else if cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, errSuperseded) {
			o.outcome, o.message = "cancelled", subject+" cancelled"
		}
		o.step = ""
	case "skipped":
		o.outcome, o.message = "skipped", subject+" skipped"
		if e.Kind == "production" {
			o.outcome, o.message = "superseded", "production superseded"
		}
	default: // failed
		o.level, o.outcome, o.message = zerolog.WarnLevel, "failed", subject+" failed"+at
		if timedOut {
			o.message = subject + " timed out" + at
		}
		if e.Kind == "production" && e.Reason != "rollback" {
			o.outcome, o.message = productionFailure(o.step, rollback)
			if o.outcome == "rollback_failed" {
				o.level = zerolog.ErrorLevel
			}
		}
	}
	return o
}

// productionFailure words a failed production deploy by what its rollback
// steps did: the operator must know whether production is as it was.
func productionFailure(step string, rollback []state.Step) (string, string) {
	at := ""
	if step != "" {
		at = " at " + step
	}
	for _, s := range rollback {
		if s.Status != StepSucceeded {
			return "rollback_failed", "production deploy failed" + at + " and its rollback did not finish (" + s.Name + " " + s.Status + "): production may be mixed"
		}
	}
	if len(rollback) > 0 {
		return "rolled_back", "production rolled back" + at
	}
	return "failed", "production deploy failed" + at
}

// maxLogValue bounds an error message in a log line: enough to say what
// failed, not a whole command's output.
const maxLogValue = 300

// credentials matches the password of a URL (scheme://user:password@).
var credentials = regexp.MustCompile(`(://[^/\s:@]*:)[^@\s/]*@`)

// logValue is an error message as the log may show it: cut to
// maxLogValue, and without a URL's password. The messages logged are
// those already stored and shown on the check run, where secrets are
// masked; this is the log's own guard.
func logValue(s string) string {
	s = credentials.ReplaceAllString(s, "${1}***@")
	if r := []rune(s); len(r) > maxLogValue {
		s = string(r[:maxLogValue]) + "…"
	}
	return s
}
