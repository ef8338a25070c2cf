#!/bin/sh
# Static analysis: no debugging statements left in the Workers' sources.
# Findings are printed as "path:line: message", which deploybot shows as
# annotations on those lines.
set -u
found=$(grep -rnE 'debugger|console\.log' --include='*.js' web/src auth/src api/src || true)
if [ -n "$found" ]; then
  printf '%s\n' "$found" | sed -E 's/^([^:]+:[0-9]+):/\1: error: debugging statement left in: /'
  exit 1
fi
echo "static: no debugging statements in web, auth and api"
