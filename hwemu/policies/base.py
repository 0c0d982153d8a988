"""The policy interface: placement and migration policies, registered by name.

A run (:mod:`hwemu.sim.cosim`) combines one *placement* policy (where a page goes when it is first
touched) with one *migration* policy (when and where pages move afterwards). Both are small
classes registered with :func:`register_policy` and built with :func:`get_policy`::

    @register_policy("autonuma")
    class AutoNuma(MigrationPolicy):
        \"\"\"Linux automatic NUMA balancing: scan, hinting faults, two-stage filter.\"\"\"
        PARAMS = (Param("scan_period", "time", "1s", "scan period (min)", linux="1s"), ...)

        def attach(self, ctx): ...

Parameters are declared once (:class:`hwemu.params.Param`, the class machine parameters use
too: kind, default, one-line description, Linux default) and parsed from strings with units ("10us", "4MiB") or plain values; an unknown or
malformed parameter raises :class:`~hwemu.errors.HwemuError` naming the policy and the key.

Hooks of a migration policy (all optional; the defaults do nothing):

* ``attach(ctx)``: once, after the schedule's processes exist and before the first record.
  ``ctx`` is a :class:`PolicyContext` (kernel, machine, engine, trace path, params, seed, RNG,
  a Stats collection, and helpers to migrate pages and to schedule work).
* ``on_hint_fault(fault)``: a NUMA hinting fault (an access found a PROT_NONE entry). It is a
  *generator* run inside the kernel's fault handler on the faulting CPU, exactly like Linux's
  ``do_numa_page``: ``yield fault.meter.take()`` charges accumulated cost, ``yield from
  ctx.migrate_gen([...], node, fault.cpu, mode="async")`` migrates pages; return True if the
  faulting page was migrated (its entry then maps the new page), False to just restore it.
* ``on_tick(now_ps)``: every ``tick_ps`` of simulated time (set ``self.tick_ps`` in attach, or
  None for no ticks), as an engine event. Long OS work should be spawned as a process with
  :meth:`PolicyContext.migrate` so that it occupies a CPU for its cost.
* ``on_samples(samples)``: a sampled access stream (:class:`AccessSamples`), delivered at the
  end of every timeline window when ``self.sample_every`` > 0 (one record in every N of each
  thread, see docs/policies.md "Access samples").
* ``on_thread_moved(tid, old_cpu, new_cpu, now_ps)``: a schedule event moved a thread.
* ``finish(now_ps)``: once at the end; add the policy's own numbers to ``ctx.stats``.

A placement policy only provides ``mempolicy(ctx) -> Mempolicy``: the task memory policy
(set_mempolicy) given to every process of the run, executed by the kernel's allocator
(:mod:`hwemu.linux.mempolicy`), which falls back by distance when the chosen node is full
(except ``bind``, which, as in Linux, only uses its nodes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generator

import numpy as np

from hwemu.errors import HwemuError
from hwemu.params import Param  # policies declare their parameters with it (re-exported)

if TYPE_CHECKING:                     # pragma: no cover
    from hwemu.linux.kernel import Kernel, Meter
    from hwemu.linux.mm import Page
    from hwemu.linux.mempolicy import Mempolicy
    from hwemu.stats import Stats


class Policy:
    """Base of every policy. Subclasses set ``PARAMS`` and a docstring whose first line is the
    one-line description. ``self.p`` holds the parsed parameters (name -> value)."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, **params):
        where = f"policy {self.name}"
        known = {p.name: p for p in self.PARAMS}
        for key in params:
            if key not in known:
                names = ", ".join(known) or "none"
                raise HwemuError(f"{where}: unknown parameter {key!r} (parameters: {names})")
        self.p: dict[str, Any] = {}
        for p in self.PARAMS:
            raw = params.get(p.name, p.default)
            self.p[p.name] = p.parse(raw, where)

    @classmethod
    def description(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def describe_params(self) -> dict:
        return dict(self.p)


class PlacementPolicy(Policy):
    """Where a page goes when first touched (a task memory policy)."""

    family = "placement"

    def mempolicy(self, ctx: "PolicyContext") -> "Mempolicy | None":  # pragma: no cover
        raise NotImplementedError


class MigrationPolicy(Policy):
    """When and where pages move after first touch. See the module docstring for the hooks."""

    family = "migration"
    tick_ps: int | None = None        # on_tick period; None: no ticks
    sample_every: int = 0             # deliver one access sample every N records; 0: none

    def attach(self, ctx: "PolicyContext") -> None:
        self.ctx = ctx

    def on_hint_fault(self, fault: "HintFault") -> Generator:
        return False
        yield  # noqa: unreachable - makes this a generator

    #: a hinting fault on a page already on the faulting CPU's node never migrates and costs
    #: the same fixed path; True lets the replay loop serve it (hwemu.machine.osfault) and
    #: report it through :meth:`on_local_hint` when the loop returns
    local_hints_in_loop = False

    def on_local_hint(self, thread, page) -> None:
        """What :meth:`on_hint_fault` records of a local hinting fault (no cost, no decision);
        called for the faults the replay loop served, in order."""

    def on_tick(self, now_ps: int) -> None:
        pass

    def on_samples(self, samples: "AccessSamples") -> None:
        pass

    def on_thread_moved(self, tid: int, old_cpu: int, new_cpu: int, now_ps: int) -> None:
        pass

    def finish(self, now_ps: int) -> None:
        pass


@dataclass
class HintFault:
    """A NUMA hinting fault as the policy sees it (inside the kernel's fault handler)."""

    tid: int
    pid: int
    cpu: int
    cpu_node: int           # node of the faulting CPU
    vaddr: int
    page: "Page"            # the folio mapped at vaddr (page.node: where it lives now)
    time_ps: int
    meter: "Meter"          # cost so far of this fault on ``cpu`` (yield meter.take())
    thread: Any = None      # hwemu.linux.mm.Thread

    @property
    def page_node(self) -> int:
        return self.page.node


@dataclass
class AccessSamples:
    """A batch of sampled accesses (numpy arrays of equal length, in trace order).

    ``time_ps``: the issuing thread's clock interpolated over the window (exact at its ends);
    ``node``: the memory node of the page at delivery (-1: not mapped);
    ``served_from``: 0 local node, 1 remote socket node, 2 CPU-less (CXL) node, -1 unmapped.
    Cache hits are not told apart: a sample says where the page lives, not which cache level
    answered."""

    time_ps: np.ndarray     # int64
    tid: np.ndarray         # int32
    pid: np.ndarray         # int32
    vaddr: np.ndarray       # uint64
    is_write: np.ndarray    # bool
    node: np.ndarray        # int16
    served_from: np.ndarray  # int8

    def __len__(self) -> int:
        return len(self.time_ps)


SERVED_LOCAL, SERVED_REMOTE, SERVED_CXL, SERVED_UNMAPPED = 0, 1, 2, -1


@dataclass
class PolicyContext:
    """What a policy can see and do. Built by the co-simulation (hwemu.sim.cosim)."""

    kernel: "Kernel"
    machine: Any                     # the hardware model (hwemu.machine.system.Machine)
    engine: Any
    trace: Any                       # path of the trace being replayed (or None)
    params: dict
    seed: int
    stats: "Stats"
    pids: list[int]
    tid_pid: dict[int, int]          # trace tid -> pid
    rng: np.random.Generator = None
    schedule: Any = None             # hwemu.linux.schedule.Schedule of the run, or None
    hw: Any = None                   # the Hardware adapter (hwemu.sim.hardware.MachineHardware)
    # set by the co-simulation: record(kind, time_ps, pages, bytes, duration_ps)
    record_migration: Callable | None = None
    extra: dict = field(default_factory=dict)

    # -- topology ----------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return self.kernel.hw.num_nodes

    def cpu_node(self, cpu: int) -> int:
        return self.kernel.hw.cpu_node(cpu)

    def cpu_nodes(self) -> list[int]:
        """Nodes with CPUs (the fast tier)."""
        return sorted({self.cpu_node(c) for c in range(self.kernel.hw.num_cpus)})

    def cpuless_nodes(self) -> list[int]:
        """Nodes without CPUs (e.g. CXL memory: the slow tier)."""
        fast = set(self.cpu_nodes())
        return [n for n in range(self.num_nodes) if n not in fast]

    def node_cpus(self, node: int) -> list[int]:
        return [c for c in range(self.kernel.hw.num_cpus) if self.cpu_node(c) == node]

    def idle_cpu(self, node: int) -> int:
        """A CPU of ``node`` (or, for a CPU-less node, of the nearest node with CPUs) that runs
        no application thread: the highest-numbered one. Daemons such as migratepages or
        kswapd-like policy work run there instead of stealing an application CPU."""
        if not self.node_cpus(node):
            node = min(self.cpu_nodes(), key=lambda n: (self.distance(node, n), n))
        busy = {t.cpu for t in self.kernel.threads.values()}
        cpus = self.node_cpus(node)
        free = [c for c in cpus if c not in busy]
        return max(free) if free else max(cpus)

    def distance(self, a: int, b: int) -> int:
        return self.kernel.hw.distance(a, b)

    def free_pages(self, node: int) -> int:
        return self.kernel.alloc.nodes[node].free_count

    def now_ps(self) -> int:
        return self.engine.now_ps

    # -- pages -------------------------------------------------------------------------------
    def page_at(self, pid: int, vaddr: int) -> "Page | None":
        """The folio mapped (present, prot-none or under migration) at ``vaddr``, or None."""
        return self.kernel.follow_page(pid, vaddr)

    def node_of(self, pid: int, vaddr: int) -> int:
        page = self.page_at(pid, vaddr)
        return -1 if page is None else page.node

    def thread_cpu(self, tid: int) -> int:
        return self.kernel.thread(tid).cpu

    # -- work --------------------------------------------------------------------------------
    def call_at(self, time_ps: int, fn: Callable, *args):
        return self.engine.call_at(time_ps, fn, *args)

    def migrate_gen(self, pages: list, node: int, cpu: int, mode: str = "async",
                    reason: str = "policy") -> Generator:
        """Isolate ``pages`` (folios) and migrate them to ``node`` on ``cpu`` through the full
        protocol (hwemu.linux.migrate); failures go back on the LRU. A generator for use inside
        a process or a hint-fault hook; returns the MigrateResult (None if nothing isolated)."""
        from hwemu.linux.kernel import Meter
        from hwemu.linux.migrate import Migrator, alloc_on_node

        k = self.kernel
        t0 = self.engine.now_ps
        m = Meter(k, cpu)
        isolated = []
        for page in pages:
            if page is None or page.freed or page.node == node:
                continue
            if k.isolate_lru_page(page, m):
                isolated.append(page)
        cost = m.take()
        if cost:
            yield cost
        if not isolated:
            return None
        mig = Migrator(k, cpu, alloc_on_node(k, node), mode, reason)
        res = yield from mig.migrate_pages(isolated)
        if res.remaining:
            yield from mig.putback(res.remaining)
        if self.record_migration is not None and res.nr_succeeded:
            self.record_migration(reason, t0, res.nr_succeeded, res.nr_succeeded * 4096,
                                  self.engine.now_ps - t0)
        return res

    def migrate(self, pages: list, node: int, cpu: int, mode: str = "async",
                reason: str = "policy"):
        """Spawn :meth:`migrate_gen` as OS work on ``cpu`` (it occupies the CPU for its cost;
        application threads keep running). Returns the engine Process."""
        return self.engine.spawn(self.migrate_gen(pages, node, cpu, mode, reason), cpu,
                                 name=f"policy-migrate:{node}")
