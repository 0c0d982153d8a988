"""Co-simulation: the OS model (hwemu.linux) running inside the machine timing model.

One :class:`~hwemu.machine.system.Machine` replays the trace; one
:class:`~hwemu.linux.kernel.Kernel` on :class:`~hwemu.sim.hardware.MachineHardware` (the
same Machine) owns the pages, page tables, schedule events and policies; the engine
(hwemu.engine) holds OS time. The loop:

1. ``machine.run(stop_ps=min(next engine event, next timeline window))`` replays accesses;
2. on ``event``: ``engine.run_until(t)`` runs the due OS work (schedule events, NUMA scans,
   policy ticks, migrations in progress), then the loop syncs thread moves and charges OS work
   done on a CPU to the thread that runs there;
3. on ``fault``: the kernel handles it (``Kernel.fault``: first touch by mempolicy, waits on
   migration entries, NUMA hinting faults through the migration policy) as a process on the
   faulting thread's CPU; the engine runs until it is resolved; the thread's clock then moves
   by the fault's latency, or - when it slept on a page lock - to the time the page was
   unlocked. The kernel writes every PTE change into the machine's page tables
   (:class:`~hwemu.sim.hardware.MachineSync`), so the retried access goes through.

Migrations run as engine processes on the CPU that performs them; their metadata accesses and
copies go through the machine (``access_line``, ``copy_lines``) and contend with the
application, whose threads keep running. Time is conservative-synchronous: OS work runs at
engine time, which the loop keeps at the earliest application thread's clock except while a
fault is being resolved (see docs/experiments.md, "Accuracy").
"""

from __future__ import annotations

import dataclasses
import gc
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwemu.errors import HwemuError, warn
from hwemu.linux.kernel import KernelObserver
from hwemu.sim.residency import Residency
from hwemu.machine.core import FAULT_KINDS
from hwemu.machine.driver import StopHandler
from hwemu.stats import Stats

DEFAULT_WINDOW_PS = 10_000_000        # 10 us timeline windows
DEFAULT_SLICE = 1 << 20               # records loaded into the machine at once

#: the collector's thresholds during a run (gc.set_threshold): see fewer_collections
RUN_GC_THRESHOLDS = (50_000, 20, 100)


def keep_fewer_collections() -> None:
    """The run's collector thresholds from now until the process ends, for a process that
    ends after its run (``hwemu run``): :func:`fewer_collections` then finds them set and
    restores them unchanged. Restoring the defaults after a large run makes the next
    collection examine every object the run made (1.8 s of host time at a 4 GiB footprint),
    which a process about to end has no use for."""
    gc.set_threshold(*RUN_GC_THRESHOLDS)


@contextmanager
def fewer_collections():
    """Python's cyclic garbage collector, run less often while a co-simulation runs. The OS
    model allocates many small objects that live long (pages, page-table entries, LRU and
    statistics entries), and with the default thresholds the collector examined them again
    every 700 allocations: 9% of the host time of a first-touch-heavy run (2M records over
    128 MiB). Collection itself is unchanged, only less frequent; results are the same."""
    old = gc.get_threshold()
    gc.set_threshold(*RUN_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)


@dataclass
class CoSimResult:
    stats: Stats
    summary: dict
    timeline: object          # DataFrame: time_ns, accesses, mean_latency_ns
    placement: object         # DataFrame: time_ns, node, pages, in_flight, frames (residency.py)
    migrations: object        # DataFrame: time_ns, pages, bytes, duration_ns, kind, ...
    steps: object             # DataFrame: step, time_ns, count
    numa_maps: list = field(default_factory=list)   # snapshots: {time_ns, when, pid, text, rows}
    log: list = field(default_factory=list)         # schedule event log
    machine: object = field(default=None, repr=False)
    kernel: object = field(default=None, repr=False)


class _HintDispatcher:
    """Installed as ``kernel.numa_balancing``: the kernel's fault handler calls
    ``hinting_fault`` on a PROT_NONE entry; it goes to the migration policy (or, if the policy
    has no hint-fault hook, to Linux NUMA balancing enabled by the schedule)."""

    def __init__(self, policy, ctx, fallback=None):
        from hwemu.policies.base import MigrationPolicy

        self.policy = policy
        self.ctx = ctx
        self.fallback = fallback
        self.own = type(policy).on_hint_fault is not MigrationPolicy.on_hint_fault
        self.tasks = fallback.tasks if fallback is not None else {}
        self.fault_vaddr: dict[int, int] = {}

    def start(self, pid):
        if self.fallback is not None:
            self.fallback.start(pid)

    def stop(self, pid):
        if self.fallback is not None:
            self.fallback.stop(pid)

    def local_hint(self, thread, page) -> None:
        """A local hinting fault the replay loop served (hwemu.sim.loopfaults)."""
        self.policy.on_local_hint(thread, page)

    def hinting_fault(self, thread, page, meter):
        from hwemu.policies.base import HintFault

        if not self.own:
            if self.fallback is not None:
                return (yield from self.fallback.hinting_fault(thread, page, meter))
            page.last_cpupid = (thread.cpu << 16) | (thread.tid & 0xFFFF)
            return False
        k = self.ctx.kernel
        f = HintFault(tid=thread.tid, pid=thread.mm.pid, cpu=thread.cpu,
                      cpu_node=k.hw.cpu_node(thread.cpu), vaddr=self.fault_vaddr.get(thread.tid, 0),
                      page=page, time_ps=meter.start_ps, meter=meter, thread=thread)
        res = yield from self.policy.on_hint_fault(f)
        return bool(res)


