-- +goose Up
-- Check runs (and deployments, kind 'deployment') the bot opened — queued
-- or in progress — and has not concluded yet: the sweep concludes those
-- whose run has ended, so nothing of the bot spins on a commit for ever.
CREATE TABLE open_checks (
    repo            text NOT NULL,
    kind            text NOT NULL DEFAULT 'check', -- check, deployment
    check_run_id    bigint NOT NULL,               -- or the deployment's id
    installation_id bigint NOT NULL,
    run_id          bigint NOT NULL,
    name            text NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo, kind, check_run_id)
);

-- +goose Down
DROP TABLE open_checks;
