-- +goose Up
-- A check run is recorded before it is asked for (check_run_id NULL, its
-- commit in head_sha): one GitHub created while the bot stopped before it
-- learned the id is then found by its external id (the run's id) and
-- concluded by the sweep.
ALTER TABLE open_checks DROP CONSTRAINT open_checks_pkey;
ALTER TABLE open_checks ADD COLUMN id bigserial PRIMARY KEY;
ALTER TABLE open_checks ADD COLUMN head_sha text NOT NULL DEFAULT '';
ALTER TABLE open_checks ALTER COLUMN check_run_id DROP NOT NULL;
CREATE UNIQUE INDEX open_checks_ref ON open_checks (repo, kind, check_run_id);

-- +goose Down
DELETE FROM open_checks WHERE check_run_id IS NULL;
DROP INDEX open_checks_ref;
ALTER TABLE open_checks DROP COLUMN head_sha;
ALTER TABLE open_checks DROP COLUMN id;
ALTER TABLE open_checks ALTER COLUMN check_run_id SET NOT NULL;
ALTER TABLE open_checks ADD PRIMARY KEY (repo, kind, check_run_id);
