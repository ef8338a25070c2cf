-- +goose Up
-- Deploys that wait for tests read the test results of one commit, and a
-- test run's end looks for the deploys its commit holds back.
CREATE INDEX runs_repo_sha_idx ON runs (repo, head_sha, id DESC);

-- +goose Down
DROP INDEX runs_repo_sha_idx;
