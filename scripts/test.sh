#!/bin/sh
# The whole test suite: installs what it needs, then runs unit and network-namespace tests with
# Node's own test runner (one file at a time: guests are heavy on two cores).
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
exec node --test --test-concurrency=1 --test-timeout=600000 dist/test/
