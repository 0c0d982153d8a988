"""Test kit for the tiering/hotness/nomad/oracle policies: a fixed-cost mock machine with an
optional CPU-less node whose access cost grows with SLIT distance, and a small driver that runs
one policy on the OS model the way the co-simulation does (the kernel's hinting faults go to
``on_hint_fault``, ``on_tick`` every ``tick_ps``, one access sample every ``sample_every``
accesses) while threads issue loads and stores through ``Kernel.access``."""

from __future__ import annotations

import numpy as np

from hwemu.linux.hw import PAGE_SHIFT
from hwemu.linux.kernel import Kernel
from hwemu.linux.mm import VmaKind
from hwemu.policies import AccessSamples, HintFault, PolicyContext, get_policy
from hwemu.stats import Stats

LINE_PS = 10_000            # a line access at SLIT distance 10 costs 10 ns; cost scales with it
ATOMIC_PS = 5_000
FLUSH_PS = 100_000
IPI_PS = 2_000_000
COPY_PS_PER_BYTE = 100      # 4 KiB copy = 409.6 ns
BASE = 0x10_0000_0000
P = 4096
US = 1_000_000
MS = 1_000_000_000


class TierHardware:
    """Mock hardware: ``cpus[n]`` CPUs on node n (0: CPU-less), ``frames`` frames per node.
    A cache-line access costs LINE_PS * distance / 10 between the CPU's node and the line's."""

    def __init__(self, cpus=(2, 2, 0), frames=2048, distances=None):
        self.num_nodes = len(cpus)
        self._cpu_node = [n for n, c in enumerate(cpus) for _ in range(c)]
        self.num_cpus = len(self._cpu_node)
        self._frames = frames
        if distances is None:
            distances = [[10 if a == b else (20 if cpus[a] and cpus[b] else 30)
                          for b in range(len(cpus))] for a in range(len(cpus))]
        self._dist = distances

    def cpu_node(self, cpu):
        return self._cpu_node[cpu]

    def distance(self, a, b):
        return self._dist[a][b]

    def node_start_pfn(self, node):
        return node * self._frames

    def node_frames(self, node):
        return self._frames

    def node_of_paddr(self, paddr):
        return (paddr >> PAGE_SHIFT) // self._frames

    def cycles_ps(self, cpu, cycles):
        return cycles

    def mem_access_ps(self, cpu, paddr, write, atomic, at_ps):
        d = self.distance(self.cpu_node(cpu), self.node_of_paddr(paddr))
        return LINE_PS * d // 10 + (ATOMIC_PS if atomic else 0)

    def flush_tlb(self, cpu, targets, pages, at_ps, pid=None, vaddrs=()):
        targets = set(targets)
        cost = FLUSH_PS if cpu in targets else 0
        if targets - {cpu}:
            cost = max(cost, IPI_PS)
        return cost

    def ipi_count(self, cpu, targets):
        return len(set(targets) - {cpu})

    def copy_ps(self, cpu, src_paddr, dst_paddr, nbytes, at_ps):
        return nbytes * COPY_PS_PER_BYTE

    def fill_ps(self, cpu, dst_paddr, nbytes, at_ps):
        return nbytes


class Dispatcher:
    """What the co-simulation installs as ``kernel.numa_balancing``: hinting faults go to the
    policy's ``on_hint_fault``."""

    def __init__(self, policy, ctx):
        self.policy = policy
        self.ctx = ctx

    def hinting_fault(self, thread, page, meter):
        k = self.ctx.kernel
        f = HintFault(tid=thread.tid, pid=thread.mm.pid, cpu=thread.cpu,
                      cpu_node=k.hw.cpu_node(thread.cpu), vaddr=-1, page=page,
                      time_ps=k.engine.now_ps, meter=meter, thread=thread)
        return (yield from self.policy.on_hint_fault(f))


class Sim:
    """One process (pid 1) with threads ``{tid: cpu}`` and an anonymous VMA of ``pages``
    pages at BASE (first-touch placement), running ``policy``."""

    def __init__(self, policy=None, hw=None, threads=None, pages=64, trace=None, thp=False,
                 mempolicy=None, placement=None):
        threads = threads or {1: 0}
        self.k = k = Kernel(hw or TierHardware())
        k.create_process(1, thp=thp)
        for tid, cpu in threads.items():
            k.add_thread(1, tid, cpu)
        self.vma = (k.mmap(1, BASE, pages << PAGE_SHIFT, VmaKind.ANON, policy=mempolicy)
                    if pages else None)
        policy = policy or get_policy("none")
        self.policy = policy
        self.stats = Stats()
        self.migrations = []
        self.ctx = PolicyContext(kernel=k, machine=None, engine=k.engine, trace=trace,
                                 params={}, seed=0, stats=self.stats, pids=[1],
                                 tid_pid={t: 1 for t in threads}, rng=np.random.default_rng(0))
        self.ctx.record_migration = lambda *a: self.migrations.append(a)
        if placement is not None:
            pol = placement.mempolicy(self.ctx)
            if pol is not None:
                k.mm(1).policy = pol
        k.numa_balancing = Dispatcher(policy, self.ctx)
        policy.attach(self.ctx)
        if policy.tick_ps:
            k.engine.call_at(k.engine.now_ps + policy.tick_ps, self._tick)
        self.latency_ps = 0
        self.accesses = 0
        self._since_sample = 0

    def _tick(self):
        self.policy.on_tick(self.k.engine.now_ps)
        self.k.engine.call_at(self.k.engine.now_ps + self.policy.tick_ps, self._tick)

    def access(self, tid, addr, write=False):
        k = self.k
        lat, value = k.engine.run_process(k.access(tid, addr, write))
        self.latency_ps += lat
        self.accesses += 1
        every = self.policy.sample_every
        if every:
            self._since_sample += 1
            if self._since_sample >= every:
                self._since_sample = 0
                page = k.follow_page(1, addr)
                node = -1 if page is None else page.node
                cnode = k.hw.cpu_node(k.thread(tid).cpu)
                served = -1 if node < 0 else (0 if node == cnode else
                                              (1 if node in self.ctx.cpu_nodes() else 2))
                self.policy.on_samples(AccessSamples(
                    time_ps=np.array([k.engine.now_ps], np.int64), tid=np.array([tid], np.int32),
                    pid=np.array([1], np.int32), vaddr=np.array([addr], np.uint64),
                    is_write=np.array([write]), node=np.array([node], np.int16),
                    served_from=np.array([served], np.int8)))
        return value

    def advance(self, dt_ps):
        self.k.engine.run_until(self.k.engine.now_ps + dt_ps)

    def node_of(self, addr):
        page = self.k.follow_page(1, addr)
        return None if page is None else page.node

    def finish(self):
        self.policy.finish(self.k.engine.now_ps)
        return self.stats

    def count(self, comp, stat):
        return self.k.counter(comp, stat)


class AdBitsHardware(TierHardware):
    """TierHardware whose page-table walker also keeps accessed/dirty bits, reported through
    the optional ``test_and_clear_young`` / ``test_and_clear_dirty`` methods. Addresses in
    ``young`` / ``dirty`` read as set every time (pages in constant use)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.young: set[int] = set()
        self.dirty: set[int] = set()
        self.asked: list[tuple[str, int]] = []

    def test_and_clear_young(self, pid, vaddr, huge):
        self.asked.append(("young", vaddr))
        return vaddr in self.young

    def test_and_clear_dirty(self, pid, vaddr, huge):
        self.asked.append(("dirty", vaddr))
        return vaddr in self.dirty
