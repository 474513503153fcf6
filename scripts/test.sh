#!/bin/sh
# The whole test suite: installs what it needs, then runs every tier (unit, io, fuzz, netns; see
# scripts/test-tier.sh, which also runs one tier alone) in one run of Node's own test runner, one
# file at a time (guests are heavy on two cores). Only *.test.js files run: Node 20 would also run
# every helper under a test/ folder as a test file. TAP goes to stdout with its summary line; then
# scripts/failures-reporter.mjs lists the failed tests, if any, so the end of the log names them.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
failures=$(mktemp /tmp/lanparty-test-failures.XXXXXX)
trap 'rm -f "$failures"' EXIT
files=$(sh scripts/test-tier.sh --list unit io fuzz netns)
status=0
node --test --test-concurrency=1 --test-timeout=600000 \
  --test-reporter=tap --test-reporter-destination=stdout \
  --test-reporter=./scripts/failures-reporter.mjs --test-reporter-destination="$failures" \
  $files || status=$?
cat "$failures"
exit "$status"
