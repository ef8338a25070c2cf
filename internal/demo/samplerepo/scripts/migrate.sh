#!/bin/sh
# Applies every migration in order; each is written to be re-runnable.
set -eu
for f in migrations/*.sql; do
  echo "applying $f"
  psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q -f "$f"
done
