"""Resident pages per node, each page counted once: the ``placement`` frame's counts.

``Kernel.node_usage()`` counts frames in use, so a page under migration counts twice (its old
frame and its new one) and frames no process maps (nomad's shadow copies, the page cache) count
too. :class:`Residency` follows the page tables instead, through the kernel's observer hooks:
a page is *resident* on its node while some page-table entry maps it (present, or PROT_NONE
for a NUMA hinting fault), and *in flight* while an entry is a migration entry (from the unmap
of protocol step 4 to the restore of step 16; it is counted on the node it leaves). Each frame
is counted once however many processes map it.
"""

from __future__ import annotations

from hwemu.linux.kernel import KernelObserver
from hwemu.linux.mm import HPAGE_NR, PteKind


class Residency(KernelObserver):
    """Incremental counts of resident and in-flight base pages per node."""

    loop_faults_ok = True

    def __init__(self, num_nodes: int):
        self.resident = [0] * num_nodes
        self.in_flight = [0] * num_nodes
        self._ptes: dict[tuple, tuple] = {}       # (pid, vaddr, huge) -> (frame, migration?)
        self._frames: dict[tuple, list] = {}      # (paddr, pages) -> [present, migration, node]

    def _state(self, st: list) -> list | None:
        if st[1]:
            return self.in_flight
        if st[0]:
            return self.resident
        return None

    def _add(self, frame: tuple, migration: bool, node: int, delta: int) -> None:
        st = self._frames.get(frame)
        if st is None:
            st = self._frames[frame] = [0, 0, node]
        before = self._state(st)
        st[1 if migration else 0] += delta
        after = self._state(st)
        if before is not after:
            pages = frame[1]
            if before is not None:
                before[st[2]] -= pages
            if after is not None:
                after[st[2]] += pages
        if not st[0] and not st[1]:
            del self._frames[frame]

    def pte_changed(self, pid: int, vaddr: int, huge: bool, kind: PteKind, paddr: int,
                    node: int) -> None:
        key = (pid, vaddr, huge)
        if kind is not PteKind.NONE and node >= 0:
            new = ((paddr, HPAGE_NR if huge else 1), kind is PteKind.MIGRATION, node)
            if self._ptes.get(key) == new:
                return              # the same frame, still resident (e.g. present -> PROT_NONE)
        else:
            new = None
        old = self._ptes.pop(key, None)
        if old is not None:
            self._add(old[0], old[1], old[2], -1)
        if new is not None:
            self._ptes[key] = new
            self._add(new[0], new[1], new[2], +1)
