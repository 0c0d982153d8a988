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


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _present_index_kept():
    """After every test, each kernel it made has ``mm.present`` (where a NUMA scan made it)
    equal to the vpns of its present PTEs: the index a scan reads is kept by
    ``Kernel.notify_pte`` and ``notify_ptes``, so a change of an entry that bypassed them
    would show here."""
    from hwemu.linux.kernel import Kernel
    from hwemu.linux.mm import PteKind

    made = []
    init = Kernel.__init__

    def recording(self, *a, **kw):
        init(self, *a, **kw)
        made.append(self)

    Kernel.__init__ = recording
    try:
        yield
    finally:
        Kernel.__init__ = init
    for k in made:
        for mm in k.mms.values():
            if mm.present is None:
                continue                # no NUMA scan made it
            want = sorted(vpn for vpn, e in mm.ptes.items() if e.kind is PteKind.PRESENT)
            assert list(mm.present) == want, f"pid {mm.pid}: mm.present is not the present PTEs"
