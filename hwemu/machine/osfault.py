"""The page faults the OS model lets the replay loop serve (the common ones, compiled).

With the OS model every not-present fault used to leave the compiled loop: Python ran the
kernel's anonymous-page fault (``hwemu.linux.kernel.Kernel._fault_proc``) as a process, and the
loop was entered again, at about 100 us of host time per fault. Most first touches need no
decision, though: the page lies in an anonymous mapping whose page tables exist, the memory
policy names the nodes to try in a fixed order, and the allocator hands out the next free
frame. The OS model describes those cases to the machine (``hwemu.sim.loopfaults``), and the
loop serves them itself, doing what the kernel would:

- *where*: the 2 MiB regions registered in ``kf_rk``/``kf_rv``/``kf_reg`` (page-table frame,
  PMD line, the pages of the one anonymous VMA there, the placement); anything else returns the
  fault to Python as before;
- *which frame*: the next frame of the first node of the placement's order (``kf_place``,
  per CPU node) that has one in its reservation (``kf_res``: the frames the OS allocator hands
  out next, in its order); a node whose reservation is used up but that has more free frames
  sends the fault to Python;
- *what it costs*: exactly the kernel's sequence (``Kernel._fault_proc`` and
  ``_do_anonymous``, the same cycles from ``kf_ctl``): entry, the walk (PMD and PTE lines),
  allocation, clearing the page (a copy from the node's zero page through the model, as
  ``MachineHardware.fill_ps``), the walk again with the PTE written, the struct page, the LRU
  (lock word, the list tail's struct page, the page's own), each line through the caches,
  links and controllers at the time the kernel would touch it; the handler then occupies the
  CPU (``kf_busy``: busy-until and busy time, as ``hwemu.engine.CpuTimeline.occupy``);
- *when the page appears*: the entry is installed at the fault's end (``kf_th``), before any
  access at or after that time, as the engine would run the handler's last step; the thread
  resumes then.

A NUMA hinting fault on a page already on the faulting CPU's node is served the same way when
the migration policy decides nothing for it (``KF_HINT``; autonuma): ``os_local_hint`` charges
``Kernel._fault_proc``'s PROT_NONE path and makes the entry present again at once.

Conditions that keep it exact, else the fault goes to Python: no other thread shares the CPU
(OS time on a shared CPU is charged to the others), the thread's clock is not behind the OS's
time, no other thread's fault on the same page is in progress (in the loop: ``KT_KEY``; in
Python: ``KT_OS_KEY``, so that racing faults are resolved by the kernel's code), the log has
room.

Every fault served is logged (``kf_log``) so that Python brings the OS model's own state up to
date (page, LRU, page table, counters) when the loop returns, before it does anything else; an
entry not yet installed then becomes the kernel's handler process, sleeping until its end.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hwemu.machine.hierarchy import node_of_line
from hwemu.machine.layout import (FT_BUDGET, FT_MAPPED, FT_NEW_SLOTS, KF_ATOMIC,
                                  KF_CYC_ALLOC, KF_CYC_ENTRY, KF_CYC_HINT, KF_CYC_HINT_POLICY,
                                  KF_CYC_LRU, KF_HINT, KF_MP_DEGREE, KF_N, KF_NEXT_END, KF_NLOG,
                                  KF_NOW, KF_NREG, KF_ON, KF_PENDING, KF_WINDOW, KIND_FIRST_TOUCH,
                                  KIND_LOCAL_HINT, KL_CPU, KL_END, KL_KIND, KL_NODE, KL_PF,
                                  KL_PFN, KL_ROW, KL_START, KL_TID, KL_TOUCHES, KL_VADDR, KL_WHERE,
                                  KL_WRITE, KN_LRU_LOCK, KN_MEMMAP, KN_START_PFN, KT_END, KT_KEY,
                                  KT_OS_KEY, KT_PTE, RG_HI, RG_LO, RG_PLACE, RG_PMD_LINE,
                                  RG_PTE_TABLE, RS_ALL, RS_COUNT, RS_HEAD)
from hwemu.machine.memops import copy_lines_in, meta_access
from hwemu.machine.pagetable import PID_SHIFT, PTE_HUGE, PTE_PRESENT, ht_insert, ht_lookup, vkey
from hwemu.machine.times import NEVER

#: frames per node the OS reserves for the loop at a time (the allocator's next ones), at most
#: and at least
RESERVE_FRAMES = 1024
RESERVE_MIN = 64
#: faults the loop serves before it must return for Python to catch up
LOG_ROWS = 4096
#: the longest copy window (lines in flight) of a page clear
MAX_WINDOW = 256


# A constant True or False argument would make numba compile the callee once per literal value
# (minutes of compilation for the loop); these are typed as plain booleans.
_T, _F = np.bool_(True), np.bool_(False)


@njit(cache=True, _nrt=False)
def _touch(S, cpu, pa, write, atomic, t, log, row, n):
    """One kernel metadata access (``MachineHardware.mem_access_ps``, with the OS model's
    metadata streamer); its latency in ps. Logs where it was served and the prefetches it set
    off in column ``n`` of the touches."""
    ctl = S.kf_ctl
    lat, where, npf = meta_access(S, cpu, pa, write, atomic, ctl[KF_ATOMIC], ctl[KF_MP_DEGREE], t)
    log[row, KL_WHERE + n] = where
    log[row, KL_PF + n] = npf
    return lat


@njit(cache=True, _nrt=False)
def retranslate(S):
    """Threads that translated but have not issued translate again (Machine._retranslate)."""
    th_pend = S.th_pend
    for t in range(th_pend.shape[0]):
        if th_pend[t] == 2:
            th_pend[t] = 1


@njit(cache=True, _nrt=False)
def loop_map(S, k4, v4, key, pte):
    """A page-table entry the loop installs (``FT_BUDGET`` leaves room): booked for
    ``Machine.run`` (``_Table.counted``), translations not yet issued redone."""
    ft = S.ft_ctl
    new = ht_insert(k4, v4, key, pte)
    ft[FT_BUDGET] -= new
    ft[FT_NEW_SLOTS] += new
    ft[FT_MAPPED] += 1
    retranslate(S)


@njit(cache=True, _nrt=False)
def _servable(S, th, cpu, va, key):
    """The registered region row of thread ``th``'s fault at ``va`` (page ``key``), or -1 when
    the loop must leave the fault to Python: the log is full, the thread's clock is behind the
    OS's time, another thread runs on the same CPU or has a fault on the page in progress (in
    the loop or in Python), or the region is not registered."""
    ctl = S.kf_ctl
    if ctl[KF_NLOG] >= S.kf_log.shape[0] or S.th_clock[th] < ctl[KF_NOW]:
        return -1
    kth = S.kf_th
    for t in range(S.th_clock.shape[0]):
        if t != th and (S.th_cpu[t] == cpu or kth[t, KT_KEY] == key or kth[t, KT_OS_KEY] == key):
            return -1
    return ht_lookup(S.kf_rk, S.kf_rv, vkey(S.th_pid[th], va >> 21)) - 1


@njit(cache=True, _nrt=False)
def _walk(S, cpu, pmd_line, pte_line, write, t, log, row, n):
    """The page-table walk of the kernel's fault handler (``Kernel.walk_cost``): the PMD line,
    then the PTE line (``write``: a locked update). Its time in ps; logged as touches ``n`` and
    ``n + 1``."""
    ps = _touch(S, cpu, pmd_line, _F, _F, t, log, row, n)
    return ps + _touch(S, cpu, pte_line, write, write, t + ps, log, row, n + 1)


@njit(cache=True, _nrt=False)
def _served(S, th, cpu, va, start, ps, key, pte, pfn, node, write, kind):
    """The end of a fault the loop served from ``start``, costing ``ps`` on ``cpu``: the CPU
    occupied (``CpuTimeline.occupy``), the thread resuming at the end, the entry ``pte`` (-1:
    none) to install then, the log row."""
    ctl = S.kf_ctl
    busy = S.kf_busy
    s2 = start if start > busy[cpu, 0] else busy[cpu, 0]
    end = s2 + ps
    busy[cpu, 0] = end
    busy[cpu, 1] += ps
    ctl[KF_NOW] = start
    S.th_clock[th] = end
    kth = S.kf_th
    kth[th, KT_KEY] = key
    kth[th, KT_END] = end
    kth[th, KT_PTE] = pte
    ctl[KF_PENDING] += 1
    if end < ctl[KF_NEXT_END]:
        ctl[KF_NEXT_END] = end
    log = S.kf_log
    row = ctl[KF_NLOG]
    log[row, KL_TID] = th
    log[row, KL_VADDR] = va
    log[row, KL_CPU] = cpu
    log[row, KL_PFN] = pfn
    log[row, KL_NODE] = node
    log[row, KL_START] = start
    log[row, KL_END] = end
    log[row, KL_WRITE] = write
    log[row, KL_KIND] = kind
    ctl[KF_NLOG] = row + 1


@njit(cache=True, _nrt=False)
def os_first_touch(S, th, cpu, va, is_write):
    """Serve thread ``th``'s not-present fault at ``va`` as the OS model would, if it is one of
    the cases described in the module docstring; False sends it to Python (nothing changed).
    The thread's clock (``th_clock``) is the fault's time; it becomes the fault's end."""
    ctl = S.kf_ctl
    if S.ft_ctl[FT_BUDGET] <= ctl[KF_PENDING]:
        return False
    key = vkey(S.th_pid[th], va >> 12)
    r = _servable(S, th, cpu, va, key)
    if r < 0:
        return False
    log = S.kf_log
    row = ctl[KF_NLOG]
    reg = S.kf_reg
    vpn = va >> 12
    if vpn < reg[r, RG_LO] or vpn >= reg[r, RG_HI]:
        return False
    # the frame: the placement's node order for this CPU's node, through the reservations
    cnode = S.socket_node[S.cpu_socket[cpu]]
    order = S.kf_place[reg[r, RG_PLACE], cnode]
    resc = S.kf_resc
    node = -1
    for j in range(1, order.shape[0]):
        n = order[j]
        if n < 0:
            break
        if resc[n, RS_HEAD] < resc[n, RS_COUNT]:
            node = n
            break
        if resc[n, RS_ALL] == 0:
            return False            # the node may have frames the reservation does not show
    if node < 0:
        return False                # no node allowed has a frame: Python reports it
    pfn = S.kf_res[node, resc[node, RS_HEAD]]
    resc[node, RS_HEAD] += 1
    # the handler's cost, step by step as Kernel._fault_proc / _do_anonymous charge it
    kn = S.kf_nodes
    start = S.th_clock[th]
    ps = ctl[KF_CYC_ENTRY]
    pmd_line = reg[r, RG_PMD_LINE]
    pte_line = reg[r, RG_PTE_TABLE] + (vpn & 511) * 8
    ps += _walk(S, cpu, pmd_line, pte_line, _F, start + ps, log, row, np.int64(0))
    ps += ctl[KF_CYC_ALLOC]
    dst = pfn << 12
    at = start + ps
    done = copy_lines_in(S, cpu, S.node_base[node_of_line(S, dst >> 6)], dst, np.int64(4096), at,
                         ctl[KF_WINDOW], S.kf_slots)
    if done > at:
        ps += done - at
    ps += _walk(S, cpu, pmd_line, pte_line, _T, start + ps, log, row, np.int64(2))
    sp = kn[node, KN_MEMMAP] + (pfn - kn[node, KN_START_PFN]) * 64
    ps += _touch(S, cpu, sp, _T, _F, start + ps, log, row, np.int64(4))
    ps += ctl[KF_CYC_LRU]
    ps += _touch(S, cpu, kn[node, KN_LRU_LOCK], _F, _T, start + ps, log, row, np.int64(5))
    n = np.int64(6)
    tail = S.kf_tail[node]
    if tail >= 0:
        ps += _touch(S, cpu, kn[node, KN_MEMMAP] + (tail - kn[node, KN_START_PFN]) * 64, _T,
                     _F, start + ps, log, row, n)
        n += 1
    ps += _touch(S, cpu, sp, _T, _F, start + ps, log, row, n)
    n += 1
    for j in range(n, KL_TOUCHES):
        log[row, KL_WHERE + j] = -1
    S.kf_tail[node] = pfn
    # the handler computes for ps on its CPU, then the page is mapped
    _served(S, th, cpu, va, start, ps, key, dst | (node << 3) | PTE_PRESENT, pfn, node,
            1 if is_write else 0, np.int64(KIND_FIRST_TOUCH))
    return True