def default_schedule(hw, threads: int, cpus: list[int] | None, tids: list[int] | None = None):
    """One process (pid 1) with the trace's threads, thread i on cpus[i] (default CPU i)."""
    from hwemu.linux.schedule import ProcessSpec, Schedule, ThreadSpec

    tids = tids if tids is not None else list(range(threads))
    cpus = cpus if cpus is not None else list(range(len(tids)))
    if len(cpus) < len(tids):
        raise HwemuError(f"--cpus: the trace has {len(tids)} thread(s) but only {len(cpus)} CPU(s) were given")
    return Schedule("<default>", [ProcessSpec(1, "trace")],
                    [ThreadSpec(t, 1, cpus[i]) for i, t in enumerate(tids)], [])


def _trace_tids(reader) -> list[int]:
    """Thread ids present in the trace (from Parquet column statistics, else a scan)."""
    from hwemu.machine.replay import _max_tid

    return list(range(_max_tid(reader) + 1))


COPY_MODES = ("cpu", "dma")


def dma_copy_engine(hw, where: str):
    """The page-copy engine of a run whose copies are offloaded: the machine's [dma] engines
    (hwemu.sim.hardware.MachineHardware.dma_copy_ps). A machine without engines is an error."""
    from hwemu.linux.copy import make_copy_engine

    if where.startswith("copy=") and where[5:] not in COPY_MODES:
        raise HwemuError(f"{where}: unknown copy mode (use {' or '.join(COPY_MODES)})")
    if hw.dma_engines <= 0:
        raise HwemuError(f"{where}: machine {hw.cfg.name} has no DMA engine (set [dma] engines "
                         f"in its TOML file, docs/machine.md)")
    return make_copy_engine("dma", hw)


class _InKernel(KernelObserver):
    loop_faults_ok = True
    """A thread inside a system call is parked in the machine until the call returns
    (``Kernel.thread_syscall``)."""

    def __init__(self, sim: "CoSim"):
        self.sim = sim

    def thread_entered_kernel(self, tid: int) -> None:
        self.sim._enter_kernel(tid)

    def thread_left_kernel(self, tid: int, at_ps: int) -> None:
        self.sim._leave_kernel(tid, at_ps)


class _Reported:
    """The progress sink of a run whose ``progress`` is a callable: after each chunk,
    ``report(records done, records in the trace, simulated time in ps)``."""

    def __init__(self, report, total: int, m):
        self.report, self.total, self.m, self.done = report, int(total), m, 0

    def update(self, n: int) -> None:
        self.done += int(n)
        self.report(self.done, self.total, self.m.sim_time_ps())


