"""The OS model's side of the faults the replay loop serves (hwemu.machine.osfault).

Before each entry into the loop, :meth:`LoopFaults.before` tells the machine what the kernel
would do with a first touch: the 2 MiB regions where it needs no decision (one anonymous VMA,
its page tables in place, a memory policy with a fixed node order), the frames the allocator
hands out next on every node, the LRU tails, the CPUs' busy-until times, the OS's time, the
pages of the faults the kernel is handling itself, and whether the migration policy lets the
loop serve local NUMA hinting faults (autonuma). When the loop returns,
:meth:`LoopFaults.after` brings the kernel up to date with what the loop did, before anything
else runs, with the kernel's own code (``Kernel.loop_fault_start``, ``loop_hint_start``,
``loop_fault_end``: allocation by policy, page set-up, LRU, page table, counters), in the order
the engine would have run the handlers' steps: a fault's end before a fault starting at the same
time. A fault the loop served that has not ended yet stays in the loop if all Python does before
the loop runs again is end other such faults (and close a window no policy samples at); else it
becomes the kernel's handler process, asleep until its end, and its thread is blocked, exactly
as if Python had started it.

``tests/integration/test_loop_faults.py`` runs traces with and without the loop's faults and
asserts identical results.
"""

from __future__ import annotations

import bisect
import os


from hwemu.engine.process import PRIO_STEP
from hwemu.linux.kernel import FAULT_CYCLES
from hwemu.linux.numa_balancing import HINT_CYCLES
from hwemu.linux.mempolicy import policy_node
from hwemu.linux.mm import LRU, PteKind, VmaKind, layout_generation
from hwemu.machine.layout import (KIND_FIRST_TOUCH, KIND_LOCAL_HINT, KL_CPU, KL_END, KL_KIND,
                                  KL_PF, KL_PFN, KL_START, KL_TID, KL_TOUCHES, KL_VADDR,
                                  KL_WHERE, KL_WRITE)
from hwemu.machine.osfault import MAX_WINDOW, RESERVE_FRAMES, RESERVE_MIN
from hwemu.machine.pagetable import PID_SHIFT
from hwemu.sim.hardware import HW_COMPONENT

