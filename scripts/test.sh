#!/bin/sh
# The whole test suite: installs what it needs, then runs unit and network-namespace tests with
# Node's own test runner (one file at a time: guests are heavy on two cores). Only *.test.js files
# run: Node 20 would also run every helper under a test/ folder as a test file.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
node --test --test-concurrency=1 --test-timeout=600000 $(find dist/test -name '*.test.js' | sort)
