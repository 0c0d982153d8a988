#!/bin/sh
# Rebuild the bundled traces (see README.md). Needs gcc, valgrind and hwemu.
#   traces/make_traces.sh                      (uses 'hwemu' from PATH)
#   HWEMU=/path/to/venv/bin/hwemu traces/make_traces.sh
set -eu
cd "$(dirname "$0")"
HWEMU=${HWEMU:-hwemu}
mkdir -p build
trap 'rm -rf build' EXIT
gcc -O1 -g -o build/matmul src/matmul.c
gcc -O1 -g -pthread -o build/threads src/threads.c
# A fixed, minimal environment: the traced start-up code walks the environment, so this keeps
# the recorded instruction stream the same from one machine (and user) to the next.
run() { env -i PATH=/usr/bin:/bin LC_ALL=C HOME=/nonexistent "$HWEMU" trace record "$@"; }
run --out matmul.parquet -- build/matmul > /dev/null
run --out threads.parquet -- build/threads > /dev/null
run --out sort.parquet -- sort -n -k1,1 inputs/words.txt > /dev/null
run --out gzip.parquet -- gzip -1 -c inputs/words.txt > /dev/null