#: CoSim.blocked's record of a thread whose fault the loop still serves
LOOP_PENDING = "loop"
# the fault kind CoSim counts a logged fault under, by KL_KIND
_FAULT_NAME = ("not_present", "numa_hint")


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
        self.t = t = m.loop_fault_table()
        self.nn = hw.num_nodes
        t.set_costs(hw.cycles_ps(0, FAULT_CYCLES["entry_exit"]),
                    hw.cycles_ps(0, FAULT_CYCLES["alloc"] + FAULT_CYCLES["anon_page"]),
                    hw.cycles_ps(0, FAULT_CYCLES["lru_add"]),
                    m.config.cycles_ps(hw.p.atomic_cycles),
                    m.config.lfb + hw.p.copy_prefetch_lines, hw.p.metadata_prefetch_degree,
                    hw.cycles_ps(0, FAULT_CYCLES["numa_hint"]), hw.cycles_ps(0, HINT_CYCLES))
        # local NUMA hinting faults too, if the migration policy decides nothing for them
        self.hints = bool(sim.dispatch.own and sim.policy.local_hints_in_loop)
        for n, a in enumerate(k.alloc.nodes):
            t.set_node(n, a.memmap_paddr, a.start_pfn, k.lru_lock[n])
        # the loop has no CPU's busy times yet: the first entry copies them all
        cpus = sim.engine.cpus
        cpus.changed.update(range(cpus.num_cpus))
        self._layout = -1
        self._places: dict = {}
        self._rows: dict[tuple[int, int], int] = {}
        self._res_gen = [-1] * self.nn
        self._lru_gen = -1
        self.served = 0
        # faults still pending in the loop after a return (tid -> id, log row, mm, page), the
        # pages of the faults started, by id; the handler processes made of loop faults
        self.pending: dict[int, tuple] = {}
        self._made: dict[int, tuple] = {}
        self._next_id = 0
        self._procs: set = set()

    @staticmethod
    def usable(sim) -> bool:
        """Whether the loop can serve faults exactly as this run's kernel would: observers that
        can learn of a fault when the loop returns, a copy window the loop holds."""
        hw = sim.hw
        return (sim.m.config.lfb + hw.p.copy_prefetch_lines <= MAX_WINDOW
                and all(ob.loop_faults_ok for ob in sim.kernel.observers))

    # -- before the loop ------------------------------------------------------------------
    def before(self) -> None:
        k, t = self.k, self.t
        if layout_generation() != self._layout:
            self._rebuild()
        elif k.new_regions:
            for mm, key in k.new_regions:
                self._register(mm, key)
        k.new_regions.clear()
        for n, a in enumerate(k.alloc.nodes):
            if a.gen != self._res_gen[n]:
                # the allocator changed: its next frames again, as many as the loop took last
                # time (at least RESERVE_MIN), so that a crossing after each migration stays
                # cheap and a run of first touches rarely runs out
                want = min(RESERVE_FRAMES, max(RESERVE_MIN, 2 * t.reserved_used(n)))
                fr = a.peek(want)
                t.reserve(n, fr, len(fr) == a.free_count)
                self._res_gen[n] = a.gen
        # the pages of the faults Python is handling: another thread's fault on one of them
        # goes to Python too (the kernel resolves the race)
        sim = self.sim
        vaddr = sim.dispatch.fault_vaddr
        os_keys = {tid: (k.threads[tid].mm.pid << PID_SHIFT) | (vaddr[tid] >> 12)
                   for tid, (proc, _, why) in sim.blocked.items()
                   if proc is not LOOP_PENDING and why != "syscall"}
        # the busy times of the CPUs occupied since the loop last had them (the loop's copy of
        # the others is the same: after() copies back what the loop changed)
        cpus = sim.engine.cpus
        busy = [(c, cpus.busy_until_ps[c], cpus.busy_ps[c]) for c in cpus.changed]
        cpus.changed.clear()
        # the LRU tails, if the lists changed since the loop last had them (the loop keeps its
        # copy current with its own first touches, which the kernel then makes: after())
        tails = None
        if k.lru_gen != self._lru_gen:
            tails = [k.lru_tail(n, LRU.INACTIVE_ANON) for n in range(self.nn)]
            self._lru_gen = k.lru_gen
        t.enter(sim.engine.now_ps, busy, tails, os_keys, self.hints)

    def _rebuild(self) -> None:
        self.t.clear_regions()
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
                and len(self._places) < self.t.placements:
            p = len(self._places)
            hw, k = self.hw, self.k
            for cn in range(self.nn):
                pl = policy_node(pol, cn, hw.distance, self.nn, is_vma, 0, None)
                self.t.set_placement(p, cn, pl.preferred,
                                     [n for n in k.alloc.zonelists[pl.preferred]
                                      if pl.nodemask is None or n in pl.nodemask])
        self._places[key] = p
        return p

    def _register(self, mm, key: int) -> None:
        """Describe region ``key`` (vaddr >> 21) of ``mm`` to the loop, or withdraw it."""
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
            row = self.t.add_region(mm.pid, key)
            if row < 0:
                return                       # full: the region's faults go to Python
            self._rows[(mm.pid, key)] = row
        self.t.set_region(row, (pte_t or 0) << 12, ((pmd_t or 0) << 12) + (key & 511) * 8,
                          lo_vpn, hi_vpn, place)

    # -- after the loop -------------------------------------------------------------------
    def after(self, stop, stop_ps: int | None) -> None:
        """Bring the kernel up to date with the faults the loop served (``stop``: why the
        loop returned, at the stop time ``stop_ps`` it was given)."""
        if not self.t.served_any() and not self.pending:
            self.t.leave_idle()             # the loop served no fault: nothing changed
            return
        log, now_pending, busy_until, busy = self.t.leave()
        n = len(log)
        sim, k, eng = self.sim, self.k, self.sim.engine
        rows = log.tolist()
        cpus = eng.cpus
        cpus.busy_until_ps[:] = busy_until
        cpus.busy_ps[:] = busy
        # Faults: those still pending from an earlier return (started then) and this run's
        # rows. A thread's pending fault is its last one.
        last = {r[KL_TID]: i for i, r in enumerate(rows)}
        faults = {}               # id -> row; earlier ones keep their ids (negative)
        ended = []
        still = []
        for tid, (fid, r, mm, page) in list(self.pending.items()):
            faults[fid] = r
            if tid in last or tid not in now_pending:
                ended.append(fid)
                del self.pending[tid]
                del sim.blocked[tid]
            else:
                still.append(fid)
        for i, r in enumerate(rows):
            faults[i] = r
            if r[KL_TID] in now_pending and last[r[KL_TID]] == i:
                still.append(i)
            else:
                ended.append(i)
        steps = [(r[KL_START], 1, i) for i, r in enumerate(rows)]
        steps += [(faults[i][KL_END], 0, i) for i in ended]
        steps.sort()
        # the adapter's metadata counters: at once, unless one is new (its row is then made in
        # the order the kernel's accesses would have made it)
        at_once = self.hw.count_metadata_batch(log[:, KL_WHERE:KL_WHERE + KL_TOUCHES],
                                         log[:, KL_PF:KL_PF + KL_TOUCHES]) if n else True
        vaddrs = sim.dispatch.fault_vaddr
        run_until = eng.run_until
        made = self._made
        for when, is_start, i in steps:
            run_until(when)
            r = faults[i]
            tid, va = r[KL_TID], r[KL_VADDR]
            hint = r[KL_KIND] == KIND_LOCAL_HINT
            if is_start:
                start_step = k.loop_hint_start if hint else k.loop_fault_start
                made[i] = start_step(tid, va, r[KL_PFN])
                if not at_once:
                    self._count_metadata(r)
                vaddrs[tid] = va
            else:
                mm, page = made.pop(i)
                k.loop_fault_end(mm, va, page, bool(r[KL_WRITE]), r[KL_START], True, hint)
        # Faults not ended: left to the loop if Python has nothing to do before they end but
        # let other loop faults end (and close a window no policy samples at), else made the
        # kernel's handler processes, asleep until their end, their threads blocked.
        keep = stop.reason == "event" and self._only_loop_events(stop_ps)
        for i in still:
            r = faults[i]
            tid = r[KL_TID]
            hint = r[KL_KIND] == KIND_LOCAL_HINT
            mm, page = made.pop(i)
            if i >= 0:
                i = self._next_id = self._next_id - 1       # an id for later returns
            if keep:
                made[i] = (mm, page)
                self.pending[tid] = (i, r, mm, page)
                sim.blocked[tid] = (LOOP_PENDING, r[KL_START], _FAULT_NAME[hint])
                continue
            self.pending.pop(tid, None)
            proc = k.loop_fault_process(tid, mm, r[KL_VADDR], page, bool(r[KL_WRITE]),
                                        r[KL_START], hint)
            self._procs.add(proc)
            proc.on_done.append(lambda p, t=tid: self._proc_done(p, t))
            sim.blocked[tid] = (proc, r[KL_START], _FAULT_NAME[hint])
            eng.queue.schedule(r[KL_END], proc._resume, None, priority=PRIO_STEP)
            self.m.park_thread(tid)
        if not keep:
            self.t.drop_pending()
        touches = sum(1 for r in rows if r[KL_KIND] == KIND_FIRST_TOUCH)
        if touches:
            self.hw.stats.inc(HW_COMPONENT, "fill_bytes", 4096 * touches, "bytes")
        # what CoSim._unblock counts, for the faults that ended in the loop (both kinds'
        # counters exist from the start; lock_wait_time is made by the first one)
        if ended:
            fstats = sim.fault_stats.inc
            for kind, name in enumerate(_FAULT_NAME):
                sel = [faults[i] for i in ended if faults[i][KL_KIND] == kind]
                if sel:
                    fstats("cosim.faults", f"{name}_faults", len(sel), "faults")
                    fstats("cosim.faults", f"{name}_time",
                           sum(r[KL_END] - r[KL_START] for r in sel), "ps")
            fstats("cosim.faults", "lock_wait_time", 0, "ps")
            for cpu in {faults[i][KL_CPU] for i in ended}:
                sim._busy_seen[cpu] = cpus.busy_ps[cpu]
        for a_i, a in enumerate(k.alloc.nodes):
            self._res_gen[a_i] = a.gen
        self.served += n

    def _proc_done(self, proc, tid: int) -> None:
        self._procs.discard(proc)
        self.sim._unblock(tid)

    def _only_loop_events(self, t: int | None) -> bool:
        """Whether all Python will do at stop time ``t`` is end loop faults made processes
        and close a timeline window no policy samples at: nothing that could touch a fault
        still pending in the loop."""
        if t is None:
            return False
        sim = self.sim
        if sim._next_win <= t and sim.policy.sample_every > 0:
            return False
        return all(getattr(ev.callback, "__self__", None) in self._procs
                   for ev in sim.engine.queue.due(t))

    def _count_metadata(self, r: list) -> None:
        for j in range(KL_TOUCHES):
            w = r[KL_WHERE + j]
            if w < 0:
                break
            self.hw.count_metadata(w, r[KL_PF + j])
