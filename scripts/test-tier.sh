#!/bin/sh
# Runs tiers of the test suite from tsc's output (build first: npm run build).
#   unit   test/unit: pure logic, in-memory ports and injected clocks; no sockets, no root (seconds)
#   io     test/io and test/pack.test.ts: real sockets on loopback, TAP as root, headless Chromium, npm pack
#   fuzz   test/fuzz: the short fuzz run over every target (about a minute per target at most)
#   netns  test/netns: network namespaces, QEMU guests and reference peers, as root (the long tier)
# `sh scripts/test-tier.sh unit io` runs those tiers in one `node --test`; `--list TIER...` only
# prints the files, in tier order (scripts/test.sh uses it for the whole suite). A compiled test
# whose source is gone is left out: tsc never removes the output of a moved or deleted file.
set -eu
cd "$(dirname "$0")/.."
list=""
if [ "${1:-}" = "--list" ]; then list=1; shift; fi
[ $# -gt 0 ] || { echo "usage: sh scripts/test-tier.sh [--list] unit|io|fuzz|netns ..." >&2; exit 2; }

files_of() {
  for f in $(find "$@" -name '*.test.js' 2>/dev/null | sort); do
    src=${f#dist/}
    [ -e "${src%.js}.ts" ] && echo "$f"
  done
  return 0
}

files=""
serial=""
timeout=""
for tier in "$@"; do
  case "$tier" in
    unit) dirs="dist/test/unit" ;;
    io) dirs="dist/test/io dist/test/pack.test.js"; serial=1 ;;
    fuzz) dirs="dist/test/fuzz"; serial=1 ;;
    netns) dirs="dist/test/netns"; serial=1; timeout=1 ;;
    *) echo "scripts/test-tier.sh: unknown tier \"$tier\" (expected unit, io, fuzz or netns)" >&2; exit 2 ;;
  esac
  found=$(files_of $dirs)
  # Without files, node --test would search the whole folder for tests: refuse instead.
  [ -n "$found" ] || { echo "scripts/test-tier.sh: no compiled $tier tests under dist/; run npm run build first" >&2; exit 2; }
  files="$files $found"
done

if [ -n "$list" ]; then
  for f in $files; do echo "$f"; done
  exit 0
fi
# The unit tier alone runs in one process, under test/helpers/unit-guard.ts (which fails a test
# that opens a socket through Node): a process per file costs more than the tests themselves on a
# loaded two-core machine (65 s against 26 s). scripts/test.sh still gives each file a process of
# its own, so a test that leans on another file's state shows up there.
if [ "$*" = unit ]; then
  exec node --import=./dist/test/helpers/unit-guard.js --input-type=module \
    -e 'import { pathToFileURL } from "node:url"; for (const f of process.argv.slice(1)) await import(pathToFileURL(f).href);' $files
fi
# Tiers past unit share ports, namespaces and the machine's cores: one file at a time. A netns
# file may take minutes (guests boot under TCG where there is no /dev/kvm).
exec node --test ${serial:+--test-concurrency=1} ${timeout:+--test-timeout=600000} $files
