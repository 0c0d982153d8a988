"""What the operating system needs from the hardware, and a parametric implementation of it.

The OS model (``hwemu.linux``) never computes a cost by itself: every step of every kernel
path is a sequence of *hardware primitives* - instructions retired, cache-line reads/writes/
atomics at physical addresses, local TLB flushes, shootdown IPIs, page copies and fills - and
each primitive's time comes from an object implementing :class:`Hardware`.

Two implementations exist or are planned:

* :class:`ParametricHardware` (here): a handful of documented parameters calibrated to
  published figures for a 2-socket server (see ``docs/migration.md``). Metadata cache lines
  go through a small per-CPU cache (an LRU of ``cache_lines`` lines with invalidation on
  write by another CPU) so that hits and misses *emerge* from what the kernel touches.
* a machine-model-backed adapter (the timing model of ``hwemu.machine``): it implements the
  same methods by pushing the accesses, copies and IPIs through its caches, memory
  controllers and links at time ``at_ps`` and returning the latency it measured; ``flush_tlb``
  also drops the translations from its TLBs. Nothing in ``hwemu.linux`` changes.

Physical memory layout: node ``n`` owns ``node_frames(n)`` 4 KiB frames starting at frame
``node_start_pfn(n)`` (nodes are laid out one after another from frame 0).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Protocol, runtime_checkable

from hwemu.errors import HwemuError

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
LINE_SHIFT = 6
LINE_SIZE = 1 << LINE_SHIFT


@runtime_checkable
class Hardware(Protocol):
    """The hardware interface of the OS model. All times are integer picoseconds."""

    num_nodes: int
    num_cpus: int

    def cpu_node(self, cpu: int) -> int: ...
    def distance(self, a: int, b: int) -> int: ...  # ACPI SLIT, 10 = local
    def node_start_pfn(self, node: int) -> int: ...
    def node_frames(self, node: int) -> int: ...

    def cycles_ps(self, cpu: int, cycles: int) -> int:
        """Time to retire ``cycles`` core cycles of kernel code on ``cpu`` (no memory stalls)."""

    def mem_access_ps(self, cpu: int, paddr: int, write: bool, atomic: bool, at_ps: int) -> int:
        """One cache-line access by ``cpu`` to physical address ``paddr`` (struct page, PTE,
        lock word, list pointer ...). ``atomic``: a locked read-modify-write."""

    def flush_tlb(self, cpu: int, targets: Iterable[int], pages: int, at_ps: int,
                  pid: int | None = None, vaddrs: Iterable[int] = ()) -> int:
        """``cpu`` invalidates translations on itself (if in ``targets``) and on the other
        CPUs of ``targets`` by IPI, waiting for every acknowledgement. ``pages`` > 0 flushes that
        many single pages (``vaddrs`` of process ``pid``); ``pages`` == 0 flushes the whole TLB
        (every process). Returns the time ``cpu`` spends. A machine-backed implementation also
        drops those entries from its TLBs."""

    def ipi_count(self, cpu: int, targets: Iterable[int]) -> int:
        """How many IPIs ``flush_tlb`` sends for these targets (the other CPUs)."""

    def copy_ps(self, cpu: int, src_paddr: int, dst_paddr: int, nbytes: int, at_ps: int) -> int:
        """``cpu`` copies ``nbytes`` from ``src_paddr`` to ``dst_paddr`` (copy_page loop)."""

    def fill_ps(self, cpu: int, dst_paddr: int, nbytes: int, at_ps: int) -> int:
        """``cpu`` writes ``nbytes`` of zeroes at ``dst_paddr`` (clear_page)."""

    # Optional (looked up with getattr; a Hardware without them keeps the A/D state only in
    # the OS model's Pte objects):
    #
    # def test_and_clear_young(self, pid: int, vaddr: int, huge: bool) -> bool:
    #     """ptep_test_and_clear_young: the accessed bit the hardware set in the PTE mapping
    #     ``vaddr`` of ``pid`` (set when a page walk fills a TLB entry), read and cleared.
    #     No TLB flush (x86 does not flush for it); no time (the caller charges the walk)."""
    #
    # def test_and_clear_dirty(self, pid: int, vaddr: int, huge: bool) -> bool:
    #     """The dirty bit the hardware set on the first store through a clean translation,
    #     read and cleared; the caller flushes the TLBs so that the next store sets it again."""
    #
    # Page-copy DMA engines (hwemu.linux.copy.make_copy_engine uses them when dma_engines > 0):
    #
    # dma_engines: int            engines per socket
    # dma_interrupt_ps: int       completion interrupt and wake-up of the waiting task
    # def dma_copy_ps(self, cpu, src_paddr, dst_paddr, nbytes, at_ps) -> int:
    #     """One descriptor of ``nbytes`` submitted at ``at_ps`` to an engine of ``cpu``'s
    #     socket: ps until its completion status (queueing for a busy engine included)."""


