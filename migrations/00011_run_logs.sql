-- +goose Up
-- The whole output of every step (run_steps.log_tail keeps only the last
-- 8 KiB, for check runs), written in batches as it comes, secrets already
-- masked. The id orders a run's chunks and is the run page's stream cursor
-- (SSE Last-Event-ID): one writer per run inserts them in order.
--
-- Bounded per step and per run: past its head, a step's output keeps a
-- rolling tail, and a marker row (marker = true, inserted when the head
-- filled) counts in cut the bytes dropped between them.
CREATE TABLE run_log_chunks (
    id      bigserial PRIMARY KEY,
    run_id  bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step    text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    body    text NOT NULL DEFAULT '',
    marker  boolean NOT NULL DEFAULT false,
    cut     bigint NOT NULL DEFAULT 0
);
CREATE INDEX run_log_chunks_run_idx ON run_log_chunks (run_id, id);

-- Who started a run (the webhook's sender), shown on its page.
ALTER TABLE runs ADD COLUMN actor text NOT NULL DEFAULT '';

-- A run's page streams it live from whichever replica serves the page:
-- every change of a run, its steps or its log wakes the listeners of
-- channel deploybot_runs with the run's id. Notifications are sent at
-- commit, and repeats within one transaction are folded into one.
-- +goose StatementBegin
CREATE FUNCTION deploybot_notify_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('deploybot_runs', NEW.id::text);
    RETURN NULL;
END $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION deploybot_notify_run_part() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('deploybot_runs', NEW.run_id::text);
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER runs_notify AFTER UPDATE OF status, finished_at ON runs
    FOR EACH ROW EXECUTE FUNCTION deploybot_notify_run();
CREATE TRIGGER run_steps_notify AFTER UPDATE ON run_steps
    FOR EACH ROW EXECUTE FUNCTION deploybot_notify_run_part();
CREATE TRIGGER run_log_chunks_notify AFTER INSERT ON run_log_chunks
    FOR EACH ROW EXECUTE FUNCTION deploybot_notify_run_part();

-- +goose Down
DROP TRIGGER run_log_chunks_notify ON run_log_chunks;
DROP TRIGGER run_steps_notify ON run_steps;
DROP TRIGGER runs_notify ON runs;
DROP FUNCTION deploybot_notify_run_part();
DROP FUNCTION deploybot_notify_run();
ALTER TABLE runs DROP COLUMN actor;
DROP TABLE run_log_chunks;