@njit(cache=True, _nrt=False)
def os_local_hint(S, k4, v4, th, cpu, va, pte):
    """Serve thread ``th``'s NUMA hinting fault at ``va`` (``pte``: the PROT_NONE entry it
    found) as the OS model would when the page is already on the CPU's node and the policy
    decides nothing for such a fault (``KF_HINT``: automatic NUMA balancing counts it as a local
    fault): ``Kernel._fault_proc``'s PROT_NONE path, the entry made present again (its
    accessed and dirty bits kept) at the fault's start, the thread resuming at its end. False
    sends it to Python (nothing changed)."""
    if (pte & PTE_HUGE) != 0:
        return False
    node = (pte >> 3) & 0x7F
    if node != S.socket_node[S.cpu_socket[cpu]]:
        return False                # a remote page: the policy decides (migrate or not)
    key = vkey(S.th_pid[th], va >> 12)
    r = _servable(S, th, cpu, va, key)
    if r < 0:
        return False
    ctl = S.kf_ctl
    log = S.kf_log
    row = ctl[KF_NLOG]
    reg = S.kf_reg
    kn = S.kf_nodes
    vpn = va >> 12
    start = S.th_clock[th]
    ps = ctl[KF_CYC_ENTRY]
    pmd_line = reg[r, RG_PMD_LINE]
    pte_line = reg[r, RG_PTE_TABLE] + (vpn & 511) * 8
    ps += _walk(S, cpu, pmd_line, pte_line, _F, start + ps, log, row, np.int64(0))
    ps += ctl[KF_CYC_HINT]
    ps += _walk(S, cpu, pmd_line, pte_line, _T, start + ps, log, row, np.int64(2))
    pfn = (pte & ~np.int64(0xFFF)) >> 12
    ps += _touch(S, cpu, kn[node, KN_MEMMAP] + (pfn - kn[node, KN_START_PFN]) * 64, _F, _T,
                 start + ps, log, row, np.int64(4))
    ps += ctl[KF_CYC_HINT_POLICY]
    for j in range(5, KL_TOUCHES):
        log[row, KL_WHERE + j] = -1
    # do_numa_page: the entry is present again now (MachineSync keeps A and D of the same frame)
    old = ht_lookup(k4, v4, key)
    ht_insert(k4, v4, key, (old & ~np.int64(3)) | PTE_PRESENT)
    retranslate(S)
    # the handler ends with nothing left to install (-1)
    _served(S, th, cpu, va, start, ps, key, np.int64(-1), pfn, node, np.int64(0),
            np.int64(KIND_LOCAL_HINT))
    return True


