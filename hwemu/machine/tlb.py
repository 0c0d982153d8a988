"""TLBs: per-core L1 ITLB, L1 DTLB for 4 KiB pages, L1 DTLB for 2 MiB pages, and a unified
second-level TLB (STLB), all LRU set-associative arrays holding PTEs.

Tags: the ITLB and the 4 KiB DTLB are tagged by ``vaddr >> 12`` (the ITLB also caches 4 KiB
slices of 2 MiB code pages, as real ITLBs splinter them), the 2 MiB DTLB by ``vaddr >> 21``, the
STLB by ``(vpn << 1) | huge``. A hit in an L1 TLB is free (overlapped with the cache access);
an L1 miss that hits the STLB costs ``stlb_latency`` cycles; an STLB miss adds ``page_walk``
and reads the page table. A PTE that is not present (or is a migration entry, or prot-none)
is never cached: the access traps to the OS.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hwemu.machine.cache import find, victim
from hwemu.machine.hierarchy import (C_DTLB2_SETS, C_DTLB4_SETS, C_ITLB_SETS, C_STLB_LAT,
                                     C_STLB_SETS, C_WALK, K_DTLB_MISS, K_ITLB_MISS, K_STLB_MISS)
from hwemu.machine.pagetable import (PTE_ACCESSED, PTE_DIRTY, PTE_HUGE, PTE_PRESENT, pt_set_bits,
                                     translate, vkey)


def tlb_arrays(instances: int, sets: int, ways: int):
    rows = instances * sets
    return (np.full((rows, ways), -1, np.int64), np.zeros((rows, ways), np.int64),
            np.zeros((rows, ways), np.int64))


@njit(cache=True, inline="always")
def tlb_lookup(tags, stamp, vals, row, key, ctr):
    w = find(tags, row, key)
    if w < 0:
        return np.int64(0)
    stamp[row, w] = ctr
    return vals[row, w]


@njit(cache=True, inline="always")
def _fill(tags, stamp, vals, row, key, pte, ctr, rng):
    w = find(tags, row, key)
    if w < 0:
        w = victim(tags, stamp, row, 0, rng)
    tags[row, w] = key
    stamp[row, w] = ctr
    vals[row, w] = pte


@njit(cache=True)
def tlb_translate(S, k2, v2, k4, v4, cpu, pid, vaddr, is_ifetch, t):
    """Returns (pte, time after translation). A returned PTE whose state is not present is a
    trap; nothing was cached for it. Entries are tagged by process (``pid``)."""
    ctr = S.ctr[0]
    vpn4 = vkey(pid, vaddr >> 12)
    vpn2 = vkey(pid, vaddr >> 21)
    if is_ifetch:
        ri = cpu * S.cfg[C_ITLB_SETS] + vpn4 % S.cfg[C_ITLB_SETS]
        pte = tlb_lookup(S.itlb_t, S.itlb_s, S.itlb_v, ri, vpn4, ctr)
        if pte != 0:
            return pte, t
        S.ccnt[cpu, K_ITLB_MISS] += 1
    else:
        r2 = cpu * S.cfg[C_DTLB2_SETS] + vpn2 % S.cfg[C_DTLB2_SETS]
        pte = tlb_lookup(S.dtlb2_t, S.dtlb2_s, S.dtlb2_v, r2, vpn2, ctr)
        if pte != 0:
            return pte, t
        r4 = cpu * S.cfg[C_DTLB4_SETS] + vpn4 % S.cfg[C_DTLB4_SETS]
        pte = tlb_lookup(S.dtlb4_t, S.dtlb4_s, S.dtlb4_v, r4, vpn4, ctr)
        if pte != 0:
            return pte, t
        S.ccnt[cpu, K_DTLB_MISS] += 1
    t += S.cfg[C_STLB_LAT]
    nst = S.cfg[C_STLB_SETS]
    key4 = vpn4 << 1
    key2 = (vpn2 << 1) | 1
    rs4 = cpu * nst + vpn4 % nst
    pte = tlb_lookup(S.stlb_t, S.stlb_s, S.stlb_v, rs4, key4, ctr)
    if pte == 0:
        rs2 = cpu * nst + vpn2 % nst
        pte = tlb_lookup(S.stlb_t, S.stlb_s, S.stlb_v, rs2, key2, ctr)
    if pte == 0:
        S.ccnt[cpu, K_STLB_MISS] += 1
        t += S.cfg[C_WALK]
        pte = translate(k2, v2, k4, v4, pid, vaddr)
        if (pte & 3) != PTE_PRESENT:
            return pte, t
        if (pte & PTE_ACCESSED) == 0:
            # the walker sets the accessed bit (no extra time in the model)
            pte = pt_set_bits(k2, v2, k4, v4, pid, vaddr, (pte & PTE_HUGE) != 0, PTE_ACCESSED)
        if pte & PTE_HUGE:
            _fill(S.stlb_t, S.stlb_s, S.stlb_v, cpu * nst + vpn2 % nst, key2, pte, ctr, S.rng)
        else:
            _fill(S.stlb_t, S.stlb_s, S.stlb_v, rs4, key4, pte, ctr, S.rng)
    if is_ifetch:
        _fill(S.itlb_t, S.itlb_s, S.itlb_v, cpu * S.cfg[C_ITLB_SETS] + vpn4 % S.cfg[C_ITLB_SETS],
              vpn4, pte, ctr, S.rng)
    elif pte & PTE_HUGE:
        _fill(S.dtlb2_t, S.dtlb2_s, S.dtlb2_v, cpu * S.cfg[C_DTLB2_SETS] + vpn2 % S.cfg[C_DTLB2_SETS],
              vpn2, pte, ctr, S.rng)
    else:
        _fill(S.dtlb4_t, S.dtlb4_s, S.dtlb4_v, cpu * S.cfg[C_DTLB4_SETS] + vpn4 % S.cfg[C_DTLB4_SETS],
              vpn4, pte, ctr, S.rng)
    return pte, t


@njit(cache=True, inline="always")
def _or_entry(tags, vals, row, key, bits):
    w = find(tags, row, key)
    if w >= 0:
        vals[row, w] |= bits


@njit(cache=True)
def tlb_mark_dirty(S, k2, v2, k4, v4, cpu, pid, vaddr, pte):
    """A store through a translation whose PTE is clean: set D in the page table (x86's
    locked re-walk) and in ``cpu``'s cached copies, so later stores go straight through.
    Costs no time in the model. Returns the PTE with D set."""
    huge = (pte & PTE_HUGE) != 0
    new = pt_set_bits(k2, v2, k4, v4, pid, vaddr, huge, PTE_DIRTY | PTE_ACCESSED)
    if new == 0:
        new = pte | PTE_DIRTY | PTE_ACCESSED
    nst = S.cfg[C_STLB_SETS]
    vpn4 = vkey(pid, vaddr >> 12)
    vpn2 = vkey(pid, vaddr >> 21)
    bits = PTE_DIRTY | PTE_ACCESSED
    if huge:
        _or_entry(S.dtlb2_t, S.dtlb2_v, cpu * S.cfg[C_DTLB2_SETS] + vpn2 % S.cfg[C_DTLB2_SETS], vpn2, bits)
        _or_entry(S.stlb_t, S.stlb_v, cpu * nst + vpn2 % nst, (vpn2 << 1) | 1, bits)
    else:
        _or_entry(S.dtlb4_t, S.dtlb4_v, cpu * S.cfg[C_DTLB4_SETS] + vpn4 % S.cfg[C_DTLB4_SETS], vpn4, bits)
        _or_entry(S.stlb_t, S.stlb_v, cpu * nst + vpn4 % nst, vpn4 << 1, bits)
    return new


@njit(cache=True)
def _drop_matching(tags, vals, lo, hi, shift, key):
    """Invalidate entries in rows [lo, hi) whose tag >> shift == key."""
    n = 0
    for r in range(lo, hi):
        for w in range(tags.shape[1]):
            if tags[r, w] >= 0 and (tags[r, w] >> shift) == key:
                tags[r, w] = -1
                vals[r, w] = 0
                n += 1
    return n


@njit(cache=True)
def tlb_flush_page(S, cpu, pid, vaddr, huge):
    """Drop every translation of ``pid``'s page at ``vaddr`` from ``cpu``'s TLBs; returns how
    many entries were dropped."""
    n = 0
    ni, n4, n2, ns = S.cfg[C_ITLB_SETS], S.cfg[C_DTLB4_SETS], S.cfg[C_DTLB2_SETS], S.cfg[C_STLB_SETS]
    if huge:
        vpn2 = vkey(pid, vaddr >> 21)
        # ITLB tags are 4 KiB keys: (pid << 46 | vpn4) >> 9 == pid << 37 | vpn2
        n += _drop_matching(S.itlb_t, S.itlb_v, cpu * ni, (cpu + 1) * ni, 9,
                            (np.int64(pid) << 37) | (vaddr >> 21))
        n += _drop_matching(S.dtlb2_t, S.dtlb2_v, cpu * n2, (cpu + 1) * n2, 0, vpn2)
        n += _drop_matching(S.stlb_t, S.stlb_v, cpu * ns, (cpu + 1) * ns, 0, (vpn2 << 1) | 1)
    else:
        vpn4 = vkey(pid, vaddr >> 12)
        n += _drop_matching(S.itlb_t, S.itlb_v, cpu * ni, (cpu + 1) * ni, 0, vpn4)
        n += _drop_matching(S.dtlb4_t, S.dtlb4_v, cpu * n4, (cpu + 1) * n4, 0, vpn4)
        n += _drop_matching(S.stlb_t, S.stlb_v, cpu * ns, (cpu + 1) * ns, 0, vpn4 << 1)
    return n


def tlb_flush_all(S, cpu: int) -> None:
    """Drop every translation cached by ``cpu`` (a full TLB flush)."""
    cfg = S.cfg
    for name, c in (("itlb", C_ITLB_SETS), ("dtlb4", C_DTLB4_SETS), ("dtlb2", C_DTLB2_SETS),
                    ("stlb", C_STLB_SETS)):
        sets = int(cfg[c])
        getattr(S, f"{name}_t")[cpu * sets:(cpu + 1) * sets] = -1
        getattr(S, f"{name}_v")[cpu * sets:(cpu + 1) * sets] = 0
