-- +goose Up
-- The repository page lists a repository's runs newest first, all of
-- them or one kind (its production history), 50 at a time: without these
-- it sorts every run of the repository (runs_repo_pr_idx orders by PR
-- first).
CREATE INDEX runs_repo_idx ON runs (repo, id DESC);
CREATE INDEX runs_repo_kind_idx ON runs (repo, kind, id DESC);
-- Filtered by status: a rare status (failed, cancelled) would otherwise
-- walk back through every run of the repository to find 50.
CREATE INDEX runs_repo_status_idx ON runs (repo, status, id DESC);
-- The overview lists the runs that failed in the last 24 hours; failures
-- are few, so a partial index stays small.
CREATE INDEX runs_failed_idx ON runs (finished_at DESC) WHERE status = 'failed';
-- A repository's production queue: its runs queued or running.
CREATE INDEX runs_active_idx ON runs (repo, kind) WHERE status IN ('queued', 'running');

-- +goose Down
DROP INDEX runs_active_idx;
DROP INDEX runs_failed_idx;
DROP INDEX runs_repo_status_idx;
DROP INDEX runs_repo_kind_idx;
DROP INDEX runs_repo_idx;