class CoSim(StopHandler):
    def __init__(self, machine, trace, schedule=None, placement="first-touch",
                 migration="none", seed: int = 0, params: dict | None = None,
                 cpus: list[int] | None = None, window_ps: int | None = None,
                 slice_records: int = DEFAULT_SLICE, progress=False,
                 fault_cost: bool = False, fast_faults: bool | None = None,
                 copy: str = "cpu", loop_faults: bool | None = None,
                 time_compression: float | None = None):
        from hwemu.engine import Engine
        from hwemu.linux.kernel import Kernel
        from hwemu.sim.hardware import MachineHardware, MachineSync
        from hwemu.linux.schedule import Schedule, load_schedule
        from hwemu.machine.config import as_config
        from hwemu.machine.system import Machine
        from hwemu.policies.base import MigrationPolicy, PlacementPolicy, PolicyContext
        from hwemu.policies.registry import get_policy
        from hwemu.traces.format import MAX_VADDR, TraceReader

        cfg = as_config(machine)
        if not fault_cost:
            # The kernel model charges the fault handler itself; the machine's fixed
            # per-fault cost is for runs without an OS model.
            cfg = dataclasses.replace(cfg, os=dataclasses.replace(cfg.os, fault_cost_ps=0))
        self.cfg = cfg
        if fast_faults is None:
            fast_faults = os.environ.get("HWEMU_FAST_FAULTS", "1") != "0"
        # resolve a fault in place when nothing else could happen before it ends (_handle_fault)
        self.fast_faults = bool(fast_faults)
        self.fast_fault_count = 0
        self.trace = Path(trace)
        self.reader = TraceReader(trace, max_addr=MAX_VADDR)
        tids = _trace_tids(self.reader)
        nthreads = max(1, len(tids), self.reader.meta.threads)
        if nthreads > cfg.num_cpus:
            raise HwemuError(f"the trace has {nthreads} threads but {cfg.name} has {cfg.num_cpus} CPUs")
        self.m = Machine(cfg, threads=nthreads, seed=seed)
        self.hw = MachineHardware(self.m)
        self.engine = Engine(self.hw.num_cpus)
        self.kernel = Kernel(self.hw, self.engine)
        if copy != "cpu":
            # step 12 of every migration of the run on the machine's [dma] engines
            self.kernel.copy_engine = dma_copy_engine(self.hw, f"copy={copy}")
        self.sync = MachineSync(self.m, self.engine)
        self.kernel.observers.append(self.sync)
        self.kernel.observers.append(_InKernel(self))
        self.residency = Residency(self.hw.num_nodes)
        self.kernel.observers.append(self.residency)

        if schedule is None:
            sched = default_schedule(self.hw, nthreads, cpus, list(range(nthreads)))
        elif isinstance(schedule, Schedule):
            sched = schedule
        elif isinstance(schedule, dict):       # the tables of a schedule file, from Python
            from hwemu.linux.schedule import parse_schedule

            sched = parse_schedule(schedule, "<schedule dict>", self.hw)
        else:
            sched = load_schedule(schedule, self.hw)
        if time_compression is not None:
            from hwemu.linux.numa_balancing import compressed

            sched = dataclasses.replace(
                sched, numa_balancing=compressed(sched.numa_balancing, float(time_compression)))
        self.time_compression = time_compression
        self.schedule = sched
        for t in range(nthreads):
            if sched.thread_for(t) is None:
                raise HwemuError(f"{sched.path}: the trace has thread {t} but no [[thread]] "
                                 f"with tid = {t}")
        absent = [t.tid for t in sched.threads if t.tid >= nthreads]
        if absent and schedule is not None:
            warn(f"{sched.path}: [[thread]] tid = {absent[0]}"
                 f"{f' (and {len(absent) - 1} more)' if len(absent) > 1 else ''} is not in the "
                 f"trace {self.trace} (its threads are 0..{nthreads - 1}); it never runs")

        params = dict(params or {})
        self.window_ps = int(window_ps or DEFAULT_WINDOW_PS)
        self.slice = int(slice_records)
        self.progress = progress
        if isinstance(placement, str):
            placement = get_policy(placement)
        if isinstance(migration, str):
            migration = get_policy(migration)
        if not isinstance(placement, PlacementPolicy):
            raise HwemuError(f"policy {placement.name!r} is not a placement policy")
        if not isinstance(migration, MigrationPolicy):
            raise HwemuError(f"policy {migration.name!r} is not a migration policy")
        self.placement = placement
        self.policy = migration
        self.seed = seed

        # -- the OS: processes, threads, schedule events --------------------------------------
        from hwemu.linux.schedule import apply_schedule

        self.run_log = apply_schedule(self.kernel, sched)
        self._sys_pages: dict[str, list] = {}
        for ev in sched.events:
            if ev.action in ("move_pages", "migrate_pages", "mbind"):
                self.engine.call_at(ev.at_ps, self._mark_syscall, ev.where)
        self.tid_pid = {t.tid: t.pid for t in sched.threads}
        for t in range(nthreads):
            th = self.kernel.thread(t)
            self.m.set_thread_pid(t, th.mm.pid)
            self.m.move_thread(t, th.cpu)
        self.pids = [p.pid for p in sched.processes]

        self._prior_done = np.zeros(nthreads, np.int64)
        self._cur_sel: dict = {}
        self._cur_start: dict = {}
        self._loaded = False
        self.pstats = Stats()
        self.ctx = PolicyContext(
            kernel=self.kernel, machine=self.m, engine=self.engine, trace=self.trace,
            params=params, seed=seed, stats=self.pstats, pids=self.pids,
            tid_pid=dict(self.tid_pid), rng=np.random.default_rng(seed), schedule=sched,
            hw=self.hw, record_migration=self._record_migration,
            extra={"records_done": self.records_done})
        pol = placement.mempolicy(self.ctx)
        if pol is not None:
            pol.check_nodes(self.hw.num_nodes, f"policy {placement.name}")
            for ps in sched.processes:
                if ps.policy is None:
                    self.kernel.mm(ps.pid).policy = pol
        fallback = self.kernel.numa_balancing
        self.dispatch = _HintDispatcher(migration, self.ctx, fallback)
        self.kernel.set_numa_hint_handler(self.dispatch)
        migration.attach(self.ctx)
        # the common first touch served inside the replay loop (hwemu.sim.loopfaults)
        from hwemu.sim.loopfaults import LoopFaults, loop_faults_wanted

        self.loop_faults = (LoopFaults(self) if loop_faults_wanted(loop_faults)
                            and LoopFaults.usable(self) else None)
        if migration.tick_ps:
            self.engine.call_at(self.engine.now_ps + migration.tick_ps, self._tick)

        # -- records ---------------------------------------------------------------------------
        self.mig_rows: list[tuple] = []
        # one row per timeline window (and per node for placement), as flat int64 columns: a
        # run of seconds has hundreds of thousands of 10 us windows, and a tuple of Python ints
        # per row took gigabytes (window end ps, accesses, latency sum ps; window end ps, node,
        # resident pages, pages in flight, frames)
        self.win_rows = _Rows(3)
        self.place_rows = _Rows(5)
        self.numa_maps: list[dict] = []
        self._log_seen = 0
        self._busy_seen = list(self.engine.cpus.busy_ps)
        self._win_acc = 0
        self._win_lat = 0
        # faults handled and the time they held their threads (component "cosim.faults")
        self.fault_stats = Stats()
        for kind in FAULT_KINDS:
            self.fault_stats.add("cosim.faults", f"{kind}_faults", 0, "faults")
            self.fault_stats.add("cosim.faults", f"{kind}_time", 0, "ps")
        self._moves = 0
        self._moves_seen = -1          # kernel.thread_moves at the last _sync
        self._cpus: list[int] = []     # the machine's thread CPUs at the last _sync
        self.blocked: dict[int, tuple] = {}
        self._syscall_after_fault: dict[int, int | None] = {}
        self._loaded = False
        self._next_win = self.window_ps
        self._cur_sel: dict = {}
        self._cur_start: dict = {}
        self._samp_pos: dict = {}
        self._samp_clock: dict = {}
        self._samp_count: dict = {}
        self._trace_done = False
        self._after_end = False        # running schedule events after the trace (_run_late_events)

    # -- hooks -------------------------------------------------------------------------------
    def _record_migration(self, kind, t0_ps, pages, nbytes, duration_ps):
        self.mig_rows.append((int(t0_ps), int(pages), int(nbytes), int(duration_ps), str(kind)))

    def _tick(self):
        if self._trace_done:
            return      # the workload has ended: no new periodic policy work
        p = self.policy
        p.on_tick(self.engine.now_ps)
        if p.tick_ps:
            self.engine.call_at(self.engine.now_ps + p.tick_ps, self._tick)

    # -- synchronisation ---------------------------------------------------------------------
    def _advance_os(self, t_ps: int) -> None:
        """Run the OS up to ``t_ps`` (engine events due by then), then sync the machine."""
        self.engine.run_until(max(int(t_ps), self.engine.now_ps))
        self._sync()

    def _sync(self) -> None:
        m, k = self.m, self.kernel
        busy = self.engine.cpus.busy_ps
        after_end = self._after_end
        if k.thread_moves != self._moves_seen:
            # a thread was added or moved since the last sync (only _sync moves the machine's)
            self._moves_seen = k.thread_moves
            cur = m.thread_cpus()
            kth = k.threads
            for t in range(m.threads):
                kcpu = kth[t].cpu
                old = cur[t]
                if kcpu != old:
                    m.move_thread(t, kcpu)
                    self._moves += 1
                    # the thread cannot run on its new CPU before the move happened
                    if not after_end:
                        m.set_thread_clock(t, self.engine.now_ps)
                    self.policy.on_thread_moved(t, old, kcpu, self.engine.now_ps)
                    cur = m.thread_cpus()
            self._cpus = cur
        cur = self._cpus
        if after_end:
            # the trace has ended: OS work delays no thread (_run_late_events)
            self._snapshot_syscalls()
            return
        # OS work done on a CPU (syscalls, policy work, migrations) delays the application
        # thread that runs there by the CPU time it took. A thread blocked in a fault is
        # charged by the fault itself when it resumes.
        seen, blocked = self._busy_seen, self.blocked
        for t, cpu in enumerate(cur):
            d = busy[cpu] - seen[cpu]
            if d > 0 and t not in blocked:
                m.advance_thread(t, d)
                seen[cpu] = busy[cpu]
        self._snapshot_syscalls()

    def _migrated_pages(self) -> int:
        return int(self.kernel.counter("linux.migrate", "pages_migrated"))

    def _mark_syscall(self, where: str) -> None:
        self._sys_pages[where] = [self._migrated_pages(), None]

    def _snapshot_syscalls(self) -> None:
        log = self.run_log.log
        while self._log_seen < len(log):
            ev = log[self._log_seen]
            self._log_seen += 1
            if ev["where"] in self._sys_pages:
                self._sys_pages[ev["where"]][1] = self._migrated_pages()
            if ev["action"] in ("move_pages", "migrate_pages", "mbind", "set_mempolicy"):
                pid = self._event_pid(ev)
                if pid is not None:
                    self._numa_maps_snapshot(f"after {ev['where']} {ev['action']}", pid)

    def _event_pid(self, ev):
        for e in self.schedule.events:
            if e.where == ev["where"]:
                return e.args.get("pid")
        return None

    def _numa_maps_snapshot(self, when: str, pid: int) -> None:
        from hwemu.linux.syscalls import numa_maps

        text, rows = numa_maps(self.kernel, pid)
        self.numa_maps.append({"time_ns": self.engine.now_ps / 1000, "when": when, "pid": pid,
                               "text": text, "vmas": rows})

    def _window(self, t_ps: int) -> None:
        self._sample_flush()
        S = self.m.S
        acc = int(S.th_acc.sum())
        lat = int(S.th_lat_sum.sum())
        da, dl = acc - self._win_acc, lat - self._win_lat
        self.win_rows.append((t_ps, da, dl))
        self._win_acc, self._win_lat = acc, lat
        res = self.residency
        for node, frames in enumerate(self.kernel.node_usage()):
            self.place_rows.append((t_ps, node, res.resident[node], res.in_flight[node], frames))

    def _handle_fault(self, s) -> None:
        """Start the kernel's fault handler for thread ``s.thread`` as a process on its CPU
        and block the thread until it finishes; the machine keeps replaying the others.

        Blocking parks the thread's clock far in the future (the replay loop always runs the
        thread with the smallest clock, and returns ``event`` once every thread is at or past
        the stop time), so a blocked thread never runs and never ends the chunk."""
        m, k, eng = self.m, self.kernel, self.engine
        tid = s.thread
        c = m.thread_clock(tid)
        if c > eng.now_ps:
            self._advance_to(c)
            c = m.thread_clock(tid)
        c = m.park_thread(tid)
        self.dispatch.fault_vaddr[tid] = s.vaddr
        write = s.kind in (2, 3)
        if not (self.fast_faults and self._quiet(tid, eng.now_ps, first=True)):
            proc = k.fault(tid, s.vaddr, write)
            self.blocked[tid] = (proc, c, s.fault)
            proc.on_done.append(lambda p, t=tid: self._unblock(t))
            return
        # The fast path. The general one spawns the handler at engine time ``now``, the replay
        # loop returns at once (every other runnable thread is at or past ``now``) and the
        # engine runs the handler's first step; the machine returns again at once (every other
        # thread is at or past the step's end), and the engine runs the next step ... When no
        # other engine event, timeline window or thread could come in between, those returns
        # do nothing, so the steps run here, in the same order and at the same engine times
        # (Process._resume / EventQueue.step, as the engine would). At the first step after
        # which something else could happen, the handler is simply left to the engine, exactly
        # where the general path would be then.
        proc = k.fault_process(tid, s.vaddr, write)
        self.blocked[tid] = (proc, c, s.fault)
        proc.on_done.append(lambda p, t=tid: self._unblock(t))
        proc._resume(None)
        q = eng.queue
        heap = q._heap
        while not proc.done:
            q._drop_cancelled()
            if not heap:
                return          # it sleeps on a wait queue: the engine wakes it
            end, _, _, ev = heap[0]              # (time_ps, priority, seq, event)
            if (ev.callback != proc._resume or ev.args != (None,)
                    or (len(heap) > 1 and heap[1][0] <= end)
                    or (len(heap) > 2 and heap[2][0] <= end)
                    or not self._quiet(tid, end, first=False)):
                return
            q.step()
        self.fast_fault_count += 1

    def _quiet(self, tid: int, t_ps: int, first: bool) -> bool:
        """Whether nothing but thread ``tid``'s fault handler can happen until ``t_ps``: no
        engine event due by then (``first``: at the current engine time, before the handler
        starts), no timeline window closing by then, no other runnable thread of the machine
        before it, and no other thread on the same CPU (OS time on a CPU is charged to the
        threads running there at every sync)."""
        if first:
            nxt = self.engine.queue.peek_time()
            if nxt is not None and nxt <= t_ps:
                return False
        if self._next_win <= t_ps:
            return False
        S = self.m.S
        clock, pos, end, more, cpus = S.th_clock, S.th_pos, S.th_end, S.th_more, S.th_cpu
        cpu = cpus[tid]
        for t in range(self.m.threads):
            if t == tid:
                continue
            if (pos[t] < end[t] or more[t]) and clock[t] < t_ps:
                return False
            if cpus[t] == cpu and t not in self.blocked:
                return False
        return True

    def _unblock(self, tid: int) -> None:
        proc, c, fault = self.blocked.pop(tid)
        m = self.m
        res = proc.value
        lat = proc.end_ps - proc.start_ps
        # A wait on a page lock ends at an absolute time (the unlock); the rest of a fault's
        # latency counts from when the thread faulted.
        new = max(c, proc.end_ps if res.waited_ps else c + lat)
        m.wake_thread(tid, new, c)
        delay = new - c
        if fault == "migration_entry":
            # An access that found its page under migration waited for it: that wait is part
            # of the access's latency. The machine times the retried access from when it
            # translates and adds th_wait to it, so the wait is in the mean and in the
            # latency histogram (percentiles). The handler time of other faults is OS time:
            # it moves the thread's clock and is reported per fault kind, not as latency.
            m.charge_wait(tid, delay)
        self.fault_stats.inc("cosim.faults", f"{fault}_faults", 1, "faults")
        self.fault_stats.inc("cosim.faults", f"{fault}_time", delay, "ps")
        self.fault_stats.inc("cosim.faults", "lock_wait_time", res.waited_ps, "ps")
        cpu = m.thread_cpu(tid)
        self._busy_seen[cpu] = self.engine.cpus.busy_ps[cpu]
        if tid in self._syscall_after_fault:
            # a system call was issued while the fault ran: the thread now enters it
            done_at = self._syscall_after_fault.pop(tid)
            c = m.park_thread(tid)
            if done_at is not None:
                self._resume_from_syscall(tid, c, done_at)
            else:
                self.blocked[tid] = (None, c, "syscall")

    # -- system calls: the caller is inside the kernel until the call returns -------------------
    def _enter_kernel(self, tid: int) -> None:
        if not 0 <= tid < self.m.threads:
            return
        if tid in self.blocked:
            # inside a fault handler: the call is made when the fault returns (_unblock)
            self._syscall_after_fault[tid] = None
            return
        c = self.m.park_thread(tid)
        self.blocked[tid] = (None, c, "syscall")

    def _leave_kernel(self, tid: int, at_ps: int) -> None:
        if not 0 <= tid < self.m.threads:
            return
        if tid in self._syscall_after_fault:
            self._syscall_after_fault[tid] = at_ps      # the fault handler is still running
            return
        proc, c, why = self.blocked.pop(tid)
        assert why == "syscall", why
        self._resume_from_syscall(tid, c, at_ps)

    def _resume_from_syscall(self, tid: int, c: int, at_ps: int) -> None:
        new = c if self._after_end else max(c, int(at_ps))
        self.m.wake_thread(tid, new, c)
        self.fault_stats.inc("cosim.syscalls", "calls_blocking_caller", 1, "calls")
        self.fault_stats.inc("cosim.syscalls", "caller_blocked_time", new - c, "ps")
        cpu = self.m.thread_cpu(tid)
        self._busy_seen[cpu] = self.engine.cpus.busy_ps[cpu]

    def _advance_to(self, t_ps: int) -> None:
        """Advance OS time to ``t_ps``, closing the timeline windows passed on the way."""
        while self._next_win <= t_ps:
            self._advance_os(self._next_win)
            self._window(self._next_win)
            self._next_win += self.window_ps
        self._advance_os(t_ps)

    def records_done(self) -> np.ndarray:
        """Trace records replayed so far by each thread (index = trace tid)."""
        done = self._prior_done.copy()
        if self._cur_sel:
            S = self.m.S
            for t in self._cur_sel:
                done[t] += int(S.th_pos[t]) - self._cur_start[t]
        return done

    def _load(self, chunk, more=None) -> None:
        self._sample_flush()
        S0 = self.m.S
        for t in self._cur_sel:
            # records of the previous slice replayed (all of them unless it stopped starved:
            # the rest comes again at the head of this one)
            self._prior_done[t] += int(S0.th_pos[t]) - self._cur_start[t]
        self._samp_pos, self._samp_clock = {}, {}
        self.m.load_chunk(chunk, more)
        self._loaded = True
        tids = chunk.tid
        self._cur_sel = {}
        self._cur_start = {}
        S = self.m.S
        for t in np.unique(tids).tolist():
            self._cur_sel[t] = np.nonzero(tids == t)[0]
            self._cur_start[t] = int(S.th_pos[t])
        self._cur_chunk = chunk

    # -- the StopHandler of the replay driver (hwemu.machine.replay) --------------------------
    def stop_time(self) -> int:
        """Replay up to the next OS event or the end of the timeline window."""
        ev = self.engine.queue.peek_time()
        return self._next_win if ev is None else min(ev, self._next_win)

    def load(self, m, chunk, more=None) -> None:
        self._load(chunk, more)

    def fault(self, m, stop) -> None:
        self._handle_fault(stop)

    def event(self, m, stop, time_ps: int) -> bool:
        # every runnable thread reached ``time_ps`` (blocked threads are parked)
        self._advance_to(time_ps)
        return True

    def entering(self, m, stop_ps) -> None:
        if self.loop_faults is not None:
            self.loop_faults.before()

    def returned(self, m, stop, stop_ps) -> None:
        if self.loop_faults is not None:
            self.loop_faults.after(stop, stop_ps)

    def idle_skips_hooks(self) -> bool:
        # around an entry that does nothing, LoopFaults.before only hands the loop what the
        # next entry hands it anyway, and after does nothing unless faults are still pending
        # in the loop (it may then make them the kernel's processes)
        return self.loop_faults is None or not self.loop_faults.pending

    def chunk_end(self, m, starved: bool) -> None:
        # a starved slice is loaded again with the next records (Feeder)
        assert starved or not self.blocked, "chunk ended with a thread blocked in a fault"
        self._loaded = False

    def _sample_flush(self) -> None:
        """Deliver the records replayed since the last flush, one in ``sample_every`` per
        thread, to the policy (called at every timeline window and chunk boundary)."""
        from hwemu.policies.base import AccessSamples

        n = self.policy.sample_every
        if n <= 0 or not self._loaded and not self._cur_sel:
            return
        S, m = self.m.S, self.m
        cpu_nodes = set(self.cfg.cpu_nodes())
        parts = []
        for t, sel in self._cur_sel.items():
            a = self._samp_pos.get(t, self._cur_start[t])
            b = int(S.th_pos[t])
            c1 = int(S.th_clock[t]) if t not in self.blocked else self.blocked[t][1]
            c0 = self._samp_clock.get(t, c1)
            self._samp_pos[t] = b
            self._samp_clock[t] = c1
            if b <= a:
                continue
            seen = self._samp_count.get(t, 0)
            k = np.arange(b - a, dtype=np.int64)
            pick = k[(seen + k) % n == n - 1]
            self._samp_count[t] = seen + (b - a)
            if not len(pick):
                continue
            idx = sel[a - self._cur_start[t] + pick]
            frac = (pick + 1) / (b - a)
            times = (c0 + (c1 - c0) * frac).astype(np.int64)
            parts.append((t, idx, times))
        if not parts:
            return
        ch = self._cur_chunk
        k = self.kernel
        tid = np.concatenate([np.full(len(i), t, np.int32) for t, i, _ in parts])
        idx = np.concatenate([i for _, i, _ in parts])
        time_ps = np.concatenate([x for _, _, x in parts])
        order = np.argsort(time_ps, kind="stable")
        tid, idx, time_ps = tid[order], idx[order], time_ps[order]
        vaddr = ch.addr[idx].astype(np.uint64)
        is_write = np.isin(ch.kind[idx], (2, 3))
        pid = np.array([self.tid_pid.get(int(t), 0) for t in tid], np.int32)
        node = np.full(len(idx), -1, np.int16)
        served = np.full(len(idx), -1, np.int8)
        for i in range(len(idx)):
            page = k.follow_page(int(pid[i]), int(vaddr[i]))
            if page is None:
                continue
            node[i] = page.node
            my = self.hw.cpu_node(m.thread_cpu(int(tid[i])))
            served[i] = 0 if page.node == my else (1 if page.node in cpu_nodes else 2)
        self.policy.on_samples(AccessSamples(time_ps, tid, pid, vaddr, is_write, node, served))

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> CoSimResult:
        with fewer_collections():
            return self._run()

    def _run(self) -> CoSimResult:
        from tqdm import tqdm

        from hwemu.machine.replay import feeder_for

        m = self.m
        self._advance_os(0)
        report = self.progress if callable(self.progress) else None
        with tqdm(total=self.reader.num_records, disable=report is not None or not self.progress,
                  unit="rec", unit_scale=True, desc="cosim", leave=False) as bar:
            self.feed = feeder_for(self.reader, m.threads, self.slice, self._slices())
            self.feed.drive(m, self, bar if report is None
                            else _Reported(report, self.reader.num_records, m))
        end = m.sim_time_ps()
        self._trace_done = True
        late = [e for e in self.schedule.events if e.at_ps > end]
        if late:
            warn(f"{self.schedule.path}: {late[0].where} at {late[0].at_ps / 1e6:g}us"
                 f"{f' (and {len(late) - 1} more event(s))' if len(late) > 1 else ''} comes after "
                 f"the trace ends at {end / 1e6:g}us: it runs on the idle processes, after the "
                 f"replay (docs/schedule.md)")
        # OS work still in flight (a migration started near the end) finishes
        self._advance_to(max(end, self.engine.now_ps))
        self._drain()
        if late:
            self._run_late_events(max(e.at_ps for e in late))
        end = max(m.sim_time_ps(), self.engine.now_ps)
        self._window(end)
        self.policy.finish(self.engine.now_ps)
        for pid in self.pids:
            self._numa_maps_snapshot("end", pid)
        return self._result()

    def _run_late_events(self, last_ps: int) -> None:
        """Schedule events after the trace's end: the processes are still there, their threads
        idle (no records left), so the events happen to them as they would to sleeping tasks
        in Linux - thread moves, system calls (with their migrations), pins, writeback - until
        the last one and the OS work it started have finished. Idle tasks take no NUMA
        balancing scans (task_numa_work runs from the task's own scheduler tick), so the scanner
        stops; the threads' clocks, hence the workload's runtime, stay where the trace ended;
        no timeline window is closed on the way (the final one covers the whole tail)."""
        self._after_end = True
        for pid in self.pids:
            self.dispatch.stop(pid)
        self._advance_os(max(int(last_ps), self.engine.now_ps))
        self._drain()

    def _slices(self):
        for big in self.reader.iter_chunks_ahead(1 << 20):
            for lo in range(0, len(big), self.slice):
                yield big.slice(lo, lo + self.slice)

    def _drain(self) -> None:
        """Run engine events until no process started by a migration/syscall is in flight
        (periodic scans re-arm forever, so stop at the first quiet point)."""
        eng = self.engine
        limit = eng.now_ps + 1_000_000_000_000      # at most 1 s more
        while True:
            t = eng.queue.peek_time()
            if t is None or t > limit:
                break
            busy = (any(b > eng.now_ps for b in eng.cpus.busy_until_ps)
                    or self.hw.dma_busy_until() > eng.now_ps)    # a copy on a DMA engine
            if not busy:
                break
            eng.run_until(t)
        self._sync()

    # -- results ----------------------------------------------------------------------------------
    def _result(self) -> CoSimResult:
        import pandas as pd

        from hwemu.linux.migrate import STEP_ORDER
        from hwemu.machine.replay import machine_stats, summarize

        m, k = self.m, self.kernel
        st = machine_stats(m)
        kst = k.collect_stats()
        df_k = kst.to_frame()
        for row in df_k.itertuples(index=False):
            st.add(row.component, row.stat, row.value, row.unit)
        st.merge(self.hw.stats)
        st.merge(self.fault_stats)
        if st.get("cosim.faults", "lock_wait_time") is None:
            st.add("cosim.faults", "lock_wait_time", 0, "ps")
        st.add("cosim", "thread_moves", self._moves, "moves")
        feed = getattr(self, "feed", None)
        if feed is not None:
            feed.add_stats(st)
        st.add("cosim", "os_cpu_time", sum(self.engine.cpus.busy_ps), "ps")
        for row in self.pstats.to_frame().itertuples(index=False):
            st.add(row.component, row.stat, row.value, row.unit)
        for name, v in self.policy.describe_params().items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                st.add(f"policy.{self.policy.name}.params", name, v, "param")

        w = self.win_rows.array()
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(w[:, 1] > 0, w[:, 2] / w[:, 1] / 1000, np.nan)
        timeline = pd.DataFrame({"time_ns": w[:, 0] / 1000, "accesses": w[:, 1],
                                 "mean_latency_ns": mean} if len(w) else [],
                                columns=["time_ns", "accesses", "mean_latency_ns"])
        pl = self.place_rows.array()
        placement = pd.DataFrame({"time_ns": pl[:, 0] / 1000, "node": pl[:, 1], "pages": pl[:, 2],
                                  "in_flight": pl[:, 3], "frames": pl[:, 4]} if len(pl) else [],
                                 columns=["time_ns", "node", "pages", "in_flight", "frames"])
        mig = pd.DataFrame(self.mig_rows, columns=["t_ps", "pages", "bytes", "duration_ps", "kind"])
        # also the schedule's syscalls
        sys_rows = []
        for ev in self.run_log.log:
            if ev["action"] in ("move_pages", "migrate_pages", "mbind") and "elapsed_ps" in ev:
                a, b = self._sys_pages.get(ev["where"], [0, None])
                pages = (b if b is not None else self._migrated_pages()) - a
                sys_rows.append((ev.get("start_ps", ev["at_ps"]), ev["elapsed_ps"], ev["action"], pages))
        migrations = _migration_frame(mig, sys_rows, k, self.win_rows, self.window_ps)

        costs = k.step_costs
        order = [s for s in STEP_ORDER if s in costs] + sorted(s for s in costs if s not in STEP_ORDER)
        steps = pd.DataFrame([(s, costs[s].time_ps / 1000, costs[s].calls) for s in order],
                             columns=["step", "time_ns", "count"])
        summary = summarize(st, m)
        summary.update(cosim_summary(st, m, self))
        return CoSimResult(st, summary, timeline, placement, migrations, steps, self.numa_maps,
                           list(self.run_log.log), m, k)


