#!/bin/sh
# Build, run and record the pigz workload (docs/study.md, "Workloads"):
#   traces/suite/pigz.sh [--scale tiny|small|full] [--out DIR] [--seed N] [--keep]
# Needs hwemu on PATH (or HWEMU=/path/to/hwemu), valgrind and python3.
exec python3 "$(dirname "$0")/record.py" pigz "$@"
