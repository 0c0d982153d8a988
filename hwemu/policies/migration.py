"""The migration policies Linux users have without new kernel code: ``none``, ``manual``
(an operator runs migratepages(8) after the scheduler moved the threads) and ``autonuma``
(automatic NUMA balancing, hwemu.linux.numa_balancing)."""

from __future__ import annotations

from hwemu.linux.numa_balancing import NumaBalancing, NumaBalancingParams
from hwemu.policies.base import MigrationPolicy, Param


class NoMigration(MigrationPolicy):
    """No migration: pages stay where first touch put them (NUMA balancing off)."""

    name = "none"


class ManualMigration(MigrationPolicy):
    """migratepages(8) after a thread move: migrate_pages(2) from the nodes a process no longer runs on to the node it now runs on."""

    name = "manual"

    PARAMS = (
        Param("delay", "time", "100us", "time between the thread move and the migrate_pages "
              "call (an operator or job manager reacting; 100 us is ~0.5 s at the 5000x time "
              "scale of the demo, docs/policies.md)"),
        Param("move_all", "bool", False, "MPOL_MF_MOVE_ALL (also pages shared with other "
              "processes; needs CAP_SYS_NICE)"),
    )

    def attach(self, ctx):
        super().attach(ctx)
        self.pending: dict[int, object] = {}
        self.calls = 0

    def on_thread_moved(self, tid, old_cpu, new_cpu, now_ps):
        pid = self.ctx.tid_pid.get(tid)
        if pid is None or pid in self.pending:
            return
        self.pending[pid] = self.ctx.call_at(now_ps + self.p["delay"], self._migrate, pid)

    def _migrate(self, pid: int) -> None:
        from hwemu.linux import syscalls

        ctx = self.ctx
        self.pending.pop(pid, None)
        mm = ctx.kernel.mm(pid)
        cpus = [t.cpu for t in mm.threads.values()]
        if not cpus:
            return
        nodes = [ctx.cpu_node(c) for c in cpus]
        # The node most threads run on (ties: the lowest); memory on nodes with no thread of
        # the process moves there. CPU-less nodes are left alone.
        target = max(sorted(set(nodes)), key=nodes.count)
        frm = [n for n in ctx.cpu_nodes() if n not in nodes]
        if not frm:
            return
        cpu = ctx.idle_cpu(target)     # migratepages runs as its own process
        t0 = ctx.now_ps()
        gen = syscalls.migrate_pages(ctx.kernel, cpu, pid, frm, [target] * len(frm),
                                     self.p["move_all"])
        before = ctx.kernel.counter("linux.migrate", "pages_migrated")
        proc = ctx.engine.spawn(gen, cpu, name=f"manual:migrate_pages:{pid}")
        self.calls += 1

        def done(p):
            moved = ctx.kernel.counter("linux.migrate", "pages_migrated") - before
            if ctx.record_migration is not None:
                ctx.record_migration("migrate_pages", t0, moved, moved * 4096, p.end_ps - t0)
        proc.on_done.append(done)

    def finish(self, now_ps):
        self.ctx.stats.add("policy.manual", "migrate_pages_calls", self.calls, "calls")


class ManualDmaMigration(ManualMigration):
    """manual, with every page copy offloaded to the machine's [dma] engines (the run parameter copy=dma)."""

    name = "manual-dma"

    def attach(self, ctx):
        from hwemu.errors import HwemuError
        from hwemu.linux.copy import make_copy_engine

        super().attach(ctx)
        hw = ctx.kernel.hw
        if getattr(hw, "dma_engines", 0) <= 0:
            raise HwemuError(f"policy {self.name}: the machine has no DMA engine (set [dma] "
                             "engines in its TOML file, docs/machine.md)")
        ctx.kernel.copy_engine = make_copy_engine("dma", hw)


class AutoNuma(MigrationPolicy):
    """Linux automatic NUMA balancing: periodic PROT_NONE scan, hinting faults, two-stage filter, migrate to the faulting node."""

    name = "autonuma"

    PARAMS = (
        Param("scan_delay", "time", None, "delay before a process's first scan",
              linux="1s (numa_balancing_scan_delay_ms=1000)"),
        Param("scan_period_min", "time", None, "shortest scan period",
              linux="1s (numa_balancing_scan_period_min_ms=1000)"),
        Param("scan_period_max", "time", None, "longest scan period",
              linux="60s (numa_balancing_scan_period_max_ms=60000)"),
        Param("scan_size", "size", None, "address space made PROT_NONE per scan",
              linux="256MiB (numa_balancing_scan_size_mb=256)"),
        Param("min_free_pages", "int", None, "free pages kept on the target node",
              linux="the node's high watermark"),
    )

    def attach(self, ctx):
        super().attach(ctx)
        base = (ctx.schedule.numa_balancing if ctx.schedule is not None
                and ctx.schedule.numa_balancing is not None else NumaBalancingParams())
        p = self.p
        self.params = NumaBalancingParams(
            scan_delay_ps=p["scan_delay"] if p["scan_delay"] is not None else base.scan_delay_ps,
            scan_period_min_ps=(p["scan_period_min"] if p["scan_period_min"] is not None
                                else base.scan_period_min_ps),
            scan_period_max_ps=(p["scan_period_max"] if p["scan_period_max"] is not None
                                else base.scan_period_max_ps),
            scan_size_bytes=p["scan_size"] if p["scan_size"] is not None else base.scan_size_bytes,
            min_free_frames=(p["min_free_pages"] if p["min_free_pages"] is not None
                             else base.min_free_frames),
        )
        hook = ctx.kernel.numa_balancing          # the co-simulation's dispatcher
        fallback = getattr(hook, "fallback", None)
        if fallback is not None:
            # the schedule turned NUMA balancing on for some processes: this policy replaces it
            for pid in list(fallback.tasks):
                fallback.stop(pid)
        # the co-simulation's dispatcher stays the hinting-fault handler and calls on_hint_fault
        self.nb = NumaBalancing(ctx.kernel, self.params, install=False)
        for pid in ctx.pids:
            self.nb.start(pid)

    local_hints_in_loop = True

    def on_local_hint(self, thread, page) -> None:
        self.nb.local_fault(thread, page)

    def on_hint_fault(self, fault):
        t0 = fault.time_ps
        nr = fault.page.nr_pages
        migrated = yield from self.nb.hinting_fault(fault.thread, fault.page, fault.meter)
        if migrated and self.ctx.record_migration is not None:
            self.ctx.record_migration("numa_hint", t0, nr, nr * 4096,
                                      self.ctx.now_ps() - t0)
        return migrated

    def describe_params(self):
        p = self.params
        return {"scan_delay_ps": p.scan_delay_ps, "scan_period_min_ps": p.scan_period_min_ps,
                "scan_period_max_ps": p.scan_period_max_ps, "scan_size_bytes": p.scan_size_bytes,
                "min_free_pages": p.min_free_frames}