class _Rows:
    """Rows of ``width`` int64 values appended one by one, kept flat (``array('q')``)."""

    __slots__ = ("width", "_a")

    def __init__(self, width: int):
        from array import array

        self.width = width
        self._a = array("q")

    def append(self, row) -> None:
        self._a.extend(row)

    def __len__(self) -> int:
        return len(self._a) // self.width

    def array(self) -> np.ndarray:
        """A copy as an (n, width) int64 array."""
        return np.array(self._a, dtype=np.int64).reshape(-1, self.width)


def _migration_frame(mig, sys_rows, kernel, win_rows, window_ps):
    """One row per migration (policy batches, hinting-fault migrations, schedule syscalls),
    with the mean access latency in the windows before it started and after it ended."""
    import pandas as pd

    rows = [(r.t_ps, r.pages, r.bytes, r.duration_ps, r.kind) for r in mig.itertuples(index=False)]
    kinds = {r[4] for r in rows}
    for at, elapsed, action, pages in sys_rows:
        if action in kinds:        # already recorded by the policy (manual)
            continue
        # pages: base pages migrated while the call ran (by it, or concurrently by others)
        rows.append((at, pages, pages * 4096, elapsed, action))
    rows.sort(key=lambda r: (r[0], r[4]))
    w = win_rows.array()
    t_end, acc, lat = w[:, 0], w[:, 1], w[:, 2]
    span = 5
    out = []
    for t, pages, nbytes, dur, kind in rows:
        i0 = int(np.searchsorted(t_end, t, side="right"))        # first window ending after t
        lo = max(0, i0 - span)
        a_b, l_b = acc[lo:i0].sum(), lat[lo:i0].sum()
        i1 = int(np.searchsorted(t_end, t + dur, side="left")) + 1
        a_a, l_a = acc[i1:i1 + span].sum(), lat[i1:i1 + span].sum()
        out.append((t / 1000, pages, nbytes, dur / 1000, kind,
                    l_b / a_b / 1000 if a_b else float("nan"),
                    l_a / a_a / 1000 if a_a else float("nan")))
    df = pd.DataFrame(out, columns=["time_ns", "pages", "bytes", "duration_ns", "kind",
                                    "latency_before_ns", "latency_after_ns"])
    return df


