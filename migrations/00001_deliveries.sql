-- +goose Up
-- One row per webhook delivery the bot acted on. The primary key is GitHub's
-- X-GitHub-Delivery id, so a redelivery finds its row and has no second effect.
CREATE TABLE deliveries (
    delivery_id     text PRIMARY KEY,
    event           text NOT NULL,
    action          text NOT NULL DEFAULT '',
    installation_id bigint NOT NULL DEFAULT 0,
    repo            text NOT NULL DEFAULT '',
    pr_number       integer NOT NULL DEFAULT 0,
    intent_kind     text NOT NULL,
    intent          jsonb NOT NULL,
    job_id          bigint,
    received_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX deliveries_repo_pr_idx ON deliveries (repo, pr_number, received_at DESC);

-- What the job workers did with each intent. Until the pipelines take over a
-- kind of intent, its worker records it here so operators and tests can see
-- that the queue delivered it.
CREATE TABLE intents (
    delivery_id text PRIMARY KEY REFERENCES deliveries (delivery_id) ON DELETE CASCADE,
    kind        text NOT NULL,
    repo        text NOT NULL DEFAULT '',
    pr_number   integer NOT NULL DEFAULT 0,
    intent      jsonb NOT NULL,
    job_id      bigint NOT NULL,
    attempt     integer NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE intents;
DROP TABLE deliveries;
