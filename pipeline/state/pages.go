package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// What the web pages list: a repository's runs, previews, production
// queue and lock, and the operator's failures. Each query is served by an
// index (migration 00014), so a page costs the same with 100,000 runs
// stored as with ten (bench/runpage).

// Listed is a run as a list of runs shows it.
type Listed struct {
	ID       int64
	Kind     string
	Repo     string
	PR       int
	Branch   string
	HeadSHA  string
	Reason   string
	Actor    string
	Status   string
	Error    string
	Started  time.Time
	Finished time.Time // zero while it runs
	// Versions are the Worker versions a production run left live
	// (script → version id).
	Versions map[string]string
	// RolledBack: a production run that failed and put back what it had
	// changed (it has rollback:* steps).
	RolledBack bool
}

// ListFilter selects runs for List.
type ListFilter struct {
	Repo   string // required
	Kind   string // "" for every kind
	Status string // "" for every status
	Before int64  // only runs with a smaller id (0: from the newest)
	Limit  int
}

// listedColumns are a Listed's. Whether a run rolled back is a scalar
// subquery, run once per row listed through run_steps' primary key: as
// an EXISTS, the planner may hash the whole run_steps table instead
// (25 ms with 100,000 runs, bench/repopage).
const listedColumns = `id, kind, repo, pr_number, branch, head_sha, reason, actor, status, error, started_at, finished_at, versions,
	kind = 'production' AND (SELECT true FROM run_steps s WHERE s.run_id = runs.id AND s.name LIKE 'rollback:%' LIMIT 1) IS NOT NULL`

