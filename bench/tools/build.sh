#!/bin/sh
# Compiles bench/tools/lpgen.c and lpping.c to bench/tools/build/ (ignored by git; rebuilt at
# bench time). Prints the path of lpgen (first line) and lpping.
set -e
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/build"
${CC:-cc} -O2 -Wall -Wextra -o "$here/build/lpgen" "$here/lpgen.c"
${CC:-cc} -O2 -Wall -Wextra -o "$here/build/lpping" "$here/lpping.c"
echo "$here/build/lpgen"
echo "$here/build/lpping"
