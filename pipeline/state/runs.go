package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Runs is the runs table: one row per run of a pipeline (preview,
// teardown, production, test), from its start to its outcome.
type Runs struct{ pool *pgxpool.Pool }

// Run is a run about to start.
type Run struct {
	Kind    string // "preview", "teardown", "production", "test"
	Repo    string // owner/name
	PR      int    // 0 for none
	HeadSHA string
	// Branch is the branch a production run deploys ("" for the others;
	// test runs record theirs with Tests.Record).
	Branch string
	JobID  int64
	// Reason is what started it, e.g. "pull_request.synchronize" or "push".
	Reason string
	// Actor is who started it: the login of the webhook's sender.
	Actor string
}

// Start records a run as running and returns its id.
func (r Runs) Start(ctx context.Context, run Run) (int64, error) {
	var id int64
	err := r.pool.QueryRow(ctx, `
		INSERT INTO runs (kind, repo, pr_number, head_sha, job_id, reason, branch, actor)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		run.Kind, run.Repo, run.PR, run.HeadSHA, run.JobID, run.Reason, run.Branch, run.Actor).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record %s run of %s: %w", run.Kind, run.Repo, err)
	}
	return id, nil
}

// AttachCheckRun records the check run that reports run id.
func (r Runs) AttachCheckRun(ctx context.Context, id, checkRunID int64) error {
	if _, err := r.pool.Exec(ctx, `UPDATE runs SET check_run_id = $2 WHERE id = $1`, id, checkRunID); err != nil {
		return fmt.Errorf("record check run %d of run %d: %w", checkRunID, id, err)
	}
	return nil
}

// Finish records run id's outcome (status "succeeded", "failed",
// "cancelled", "skipped") and error message. It outlives ctx's
// cancellation: a cancelled run must still be recorded as ended.
func (r Runs) Finish(ctx context.Context, id int64, status, msg string) error {
	_, err := r.End(ctx, id, status, msg)
	return err
}

// Ended is a run as Runs.End recorded its end: what an operator reads of
// it in the log.
type Ended struct {
	ID       int64
	Kind     string
	Repo     string
	PR       int
	Branch   string // a test run's branch (or "pull:N"), a production run's
	HeadSHA  string
	Reason   string
	Status   string
	Started  time.Time
	Finished time.Time
	// Steps are its steps (name, status, error), those that ended first
	// first.
	Steps []Step
}

// End is Finish returning the run it ended, with its steps. A run that
// does not exist is not an error: the Ended returned has no Kind.
func (r Runs) End(ctx context.Context, id int64, status, msg string) (Ended, error) {
	ctx = context.WithoutCancel(ctx)
	e := Ended{ID: id, Status: status}
	err := r.pool.QueryRow(ctx, `
		UPDATE runs SET status = $2, error = $3, finished_at = now() WHERE id = $1
		RETURNING kind, repo, pr_number, branch, head_sha, reason, started_at, finished_at`, id, status, msg).
		Scan(&e.Kind, &e.Repo, &e.PR, &e.Branch, &e.HeadSHA, &e.Reason, &e.Started, &e.Finished)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, nil // no such run (as Finish always allowed): Kind is ""
	}
	if err != nil {
		return e, fmt.Errorf("record outcome of run %d: %w", id, err)
	}
	rows, err := r.pool.Query(ctx, `
		SELECT name, status, error FROM run_steps WHERE run_id = $1
		ORDER BY finished_at NULLS LAST, name`, id)
	if err != nil {
		return e, fmt.Errorf("read the failed steps of run %d: %w", id, err)
	}
	e.Steps, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Step, error) {
		var s Step
		return s, row.Scan(&s.Name, &s.Status, &s.Err)
	})
	if err != nil {
		return e, fmt.Errorf("read the failed steps of run %d: %w", id, err)
	}
	return e, nil
}

// Abandoned is a run found still running while its lock was free: the
// process that ran it stopped.
type Abandoned struct {
	ID         int64
	Kind       string
	CheckRunID int64 // 0 when the bot died before recording it
	HeadSHA    string
}

// AbandonedPreviews returns pull request pr's preview and teardown runs
// still marked running. The caller holds the pull request's lock, so none
// of them is really running: it concludes their check runs, then ends each
// with Abandon. In that order, a bot stopped in between finds them again.
func (r Runs) AbandonedPreviews(ctx context.Context, repo string, pr int) ([]Abandoned, error) {
	return r.abandoned(ctx, `repo = $1 AND pr_number = $2 AND kind IN ('preview', 'teardown')`, repo, pr)
}

// AbandonedProduction does the same for repo's production runs.
func (r Runs) AbandonedProduction(ctx context.Context, repo string) ([]Abandoned, error) {
	return r.abandoned(ctx, `repo = $1 AND kind = 'production'`, repo)
}

func (r Runs) abandoned(ctx context.Context, where string, args ...any) ([]Abandoned, error) {
	rows, err := r.pool.Query(ctx, `
		SELECT id, kind, coalesce(check_run_id, 0), coalesce(head_sha, '') FROM runs
		WHERE status = 'running' AND `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("find abandoned runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Abandoned, error) {
		var a Abandoned
		return a, row.Scan(&a.ID, &a.Kind, &a.CheckRunID, &a.HeadSHA)
	})
	if err != nil {
		return nil, fmt.Errorf("find abandoned runs: %w", err)
	}
	return out, nil
}

// abandonedMessage is the error recorded for a run its process left.
const abandonedMessage = "abandoned: the bot stopped during this run"

// Abandon ends runs ids, still running, as cancelled: their process
// stopped and their check runs are concluded.
func (r Runs) Abandon(ctx context.Context, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := r.pool.Exec(context.WithoutCancel(ctx), `
		UPDATE runs SET status = 'cancelled', error = $2, finished_at = now()
		WHERE id = ANY($1) AND status IN ('running', 'queued')`, ids, abandonedMessage)
	if err != nil {
		return fmt.Errorf("end abandoned runs %v: %w", ids, err)
	}
	return nil
}

// RunningJobs returns the jobs running runs of pull request pr, other than
// job except and other than preview runs of keepSHA ("" keeps none).
func (r Runs) RunningJobs(ctx context.Context, repo string, pr int, except int64, keepSHA string) ([]int64, error) {
	rows, err := r.pool.Query(ctx, `
		SELECT DISTINCT job_id FROM runs
		WHERE repo = $1 AND pr_number = $2 AND status = 'running' AND job_id IS NOT NULL AND job_id <> $3
		  AND ($4 = '' OR kind <> 'preview' OR coalesce(head_sha, '') <> $4)`,
		repo, pr, except, keepSHA)
	if err != nil {
		return nil, fmt.Errorf("find running runs of %s#%d: %w", repo, pr, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("find running runs of %s#%d: %w", repo, pr, err)
	}
	return ids, nil
}

// LastProduction returns the commit of repo's latest production run that
// got going (running or ended, not skipped), other than job except's; ""
// when there is none.
func (r Runs) LastProduction(ctx context.Context, repo string, except int64) (string, error) {
	var sha string
	err := r.pool.QueryRow(ctx, `
		SELECT head_sha FROM runs WHERE kind = 'production' AND repo = $1 AND job_id <> $2
		  AND status IN ('running', 'succeeded', 'failed') AND reason <> 'rollback'
		ORDER BY id DESC LIMIT 1`, repo, except).Scan(&sha)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the last production run of %s: %w", repo, err)
	}
	return sha, nil
}

// PullRequestOf returns the pull request of the latest run reported by
// check run checkRunID or made for commit sha (0: none known).
func (r Runs) PullRequestOf(ctx context.Context, repo string, checkRunID int64, sha string) (int, error) {
	var pr int
	err := r.pool.QueryRow(ctx, `
		SELECT pr_number FROM runs WHERE repo = $1 AND (check_run_id = $2 OR head_sha = $3) AND pr_number > 0
		ORDER BY id DESC LIMIT 1`, repo, checkRunID, sha).Scan(&pr)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("find the pull request of check run %d: %w", checkRunID, err)
	}
	return pr, nil
}

// TestsActive reports whether repo has test runs queued or running. When
// the database cannot say, it answers yes: a caller deciding whether a
// test branch is in use must never delete one that is.
func (r Runs) TestsActive(ctx context.Context, repo string) bool {
	var n int
	err := r.pool.QueryRow(ctx, `SELECT count(*) FROM runs WHERE kind = 'test' AND repo = $1 AND status IN ('queued', 'running')`, repo).Scan(&n)
	return err != nil || n > 0
}

// PreviewAt returns the pull request whose preview was built at sha (one
// of prs, when given), or 0.
func (r Runs) PreviewAt(ctx context.Context, repo, sha string, prs []int) (int, error) {
	var pr int
	err := r.pool.QueryRow(ctx, `
		SELECT pr_number FROM runs WHERE kind = 'preview' AND repo = $1 AND head_sha = $2 AND pr_number > 0
		  AND (coalesce(cardinality($3::int[]), 0) = 0 OR pr_number = ANY($3))
		ORDER BY id DESC LIMIT 1`, repo, sha, prs).Scan(&pr)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("find the preview of %s@%s: %w", repo, sha, err)
	}
	return pr, nil
}

// Blocked returns the newest run of kind at commit sha when tests held it
// back (status "blocked"): the deploys a test run's end may release. pr is
// the pull request of a preview.
func (r Runs) Blocked(ctx context.Context, repo, kind, sha string) (pr int, found bool, err error) {
	var status string
	err = r.pool.QueryRow(ctx, `
		SELECT pr_number, status FROM runs WHERE repo = $1 AND head_sha = $2 AND kind = $3
		ORDER BY id DESC LIMIT 1`, repo, sha, kind).Scan(&pr, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the last %s run of %s@%s: %w", kind, repo, sha, err)
	}
	return pr, status == "blocked", nil
}

// SetVersions records the Worker versions (script → version id) production
// run id left live.
func (r Runs) SetVersions(ctx context.Context, id int64, versions map[string]string) error {
	raw, err := json.Marshal(versions)
	if err != nil {
		return err
	}
	if _, err := r.pool.Exec(ctx, `UPDATE runs SET versions = $2 WHERE id = $1`, id, raw); err != nil {
		return fmt.Errorf("record the versions of run %d: %w", id, err)
	}
	return nil
}

// DeployedBy returns the commit and the Worker versions of the successful
// production run that check run checkRunID reported (found false for any
// other check run).
func (r Runs) DeployedBy(ctx context.Context, repo string, checkRunID int64) (sha string, versions map[string]string, found bool, err error) {
	var raw []byte
	err = r.pool.QueryRow(ctx, `
		SELECT head_sha, versions FROM runs
		WHERE repo = $1 AND check_run_id = $2 AND kind = 'production' AND status = 'succeeded'
		ORDER BY id DESC LIMIT 1`, repo, checkRunID).Scan(&sha, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("read the production run of check run %d: %w", checkRunID, err)
	}
	if err := json.Unmarshal(raw, &versions); err != nil {
		return "", nil, false, fmt.Errorf("read the versions of check run %d: %w", checkRunID, err)
	}
	return sha, versions, len(versions) > 0, nil
}

// Detail is all that is recorded of a run: what its page shows.
type Detail struct {
	ID         int64
	Kind       string
	Repo       string
	PR         int
	Branch     string
	HeadSHA    string
	Reason     string
	Actor      string
	Status     string // queued, running, succeeded, failed, cancelled, skipped, blocked
	Error      string
	CheckRunID int64
	Started    time.Time
	Finished   time.Time // zero while it runs
	// Steps are its steps in the order they started (those not started
	// last, by name).
	Steps []Step
}

// Ended reports whether the run is over.
func (d Detail) Ended() bool { return !d.Finished.IsZero() }

// Get returns run id with its steps (found false when there is none).
func (r Runs) Get(ctx context.Context, id int64) (Detail, bool, error) {
	d := Detail{ID: id}
	var finished *time.Time
	err := r.pool.QueryRow(ctx, `
		SELECT kind, repo, pr_number, branch, head_sha, reason, actor, status, error, check_run_id, started_at, finished_at
		FROM runs WHERE id = $1`, id).
		Scan(&d.Kind, &d.Repo, &d.PR, &d.Branch, &d.HeadSHA, &d.Reason, &d.Actor, &d.Status, &d.Error, &d.CheckRunID, &d.Started, &finished)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("read run %d: %w", id, err)
	}
	if finished != nil {
		d.Finished = *finished
	}
	rows, err := r.pool.Query(ctx, `
		SELECT name, status, started_at, finished_at, error, check_run_id FROM run_steps WHERE run_id = $1
		ORDER BY started_at NULLS LAST, name`, id)
	if err != nil {
		return d, false, fmt.Errorf("read the steps of run %d: %w", id, err)
	}
	d.Steps, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Step, error) {
		var s Step
		var started, finished *time.Time
		err := row.Scan(&s.Name, &s.Status, &started, &finished, &s.Err, &s.CheckRunID)
		if started != nil {
			s.Started = *started
		}
		if finished != nil {
			s.Finished = *finished
		}
		return s, err
	})
	if err != nil {
		return d, false, fmt.Errorf("read the steps of run %d: %w", id, err)
	}
	return d, true, nil
}