#: /proc/vmstat names (mm/vmstat.c) of the OS model's counters: (component, stat) of Stats.
VMSTAT = {
    "pgmigrate_success": ("linux.migrate", "pages_migrated"),
    "pgmigrate_fail": ("linux.migrate", "pages_failed"),
    "thp_migration_success": ("linux.migrate", "thp_migrated"),
    "thp_migration_split": ("linux.migrate", "thp_split"),
    "numa_pte_updates": ("linux.numa", "protnone_entries"),
    "numa_hint_faults": ("linux.fault", "numa_hint_faults"),
    "numa_hint_faults_local": ("linux.fault", "numa_hint_faults_local"),
    "numa_pages_migrated": ("linux.numa", "pages_migrated"),
    "pgpromote_success": ("linux.numa", "pgpromote_success"),
    "pgdemote_kswapd": ("linux.numa", "pgdemote_kswapd"),
    "nr_tlb_remote_flush": ("linux.tlb", "flushes"),
}


def vmstat(st: Stats) -> dict:
    """The OS model's counters under their /proc/vmstat names (0 when never counted)."""
    return {name: int(st.get(comp, stat, 0)) for name, (comp, stat) in VMSTAT.items()}


def cosim_summary(st: Stats, m, sim) -> dict:
    """The numbers the co-simulation adds to ``hwemu run``'s summary, from the Stats."""
    df = st.to_frame()

    def get(comp, stat, default=0):
        return st.get(comp, stat, default)

    served = {}
    for name in ("local_dram", "remote_dram", "remote_cache", "cxl"):
        served[name] = int(df[df.stat == f"served_{name}"]["value"].sum())
    mem = sum(served.values())
    k = sim.kernel
    failed = {reason: int(n) for reason, n in k.failed_by_reason.items()}
    steps = {s: round(c.time_ps / 1000, 3) for s, c in k.step_costs.items()}
    link_bytes = int(df[df.component.str.startswith("link.")]["value"].sum())
    mig_time = sum(v for v in steps.values())
    extra = {}
    if sim.time_compression is not None:
        nb = sim.schedule.numa_balancing
        extra["time_compression"] = float(sim.time_compression)
        extra["numa_balancing"] = {"scan_delay_ns": nb.scan_delay_ps / 1000,
                                   "scan_period_min_ns": nb.scan_period_min_ps / 1000,
                                   "scan_period_max_ns": nb.scan_period_max_ps / 1000,
                                   "scan_size_bytes": nb.scan_size_bytes}
    return {**extra,
        "local_share": round(served["local_dram"] / mem, 6) if mem else 0.0,
        "remote_share": round((served["remote_dram"] + served["remote_cache"]) / mem, 6) if mem else 0.0,
        "cxl_share": round(served["cxl"] / mem, 6) if mem else 0.0,
        "pages_attempted": int(get("linux.migrate", "pages_attempted")),
        "pages_migrated": int(get("linux.migrate", "pages_migrated")),
        "pages_failed": int(get("linux.migrate", "pages_failed")),
        "pages_failed_by_reason": failed,
        "migration_passes": int(get("linux.migrate", "passes")),
        "migration_move_passes": int(get("linux.migrate", "move_passes")),
        "migration_time_ns": round(mig_time, 3),
        "step_time_ns": steps,
        "tlb_shootdowns": int(get("linux.tlb", "flushes") + get("linux.tlb", "batched_flushes")),
        "ipis_sent": int(get("linux.tlb", "ipis_sent")),
        "bytes_copied": int(get("os.hw", "copy_bytes") + get("os.hw", "dma_bytes")),
        "interconnect_bytes": link_bytes,
        "os_cpu_time_ns": round(get("cosim", "os_cpu_time") / 1000, 3),
        "thread_moves": int(get("cosim", "thread_moves")),
        "faults_handled": {k: int(get("cosim.faults", f"{k}_faults"))
                           for k in ("not_present", "migration_entry", "numa_hint")},
        "fault_lock_wait_ns": round(get("cosim.faults", "lock_wait_time") / 1000, 3),
        "vmstat": vmstat(st),
        "numastat": numastat(st, sim.cfg.num_nodes),
        "numastat_p": numastat_p(sim.kernel, {s["pid"]: s["vmas"] for s in sim.numa_maps
                                              if s["when"] == "end"}),
    }


NUMASTAT = ("numa_hit", "numa_miss", "numa_foreign", "local_node", "other_node")


def numastat(st: Stats, num_nodes: int) -> dict:
    """numastat(8)'s per-node allocation counters, in pages: ``{"node0": {"numa_hit": ...}}``."""
    return {f"node{n}": {k: int(st.get(f"node{n}.numastat", k, 0)) for k in NUMASTAT}
            for n in range(num_nodes)}


def numastat_p(kernel, at_end: dict | None = None) -> dict:
    """numastat -p: each process's resident memory per node at the end, in MiB (the pages its
    numa_maps counts, a THP as 512). ``at_end``: pid -> the numa_maps rows already taken at
    the end (not made again)."""
    from hwemu.linux.syscalls import numa_maps

    out = {}
    at_end = at_end or {}
    for pid in sorted(kernel.mms):
        per: dict[int, int] = {}
        rows = at_end.get(pid)
        for row in (rows if rows is not None else numa_maps(kernel, pid)[1]):
            for node, pages in row["nodes"].items():
                per[node] = per.get(node, 0) + pages
        out[str(pid)] = {f"node{n}": round(v * 4096 / (1 << 20), 2) for n, v in sorted(per.items())}
    return out
