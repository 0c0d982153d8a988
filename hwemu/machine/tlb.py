"""TLBs: per-core L1 ITLB, L1 DTLB for 4 KiB pages, L1 DTLB for 2 MiB pages, and a unified
second-level TLB (STLB), all LRU set-associative arrays holding PTEs.

Tags: the ITLB and the 4 KiB DTLB are tagged by ``vaddr >> 12`` (the ITLB also caches 4 KiB
slices of 2 MiB code pages, as real ITLBs splinter them), the 2 MiB DTLB by ``vaddr >> 21``, the
STLB by ``(vpn << 1) | huge``. A hit in an L1 TLB is free (overlapped with the cache access);
an L1 miss that hits the STLB costs ``stlb_latency`` cycles; an STLB miss adds ``page_walk``
and reads the page table. A PTE that is not present (or is a migration entry, or prot-none)
is never cached: the access traps to the OS.

Each TLB is a multi-instance :class:`hwemu.cachesim.setassoc.CacheState` (one instance per CPU,
LRU, tags are the keys above; the set is ``vpn % sets``, so in the STLB a 4 KiB and a 2 MiB entry
with equal page numbers share a set) with a parallel array of the cached PTEs
(``S.<tlb>_v``, indexed by the same flat line index).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hwemu.cachesim.setassoc import MESI_I, MESI_S
from hwemu.cachesim.setassoc import (INVALID_TAG, P_ASSOC, P_SETS, find_in_row,
                                     install, invalidate_line, set_row, touch_line, victim_in_row)
from hwemu.machine.pagetable import (PTE_ACCESSED, PTE_DIRTY, PTE_HUGE, PTE_PRESENT,
                                     TableArrays, pt_set_bits, translate, vkey)
from hwemu.machine.stateref import handle_state, state_ref
from hwemu.machine.layout import (CT_HUGE_TLB, C_STLB_LAT, C_WALK, K_DTLB_MISS, K_ITLB_MISS,
                                  K_STLB_MISS)

# typed, not literal, constant arguments: numba compiles a callee once per literal value
_ST_S, _ACCESSED = np.int64(MESI_S), np.int64(PTE_ACCESSED)


@njit(cache=True, _nrt=False)
def tlb_lookup(c, vals, row, key):
    """The PTE that ``row`` of TLB ``c`` holds for ``key`` (marking it most recently used), or 0."""
    i = find_in_row(c, row, key)
    if i < 0:
        return np.int64(0)
    touch_line(c, i)
    return vals[i]


@njit(cache=True, _nrt=False, inline="always")
def _fill(c, vals, r, key, pte):
    """Cache ``pte`` under ``key`` in row ``r``, which does not hold ``key`` (the lookup that
    led here missed)."""
    i = victim_in_row(c, r)
    install(c, i, key, _ST_S)          # a clean cached copy of the PTE
    vals[i] = pte


@njit(cache=True, _nrt=False)
def tlb_translate(S, k2, v2, k4, v4, cpu, pid, vaddr, is_ifetch, t):
    """Returns (pte, time after translation). A returned PTE whose state is not present is a
    trap; nothing was cached for it. Entries are tagged by process (``pid``)."""
    vpn4 = vkey(pid, vaddr >> 12)
    vpn2 = vkey(pid, vaddr >> 21)
    if is_ifetch:
        pte = tlb_lookup(S.itlb, S.itlb_v, set_row(S.itlb, cpu, vpn4), vpn4)
        if pte != 0:
            return pte, t
        S.ccnt[cpu, K_ITLB_MISS] += 1
    else:
        pte = tlb_lookup(S.dtlb2, S.dtlb2_v, set_row(S.dtlb2, cpu, vpn2), vpn2)
        if pte != 0:
            return pte, t
        pte = tlb_lookup(S.dtlb4, S.dtlb4_v, set_row(S.dtlb4, cpu, vpn4), vpn4)
        if pte != 0:
            return pte, t
        S.ccnt[cpu, K_DTLB_MISS] += 1
    T = state_ref(TableArrays(k2, v2, k4, v4))
    return stlb_translate(S, T, cpu, pid, vaddr, is_ifetch, t)


@njit(cache=True, _nrt=False)
def stlb_translate(S, T, cpu, pid, vaddr, is_ifetch, t):
    """:func:`tlb_translate` after its L1 TLB lookups missed (and the miss was counted): the
    STLB, the page walk and the fills; ``T``: the page table's arrays (a
    :data:`~hwemu.machine.pagetable.TableArrays`, by reference). The replay loop, which looks
    the L1 TLBs up itself, calls it directly."""
    vpn4 = vkey(pid, vaddr >> 12)
    vpn2 = vkey(pid, vaddr >> 21)
    t += S.cfg[C_STLB_LAT]
    stlb = S.stlb
    key4 = vpn4 << 1
    key2 = (vpn2 << 1) | 1
    rs4 = set_row(stlb, cpu, vpn4)
    rs2 = set_row(stlb, cpu, vpn2)
    pte = tlb_lookup(stlb, S.stlb_v, rs4, key4)
    if pte == 0 and S.ctr[CT_HUGE_TLB] != 0:     # else no 2 MiB entry can hit
        pte = tlb_lookup(stlb, S.stlb_v, rs2, key2)
    if pte == 0:
        S.ccnt[cpu, K_STLB_MISS] += 1
        t += S.cfg[C_WALK]
        pte = translate(T.k2, T.v2, T.k4, T.v4, pid, vaddr)
        if (pte & 3) != PTE_PRESENT:
            return pte, t
        if (pte & PTE_ACCESSED) == 0:
            # the walker sets the accessed bit (no extra time in the model)
            pte = pt_set_bits(T.k2, T.v2, T.k4, T.v4, pid, vaddr, (pte & PTE_HUGE) != 0,
                              _ACCESSED)
        if pte & PTE_HUGE:
            S.ctr[CT_HUGE_TLB] = 1
            _fill(stlb, S.stlb_v, rs2, key2, pte)
        else:
            _fill(stlb, S.stlb_v, rs4, key4, pte)
    if is_ifetch:
        _fill(S.itlb, S.itlb_v, set_row(S.itlb, cpu, vpn4), vpn4, pte)
    elif pte & PTE_HUGE:
        _fill(S.dtlb2, S.dtlb2_v, set_row(S.dtlb2, cpu, vpn2), vpn2, pte)
    else:
        _fill(S.dtlb4, S.dtlb4_v, set_row(S.dtlb4, cpu, vpn4), vpn4, pte)
    return pte, t


@njit(cache=True, _nrt=False)
def _or_entry(c, vals, row, key, bits):
    i = find_in_row(c, row, key)
    if i >= 0:
        vals[i] |= bits


@njit(cache=True, _nrt=False)
def tlb_mark_dirty(S, k2, v2, k4, v4, cpu, pid, vaddr, pte):
    """A store through a translation whose PTE is clean: set D in the page table (x86's
    locked re-walk) and in ``cpu``'s cached copies, so later stores go straight through.
    Costs no time in the model. Returns the PTE with D set."""
    huge = (pte & PTE_HUGE) != 0
    new = pt_set_bits(k2, v2, k4, v4, pid, vaddr, huge, PTE_DIRTY | PTE_ACCESSED)
    if new == 0:
        new = pte | PTE_DIRTY | PTE_ACCESSED
    vpn4 = vkey(pid, vaddr >> 12)
    vpn2 = vkey(pid, vaddr >> 21)
    bits = PTE_DIRTY | PTE_ACCESSED
    if huge:
        _or_entry(S.dtlb2, S.dtlb2_v, set_row(S.dtlb2, cpu, vpn2), vpn2, bits)
        _or_entry(S.stlb, S.stlb_v, set_row(S.stlb, cpu, vpn2), (vpn2 << 1) | 1, bits)
    else:
        _or_entry(S.dtlb4, S.dtlb4_v, set_row(S.dtlb4, cpu, vpn4), vpn4, bits)
        _or_entry(S.stlb, S.stlb_v, set_row(S.stlb, cpu, vpn4), vpn4 << 1, bits)
    return new


@njit(cache=True, _nrt=False)
def _drop_matching(c, vals, cpu, shift, key):
    """Invalidate the entries of ``cpu``'s instance of ``c`` whose tag >> shift == key."""
    n = 0
    per = c.params[P_SETS] * c.params[P_ASSOC]       # lines per instance
    k = np.uint64(key)
    for i in range(cpu * per, (cpu + 1) * per):
        tg = c.tags[i]
        if tg != INVALID_TAG and (tg >> np.uint64(shift)) == k:
            invalidate_line(c, i)
            vals[i] = 0
            n += 1
    return n


