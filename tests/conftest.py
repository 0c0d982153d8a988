"""Suite-wide set-up.

The one-line notice hwemu prints when numba compiles its kernels goes to stderr. Which test
first triggers a compile depends on the order the suite runs in (and on what a change
invalidated), so tests that check a command's stderr would see it or not by chance. The
notice is off for the suite; tests/test_compile_notice.py turns it back on to test it."""

import os

os.environ.setdefault("HWEMU_NO_COMPILE_NOTICE", "1")

# Reports carry the date they were made (hwemu.report.provenance). Tests that compare two
# reports byte for byte pin it the way reproducible builds do; tests/report/test_provenance.py
# checks the date without it.
os.environ.setdefault("SOURCE_DATE_EPOCH", "1767225600")      # 2026-01-01T00:00:00Z
