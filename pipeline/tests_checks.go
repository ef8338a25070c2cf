package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/annotate"
	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/templates"
)

// The check runs of a test run's stages: created queued, marked running,
// concluded with the root cause of a failure and annotations from the
// command's output.

// stepConclusion is the check-run conclusion of a finished step ("" while
// it is not finished).
func stepConclusion(status string) string {
	switch status {
	case StepSucceeded:
		return github.ConclusionSuccess
	case StepFailed:
		return github.ConclusionFailure
	case StepSkipped:
		return github.ConclusionSkipped
	case StepCancelled:
		return github.ConclusionCancelled
	}
	return ""
}

// createChecks creates every stage's check run, queued, and remembers them
// with the run's steps, so that a re-run or the next run finds them.
func (r *testRun) createChecks(ctx context.Context) error {
	// As in previewRun.startCheck: a cancelled run still learns the ids of
	// the check runs it created, so it can conclude them.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkCreateTimeout)
	defer cancel()
	for _, s := range r.stages {
		ref, err := r.repo.CreateCheckRun(ctx, github.CheckRun{
			Name: checkTestPrefix + s.Name, HeadSHA: r.req.sha, Status: github.StatusQueued,
			ExternalID: strconv.FormatInt(r.runID, 10),
			DetailsURL: r.t.deps.stepPage(r.runID, s.Name),
			Output:     &github.CheckOutput{Title: "Queued", Summary: "Waiting for the stages it needs, the source and a free runner."},
		})
		if err != nil {
			return fmt.Errorf("create the check run of stage %s: %w", s.Name, err)
		}
		r.checks[s.Name] = ref.ID
		if err := r.t.deps.State.Tests.AttachCheckRun(ctx, r.runID, s.Name, ref.ID); err != nil {
			return err
		}
	}
	return nil
}

// markInProgress shows that a stage's command is starting.
func (r *testRun) markInProgress(ctx context.Context, stage string) {
	s := r.stage(stage)
	err := r.repo.UpdateCheckRun(context.WithoutCancel(ctx), r.checks[stage], github.CheckRun{
		Name: checkTestPrefix + stage, Status: github.StatusInProgress,
		Output: &github.CheckOutput{Title: "Running", Summary: "```sh\n" + s.Run + "\n```"},
	})
	if err != nil {
		r.logger.Warn().Err(err).Str("stage", stage).Msg("marking the check run in progress")
	}
}

func (r *testRun) stage(name string) repoconfig.Stage {
	for _, s := range r.stages {
		if s.Name == name {
			return s
		}
	}
	return repoconfig.Stage{Name: name}
}

// onChange concludes the check run of each stage that just finished.
func (r *testRun) onChange(ctx context.Context, states []StepState) {
	for _, st := range states {
		if _, ok := r.checks[st.Name]; !ok || r.concluded[st.Name] || stepConclusion(st.Status) == "" {
			continue
		}
		r.conclude(ctx, st, states, nil)
	}
}

// concludeAll concludes the check runs not concluded yet: after the run,
// or when it could not start (cause).
func (r *testRun) concludeAll(ctx context.Context, states []StepState, cause error) {
	byName := map[string]StepState{}
	for _, st := range states {
		byName[st.Name] = st
	}
	for _, s := range r.stages {
		if _, ok := r.checks[s.Name]; !ok || r.concluded[s.Name] {
			continue
		}
		st, ok := byName[s.Name]
		if !ok || stepConclusion(st.Status) == "" {
			st = StepState{Name: s.Name, Status: StepFailed, Err: errString(cause)}
			if ctx.Err() != nil {
				st.Status = StepCancelled
			}
		}
		r.conclude(ctx, st, states, cause)
	}
}

