-- +goose Up
-- Test runs are per branch: a newer push to a branch supersedes the runs of
-- its older commits. branch is the pushed branch, or "pull:N" for the head
-- of fork pull request N (":" cannot appear in a branch name). A test run's
-- status is "queued" while it waits for the branch's previous run to end.
ALTER TABLE runs ADD COLUMN branch text NOT NULL DEFAULT '';
CREATE INDEX runs_test_branch_idx ON runs (repo, branch, id) WHERE kind = 'test';

-- Every stage of a test run is its own check run; a re-run finds its stage,
-- commit and branch from the check run's id.
ALTER TABLE run_steps ADD COLUMN check_run_id bigint NOT NULL DEFAULT 0;
CREATE INDEX run_steps_check_run_idx ON run_steps (check_run_id) WHERE check_run_id <> 0;

-- +goose Down
DROP INDEX run_steps_check_run_idx;
ALTER TABLE run_steps DROP COLUMN check_run_id;
DROP INDEX runs_test_branch_idx;
ALTER TABLE runs DROP COLUMN branch;
