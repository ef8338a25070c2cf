package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Tests is what the runs table and run_steps hold of test runs: one run
// per test request (a branch's push, a re-run, a fork's approved head),
// keyed by branch (its "branch" column), each stage's check run with its
// step.
type Tests struct{ pool *pgxpool.Pool }

// TestRun is a test run to record.
type TestRun struct {
	Repo   string
	Key    string // the branch, or "pull:N" for a fork's pull request
	SHA    string
	JobID  int64
	Reason string // push, rerun, fork
	Actor  string // who pushed or asked
}

// Record stores run as queued, or directly as ended with status and msg
// (a skip), and returns its id. A snoozed or rescued job comes back to the
// run it queued: that run goes on (or ends here), rather than a second one
// being recorded and the first left queued for ever.
func (t Tests) Record(ctx context.Context, run TestRun, status, msg string) (int64, error) {
	var finished *time.Time
	if status != "queued" {
		now := time.Now()
		finished = &now
	}
	var id int64
	err := t.pool.QueryRow(ctx, `
		UPDATE runs SET status = $2, error = $3, finished_at = $4
		WHERE id = (SELECT id FROM runs WHERE kind = 'test' AND job_id = $1 AND status = 'queued' ORDER BY id DESC LIMIT 1)
		RETURNING id`, run.JobID, status, msg, finished).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("record test run of %s@%s: %w", run.Repo, run.SHA, err)
	}
	err = t.pool.QueryRow(ctx, `
		INSERT INTO runs (kind, repo, head_sha, job_id, reason, branch, status, error, finished_at, actor)
		VALUES ('test', $1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		run.Repo, run.SHA, run.JobID, run.Reason, run.Key, status, msg, finished, run.Actor).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record test run of %s@%s: %w", run.Repo, run.SHA, err)
	}
	return id, nil
}

// Start marks run id as running.
func (t Tests) Start(ctx context.Context, id int64) error {
	if _, err := t.pool.Exec(ctx, `UPDATE runs SET status = 'running' WHERE id = $1`, id); err != nil {
		return fmt.Errorf("start test run %d: %w", id, err)
	}
	return nil
}

// Ran reports whether another job (not except) already tested run's
// commit for the same reason, or is testing it: a duplicate delivery.
func (t Tests) Ran(ctx context.Context, run TestRun, except int64) (bool, error) {
	var dup bool
	err := t.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM runs WHERE kind = 'test' AND repo = $1 AND branch = $2 AND head_sha = $3
		  AND reason = $4 AND job_id <> $5 AND status IN ('queued', 'running', 'succeeded', 'failed'))`,
		run.Repo, run.Key, run.SHA, run.Reason, except).Scan(&dup)
	if err != nil {
		return false, fmt.Errorf("look for earlier test runs of %s@%s: %w", run.Repo, run.SHA, err)
	}
	return dup, nil
}