// List returns f.Repo's runs that match f, newest first.
func (r Runs) List(ctx context.Context, f ListFilter) ([]Listed, error) {
	// Only the conditions asked for are in the query, so that each form
	// gets the plan of its index rather than one generic plan for all.
	where, args := []string{"repo = $1"}, []any{f.Repo}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, cond+" $"+strconv.Itoa(len(args)))
	}
	if f.Kind != "" {
		add("kind =", f.Kind)
	}
	if f.Status != "" {
		add("status =", f.Status)
	}
	if f.Before > 0 {
		add("id <", f.Before)
	}
	args = append(args, f.Limit)
	q := `SELECT ` + listedColumns + ` FROM runs WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	return collectListed(ctx, r, q, args, "list the runs of "+f.Repo)
}

// FailedSince returns up to limit runs that failed since since, the
// latest first.
func (r Runs) FailedSince(ctx context.Context, since time.Time, limit int) ([]Listed, error) {
	return collectListed(ctx, r, `SELECT `+listedColumns+` FROM runs
		WHERE status = 'failed' AND finished_at >= $1 ORDER BY finished_at DESC LIMIT $2`,
		[]any{since, limit}, "list the failed runs")
}

// Active returns repo's runs of kind that are queued or running, oldest
// first.
func (r Runs) Active(ctx context.Context, repo, kind string) ([]Listed, error) {
	return collectListed(ctx, r, `SELECT `+listedColumns+` FROM runs
		WHERE repo = $1 AND kind = $2 AND status IN ('queued', 'running') ORDER BY id`,
		[]any{repo, kind}, "list the active "+kind+" runs of "+repo)
}

func collectListed(ctx context.Context, r Runs, q string, args []any, what string) ([]Listed, error) {
	rows, err := r.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Listed, error) {
		var l Listed
		var finished *time.Time
		var versions []byte
		if err := row.Scan(&l.ID, &l.Kind, &l.Repo, &l.PR, &l.Branch, &l.HeadSHA, &l.Reason, &l.Actor, &l.Status, &l.Error,
			&l.Started, &finished, &versions, &l.RolledBack); err != nil {
			return l, err
		}
		if finished != nil {
			l.Finished = *finished
		}
		if len(versions) > 2 { // not "{}"
			if err := json.Unmarshal(versions, &l.Versions); err != nil {
				return l, fmt.Errorf("the versions of run %d: %w", l.ID, err)
			}
		}
		return l, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// Repos returns every repository the bot has runs or previews of, by
// name.
func (r Runs) Repos(ctx context.Context) ([]string, error) {
	// A skip scan over runs_repo_idx: one index probe per repository
	// rather than a pass over every run.
	rows, err := r.pool.Query(ctx, `
		WITH RECURSIVE seen AS (
			(SELECT repo FROM runs ORDER BY repo LIMIT 1)
			UNION ALL
			SELECT (SELECT repo FROM runs WHERE repo > seen.repo ORDER BY repo LIMIT 1) FROM seen WHERE seen.repo IS NOT NULL
		)
		SELECT repo FROM seen WHERE repo IS NOT NULL
		UNION SELECT DISTINCT repo FROM previews
		ORDER BY repo`)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	return out, nil
}

// OpenPreview is a pull request's preview that is not torn down.
type OpenPreview struct {
	PR          int
	State       string
	DeployedSHA string
	Resources   Resources
	// Updated is when it last changed: a preview's TTL (the pipeline
	// file's preview.ttl) counts from it.
	Updated time.Time
	// Opened is when its first run started (zero if none is recorded).
	Opened time.Time
}

// Open returns repo's previews that are not destroyed, by pull request.
func (p Previews) Open(ctx context.Context, repo string) ([]OpenPreview, error) {
	rows, err := p.pool.Query(ctx, `
		SELECT pr_number, state, deployed_sha, resources, updated_at,
			(SELECT min(started_at) FROM runs WHERE runs.repo = previews.repo AND runs.pr_number = previews.pr_number)
		FROM previews WHERE repo = $1 AND state <> 'destroyed' ORDER BY pr_number`, repo)
	if err != nil {
		return nil, fmt.Errorf("list the previews of %s: %w", repo, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (OpenPreview, error) {
		var o OpenPreview
		var raw []byte
		var opened *time.Time
		if err := row.Scan(&o.PR, &o.State, &o.DeployedSHA, &raw, &o.Updated, &opened); err != nil {
			return o, err
		}
		if opened != nil {
			o.Opened = *opened
		}
		if err := json.Unmarshal(raw, &o.Resources); err != nil {
			return o, fmt.Errorf("the resources of %s#%d: %w", repo, o.PR, err)
		}
		return o, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the previews of %s: %w", repo, err)
	}
	return out, nil
}

// QueuedJob is a job of River's queue not finished yet.
type QueuedJob struct {
	ID        int64
	Kind      string
	State     string // available, scheduled, retryable, running
	SHA       string // the commit it deploys
	Sender    string // who pushed, or pressed the button
	Attempt   int
	Created   time.Time
	Scheduled time.Time
}

// Production returns repo's production jobs (deploys and rollbacks) that
// wait or run, oldest first. Their arguments are the intents: a
// ProductionPush has its delivery's fields at the top, a rollback under
// "meta".
func (j Jobs) Production(ctx context.Context, repo string) ([]QueuedJob, error) {
	owner, name, _ := strings.Cut(repo, "/")
	rows, err := j.pool.Query(ctx, `
		SELECT id, kind, state::text, COALESCE(args->>'after', args->>'sha', ''),
			COALESCE(args->>'sender', args->'meta'->>'sender', ''), attempt, created_at, scheduled_at
		FROM river_job
		WHERE kind IN ('production_push', 'production_rollback')
		  AND state IN ('available', 'scheduled', 'retryable', 'running')
		  AND COALESCE(args->'repo', args->'meta'->'repo') @> jsonb_build_object('owner', $1::text, 'name', $2::text)
		ORDER BY id`, owner, name)
	if err != nil {
		return nil, fmt.Errorf("list the production jobs of %s: %w", repo, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (QueuedJob, error) {
		var q QueuedJob
		return q, row.Scan(&q.ID, &q.Kind, &q.State, &q.SHA, &q.Sender, &q.Attempt, &q.Created, &q.Scheduled)
	})
	if err != nil {
		return nil, fmt.Errorf("list the production jobs of %s: %w", repo, err)
	}
	return out, nil
}

// LockHeld reports whether some session holds the lock named key (see
// Store.Lock), as PostgreSQL's lock table says: a bigint advisory lock is
// listed with its high 32 bits as classid and its low ones as objid.
func (s *Store) LockHeld(ctx context.Context, key string) (bool, error) {
	var held bool
	err := s.pool.QueryRow(ctx, `
		WITH k AS (SELECT hashtextextended($1, 0) AS v)
		SELECT EXISTS (SELECT 1 FROM pg_locks, k WHERE locktype = 'advisory' AND granted AND objsubid = 1
			AND classid::bigint = (k.v >> 32) & 4294967295 AND objid::bigint = k.v & 4294967295
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`, key).Scan(&held)
	if err != nil {
		return false, fmt.Errorf("read lock %s: %w", key, err)
	}
	return held, nil
}

// ProductionLock is the name of repo's production lock: production runs
// of a repository take it, so they never overlap.
func ProductionLock(repo string) string { return "deploybot:production:" + repo }
