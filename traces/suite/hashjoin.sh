#!/bin/sh
# Build, run and record the hashjoin workload (docs/study.md, "Workloads"):
#   traces/suite/hashjoin.sh [--scale tiny|small|full] [--out DIR] [--seed N] [--keep]
# Needs hwemu on PATH (or HWEMU=/path/to/hwemu), valgrind and python3.
exec python3 "$(dirname "$0")/record.py" hashjoin "$@"