@dataclass(frozen=True, slots=True)
class ParametricHardware:
    """A NUMA machine described by a few numbers (defaults: 2-socket AMD EPYC 7763, "Milan").

    Every default cites its source in docs/migration.md ("Calibration"). Per-step costs of the
    migration protocol are *not* parameters: they come out of these primitives.
    """

    nodes: int = 2
    cpus_per_node: int = 64
    # ACPI SLIT; None means 10 on the diagonal and ``remote_distance`` elsewhere.
    distances: tuple[tuple[int, ...], ...] | None = None
    remote_distance: int = 32
    mem_per_node_bytes: int = 16 << 30
    freq_hz: float = 2.45e9             # EPYC 7763 base clock
    # Idle load-to-use latency of a cache-line miss served by DRAM of the local / a remote node.
    mem_latency_local_ps: int = 110_000
    mem_latency_remote_ps: int = 190_000
    # L2-sized per-CPU cache of metadata lines; hit latency in cycles (Zen 3 L2: 12 cycles).
    cache_lines: int = 8192
    hit_cycles: int = 12
    # L2 stream prefetcher: after two adjacent misses it keeps this many lines ahead of the
    # stream (0 disables). Struct pages and PTEs of consecutive pages are such streams.
    prefetch_degree: int = 4
    # A locked RMW (lock cmpxchg / xadd) adds this many cycles to the access (Agner Fog's tables
    # list ~8-20 cycles for uncontended LOCK-prefixed instructions on Zen 3).
    atomic_cycles: int = 20
    # INVLPG of one page on the local CPU, and a full local TLB flush (CR3 write + refill).
    tlb_flush_page_ps: int = 100_000
    tlb_flush_all_ps: int = 250_000
    # Up to this many pages are flushed one by one; more -> a full flush (Linux x86
    # tlb_single_page_flush_ceiling = 33).
    tlb_single_page_ceiling: int = 33
    # IPI round trip (send, remote handler, ack) to a CPU on the same / another socket.
    ipi_rtt_same_socket_ps: int = 1_200_000
    ipi_rtt_remote_socket_ps: int = 2_500_000
    # Per-destination cost of sending one IPI (x2APIC ICR write).
    ipi_send_ps: int = 50_000
    # Single-thread copy_page() bandwidth across the socket link and within a node, and
    # the fixed start-up of one copy (first line misses not yet overlapped).
    copy_bw_remote_bps: float = 11.1e9
    copy_bw_local_bps: float = 14.0e9
    copy_startup_ps: int = 0
    fill_bw_bps: float = 20.0e9
    _cache: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        def bad(key: str, msg: str) -> HwemuError:
            return HwemuError(f"hardware parameter {key}: {msg}")

        if self.nodes < 1:
            raise bad("nodes", f"must be >= 1, got {self.nodes}")
        if self.cpus_per_node < 1:
            raise bad("cpus_per_node", f"must be >= 1, got {self.cpus_per_node}")
        if self.mem_per_node_bytes < (2 << 20) or self.mem_per_node_bytes % 4096:
            raise bad("mem_per_node_bytes", "must be a multiple of 4KiB and at least 2MiB")
        if self.distances is not None:
            d = self.distances
            if len(d) != self.nodes or any(len(r) != self.nodes for r in d):
                raise bad("distances", f"must be a {self.nodes}x{self.nodes} matrix")
            for i in range(self.nodes):
                if d[i][i] != 10:
                    raise bad("distances", f"diagonal entry [{i}][{i}] must be 10")
                for j in range(self.nodes):
                    if i != j and d[i][j] <= 10:
                        raise bad("distances", f"entry [{i}][{j}] must be > 10")
        for key in ("mem_latency_local_ps", "mem_latency_remote_ps", "tlb_flush_page_ps",
                    "tlb_flush_all_ps", "ipi_rtt_same_socket_ps", "ipi_rtt_remote_socket_ps"):
            if getattr(self, key) <= 0:
                raise bad(key, "must be positive")
        if self.mem_latency_remote_ps < self.mem_latency_local_ps:
            raise bad("mem_latency_remote_ps", "must be >= mem_latency_local_ps")
        for key in ("copy_bw_remote_bps", "copy_bw_local_bps", "fill_bw_bps", "freq_hz"):
            if getattr(self, key) <= 0:
                raise bad(key, "must be positive")
        if self.cache_lines < 1:
            raise bad("cache_lines", "must be >= 1")
        # Mutable per-CPU line caches live outside the frozen fields.
        ncpu = self.nodes * self.cpus_per_node
        object.__setattr__(self, "_cache", ([OrderedDict() for _ in range(ncpu)], {}))

    # -- topology -------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return self.nodes

    @property
    def num_cpus(self) -> int:
        return self.nodes * self.cpus_per_node

    def cpu_node(self, cpu: int) -> int:
        if not 0 <= cpu < self.num_cpus:
            raise HwemuError(f"cpu {cpu} does not exist (machine has cpus 0-{self.num_cpus - 1})")
        return cpu // self.cpus_per_node

    def distance(self, a: int, b: int) -> int:
        if self.distances is not None:
            return self.distances[a][b]
        return 10 if a == b else self.remote_distance

    def node_frames(self, node: int) -> int:
        return self.mem_per_node_bytes >> PAGE_SHIFT

    def node_start_pfn(self, node: int) -> int:
        return node * self.node_frames(0)

    def node_of_paddr(self, paddr: int) -> int:
        return min(self.nodes - 1, (paddr >> PAGE_SHIFT) // self.node_frames(0))

    # -- primitives -----------------------------------------------------------------------
    def cycles_ps(self, cpu: int, cycles: int) -> int:
        return int(round(cycles * 1e12 / self.freq_hz))

    def _latency(self, from_node: int, to_node: int) -> int:
        """DRAM latency from a CPU on ``from_node`` to memory of ``to_node``, interpolated
        linearly in SLIT distance between the local and the remote figure."""
        d = self.distance(from_node, to_node)
        if d == 10:
            return self.mem_latency_local_ps
        ref = self.remote_distance if self.distances is None else max(
            x for row in self.distances for x in row)
        span = max(ref - 10, 1)
        extra = (self.mem_latency_remote_ps - self.mem_latency_local_ps) * (d - 10) / span
        return int(round(self.mem_latency_local_ps + extra))

    def _fill(self, cpu: int, line: int, prefetched: bool) -> None:
        caches, owners = self._cache
        mine = caches[cpu]
        mine[line] = prefetched
        if len(mine) > self.cache_lines:
            old, _ = mine.popitem(last=False)
            h = owners.get(old)
            if h is not None:
                h.discard(cpu)
                if not h:
                    del owners[old]
        owners.setdefault(line, set()).add(cpu)

    def _prefetch(self, cpu: int, first: int, count: int) -> None:
        caches, owners = self._cache
        mine = caches[cpu]
        for ln in range(first, first + count):
            if ln not in mine and not owners.get(ln):
                self._fill(cpu, ln, True)

    def mem_access_ps(self, cpu: int, paddr: int, write: bool, atomic: bool, at_ps: int) -> int:
        caches, owners = self._cache
        line = paddr >> LINE_SHIFT
        mine = caches[cpu]
        cost = self.cycles_ps(cpu, self.hit_cycles)
        if line in mine:
            if mine[line] and self.prefetch_degree:
                # First use of a prefetched line: the streamer keeps ``degree`` lines ahead.
                mine[line] = False
                self._prefetch(cpu, line + self.prefetch_degree, 1)
            mine.move_to_end(line)
        else:
            holders = owners.get(line)
            if holders:
                # Served by another CPU's cache: latency as to the memory of that CPU's node.
                src = min(holders, key=lambda c: (self.distance(self.cpu_node(cpu), self.cpu_node(c)), c))
                cost = self._latency(self.cpu_node(cpu), self.cpu_node(src))
            else:
                cost = self._latency(self.cpu_node(cpu), self.node_of_paddr(paddr))
            self._fill(cpu, line, False)
            if self.prefetch_degree and (line - 1) in mine:
                # Ascending stream detected (the previous line is cached): prefetch ahead.
                self._prefetch(cpu, line + 1, self.prefetch_degree)
        holders = owners[line]
        if write or atomic:
            # Invalidate the line in every other CPU's cache.
            for other in [c for c in holders if c != cpu]:
                caches[other].pop(line, None)
                holders.discard(other)
        if atomic:
            cost += self.cycles_ps(cpu, self.atomic_cycles)
        return cost

    def _targets(self, cpu: int, targets: Iterable[int]) -> tuple[bool, list[int]]:
        ts = sorted(set(targets))
        return cpu in ts, [c for c in ts if c != cpu]

    def ipi_count(self, cpu: int, targets: Iterable[int]) -> int:
        return len(self._targets(cpu, targets)[1])

    def flush_tlb(self, cpu: int, targets: Iterable[int], pages: int, at_ps: int,
                  pid: int | None = None, vaddrs: Iterable[int] = ()) -> int:
        local, remote = self._targets(cpu, targets)
        if pages == 0 or pages > self.tlb_single_page_ceiling:
            flush = self.tlb_flush_all_ps
        else:
            flush = pages * self.tlb_flush_page_ps
        cost = flush if local else 0
        if remote:
            # IPIs go out one after another, handlers run in parallel (each flushes its own
            # TLB); the sender waits for the slowest acknowledgement.
            me = self.cpu_node(cpu)
            worst = max(self.ipi_rtt_same_socket_ps if self.cpu_node(c) == me
                        else self.ipi_rtt_remote_socket_ps for c in remote)
            cost = max(cost, len(remote) * self.ipi_send_ps + worst + flush)
        return cost

    def copy_ps(self, cpu: int, src_paddr: int, dst_paddr: int, nbytes: int, at_ps: int) -> int:
        me = self.cpu_node(cpu)
        src = self.node_of_paddr(src_paddr)
        dst = self.node_of_paddr(dst_paddr)
        bw = self.copy_bw_local_bps if src == dst == me else self.copy_bw_remote_bps
        return self.copy_startup_ps + int(round(nbytes * 1e12 / bw))

    def fill_ps(self, cpu: int, dst_paddr: int, nbytes: int, at_ps: int) -> int:
        return int(round(nbytes * 1e12 / self.fill_bw_bps))
