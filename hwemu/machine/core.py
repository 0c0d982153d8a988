"""Cores and the compiled replay loop.

Each trace thread runs on a CPU and has its own clock. The loop repeatedly takes the thread
with the smallest clock that still has records in the current chunk and executes its next
record, so shared resources (banks, buses, links) see requests in global time order.

Timing of one record of a thread:

- its instructions advance the clock by ``insts * base_cpi`` cycles (an ``I`` record is one
  instruction);
- ROB window: if the oldest outstanding load miss was issued ``rob`` or more instructions
  ago, the clock waits for it to complete;
- translation (TLBs, page walk); a PTE that is not present, a migration entry or prot-none
  stops the loop with a fault reason (the record is retried after the OS has handled it; the
  fault costs ``fault_cost``). Without the OS model (``ft_ctl[FT_BUDGET]`` > 0, set by
  ``Machine.run`` when ``replay.FirstTouch`` asked for it) a not-present fault is served in the loop by :func:`_first_touch`
  while the node has frames and the page table room;
- an L1 hit costs nothing on the clock (load-to-use is hidden by out-of-order execution) but
  its latency is recorded;
- an L1 miss needs a line-fill buffer: when all ``lfb`` are busy the core waits for the
  earliest to free. Load misses occupy the ROB window, store misses drain from the store
  buffer and do not; an instruction-fetch miss stalls the core until the line arrives;
  below L1 an L2 miss also holds an L2 superqueue entry, and the L2 stream prefetcher may
  issue prefetches (hierarchy.py);
- a thread marked dependent (``th_dep``, used by the pointer-chase probe of ``hwemu mlc``)
  waits for every access to complete before the next, as a chain of dependent loads does;
- an access that spans two lines of the same page touches both (the later completion counts).

Per access the latency (from the record's turn to data, including translation, excluding
any wait for a fill buffer) goes to a
histogram with 250 ps bins up to 256 ns, 4 ns bins up to ~12.5 us and 1 us bins up to ~4.1 ms
(last bin: overflow). The long tier holds accesses the OS made wait (``th_wait``: a page under
migration).

Python enters the loop through :func:`replay_handle` (one compiled handle holding the state,
page tables and chunk, see stateref.py), so that a return to Python and re-entry cost a few
microseconds. The loop returns to Python when the chunk is done, when every runnable thread has
reached ``stop_time`` (an OS event is due), on a fault, or when the thread with the earliest
clock has used up its records in the chunk but has more in the trace (``th_more``; "starved":
the caller loads the rest of the chunk with the next records, see ``replay.Feeder``). So no
thread runs ahead of another one whose records are still in the file, however the trace orders
threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hwemu.cachesim.setassoc import find_in_row, set_coh, set_row, touch_line
from hwemu.machine.times import NEVER
from hwemu.machine.hierarchy import ST_E, ST_M, access_below_l1, nt_store, prefetch_below_l1
from hwemu.machine.osfault import loop_map, os_first_touch, os_installs, os_local_hint
from hwemu.machine.stateref import handle_ref, handle_state, state_ref
from hwemu.machine.pagetable import (PTE_DIRTY, PTE_HUGE, PTE_NOT_PRESENT, PTE_PRESENT,
                                     PTE_PROTNONE, TableArrays, ht_prefetch, translate, vkey)
from hwemu.machine.tlb import stlb_translate, tlb_lookup, tlb_mark_dirty
from hwemu.machine.layout import (CT_HUGE_TLB, CT_STAMP, C_FAULT, C_L1D_LAT, C_L1I_LAT, C_PPI,
                                  C_ROB, FT_BUDGET, K_DTLB_MISS, K_ITLB_MISS, K_L1D_HIT,
                                  KF_HINT, KF_NEXT_END, KF_ON, KF_PENDING,
                                  K_L1D_MISS, K_L1I_HIT, K_L1I_MISS, O_KIND, O_PTE, O_REASON,
                                  O_RECORD, O_THREAD, O_VADDR, R_CHUNK_DONE, R_EVENT, R_FAULT,
                                  R_STARVED, W_L2)

#: Record kind of a non-temporal (streaming) store of a whole line. Only the load generators of
#: ``hwemu mlc --read-write`` make such records; trace files hold kinds 0-3 (I, L, S, M).
KIND_NT = 4

HIST_FINE_BINS, HIST_FINE_PS = 1024, 250
HIST_COARSE_BINS, HIST_COARSE_PS = 3072, 4000
HIST_WIDE_BINS, HIST_WIDE_PS = 4096, 1_000_000
HIST_COARSE_END = HIST_FINE_BINS * HIST_FINE_PS + HIST_COARSE_BINS * HIST_COARSE_PS
HIST_BINS = HIST_FINE_BINS + HIST_COARSE_BINS + HIST_WIDE_BINS
MAX_LFB = 64
LOOKAHEAD = 2         # _prefetch_ahead: records ahead of the one served
FAULT_KINDS = ("not_present", "migration_entry", "numa_hint")


def hist_edges_ps() -> np.ndarray:
    """Lower edge of every histogram bin, in ps (plus the upper edge of the last)."""
    fine = np.arange(HIST_FINE_BINS + 1, dtype=np.int64) * HIST_FINE_PS
    coarse = fine[-1] + np.arange(1, HIST_COARSE_BINS + 1, dtype=np.int64) * HIST_COARSE_PS
    wide = coarse[-1] + np.arange(1, HIST_WIDE_BINS + 1, dtype=np.int64) * HIST_WIDE_PS
    return np.concatenate([fine, coarse, wide])


@njit(cache=True, inline="always")
def hist_bin(lat):
    if lat < HIST_FINE_BINS * HIST_FINE_PS:
        return lat // HIST_FINE_PS
    if lat < HIST_COARSE_END:
        return HIST_FINE_BINS + (lat - HIST_FINE_BINS * HIST_FINE_PS) // HIST_COARSE_PS
    b = HIST_FINE_BINS + HIST_COARSE_BINS + (lat - HIST_COARSE_END) // HIST_WIDE_PS
    if b >= HIST_BINS:
        b = HIST_BINS - 1
    return b


@njit(cache=True, inline="always")
def free_fill_buffer(th_odone, th, lfb):
    """The line-fill buffer of thread ``th`` that frees first (the earliest completion time;
    the lowest index on a tie)."""
    slot = 0
    sd = th_odone[th, 0]
    for j in range(1, lfb):
        if th_odone[th, j] < sd:
            sd = th_odone[th, j]
            slot = j
    return slot


@njit(cache=True, _nrt=False)
def _first_touch(S, k4, v4, th, cpu, va):
    """Machine-only first touch inside the loop: map the 4 KiB page of ``va`` to the next free
    frame of the faulting CPU's node, exactly as ``replay.FirstTouch`` would after a return to
    Python (same frame, same PTE, translations not yet issued redone). False when the loop
    must return the fault instead: the node is full (Python walks the fallback order) or the
    page table has no room left without growing (Python grows it)."""
    # the caller checked that FT_BUDGET leaves room
    node = S.socket_node[S.cpu_socket[cpu]]
    frame = S.ft_next[node]
    if frame >= S.node_size[node] >> 12:
        return False
    S.ft_next[node] = frame + 1
    pte = (S.node_base[node] + (frame << 12)) | (node << 3) | PTE_PRESENT
    loop_map(S, k4, v4, vkey(S.th_pid[th], va >> 12), pte)
    return True


@njit(cache=True, _nrt=False, inline="always")
def _prefetch_ahead(S, k2, v2, k4, v4, th, cpu, kind, addr, order):
    """Host-cache prefetch (no effect on results) for the record ``LOOKAHEAD`` records after
    thread ``th``'s current one: translated through the page table (read only; not through the
    TLBs, whose state it must not change), its rows below L1 (hierarchy.prefetch_below_l1);
    and for the record ``LOOKAHEAD`` records after that one, the 4 KiB page table's slot that
    this translation will read then. Not the TLBs' rows: a CPU's TLB arrays are small enough
    to stay in the host's caches, and prefetching them made the 8 MiB chase 5% slower on
    host B (docs/performance.md)."""
    j = S.th_pos[th] + LOOKAHEAD
    end = S.th_end[th]
    if j >= end:
        return
    pid = S.th_pid[th]
    if j + LOOKAHEAD < end:
        ht_prefetch(k4, v4, vkey(pid, np.int64(addr[order[j + LOOKAHEAD]]) >> 12))
    r = order[j]
    va = np.int64(addr[r])
    pte = translate(k2, v2, k4, v4, pid, va)
    if (pte & 3) != PTE_PRESENT:
        return
    is_ifetch = kind[r] == 0
    if pte & PTE_HUGE:
        pa = (pte & ~np.int64(0x1FFFFF)) | (va & 0x1FFFFF)
    else:
        pa = (pte & ~np.int64(0xFFF)) | (va & 0xFFF)
    prefetch_below_l1(S, cpu, pa >> 6, is_ifetch)


@njit(cache=True, _nrt=False, inline="always")
def _earliest(th_clock, th_pos, th_end, th_more):
    """(the runnable thread with the smallest clock, the first of equal ones, or -1; its clock;
    the next smallest clock), NEVER for clocks not found."""
    t_sel = np.int64(-1)      # typed: a literal would compile the helpers it reaches twice
    best = NEVER
    second = NEVER
    for th in range(th_clock.shape[0]):
        # a thread whose next records are not loaded yet (th_more) still holds the others
        # back: none may run past its clock
        if th_pos[th] < th_end[th] or th_more[th] != 0:
            c = th_clock[th]
            if c < best:
                second = best
                best = c
                t_sel = th
            elif c < second:
                second = c
    return t_sel, best, second


@njit(cache=True, _nrt=False, inline="always")
def _loop_fault_due(S, t):
    """Whether a fault the loop serves (osfault.py) ends by time ``t``: the loop installs its
    page before any access at ``t`` or later."""
    return S.kf_ctl[KF_PENDING] != 0 and S.kf_ctl[KF_NEXT_END] <= t


@njit(cache=True, _nrt=False, inline="always")
def _replay(S, k2, v2, k4, v4, kind, addr, size, insts, order, stop_time, out, os_faults):
    """Replay records until the chunk is done, ``stop_time`` is reached, or a fault."""
    ppi = S.cfg[C_PPI]
    rob = S.cfg[C_ROB]
    # The hot path (L1 TLB hit, L1 cache hit) works on arrays taken out of S once: calling a
    # function with the whole state tuple by value costs far more than the lookup itself.
    # This function (and every helper it calls) is compiled with _nrt=False: nothing here
    # allocates, and without it each entry and each helper call increfs and decrefs the ~100
    # arrays of S.
    th_clock, th_pos, th_end, th_pend = S.th_clock, S.th_pos, S.th_end, S.th_pend
    th_more = S.th_more
    th_odone, th_oinst, th_insts = S.th_odone, S.th_oinst, S.th_insts
    itlb, itlb_v = S.itlb, S.itlb_v
    dtlb4, dtlb4_v = S.dtlb4, S.dtlb4_v
    dtlb2, dtlb2_v = S.dtlb2, S.dtlb2_v
    l1i, l1d = S.l1i, S.l1d
    l1d_coh = l1d.coh
    ccnt, hist, served, ctr = S.ccnt, S.hist, S.served, S.ctr
    lat_l1i, lat_l1d = S.cfg[C_L1I_LAT], S.cfg[C_L1D_LAT]
    # The helpers below get the state by reference: one pointer instead of the whole tuple
    # copied and reference counted per call (stateref.py).
    R = state_ref(S)
    PT = state_ref(TableArrays(k2, v2, k4, v4))     # what the STLB's walk reads (tlb.py)
    # the last access that missed L1 was served beyond L2: prefetch ahead (_prefetch_ahead,
    # host speed only), which costs more than it saves while misses hit L2
    deep = False
    while True:
        t_sel, best, second = _earliest(th_clock, th_pos, th_end, th_more)
        if os_faults:
            if _loop_fault_due(S, best):
                # a fault the loop served ends: its page appears before any later access
                os_installs(R, k4, v4, best, stop_time)
        if t_sel < 0:
            out[O_REASON] = R_CHUNK_DONE
            return R_CHUNK_DONE
        th = t_sel
        # a thread whose clock moves past `horizon` must hand control back to the scheduler
        horizon = second if second < stop_time else stop_time
        if th_clock[th] >= stop_time:
            out[O_REASON] = R_EVENT
            out[O_THREAD] = th
            return R_EVENT
        if th_pos[th] >= th_end[th]:
            # the earliest thread needs records beyond the chunk: the caller loads more
            out[O_REASON] = R_STARVED
            out[O_THREAD] = th
            return R_STARVED
        i = order[th_pos[th]]
        k = kind[i]
        is_ifetch = k == 0
        is_write = k >= 2
        cpu = S.th_cpu[th]
        clock = th_clock[th]
        # Every wait below moves the thread's clock forward; if that passes another thread's
        # clock (or the stop time) the thread yields, so that requests reach shared resources
        # in global time order.
        if th_pend[th] == 0:
            n = np.int64(insts[i]) + (1 if is_ifetch else 0)
            th_insts[th] += n
            th_pend[th] = 1
            if n > 0:
                clock += n * ppi
                th_clock[th] = clock
                if clock > horizon:
                    continue
        cur = th_insts[th]
        lfb = S.th_lfb[th]
        va = np.int64(addr[i])
        if th_pend[th] == 1:
            # ROB window: wait for load misses that are too old
            wait = clock
            for j in range(lfb):
                d = th_odone[th, j]
                if d > wait and th_oinst[th, j] + rob <= cur:
                    wait = d
            if wait > clock:
                clock = wait
                th_clock[th] = wait
                if clock > horizon:
                    continue
            # L1 TLBs inline; anything else through stlb_translate (tlb.py)
            pid = S.th_pid[th]
            pte = np.int64(0)
            tx = clock
            if is_ifetch:
                key = vkey(pid, va >> 12)
                pte = tlb_lookup(itlb, itlb_v, set_row(itlb, cpu, key), key)
            else:
                if ctr[CT_HUGE_TLB] != 0:       # else no 2 MiB entry can hit
                    key = vkey(pid, va >> 21)
                    pte = tlb_lookup(dtlb2, dtlb2_v, set_row(dtlb2, cpu, key), key)
                if pte == 0:
                    key = vkey(pid, va >> 12)
                    pte = tlb_lookup(dtlb4, dtlb4_v, set_row(dtlb4, cpu, key), key)
            if pte == 0:
                ccnt[cpu, K_ITLB_MISS if is_ifetch else K_DTLB_MISS] += 1
                pte, tx = stlb_translate(R, PT, cpu, pid, va, is_ifetch, clock)
            st = pte & 3
            if st != PTE_PRESENT:
                th_clock[th] = clock + S.cfg[C_FAULT]
                fk = 0 if st == PTE_NOT_PRESENT else st - 1
                S.faults[th, fk] += 1
                if os_faults:
                    # the OS model's common faults (osfault.py)
                    if st == PTE_PROTNONE and S.kf_ctl[KF_HINT] != 0 and \
                            os_local_hint(R, k4, v4, th, cpu, va, pte):
                        continue
                    if st == PTE_NOT_PRESENT and S.ft_ctl[FT_BUDGET] > 0 and \
                            S.kf_ctl[KF_ON] != 0 and os_first_touch(R, th, cpu, va, is_write):
                        continue
                elif st == PTE_NOT_PRESENT and S.ft_ctl[FT_BUDGET] > 0 and \
                        _first_touch(R, k4, v4, th, cpu, va):
                    continue
                out[O_REASON] = R_FAULT
                out[O_THREAD] = th
                out[O_VADDR] = va
                out[O_KIND] = k
                out[O_PTE] = pte
                out[O_RECORD] = i
                return R_FAULT
            if is_write and (pte & PTE_DIRTY) == 0:
                pte = tlb_mark_dirty(R, k2, v2, k4, v4, cpu, pid, va, pte)
            S.th_pte[th] = pte
            S.th_txd[th] = tx - clock
            th_pend[th] = 2
        pte = S.th_pte[th]
        node = (pte >> 3) & 0x7F
        if pte & PTE_HUGE:
            pa = (pte & ~np.int64(0x1FFFFF)) | (va & 0x1FFFFF)
        else:
            pa = (pte & ~np.int64(0xFFF)) | (va & 0xFFF)
        line = pa >> 6
        if k == KIND_NT:
            # non-temporal store: a fill buffer (as write-combining buffer) until the home has
            # accepted the line (hierarchy.nt_store); no read for ownership, nothing waits
            slot = free_fill_buffer(th_odone, th, lfb)
            sd = th_odone[th, slot]
            if sd > clock + S.th_txd[th]:
                clock = sd - S.th_txd[th]
                th_clock[th] = clock
                if clock > horizon:
                    continue
            th_odone[th, slot] = nt_store(R, cpu, node, line, clock + S.th_txd[th])
            th_oinst[th, slot] = NEVER
            lat = S.th_txd[th]
            th_pend[th] = 0
            th_pos[th] += 1
            S.th_acc[th] += 1
            S.th_lat_sum[th] += lat
            hist[hist_bin(lat)] += 1
            continue
        # L1 lookup of the first line (no side effects yet). The same probe is repeated for the
        # second line of a straddling access below; it is written out twice on purpose: an
        # inlined helper returning a tuple measured ~18% slower replay (bench_replay.py).
        if is_ifetch:
            w1 = find_in_row(l1i, set_row(l1i, cpu, line), line)
            hit = w1 >= 0
        else:
            w1 = find_in_row(l1d, set_row(l1d, cpu, line), line)
            hit = w1 >= 0 and (not is_write or l1d_coh[w1] >= ST_E)
        # a miss needs a free line-fill buffer; if none is free the core waits
        slot = free_fill_buffer(th_odone, th, lfb)
        sd = th_odone[th, slot]
        if not hit and sd > clock + S.th_txd[th]:
            clock = sd - S.th_txd[th]
            th_clock[th] = clock
            if clock > horizon:
                continue
        tx = clock + S.th_txd[th]
        issue = tx
        nlines = 1
        sz = np.int64(size[i])
        if sz > 1 and ((va & 63) + sz > 64) and (((va + sz - 1) >> 12) == (va >> 12)):
            nlines = 2
        done = issue
        hit_all = True
        where = 0
        for ln in range(nlines):
            if ln == 1:
                line += 1
                if is_ifetch:
                    w1 = find_in_row(l1i, set_row(l1i, cpu, line), line)
                    hit = w1 >= 0
                else:
                    w1 = find_in_row(l1d, set_row(l1d, cpu, line), line)
                    hit = w1 >= 0 and (not is_write or l1d_coh[w1] >= ST_E)
            ctr[CT_STAMP] += 1
            if hit:
                if is_ifetch:
                    touch_line(l1i, w1)
                    ccnt[cpu, K_L1I_HIT] += 1
                    d1 = issue + lat_l1i
                else:
                    touch_line(l1d, w1)
                    if is_write:
                        set_coh(l1d, w1, ST_M)
                    ccnt[cpu, K_L1D_HIT] += 1
                    d1 = issue + lat_l1d
                wh = 0
            else:
                hit_all = False
                ccnt[cpu, K_L1I_MISS if is_ifetch else K_L1D_MISS] += 1
                if ln > 0:
                    slot = free_fill_buffer(th_odone, th, lfb)
                    sd = th_odone[th, slot]
                    if sd > issue:
                        issue = sd
                elif deep:
                    _prefetch_ahead(R, k2, v2, k4, v4, th, cpu, kind, addr, order)
                # while prefetching ahead, this access's rows were prefetched records ago
                d1, wh = access_below_l1(R, cpu, node, line << 6, is_write, is_ifetch, issue,
                                         ln == 0, deep and ln == 0, w1)
                deep = wh > W_L2
                if wh < 0:
                    # no remote tracker free (hierarchy.remote_tracker_free): the core stalls
                    # until one frees and issues the access again; the stall is latency
                    ccnt[cpu, K_L1I_MISS if is_ifetch else K_L1D_MISS] -= 1
                    S.th_wait[th] += d1 - issue
                    done = -1
                    break
                th_odone[th, slot] = d1
                th_oinst[th, slot] = cur if (k == 1 or k == 3) else NEVER
            if d1 > done:
                done = d1
            if wh > where:
                where = wh
        if done < 0:
            clock = d1 - S.th_txd[th]
            th_clock[th] = clock
            continue
        # translation + issue to data; a wait for a fill buffer is not latency
        lat = S.th_txd[th] + (done - issue)
        w = S.th_wait[th]
        if w != 0:
            # the OS held this access (a page under migration): the wait is latency too
            lat += w
            S.th_wait[th] = 0
        if S.th_dep[th] != 0 or (is_ifetch and not hit_all):
            clock = done
        th_clock[th] = clock
        th_pend[th] = 0
        th_pos[th] += 1
        S.th_acc[th] += 1
        S.th_lat_sum[th] += lat
        hist[hist_bin(lat)] += 1
        served[S.cpu_socket[cpu], where] += 1
    return R_CHUNK_DONE


@njit(cache=True, _nrt=False)
def replay(S, k2, v2, k4, v4, kind, addr, size, insts, order, stop_time, out):
    """Replay records until the chunk is done, ``stop_time`` is reached, or a fault; a first
    touch is served in the loop as the machine-only placement (``_first_touch``)."""
    return _replay(S, k2, v2, k4, v4, kind, addr, size, insts, order, stop_time, out, False)


@njit(cache=True, _nrt=False)
def replay_os(S, k2, v2, k4, v4, kind, addr, size, insts, order, stop_time, out):
    """:func:`replay` with the OS model's common faults served in the loop (osfault.py).
    Compiled on its own (``_replay`` is inlined into each version and the unused branch
    dropped), so that runs without the OS model never compile the fault paths."""
    return _replay(S, k2, v2, k4, v4, kind, addr, size, insts, order, stop_time, out, True)


@njit(cache=True, nogil=True, _nrt=False)
def replay_handle_os(h, stop_time):
    """:func:`replay_handle` for :func:`replay_os`."""
    H = handle_ref(h)
    return _replay(H.S, H.k2, H.v2, H.k4, H.v4, H.kind, H.addr, H.size, H.insts, H.order,
                   stop_time, H.out, True)


@njit(cache=True, _nrt=False)
def idle_thread(h, stop_time):
    """The thread an entry into the loop (either version) with ``stop_time`` would return
    ``event`` for at once, having changed nothing: every runnable thread is at or past
    ``stop_time`` and no fault the loop serves ends by then. -1 if the loop would do anything
    else (replay, end a fault, find the chunk done)."""
    S = handle_state(h)
    t_sel, best, _ = _earliest(S.th_clock, S.th_pos, S.th_end, S.th_more)
    if t_sel < 0 or best < stop_time or _loop_fault_due(S, best):
        return np.int64(-1)
    return t_sel


@njit(cache=True, nogil=True, _nrt=False)
def replay_handle(h, stop_time):
    """:func:`replay` on the arrays of a :class:`hwemu.machine.stateref.Handle`. Entering
    compiled code from Python costs what typing and unboxing the arguments cost: one handle here
    instead of the state tuple (~100 arrays) and ten more arrays. The fields are read through
    a reference without reference counting (``handle_ref``), and the loop gets the state by
    reference too. ``_replay`` is inlined here rather than called through ``replay``: a
    compiled callee is optimised and compiled to machine code once more inside each caller,
    which for the loop is seconds of the first run's compilation."""
    H = handle_ref(h)
    return _replay(H.S, H.k2, H.v2, H.k4, H.v4, H.kind, H.addr, H.size, H.insts, H.order,
                   stop_time, H.out, False)
