"""The OS model's side of the first touches the replay loop serves (hwemu.machine.osfault).

Before each entry into the loop, :meth:`LoopFaults.before` tells the machine what the kernel
would do with a first touch: the 2 MiB regions where it needs no decision (one anonymous VMA,
its page tables in place, a memory policy with a fixed node order), the frames the allocator
hands out next on every node, the LRU tails, the CPUs' busy-until times and the OS's time.
When the loop returns, :meth:`LoopFaults.after` brings the kernel up to date with what the loop
did, before anything else runs, with the kernel's own code (``Kernel.loop_fault_start`` and
``loop_fault_end``: allocation by policy, page set-up, LRU, page table, counters), in the order
the engine would have run the handlers' steps: a fault's end before a fault starting at the same
time. A fault the loop served that has not ended yet becomes the kernel's handler process,
asleep until its end, and its thread is blocked, exactly as if Python had started it.

The test ``tests/sim/test_loopfaults.py`` runs traces with and without the loop's faults and
asserts identical results.
"""

from __future__ import annotations

import bisect
import os

from hwemu.engine.process import PRIO_STEP
from hwemu.linux.kernel import FAULT_CYCLES
from hwemu.linux.mempolicy import policy_node
from hwemu.linux.mm import LRU, PteKind, VmaKind, layout_generation
from hwemu.machine.layout import (KF_ATOMIC, KF_CYC_ALLOC, KF_CYC_ENTRY, KF_CYC_LRU, KF_NEXT_END,
                                  KF_NLOG, KF_NOW, KF_MP_DEGREE, KF_NREG, KF_ON, KF_PENDING,
                                  KF_WINDOW, KL_CPU,
                                  KL_END, KL_PF, KL_PFN, KL_START, KL_TID, KL_TOUCHES, KL_VADDR, KL_WHERE,
                                  KL_WRITE,
                                  KN_LRU_LOCK, KN_MEMMAP, KN_START_PFN, KT_KEY, RG_HI, RG_LO,
                                  RG_PLACE, RG_PMD_LINE, RG_PTE_TABLE, RS_ALL, RS_COUNT, RS_HEAD)
from hwemu.machine.osfault import MAX_WINDOW, RESERVE_FRAMES
from hwemu.machine.pagetable import PID_SHIFT, ht_insert
from hwemu.machine.times import NEVER, PARKED
from hwemu.sim.hardware import HW_COMPONENT

_NEVER = int(NEVER)
_HUGE = 1 << 21


def loop_faults_wanted(flag: bool | None) -> bool:
    """The ``loop_faults`` setting of a run: given, else ``HWEMU_LOOP_FAULTS`` (default on)."""
    if flag is None:
        return os.environ.get("HWEMU_LOOP_FAULTS", "1") != "0"
    return bool(flag)


