"""Per-process page tables as numpy hash tables, readable by the compiled replay loop.

Two open-addressing hash tables (linear probing, power-of-two capacity, tombstones on delete)
map virtual page numbers to page-table entries: one keyed by ``vaddr >> 12`` for 4 KiB pages,
one keyed by ``vaddr >> 21`` for 2 MiB pages. A translation looks in the 2 MiB table first.
Only Python inserts and deletes (at trap and event time); the replay loop only reads.

A PTE is one int64::

    bits 0-1   state: 0 not present, 1 present, 2 migration entry, 3 prot-none (NUMA hint)
    bit  2     huge (2 MiB page)
    bits 3-9   node of the frame
    bit  10    accessed (A): set by the page walk that fills a TLB entry (x86 sets A when it
               walks; an access that hits a cached translation does not set it again)
    bit  11    dirty (D): set by the first store through a translation whose cached PTE is
               clean (x86 re-walks with a locked update); the TLB entries then hold D too
    bits 12-   physical address of the frame (4 KiB aligned; 2 MiB aligned for huge pages)

The A and D bits cost no time in the model (the walk's time is that of the walk; the locked
D update is not timed). The OS reads and clears them with ``PageTables.test_and_clear``.

An absent key reads as PTE 0 (not present).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from hwemu.errors import HwemuError
from hwemu.machine.stateref import prefetch

PTE_NOT_PRESENT, PTE_PRESENT, PTE_MIGRATION, PTE_PROTNONE = 0, 1, 2, 3
PTE_STATE_NAMES = ("not-present", "present", "migration-entry", "prot-none")
PTE_HUGE = 4
PTE_ACCESSED = 1 << 10
PTE_DIRTY = 1 << 11
EMPTY, TOMB = -1, -2
PAGE_SHIFT, HUGE_SHIFT = 12, 21
MAX_NODES = 128


def make_pte(phys: int, node: int, huge: bool = False, state: int = PTE_PRESENT) -> int:
    align = (1 << HUGE_SHIFT) if huge else (1 << PAGE_SHIFT)
    if phys % align:
        raise ValueError(f"physical address {phys:#x} is not {align}-byte aligned")
    if not 0 <= node < MAX_NODES:
        raise ValueError(f"node {node} out of range")
    if state not in (PTE_PRESENT, PTE_MIGRATION, PTE_PROTNONE):
        raise ValueError(f"bad PTE state {state}")
    return int(phys) | (node << 3) | (PTE_HUGE if huge else 0) | state


def make_ptes(phys, nodes, huge, states) -> np.ndarray:
    """:func:`make_pte` of each element (sequences of equal length), as an int64 array."""
    phys = np.asarray(phys, np.int64)
    nodes = np.asarray(nodes, np.int64)
    huge = np.asarray(huge, bool)
    states = np.asarray(states, np.int64)
    align = np.where(huge, 1 << HUGE_SHIFT, 1 << PAGE_SHIFT)
    bad = ((phys % align) != 0) | (nodes < 0) | (nodes >= MAX_NODES) \
        | (states < PTE_PRESENT) | (states > PTE_PROTNONE)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        make_pte(int(phys[i]), int(nodes[i]), bool(huge[i]), int(states[i]))   # raises
    return phys | (nodes << 3) | np.where(huge, PTE_HUGE, 0) | states


def pte_state(pte: int) -> int:
    return int(pte) & 3


def pte_node(pte: int) -> int:
    return (int(pte) >> 3) & 0x7F


def pte_phys(pte: int) -> int:
    return int(pte) & ~0xFFF


def pte_huge(pte: int) -> bool:
    return bool(int(pte) & PTE_HUGE)


def pte_with_state(pte: int, state: int) -> int:
    return (int(pte) & ~3) | state


def pte_young(pte: int) -> bool:
    return bool(int(pte) & PTE_ACCESSED)


def pte_dirty(pte: int) -> bool:
    return bool(int(pte) & PTE_DIRTY)


@njit(cache=True, inline="always")
def _slot(key, mask):
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64((h >> np.uint64(20)) & np.uint64(mask))


@njit(cache=True, _nrt=False)
def ht_lookup(keys, vals, key):
    mask = keys.shape[0] - 1
    i = _slot(key, mask)
    while True:
        k = keys[i]
        if k == key:
            return vals[i]
        if k == EMPTY:
            return np.int64(0)
        i = (i + 1) & mask


@njit(cache=True, inline="always")
def ht_prefetch(keys, vals, key):
    """Host-cache prefetch of the slot where a lookup of ``key`` starts (no effect on results)."""
    i = _slot(key, keys.shape[0] - 1)
    prefetch(keys, i)
    prefetch(vals, i)


@njit(cache=True, _nrt=False)
def ht_insert(keys, vals, key, val):
    """Insert or replace; returns 1 if a new slot was used (EMPTY consumed), else 0."""
    mask = keys.shape[0] - 1
    i = _slot(key, mask)
    first_tomb = -1
    while True:
        k = keys[i]
        if k == key:
            vals[i] = val
            return 0
        if k == TOMB and first_tomb < 0:
            first_tomb = i
        if k == EMPTY:
            if first_tomb >= 0:
                keys[first_tomb] = key
                vals[first_tomb] = val
                return 0
            keys[i] = key
            vals[i] = val
            return 1
        i = (i + 1) & mask


@njit(cache=True, _nrt=False)
def ht_delete(keys, vals, key):
    mask = keys.shape[0] - 1
    i = _slot(key, mask)
    while True:
        k = keys[i]
        if k == key:
            keys[i] = TOMB
            vals[i] = 0
            return 1
        if k == EMPTY:
            return 0
        i = (i + 1) & mask


PID_SHIFT = 46
MAX_PID = 1 << 15


@njit(cache=True, inline="always")
def vkey(pid, vpn):
    """Hash/TLB key of a virtual page number in process ``pid``."""
    return (np.int64(pid) << PID_SHIFT) | np.int64(vpn)


#: The four arrays of a :class:`PageTables` (keys and values of its 2 MiB and 4 KiB tables), as
#: :func:`translate` and :func:`pt_set_bits` take them, in one named tuple: compiled code that
#: passes them on takes a reference to it (``state_ref(TableArrays(...))``, one pointer, not four
#: arrays copied into every call; the STLB's walk, hwemu.machine.tlb).
TableArrays = namedtuple("TableArrays", ("k2", "v2", "k4", "v4"))


@njit(cache=True, inline="always")
def translate(k2, v2, k4, v4, pid, vaddr):
    """The PTE mapping ``vaddr`` in process ``pid`` (2 MiB table first), 0 when not mapped."""
    pte = ht_lookup(k2, v2, vkey(pid, vaddr >> 21))
    if pte != 0:
        return pte
    return ht_lookup(k4, v4, vkey(pid, vaddr >> 12))


@njit(cache=True, _nrt=False)
def ht_or(keys, vals, key, bits):
    """OR ``bits`` into the value at ``key`` (if present); returns the new value (0: absent)."""
    mask = keys.shape[0] - 1
    i = _slot(key, mask)
    while True:
        k = keys[i]
        if k == key:
            vals[i] |= bits
            return vals[i]
        if k == EMPTY:
            return np.int64(0)
        i = (i + 1) & mask


@njit(cache=True, _nrt=False)
def pt_set_bits(k2, v2, k4, v4, pid, vaddr, huge, bits):
    """The hardware setting A/D bits in the PTE that maps ``vaddr`` (the walker's update)."""
    if huge:
        return ht_or(k2, v2, vkey(pid, vaddr >> 21), bits)
    return ht_or(k4, v4, vkey(pid, vaddr >> 12), bits)


@njit(cache=True, _nrt=False)
def pt_set_keep_ad(k2, v2, k4, v4, pid, vaddrs, ptes, room2, room4, out):
    """Install ``ptes[i]`` at ``vaddrs[i]`` of ``pid`` (4 KiB or 2 MiB table by the PTE's huge
    bit), in order; an entry replacing one of the same frame and size keeps its A and D bits
    (pte_modify). ``out``: new slots used and keys added in the 2 MiB table, then in the 4 KiB
    table. Stops before the first entry whose table has no room left (``room2`` / ``room4``
    new slots, less those used here, below zero: the table must grow first) and returns the
    number of entries installed."""
    ad = np.int64(PTE_ACCESSED | PTE_DIRTY)
    for i in range(vaddrs.shape[0]):
        va = vaddrs[i]
        pte = ptes[i]
        huge = (pte & PTE_HUGE) != 0
        if (room2 - out[0] if huge else room4 - out[2]) < 0:
            return i
        old = translate(k2, v2, k4, v4, pid, va)
        if old != 0 and (old & ~np.int64(0xFFF)) == (pte & ~np.int64(0xFFF)) \
                and ((old & PTE_HUGE) != 0) == huge:
            pte |= old & ad
        if huge:
            key = vkey(pid, va >> HUGE_SHIFT)
            if ht_lookup(k2, v2, key) == 0:
                out[1] += 1
            out[0] += ht_insert(k2, v2, key, pte)
        else:
            key = vkey(pid, va >> PAGE_SHIFT)
            if ht_lookup(k4, v4, key) == 0:
                out[3] += 1
            out[2] += ht_insert(k4, v4, key, pte)
    return vaddrs.shape[0]


class _Table:
    def __init__(self, cap: int = 1 << 12):
        self.keys = np.full(cap, EMPTY, np.int64)
        self.vals = np.zeros(cap, np.int64)
        self.used = 0       # slots not EMPTY (live + tombstones)
        self.live = 0

    def _grow(self) -> None:
        live = self.keys >= 0
        k, v = self.keys[live], self.vals[live]
        cap = self.keys.shape[0]
        while cap < 4 * max(len(k), 1):
            cap *= 2
        self.keys = np.full(cap, EMPTY, np.int64)
        self.vals = np.zeros(cap, np.int64)
        for kk, vv in zip(k.tolist(), v.tolist()):
            ht_insert(self.keys, self.vals, kk, vv)
        self.used = self.live = len(k)

    def room(self) -> int:
        """Inserts of new keys the table takes before it must grow (it stays at most half
        full, counting tombstones)."""
        return self.keys.shape[0] // 2 - self.used - 1

    def counted(self, new_slots: int, new_keys: int) -> None:
        """Account for inserts made outside :meth:`set` (by the replay loop, within
        :meth:`room`): ``new_slots`` EMPTY slots used, ``new_keys`` keys added."""
        self.used += new_slots
        self.live += new_keys

    def set(self, key: int, val: int) -> None:
        if self.room() < 0:
            self._grow()
        if ht_lookup(self.keys, self.vals, key) == 0:
            self.live += 1
        self.used += ht_insert(self.keys, self.vals, key, val)

    def get(self, key: int) -> int:
        return int(ht_lookup(self.keys, self.vals, key))

    def delete(self, key: int) -> bool:
        if ht_delete(self.keys, self.vals, key):
            self.live -= 1
            return True
        return False

    def items(self):
        live = self.keys >= 0
        return zip(self.keys[live].tolist(), self.vals[live].tolist())


def _key(pid: int, vpn: int) -> int:
    if not 0 <= pid < MAX_PID:
        raise HwemuError(f"process id {pid} out of range 0..{MAX_PID - 1}")
    return (pid << PID_SHIFT) | vpn


class PageTables:
    """The page tables of every process: map, change and unmap 4 KiB and 2 MiB pages.

    Keys combine the process id and the virtual page number, so one pair of hash tables serves
    all processes (and TLB entries are tagged by process, as with PCIDs). The arrays are
    replaced when a table grows, so the replay loop receives them afresh on every call.
    """

    def __init__(self):
        self.t4 = _Table()
        self.t2 = _Table()

    def set(self, pid: int, vaddr: int, pte: int) -> None:
        """Install ``pte`` for the page containing ``vaddr`` (size from the PTE's huge bit)."""
        if vaddr < 0 or vaddr >= 1 << 57:
            raise HwemuError(f"virtual address {vaddr:#x} out of range")
        if pte_huge(pte):
            self.t2.set(_key(pid, vaddr >> HUGE_SHIFT), pte)
        else:
            self.t4.set(_key(pid, vaddr >> PAGE_SHIFT), pte)

    def set_keep_ad(self, pid: int, vaddr: int, pte: int) -> None:
        """:meth:`set`, keeping the A and D bits of an entry of the same frame and size that
        ``pte`` replaces (pte_modify: e.g. present <-> PROT_NONE)."""
        old = self.get(pid, vaddr)
        if old and pte_phys(old) == pte_phys(pte) and pte_huge(old) == pte_huge(pte):
            pte |= int(old) & (PTE_ACCESSED | PTE_DIRTY)
        self.set(pid, vaddr, pte)

    def set_many_keep_ad(self, pid: int, vaddrs: list[int], ptes: list[int]) -> None:
        """:meth:`set_keep_ad` of ``ptes[i]`` at ``vaddrs[i]``, in order: in one compiled call
        up to the first entry whose table must grow (as :meth:`set` would grow it), the rest
        one entry after another."""
        n = len(vaddrs)
        if not n:
            return
        if not 0 <= pid < MAX_PID:
            raise HwemuError(f"process id {pid} out of range 0..{MAX_PID - 1}")
        if min(vaddrs) < 0 or max(vaddrs) >= 1 << 57:
            bad = next(v for v in vaddrs if v < 0 or v >= 1 << 57)
            raise HwemuError(f"virtual address {bad:#x} out of range")
        out = np.zeros(4, np.int64)
        done = pt_set_keep_ad(self.t2.keys, self.t2.vals, self.t4.keys, self.t4.vals, pid,
                              np.asarray(vaddrs, np.int64), np.asarray(ptes, np.int64),
                              self.t2.room(), self.t4.room(), out)
        self.t2.counted(int(out[0]), int(out[1]))
        self.t4.counted(int(out[2]), int(out[3]))
        for va, pte in zip(vaddrs[done:], ptes[done:]):
            self.set_keep_ad(pid, va, int(pte))

    def get(self, pid: int, vaddr: int) -> int:
        """The PTE that translates ``vaddr`` in ``pid`` (0 if not mapped)."""
        pte = self.t2.get(_key(pid, vaddr >> HUGE_SHIFT))
        return pte if pte else self.t4.get(_key(pid, vaddr >> PAGE_SHIFT))

    def clear(self, pid: int, vaddr: int, huge: bool = False) -> bool:
        """Unmap the page at ``vaddr``; True if it was mapped."""
        if huge:
            return self.t2.delete(_key(pid, vaddr >> HUGE_SHIFT))
        return self.t4.delete(_key(pid, vaddr >> PAGE_SHIFT))

    def test_and_clear(self, pid: int, vaddr: int, huge: bool, bit: int) -> bool:
        """Clear ``bit`` (PTE_ACCESSED or PTE_DIRTY) of the entry mapping ``vaddr``; True if it
        was set (ptep_test_and_clear_young / _dirty). TLB entries are not touched: as on x86,
        a cached translation keeps its copy until it is flushed or evicted."""
        t, shift = (self.t2, HUGE_SHIFT) if huge else (self.t4, PAGE_SHIFT)
        key = _key(pid, vaddr >> shift)
        pte = t.get(key)
        if not pte & bit:
            return False
        t.set(key, pte & ~bit)
        return True

    def __len__(self) -> int:
        return self.t4.live + self.t2.live

    def mappings(self, pid: int | None = None):
        """(pid, vaddr, pte) of every mapped page (of ``pid`` only if given)."""
        mask = (1 << PID_SHIFT) - 1
        for table, shift in ((self.t2, HUGE_SHIFT), (self.t4, PAGE_SHIFT)):
            for k, v in table.items():
                p = k >> PID_SHIFT
                if pid is None or p == pid:
                    yield p, (k & mask) << shift, v