@njit(cache=True, _nrt=False)
def os_installs(S, k4, v4, upto, stop_time):
    """End the faults that end at or before ``upto`` (the earliest clock of a runnable thread)
    and before ``stop_time``, installing their entries (one due at or after ``stop_time`` is
    left to Python, whose engine orders it among the events due then)."""
    ctl = S.kf_ctl
    kth = S.kf_th
    nxt = NEVER
    for t in range(kth.shape[0]):
        if kth[t, KT_KEY] < 0:
            continue
        end = kth[t, KT_END]
        if end <= upto and end < stop_time:
            if kth[t, KT_PTE] >= 0:
                loop_map(S, k4, v4, kth[t, KT_KEY], kth[t, KT_PTE])
            kth[t, KT_KEY] = -1
            ctl[KF_PENDING] -= 1
            if end > ctl[KF_NOW]:
                ctl[KF_NOW] = end
        elif end < nxt:
            nxt = end
    ctl[KF_NEXT_END] = nxt


def kf_arrays(num_nodes: int, num_cpus: int, threads: int) -> tuple:
    """The ``kf_*`` arrays of a new machine state (hwemu.machine.state), all empty: off."""
    regions = 1 << 13
    ctl = np.zeros(KF_N, np.int64)
    ctl[KF_NEXT_END] = NEVER
    return (
        ctl,
        np.full(2 * regions, -1, np.int64), np.zeros(2 * regions, np.int64),   # kf_rk, kf_rv
        np.zeros((regions, 5), np.int64),                                     # kf_reg
        np.full((16, num_nodes, num_nodes + 1), -1, np.int64),                # kf_place
        np.zeros((num_nodes, RESERVE_FRAMES), np.int64),                      # kf_res
        np.zeros((num_nodes, 3), np.int64),                                   # kf_resc
        np.zeros((num_nodes, 3), np.int64),                                   # kf_nodes
        np.full(num_nodes, -1, np.int64),                                     # kf_tail
        np.zeros((num_cpus, 2), np.int64),                                    # kf_busy
        np.full((threads, 4), -1, np.int64),                                  # kf_th
        np.zeros((LOG_ROWS, KL_ROW), np.int64),                              # kf_log
        np.zeros(MAX_WINDOW, np.int64),                                       # kf_slots
    )




