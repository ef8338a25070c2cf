-- +goose Up
-- When the bot last reacted (😕) to a refused command of a user on a
-- repository. Refused commands get no reply and at most one reaction per
-- user and repository in a window (pipeline.refusalWindow), whichever
-- replica handles them; logins are kept in lower case, as GitHub compares
-- them.
CREATE TABLE command_refusals (
    repo       text        NOT NULL,
    login      text        NOT NULL,
    reacted_at timestamptz NOT NULL,
    PRIMARY KEY (repo, login)
);

-- +goose Down
DROP TABLE command_refusals;
