#!/bin/sh
# Compiles bench/tools/lpgen.c to bench/tools/build/lpgen (ignored by git; rebuilt at bench time).
set -e
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/build"
${CC:-cc} -O2 -Wall -Wextra -o "$here/build/lpgen" "$here/lpgen.c"
echo "$here/build/lpgen"