// conclude completes a stage's check run from its step's final state.
func (r *testRun) conclude(ctx context.Context, st StepState, states []StepState, cause error) {
	overtime := errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(cause, context.DeadlineExceeded)
	ctx = context.WithoutCancel(ctx)
	r.concluded[st.Name] = true
	s := r.stage(st.Name)
	res, ran := r.result(st.Name)
	out := templates.TestStage{
		Stage: st.Name, Status: st.Status, Command: s.Run, Ran: ran && res.ran, ExitCode: res.exitCode,
		Duration: st.Duration(), Commit: r.req.sha, Branch: r.req.branch, Output: res.output,
	}
	if s.Database {
		out.Database = r.dbName
	}
	run := github.CheckRun{Name: checkTestPrefix + st.Name, Status: github.StatusCompleted, CompletedAt: time.Now(),
		Conclusion: stepConclusion(st.Status)}
	var title string
	switch st.Status {
	case StepSucceeded:
		title = "Passed in " + st.Duration().Round(100*time.Millisecond).String()
	case StepFailed:
		switch {
		case res.timedOut:
			run.Conclusion, title = github.ConclusionTimedOut, "Timed out after "+res.timeout.String()
		case ran && res.ran:
			title = fmt.Sprintf("Failed with exit code %d", res.exitCode)
		default:
			title = "Could not run: " + firstLine(st.Err)
			out.Output = strings.TrimSpace(st.Log + "\n" + st.Err)
		}
	case StepSkipped:
		blame := r.rootCause(st.Name, states)
		switch {
		case blame.Status == StepCancelled:
			run.Conclusion, title = github.ConclusionCancelled, "Cancelled"
		case strings.HasPrefix(blame.Name, "setup:"):
			// Not this stage's fault, but it could not be tested: that
			// is a failure of the commit (a migration that breaks, say).
			run.Conclusion = github.ConclusionFailure
			title = setupTitle(blame.Name)
			out.Note = "This stage did not run: " + strings.ToLower(title[:1]) + title[1:] + "."
			out.Output = strings.TrimSpace(blame.Log + "\n" + blame.Err)
		default:
			title = "Skipped: " + blame.Name + " failed"
			out.Note = "Skipped because the stage `" + blame.Name + "`, which this one needs, did not pass."
		}
	case StepCancelled:
		run.Conclusion, title = github.ConclusionCancelled, "Cancelled"
		if overtime {
			run.Conclusion, title = github.ConclusionTimedOut, "The test run took longer than "+testRunTimeout.String()
		}
	}
	if run.Conclusion == github.ConclusionCancelled {
		out.Note = "Cancelled before it finished: a newer push to the branch (or a re-run) took over, or the bot stopped."
	}
	// A stage that passed shows only its warnings and notes: its other
	// "file:line: text" lines are not problems.
	var marks []annotate.Annotation
	for _, a := range res.annotations {
		if st.Status == StepFailed || a.Level != annotate.Failure {
			marks = append(marks, a)
		}
	}
	n := min(len(marks), github.MaxAnnotationsPerCall)
	out.Annotations, out.MoreAnnotations = n, len(marks)-n
	summary, text, err := templates.TestStageOutput(out)
	if err != nil {
		r.logger.Error().Err(err).Msg("rendering a stage's check run")
		summary = title
	}
	run.Output = &github.CheckOutput{Title: title, Summary: summary, Text: text}
	for _, a := range marks[:n] {
		run.Output.Annotations = append(run.Output.Annotations, github.Annotation{
			Path: a.Path, StartLine: a.Line, EndLine: a.Line, Level: a.Level, Message: a.Message, Title: a.Title,
		})
	}
	if err := r.repo.UpdateCheckRun(ctx, r.checks[st.Name], run); err != nil {
		r.logger.Warn().Err(err).Str("stage", st.Name).Msg("concluding the stage's check run")
	}
}

// rootCause follows a skipped step's needs to the step that failed or was
// cancelled and so stopped it.
func (r *testRun) rootCause(name string, list []StepState) StepState {
	states := map[string]StepState{}
	for _, st := range list {
		states[st.Name] = st
	}
	seen := map[string]bool{}
	var find func(string) (StepState, bool)
	find = func(n string) (StepState, bool) {
		if seen[n] {
			return StepState{}, false
		}
		seen[n] = true
		st := states[n]
		switch st.Status {
		case StepFailed, StepCancelled:
			return st, true
		}
		for _, need := range r.needs[n] {
			if st, ok := find(need); ok {
				return st, true
			}
		}
		return StepState{}, false
	}
	if st, ok := find(name); ok && st.Name != name {
		return st
	}
	return StepState{Name: "an earlier step", Status: StepFailed}
}

func setupTitle(step string) string {
	switch step {
	case stepSource:
		return "Setup failed: the source could not be fetched"
	case stepDatabase:
		return "Setup failed: the database branch could not be created"
	case stepMigrate:
		return "Setup failed: the migration failed"
	case stepSetup:
		return "Setup failed: the setup command failed"
	}
	return "Setup failed: " + step
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// badFile reports a pipeline file that cannot be used on one check run:
// without it there are no stages to show.
func (r *testRun) badFile(ctx context.Context, base string, fileErr error) error {
	_, err := r.repo.CreateCheckRun(context.WithoutCancel(ctx), github.CheckRun{
		Name: CheckTests, HeadSHA: r.req.sha, Conclusion: github.ConclusionFailure, CompletedAt: time.Now(),
		ExternalID: strconv.FormatInt(r.runID, 10),
		Output: &github.CheckOutput{Title: "The pipeline file has errors",
			Summary: "`" + repoconfig.Path + "` on the default branch `" + base + "` could not be used, so no tests ran:\n\n```text\n" + fileErr.Error() + "\n```"},
	})
	if err != nil {
		r.logger.Warn().Err(err).Msg("reporting the pipeline file's errors")
	}
	return r.finish(ctx, "failed", fileErr)
}
