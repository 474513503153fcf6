#!/bin/sh
# Builds native/build/Release/lanparty_native.node (batched recvmmsg/sendmmsg I/O).
# Optional: without it lanparty uses the slower node:dgram data path and has no unix datagram
# ports. Needs g++, make and python3; node-gyp comes with npm and uses the installed Node headers.
cd "$(dirname "$0")/.." || exit 1
log=$(mktemp "${TMPDIR:-/tmp}/lanparty-native-build.XXXXXX") || exit 1
if npm run --silent build:native >"$log" 2>&1; then
  rm -f "$log"
  echo "lanparty: native addon built: native/build/Release/lanparty_native.node"
else
  echo "lanparty: native addon not built (compiler output in $log; needs g++, make, python3); using the slower JS data path, unix datagram ports unavailable" >&2
  exit 1
fi
