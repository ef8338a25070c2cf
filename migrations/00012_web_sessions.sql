-- +goose Up
-- The web interface's sign-in sessions. The cookie holds a random id; only
-- its SHA-256 is stored, so a copy of this table opens no session. The
-- person's GitHub user access token is sealed (AES-GCM, a key derived from
-- master_key): the bot asks GitHub with it what the person may read.
CREATE TABLE web_sessions (
    id_hash      bytea PRIMARY KEY,
    user_id      bigint NOT NULL,
    login        text NOT NULL,
    token_sealed bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- +goose Down
DROP TABLE web_sessions;
