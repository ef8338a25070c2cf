-- +goose Up
-- What a delivery acts on, when that is unique by itself (a comment's id):
-- the same event delivered under another delivery id is then a duplicate too.
ALTER TABLE deliveries ADD COLUMN intent_key text;
CREATE UNIQUE INDEX deliveries_intent_key_idx ON deliveries (intent_key) WHERE intent_key IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_intent_key_idx;
ALTER TABLE deliveries DROP COLUMN intent_key;
