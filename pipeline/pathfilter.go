package pipeline

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/revelations-studio/deploybot/internal/github"
	"github.com/revelations-studio/deploybot/internal/repoconfig"
	"github.com/revelations-studio/deploybot/pipeline/state"
)

// Path filters (paths, paths_ignore) on test stages: a push tests only the
// stages whose files it changed. The others get a check run concluded
// "skipped" that says why, and a step recorded as stepUnchanged, which a
// deploy waiting for tests counts as passed.

// stepUnchanged is the status of a stage a path filter skipped.
const stepUnchanged = "unchanged"

// zeroSHA is the "before" of a push that created its branch.
const zeroSHA = "0000000000000000000000000000000000000000"

// changedFiles is what a test run's commit changed: since the branch's
// previous head for a push, since the default branch for a new branch or
// a fork's pull request. known is false when that cannot be told (a
// re-run, which runs what it was asked to; a comparison GitHub cut short
// or refused), and then every stage runs.
func (r *testRun) changedFiles(ctx context.Context) (files []string, base string, known bool) {
	switch {
	case r.req.reason == reasonPush && r.req.before != "" && r.req.before != zeroSHA:
		base = r.req.before
	case (r.req.reason == reasonPush || r.req.reason == reasonFork) && r.req.branch != r.req.meta.Repo.DefaultBranch:
		base = r.req.meta.Repo.DefaultBranch
	default:
		return nil, "", false
	}
	files, complete, err := r.repo.ChangedFiles(ctx, base, r.req.sha)
	switch {
	case err != nil:
		r.logger.Warn().Err(err).Msg("reading the changed files: every stage runs")
		return nil, "", false
	case !complete:
		r.logger.Info().Int("files", len(files)).Msg("more files changed than GitHub lists: every stage runs")
		return nil, "", false
	}
	return files, base, true
}

// unchangedStages takes the stages whose path filter no changed file
// touches out of r.stages (and out of the needs of the others: a stage
// that needs one of them runs without it), and returns them with why.
func (r *testRun) unchangedStages(ctx context.Context) map[string]string {
	if !slices.ContainsFunc(r.stages, func(s repoconfig.Stage) bool { return !s.Filter().Empty() }) {
		return nil
	}
	files, base, known := r.changedFiles(ctx)
	if !known {
		return nil
	}
	why := map[string]string{}
	var kept []repoconfig.Stage
	for _, s := range r.stages {
		if s.Filter().Touched(files) {
			kept = append(kept, s)
			continue
		}
		why[s.Name] = unchangedNote(s.Filter(), base, r.req.sha, len(files))
	}
	for i := range kept {
		kept[i].Needs = slices.DeleteFunc(slices.Clone(kept[i].Needs), func(n string) bool { _, gone := why[n]; return gone })
	}
	r.stages = kept
	return why
}

func unchangedNote(f repoconfig.Filter, base, sha string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "None of the %d file(s) changed from `%s` to `%s` concerns this stage", n, short(base), short(sha))
	if len(f.Paths) > 0 {
		fmt.Fprintf(&b, " (paths: `%s`", strings.Join(f.Paths, "`, `"))
		if len(f.Ignore) > 0 {
			fmt.Fprintf(&b, "; paths_ignore: `%s`", strings.Join(f.Ignore, "`, `"))
		}
		b.WriteString(")")
	} else {
		fmt.Fprintf(&b, " (paths_ignore: `%s`)", strings.Join(f.Ignore, "`, `"))
	}
	b.WriteString(", so it did not run.")
	return b.String()
}

// skipUnchanged reports the stages unchangedStages took out: a check run
// concluded "skipped", and the step as stepUnchanged.
func (r *testRun) skipUnchanged(ctx context.Context, why map[string]string) error {
	steps := r.t.deps.State.Steps
	now := time.Now()
	for _, name := range slices.Sorted(maps.Keys(why)) {
		if err := steps.Plan(ctx, r.runID, []string{name}); err != nil {
			return err
		}
		if err := steps.Update(ctx, r.runID, state.Step{Name: name, Status: stepUnchanged, Started: now, Finished: now, Log: why[name]}); err != nil {
			return err
		}
		if _, err := r.repo.CreateCheckRun(context.WithoutCancel(ctx), github.CheckRun{
			Name: checkTestPrefix + name, HeadSHA: r.req.sha, Status: github.StatusCompleted, Conclusion: github.ConclusionSkipped,
			StartedAt: now, CompletedAt: now,
			Output: &github.CheckOutput{Title: "Skipped: no change in its paths", Summary: why[name]},
		}); err != nil {
			r.logger.Warn().Err(err).Str("stage", name).Msg("reporting a stage the path filter skipped")
		}
	}
	return nil
}

// keepStep is the step of a Worker a path filter leaves as it is.
func keepStep(worker string) string { return "keep:" + worker }

// unchangedWorkers are the Workers of a preview that keep their version:
// each has a path filter, a version live in this preview (built from a
// recorded commit), and no file its filter selects changed since that
// commit. A /redeploy, a reset database or an unknown change rebuilds
// them all.
func (r *previewRun) unchangedWorkers(ctx context.Context, pl *plan) map[string]string {
	if r.force || r.resetDB {
		return nil
	}
	live := map[string]string{} // script → commit
	for _, w := range r.st.Resources.Workers {
		live[w.Script] = w.Commit
	}
	out := map[string]string{}
	changed := map[string][]string{} // by base commit
	for _, pw := range pl.workers {
		since := live[pw.script]
		if pw.w.Filter().Empty() || since == "" || since == r.pr.HeadSHA {
			continue
		}
		files, seen := changed[since]
		if !seen {
			list, complete, err := r.repo.ChangedFiles(ctx, since, r.pr.HeadSHA)
			if err != nil || !complete {
				r.logger.Info().Err(err).Str("since", short(since)).Msg("the changed files are not known: every Worker is rebuilt")
				return nil
			}
			files, changed[since] = list, list
		}
		if !pw.w.Filter().Touched(files) {
			out[pw.w.Name] = since
		}
	}
	return out
}

// recordBuilt notes, after a preview deployed, the commit each Worker it
// rebuilt was built from.
func (r *previewRun) recordBuilt(pl *plan) {
	for i, w := range r.st.Resources.Workers {
		for _, pw := range pl.workers {
			if pw.script == w.Script {
				if _, kept := pl.unchanged[pw.w.Name]; !kept {
					r.st.Resources.Workers[i].Commit = r.pr.HeadSHA
				}
			}
		}
	}
}