@njit(cache=True, _nrt=False)
def tlb_flush_page(S, cpu, pid, vaddr, huge):
    """Drop every translation of ``pid``'s page at ``vaddr`` from ``cpu``'s TLBs; returns how
    many entries were dropped."""
    n = 0
    if huge:
        vpn2 = vkey(pid, vaddr >> 21)
        # ITLB tags are 4 KiB keys: (pid << 46 | vpn4) >> 9 == pid << 37 | vpn2
        n += _drop_matching(S.itlb, S.itlb_v, cpu, np.int64(9),
                            (np.int64(pid) << 37) | (vaddr >> 21))
        n += _drop_matching(S.dtlb2, S.dtlb2_v, cpu, np.int64(0), vpn2)
        n += _drop_matching(S.stlb, S.stlb_v, cpu, np.int64(0), (vpn2 << 1) | 1)
    else:
        vpn4 = vkey(pid, vaddr >> 12)
        n += _drop_matching(S.itlb, S.itlb_v, cpu, np.int64(0), vpn4)
        n += _drop_matching(S.dtlb4, S.dtlb4_v, cpu, np.int64(0), vpn4)
        n += _drop_matching(S.stlb, S.stlb_v, cpu, np.int64(0), vpn4 << 1)
    return n


@njit(cache=True, _nrt=False)
def tlb_flush_page_handle(h, cpus, pid, vaddr, huge):
    """:func:`tlb_flush_page` on each CPU of ``cpus`` (int64 array), on the state of handle
    ``h``; returns how many entries were dropped."""
    S = handle_state(h)
    n = 0
    for c in cpus:
        n += tlb_flush_page(S, c, pid, vaddr, huge)
    return n


