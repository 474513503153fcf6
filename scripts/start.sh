#!/bin/sh
# `npm start`: install and build if needed, then `lanparty up` with any extra arguments.
set -eu
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ ! -f dist/src/cli/main.js ]; then
  npm ci --no-audit --no-fund --loglevel=error
  npm run -s build
  sh scripts/build-native.sh
fi
exec node dist/src/cli/main.js up "$@"
