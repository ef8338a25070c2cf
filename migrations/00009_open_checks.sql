-- +goose Up
-- Check runs the bot opened (queued or in progress) and has not concluded
-- yet: the sweep concludes those whose run has ended, so no check run of
-- the bot spins on a commit for ever.
CREATE TABLE open_checks (
    repo            text NOT NULL,
    check_run_id    bigint NOT NULL,
    installation_id bigint NOT NULL,
    run_id          bigint NOT NULL,
    name            text NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo, check_run_id)
);

-- +goose Down
DROP TABLE open_checks;
