#!/bin/sh
# Integration: the migrated schema works on the run's own database branch
# (deploybot gives DATABASE_URL to stages with `database: true`, and deletes
# the branch after the run).
set -eu
email="ci-$DEPLOYBOT_SHA@example.com"
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q -v email="$email" <<'SQL'
INSERT INTO users (email) VALUES (:'email');
SQL
n=$(psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -At -v email="$email" <<'SQL'
SELECT count(*) FROM users WHERE email = :'email';
SQL
)
if [ "$n" != 1 ]; then
  echo "tests/integration.sh:7: error: inserted one user, found $n"
  exit 1
fi
echo "integration: users table works on $DEPLOYBOT_DATABASE_BRANCH"
