-- +goose Up
-- The preview of each pull request: what exists in the clouds and what the
-- PR shows. One row per PR; the sync job of that PR is its only writer.
CREATE TABLE previews (
    repo              text NOT NULL,
    pr_number         integer NOT NULL,
    installation_id   bigint NOT NULL,
    state             text NOT NULL DEFAULT 'pending', -- pending, building, ready, failed, destroyed, draft, awaiting_approval
    deployed_sha      text NOT NULL DEFAULT '',
    comment_id        bigint NOT NULL DEFAULT 0,
    deployment_id     bigint NOT NULL DEFAULT 0,
    neon_branch_id    text NOT NULL DEFAULT '',
    neon_branch_name  text NOT NULL DEFAULT '',
    -- Scripts and hostnames this preview created, so teardown finds them
    -- even if the pipeline file changed since.
    resources         jsonb NOT NULL DEFAULT '{}',
    approved_sha      text NOT NULL DEFAULT '',
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo, pr_number)
);

-- One pipeline run: a preview build, a teardown, a production deploy or a
-- test run, with its GitHub check run.
CREATE TABLE runs (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL,            -- preview, teardown, production, test
    repo          text NOT NULL,
    pr_number     integer NOT NULL DEFAULT 0,
    head_sha      text NOT NULL DEFAULT '',
    job_id        bigint,
    status        text NOT NULL DEFAULT 'running', -- running, succeeded, failed, cancelled, skipped
    reason        text NOT NULL DEFAULT '',
    check_run_id  bigint NOT NULL DEFAULT 0,
    error         text NOT NULL DEFAULT '',
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

CREATE INDEX runs_repo_pr_idx ON runs (repo, pr_number, id DESC);
CREATE INDEX runs_running_idx ON runs (status) WHERE status = 'running';

-- The steps of a run, with timings and the tail of their output.
CREATE TABLE run_steps (
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name        text NOT NULL,
    status      text NOT NULL DEFAULT 'pending', -- pending, running, succeeded, failed, skipped, cancelled
    started_at  timestamptz,
    finished_at timestamptz,
    log_tail    text NOT NULL DEFAULT '',
    error       text NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, name)
);

-- +goose Down
DROP TABLE run_steps;
DROP TABLE runs;
DROP TABLE previews;
