#!/bin/sh
# Unit checks: every Worker's entry module exports a fetch handler.
set -u
status=0
for w in web auth api; do
  f="$w/src/index.js"
  if ! grep -q 'async fetch(' "$f"; then
    echo "$f:1: error: the entry module exports no fetch handler"
    status=1
    continue
  fi
  echo "ok    $w"
done
exit $status