// Older returns the jobs of the branch's queued or running runs queued
// before job (River numbers jobs in the order the deliveries arrived),
// every one of them when allHeads, else only those of sha.
func (t Tests) Older(ctx context.Context, repo, key string, job int64, allHeads bool, sha string) ([]int64, error) {
	rows, err := t.pool.Query(ctx, `
		SELECT DISTINCT job_id FROM runs
		WHERE kind = 'test' AND repo = $1 AND branch = $2 AND job_id < $3 AND status IN ('queued', 'running')
		  AND ($4 OR head_sha = $5)`, repo, key, job, allHeads, sha)
	if err != nil {
		return nil, fmt.Errorf("find older test runs of %s@%s: %w", repo, key, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// CancelQueued ends, as cancelled with msg, the queued runs of jobs that
// River has cancelled: a job snoozed while waiting for a lock is cancelled
// without running again, so it cannot end its run itself.
func (t Tests) CancelQueued(ctx context.Context, jobs []int64, msg string) error {
	_, err := t.pool.Exec(ctx, `
		UPDATE runs SET status = 'cancelled', error = $2, finished_at = now()
		WHERE kind = 'test' AND job_id = ANY($1) AND status = 'queued'
		  AND job_id IN (SELECT id FROM river_job WHERE id = ANY($1) AND state = 'cancelled')`, jobs, msg)
	if err != nil {
		return fmt.Errorf("end cancelled test runs: %w", err)
	}
	return nil
}

// Newer reports whether a run of the branch queued after job replaces it:
// any new head (reasons named in heads), or a re-run of the same sha.
func (t Tests) Newer(ctx context.Context, repo, key string, job int64, sha string, heads []string) (bool, error) {
	var newer bool
	err := t.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM runs
		WHERE kind = 'test' AND repo = $1 AND branch = $2 AND job_id > $3 AND status <> 'skipped'
		  AND (reason = ANY($5) OR head_sha = $4))`, repo, key, job, sha, heads).Scan(&newer)
	if err != nil {
		return false, fmt.Errorf("look for newer test runs of %s@%s: %w", repo, key, err)
	}
	return newer, nil
}

// StageCheck is a stage's check run as recorded with its step.
type StageCheck struct {
	Stage      string
	Status     string // the step's
	CheckRunID int64
}

// Abandoned returns the branch's runs other than run that are still
// running, and job's earlier queued attempts: holding the branch's lock,
// no other job works on them, so their process died. It returns their ids
// and their stages' check runs: the caller concludes those, then ends the
// runs (Runs.Abandon), so a bot stopped in between finds them again.
func (t Tests) Abandoned(ctx context.Context, repo, key string, run, job int64) ([]int64, []StageCheck, error) {
	rows, err := t.pool.Query(ctx, `
		SELECT id FROM runs
		WHERE kind = 'test' AND repo = $1 AND branch = $2 AND id <> $3
		  AND (status = 'running' OR (status = 'queued' AND job_id = $4))`, repo, key, run, job)
	if err != nil {
		return nil, nil, fmt.Errorf("find abandoned test runs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(ids) == 0 {
		return nil, nil, err
	}
	rows, err = t.pool.Query(ctx, `
		SELECT name, status, check_run_id FROM run_steps WHERE run_id = ANY($1) AND check_run_id <> 0`, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("find abandoned test runs: %w", err)
	}
	checks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StageCheck, error) {
		var c StageCheck
		return c, row.Scan(&c.Stage, &c.Status, &c.CheckRunID)
	})
	return ids, checks, err
}

// AttachCheckRun records the check run of run's stage (its step), so that
// a re-run or the next run finds it.
func (t Tests) AttachCheckRun(ctx context.Context, run int64, stage string, checkRunID int64) error {
	_, err := t.pool.Exec(ctx, `
		INSERT INTO run_steps (run_id, name, check_run_id) VALUES ($1, $2, $3)
		ON CONFLICT (run_id, name) DO UPDATE SET check_run_id = EXCLUDED.check_run_id`, run, stage, checkRunID)
	if err != nil {
		return fmt.Errorf("record the check run of stage %s: %w", stage, err)
	}
	return nil
}

// OfCheckRun returns the branch key and commit of the test run whose stage
// check run is checkRunID (found false when none is).
func (t Tests) OfCheckRun(ctx context.Context, repo string, checkRunID int64) (key, sha string, found bool, err error) {
	err = t.pool.QueryRow(ctx, `
		SELECT r.branch, r.head_sha FROM run_steps s JOIN runs r ON r.id = s.run_id
		WHERE r.repo = $1 AND r.kind = 'test' AND s.check_run_id = $2`, repo, checkRunID).Scan(&key, &sha)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("find the test run of check run %d: %w", checkRunID, err)
	}
	return key, sha, true, nil
}

// KeyOf returns the branch key of the latest test run of sha (found false
// when the bot never tested it).
func (t Tests) KeyOf(ctx context.Context, repo, sha string) (key string, found bool, err error) {
	err = t.pool.QueryRow(ctx, `
		SELECT branch FROM runs WHERE repo = $1 AND kind = 'test' AND head_sha = $2 AND branch <> ''
		ORDER BY id DESC LIMIT 1`, repo, sha).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("find the test run of %s@%s: %w", repo, sha, err)
	}
	return key, true, nil
}

// Results is what the test runs of one commit say of each stage.
type Results struct {
	// Stages maps a stage to its step's status in the newest run of the
	// commit that has it (a re-run of one stage is newer than the push's
	// run of every stage).
	Stages map[string]string
	// Skipped: the newest run of the commit was skipped as a whole
	// ([skip ci]).
	Skipped bool
}

// ResultsAt reads the test results of commit sha.
func (t Tests) ResultsAt(ctx context.Context, repo, sha string) (Results, error) {
	res := Results{Stages: map[string]string{}}
	rows, err := t.pool.Query(ctx, `
		SELECT DISTINCT ON (s.name) s.name, s.status
		FROM runs r JOIN run_steps s ON s.run_id = r.id
		WHERE r.repo = $1 AND r.head_sha = $2 AND r.kind = 'test'
		ORDER BY s.name, r.id DESC`, repo, sha)
	if err != nil {
		return res, fmt.Errorf("read the test results of %s@%s: %w", repo, sha, err)
	}
	for rows.Next() {
		var name, status string
		if err := rows.Scan(&name, &status); err != nil {
			return res, err
		}
		res.Stages[name] = status
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("read the test results of %s@%s: %w", repo, sha, err)
	}
	var last string
	err = t.pool.QueryRow(ctx, `SELECT status FROM runs WHERE repo = $1 AND head_sha = $2 AND kind = 'test' ORDER BY id DESC LIMIT 1`, repo, sha).Scan(&last)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return res, fmt.Errorf("read the test runs of %s@%s: %w", repo, sha, err)
	}
	res.Skipped = last == "skipped"
	return res, nil
}
