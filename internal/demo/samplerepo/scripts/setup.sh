#!/bin/sh
# Runs once per run, before the builds, the migration and the test stages,
# in the run's checkout: where a real monorepo installs its dependencies
# (pnpm install --frozen-lockfile) so that the builds share them.
set -eu
mkdir -p node_modules/.deploybot
echo "$DEPLOYBOT_SHA" > node_modules/.deploybot/setup-done
echo "setup: dependencies ready for $DEPLOYBOT_ENVIRONMENT at $DEPLOYBOT_SHA"
