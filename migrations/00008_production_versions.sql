-- +goose Up
-- The Worker versions a production run left live (script → version id), so
-- that "Roll back" can put them back later.
ALTER TABLE runs ADD COLUMN versions jsonb NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE runs DROP COLUMN versions;