class LoopFaultTable:
    """The Python side of the ``kf_*`` arrays of one machine: what the OS model
    (``hwemu.sim.loopfaults``) tells the loop and reads back. Nothing else writes them."""

    def __init__(self, S):
        self.S = S
        self._os_keys = True        # whether kf_th's OS-key column may hold a key

    # -- what the OS describes --------------------------------------------------------------
    def set_costs(self, entry_ps: int, alloc_ps: int, lru_ps: int, atomic_ps: int, window: int,
                  metadata_degree: int, hint_ps: int, hint_policy_ps: int) -> None:
        """The kernel's fault-path costs (ps), the page clear's copy window (lines) and the
        metadata streamer's degree (lines)."""
        ctl = self.S.kf_ctl
        for col, v in ((KF_CYC_ENTRY, entry_ps), (KF_CYC_ALLOC, alloc_ps), (KF_CYC_LRU, lru_ps),
                       (KF_ATOMIC, atomic_ps), (KF_WINDOW, window),
                       (KF_MP_DEGREE, metadata_degree), (KF_CYC_HINT, hint_ps),
                       (KF_CYC_HINT_POLICY, hint_policy_ps)):
            ctl[col] = v

    def set_node(self, node: int, memmap_paddr: int, start_pfn: int, lru_lock_paddr: int) -> None:
        kn = self.S.kf_nodes
        kn[node, KN_MEMMAP] = memmap_paddr
        kn[node, KN_START_PFN] = start_pfn
        kn[node, KN_LRU_LOCK] = lru_lock_paddr

    @property
    def placements(self) -> int:
        return self.S.kf_place.shape[0]

    def set_placement(self, p: int, cpu_node: int, preferred: int, order: list[int]) -> None:
        """Placement ``p`` for a CPU of ``cpu_node``: the policy's preferred node and the nodes
        an allocation tries, in order."""
        row = self.S.kf_place[p, cpu_node]
        row[:] = -1
        row[0] = preferred
        row[1:1 + len(order)] = order

    def clear_regions(self) -> None:
        self.S.kf_rk[:] = -1
        self.S.kf_ctl[KF_NREG] = 0

    def add_region(self, pid: int, key: int) -> int:
        """A row for region ``key`` (vaddr >> 21) of ``pid`` (-1: the table is full)."""
        S = self.S
        row = int(S.kf_ctl[KF_NREG])
        if row >= S.kf_reg.shape[0]:
            return -1
        S.kf_ctl[KF_NREG] = row + 1
        ht_insert(S.kf_rk, S.kf_rv, (pid << PID_SHIFT) | key, row + 1)
        return row

    def set_region(self, row: int, pte_table_paddr: int, pmd_line_paddr: int, lo_vpn: int,
                   hi_vpn: int, placement: int) -> None:
        """Region ``row``: its PTE table, PMD line, the pages [lo_vpn, hi_vpn) the loop may
        fault in (none if equal) and their placement."""
        reg = self.S.kf_reg[row]
        reg[RG_PTE_TABLE] = pte_table_paddr
        reg[RG_PMD_LINE] = pmd_line_paddr
        reg[RG_LO] = lo_vpn
        reg[RG_HI] = hi_vpn
        reg[RG_PLACE] = placement

    def reserve(self, node: int, frames: list[int], all_free: bool) -> None:
        """The frames ``node``'s allocator hands out next (``all_free``: every free one)."""
        S = self.S
        S.kf_res[node, :len(frames)] = frames
        S.kf_resc[node, RS_HEAD] = 0
        S.kf_resc[node, RS_COUNT] = len(frames)
        S.kf_resc[node, RS_ALL] = 1 if all_free else 0

    # -- each entry and return ------------------------------------------------------------
    def enter(self, now_ps: int, busy, lru_tails, os_keys: dict[int, int],
              hints: bool) -> None:
        """Before the loop: the OS's time, the (cpu, busy-until, busy time) of the CPUs whose
        times changed since the loop last had them, every node's LRU tail (None: unchanged
        since the last call), the pages of the faults Python is handling (thread ->
        (pid << PID_SHIFT) | vpn), and whether local hinting faults are served."""
        S = self.S
        kb = S.kf_busy
        for cpu, until, ps in busy:
            kb[cpu, 0] = until
            kb[cpu, 1] = ps
        if lru_tails is not None:
            S.kf_tail[:] = lru_tails
        os_key = S.kf_th[:, KT_OS_KEY]
        if os_keys or self._os_keys:
            os_key[:] = -1
            for tid, key in os_keys.items():
                os_key[tid] = key
        self._os_keys = bool(os_keys)
        ctl = S.kf_ctl
        ctl[KF_NOW] = now_ps
        ctl[KF_ON] = 1
        ctl[KF_HINT] = 1 if hints else 0

    def reserved_used(self, node: int) -> int:
        """How many frames of ``node``'s last reservation the loop took."""
        return int(self.S.kf_resc[node, RS_HEAD])

    def served_any(self) -> bool:
        """Whether the loop served a fault since :meth:`enter`."""
        return self.S.kf_ctl[KF_NLOG] != 0

    def leave_idle(self) -> None:
        """After a loop that served no fault (:meth:`served_any` False)."""
        ctl = self.S.kf_ctl
        ctl[KF_ON] = 0
        ctl[KF_HINT] = 0

    def leave(self) -> tuple:
        """After the loop: (log rows as a numpy array, threads whose fault is still pending,
        the CPUs' busy-until and busy times as lists); the log is emptied."""
        S = self.S
        ctl = S.kf_ctl
        ctl[KF_ON] = 0
        ctl[KF_HINT] = 0
        n = int(ctl[KF_NLOG])
        log = S.kf_log[:n].copy()
        ctl[KF_NLOG] = 0
        pending = set(np.flatnonzero(S.kf_th[:, KT_KEY] >= 0).tolist())
        return log, pending, S.kf_busy[:, 0].tolist(), S.kf_busy[:, 1].tolist()

    def drop_pending(self) -> None:
        """Python takes over every fault still pending (as the kernel's processes)."""
        S = self.S
        S.kf_th[:, KT_KEY] = -1
        S.kf_ctl[KF_PENDING] = 0
        S.kf_ctl[KF_NEXT_END] = NEVER