class LoopFaults:
    """Keeps the machine's description of the kernel's common first touch current, and the
    kernel current with the faults the loop served (see the module docstring). ``sim`` is the
    :class:`hwemu.sim.cosim.CoSim` it belongs to."""

    def __init__(self, sim):
        self.sim = sim
        self.m = m = sim.m
        self.k = k = sim.kernel
        self.hw = hw = sim.hw
        S = m.S
        self.S = S
        self.nn = hw.num_nodes
        ctl = S.kf_ctl
        ctl[KF_CYC_ENTRY] = hw.cycles_ps(0, FAULT_CYCLES["entry_exit"])
        ctl[KF_CYC_ALLOC] = hw.cycles_ps(0, FAULT_CYCLES["alloc"] + FAULT_CYCLES["anon_page"])
        ctl[KF_CYC_LRU] = hw.cycles_ps(0, FAULT_CYCLES["lru_add"])
        ctl[KF_ATOMIC] = m.config.cycles_ps(hw.p.atomic_cycles)
        ctl[KF_WINDOW] = m.config.lfb + hw.p.copy_prefetch_lines
        ctl[KF_MP_DEGREE] = hw.p.metadata_prefetch_degree
        for n, a in enumerate(k.alloc.nodes):
            S.kf_nodes[n, KN_MEMMAP] = a.memmap_paddr
            S.kf_nodes[n, KN_START_PFN] = a.start_pfn
            S.kf_nodes[n, KN_LRU_LOCK] = k.lru_lock[n]
        self._layout = -1
        self._places: dict = {}
        self._rows: dict[tuple[int, int], int] = {}
        self._res_gen = [-1] * self.nn
        self.served = 0

    @staticmethod
    def usable(sim) -> bool:
        """Whether the loop can serve faults exactly as this run's kernel would: observers that
        can learn of a fault when the loop returns, a copy window the loop holds."""
        hw = sim.hw
        return (sim.m.config.lfb + hw.p.copy_prefetch_lines <= MAX_WINDOW
                and all(ob.loop_faults_ok for ob in sim.kernel.observers))

    # -- before the loop ------------------------------------------------------------------
    def before(self) -> None:
        S, k = self.S, self.k
        if layout_generation() != self._layout:
            self._rebuild()
        elif k.new_regions:
            for mm, key in k.new_regions:
                self._register(mm, key)
        k.new_regions.clear()
        resc = S.kf_resc
        for n, a in enumerate(k.alloc.nodes):
            if a.gen != self._res_gen[n]:
                fr = a.peek(RESERVE_FRAMES)
                S.kf_res[n, :len(fr)] = fr
                resc[n, RS_HEAD] = 0
                resc[n, RS_COUNT] = len(fr)
                resc[n, RS_ALL] = 1 if len(fr) == a.free_count else 0
                self._res_gen[n] = a.gen
            S.kf_tail[n] = k.lru_tail(n, LRU.INACTIVE_ANON)
        cpus = self.sim.engine.cpus
        S.kf_busy[:, 0] = cpus.busy_until_ps
        S.kf_busy[:, 1] = cpus.busy_ps
        S.kf_ctl[KF_NOW] = self.sim.engine.now_ps
        S.kf_ctl[KF_ON] = 1

    def _rebuild(self) -> None:
        S = self.S
        S.kf_rk[:] = -1
        S.kf_ctl[KF_NREG] = 0
        self._rows.clear()
        self._places.clear()
        for mm in self.k.mms.values():
            for key in mm.pte_tables:
                self._register(mm, key)
        self._layout = layout_generation()

    def _place(self, pol, is_vma: bool) -> int:
        """The row of ``kf_place`` for a memory policy (-1: not one the loop serves: an
        interleave policy picks nodes by a rotor or an index)."""
        key = (pol, is_vma)
        p = self._places.get(key)
        if p is not None:
            return p
        p = -1
        if (pol is None or pol.mode not in ("interleave", "weighted_interleave")) \
                and len(self._places) < self.S.kf_place.shape[0]:
            p = len(self._places)
            hw, k = self.hw, self.k
            for cn in range(self.nn):
                pl = policy_node(pol, cn, hw.distance, self.nn, is_vma, 0, None)
                order = [n for n in k.alloc.zonelists[pl.preferred]
                         if pl.nodemask is None or n in pl.nodemask]
                row = self.S.kf_place[p, cn]
                row[:] = -1
                row[0] = pl.preferred
                row[1:1 + len(order)] = order
        self._places[key] = p
        return p

    def _register(self, mm, key: int) -> None:
        """Describe region ``key`` (vaddr >> 21) of ``mm`` to the loop, or withdraw it."""
        S = self.S
        row = self._rows.get((mm.pid, key))
        lo_vpn = hi_vpn = place = 0
        pte_t = mm.pte_tables.get(key)
        pmd_t = mm.pmd_tables.get(key >> 9)
        pmd = mm.pmds.get(key)
        if pte_t is not None and pmd_t is not None and (pmd is None or pmd.kind is PteKind.NONE):
            lo, hi = key << 21, (key + 1) << 21
            vmas = mm.vmas
            i = max(0, bisect.bisect_right(vmas, lo, key=lambda v: v.start) - 1)
            over = []
            while i < len(vmas) and vmas[i].start < hi:
                if vmas[i].end > lo:
                    over.append(vmas[i])
                i += 1
            if len(over) == 1 and over[0].kind is VmaKind.ANON:
                v = over[0]
                place = self._place(*self.k.policy_for(v))
                if place >= 0:
                    lo_vpn = (max(lo, v.start) + 4095) >> 12
                    hi_vpn = min(hi, v.end) >> 12
        if row is None:
            if hi_vpn <= lo_vpn:
                return
            row = int(S.kf_ctl[KF_NREG])
            if row >= S.kf_reg.shape[0]:
                return                       # full: the region's faults go to Python
            S.kf_ctl[KF_NREG] = row + 1
            self._rows[(mm.pid, key)] = row
            ht_insert(S.kf_rk, S.kf_rv, (mm.pid << PID_SHIFT) | key, row + 1)
        reg = S.kf_reg[row]
        reg[RG_PTE_TABLE] = (pte_t or 0) << 12
        reg[RG_PMD_LINE] = ((pmd_t or 0) << 12) + (key & 511) * 8
        reg[RG_LO] = lo_vpn
        reg[RG_HI] = hi_vpn
        reg[RG_PLACE] = place

    # -- after the loop -------------------------------------------------------------------
    def after(self) -> None:
        S = self.S
        ctl = S.kf_ctl
        ctl[KF_ON] = 0
        n = int(ctl[KF_NLOG])
        if n == 0:
            return
        sim, k, eng = self.sim, self.k, self.sim.engine
        rows = S.kf_log[:n].tolist()
        ctl[KF_NLOG] = 0
        kth = S.kf_th
        pending = {t for t in range(kth.shape[0]) if kth[t, KT_KEY] >= 0}
        kth[:, KT_KEY] = -1
        ctl[KF_PENDING] = 0
        ctl[KF_NEXT_END] = _NEVER
        cpus = eng.cpus
        cpus.busy_until_ps[:] = S.kf_busy[:, 0].tolist()
        cpus.busy_ps[:] = S.kf_busy[:, 1].tolist()
        # a thread's fault still pending is its last one in the log
        last = {r[KL_TID]: i for i, r in enumerate(rows)}
        flight = {last[t] for t in pending}
        steps = [(r[KL_START], 1, i) for i, r in enumerate(rows)]
        steps += [(r[KL_END], 0, i) for i, r in enumerate(rows) if i not in flight]
        steps.sort()
        inc = self.hw.stats.inc
        count_metadata = self.hw.count_metadata
        fstats = sim.fault_stats.inc
        vaddrs = sim.dispatch.fault_vaddr
        made: dict[int, tuple] = {}
        done_cpus = set()
        for when, is_start, i in steps:
            eng.run_until(when)
            r = rows[i]
            tid, va = r[KL_TID], r[KL_VADDR]
            if is_start:
                mm, page = k.loop_fault_start(tid, va, r[KL_PFN])
                made[i] = (mm, page)
                for j in range(KL_TOUCHES):
                    w = r[KL_WHERE + j]
                    if w < 0:
                        break
                    count_metadata(w, r[KL_PF + j])
                inc(HW_COMPONENT, "fill_bytes", 4096, "bytes")
                vaddrs[tid] = va
                if i in flight:
                    proc = k.loop_fault_process(tid, mm, va, page, bool(r[KL_WRITE]), when)
                    sim.blocked[tid] = (proc, when, "not_present")
                    proc.on_done.append(lambda p, t=tid: sim._unblock(t))
                    eng.queue.schedule(r[KL_END], proc._resume, None, priority=PRIO_STEP)
                    S.th_clock[tid] = PARKED
            else:
                mm, page = made.pop(i)
                k.loop_fault_end(mm, va, page, bool(r[KL_WRITE]), r[KL_START], True)
                fstats("cosim.faults", "not_present_faults", 1, "faults")
                fstats("cosim.faults", "not_present_time", r[KL_END] - r[KL_START], "ps")
                fstats("cosim.faults", "lock_wait_time", 0, "ps")
                done_cpus.add(r[KL_CPU])
        for cpu in done_cpus:
            sim._busy_seen[cpu] = cpus.busy_ps[cpu]
        for a_i, a in enumerate(k.alloc.nodes):
            self._res_gen[a_i] = a.gen
        self.served += n
