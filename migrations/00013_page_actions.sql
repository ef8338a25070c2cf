-- +goose Up
-- What signed-in people asked on the web pages (redeploy, destroy, re-run,
-- roll back…), and what came of it: the run page shows its recent ones,
-- refusals included, so a click never vanishes silently.
CREATE TABLE page_actions (
    id            bigserial PRIMARY KEY,
    repo          text NOT NULL,
    run_id        bigint NOT NULL,            -- the run whose page the button was on
    action        text NOT NULL,
    stage         text NOT NULL DEFAULT '',
    actor         text NOT NULL,              -- the viewer's GitHub login
    status        text NOT NULL DEFAULT 'queued', -- queued, running, done, refused, failed
    message       text NOT NULL DEFAULT '',
    job_id        bigint,                     -- the job that carries it out
    result_job_id bigint,                     -- the job whose run it started
    requested_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX page_actions_run_idx ON page_actions (run_id, id DESC);
-- The run an action started is found by its job.
CREATE INDEX runs_job_idx ON runs (job_id);

-- +goose Down
DROP INDEX runs_job_idx;
DROP TABLE page_actions;