@njit(cache=True, _nrt=False)
def tlb_flush_cpus_handle(h, cpus):
    """Drop every translation cached by each CPU of ``cpus`` (int64 array, checked by the
    caller; full TLB flushes, as a shootdown does on all its targets), on the state of handle
    ``h``."""
    S = handle_state(h)
    _clear_rows(cpus, S.itlb.tags, S.itlb.flags, S.itlb.coh, S.itlb_v, S.itlb.params)
    _clear_rows(cpus, S.dtlb4.tags, S.dtlb4.flags, S.dtlb4.coh, S.dtlb4_v, S.dtlb4.params)
    _clear_rows(cpus, S.dtlb2.tags, S.dtlb2.flags, S.dtlb2.coh, S.dtlb2_v, S.dtlb2.params)
    _clear_rows(cpus, S.stlb.tags, S.stlb.flags, S.stlb.coh, S.stlb_v, S.stlb.params)


@njit(cache=True, inline="always")
def _clear_rows(cpus, tags, flags, coh, vals, params):
    per = params[P_SETS] * params[P_ASSOC]
    for cpu in cpus:
        for i in range(cpu * per, (cpu + 1) * per):
            tags[i] = INVALID_TAG
            flags[i] = 0
            coh[i] = MESI_I
            vals[i] = 0
