-- +goose Up
-- Each bot process (River client) writes a heartbeat here. A job still
-- marked running by a process whose heartbeat stopped was cut off by a
-- crash or a kill, and is made available again at once instead of after
-- River's stuck-job timeout (which must exceed the longest run).
CREATE TABLE bot_clients (
    client_id    text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE bot_clients;
