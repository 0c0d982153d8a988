"""The OS model's hardware interface implemented on the machine timing model.

:class:`MachineHardware` implements :class:`hwemu.linux.hw.Hardware` on a
:class:`hwemu.machine.system.Machine`, so every kernel step is timed by the same caches,
coherence, memory controllers and links that replay the application:

* ``mem_access_ps``: one cache-line access through the CPU's caches (``Machine.meta_access``);
  an atomic is a write plus ``atomic_cycles`` of the locked RMW. ``mem_access_seq_ps``: a
  sequence of them in one call (``Machine.meta_access_seq``; a NUMA scan's page-table walks).
* ``copy_ps`` / ``fill_ps``: ``Machine.copy_lines`` - every line is read from the source
  node's controller (through the links when remote) and written to the destination's, so a
  migration's copy contends with the application's traffic. A fill (clear_page) streams from
  the node's zero page (a reserved frame of the memmap area; reads of it come from DRAM).
* ``flush_tlb``: drops the translations from the machine's TLBs of the target CPUs (single
  pages of ``pid`` when ``pages`` > 0, everything when ``pages`` == 0) and returns the time
  the initiating CPU spends: local INVLPGs or a full flush, plus for remote targets the IPIs
  sent one after another and the slowest acknowledgement, whose round trip grows with the
  link hops between the sockets (the machine model has no interrupt network; the round-trip
  figures are parameters, see docs/migration.md "MachineHardware").
* topology: CPUs and nodes of the machine config; the SLIT distance is derived from the
  model's own idle latencies (as ``hwemu machine show`` prints it); node ``n``'s frames start
  at ``Machine.node_start_pfn(n)``.

:class:`MachineSync` is the :class:`~hwemu.linux.kernel.KernelObserver` that mirrors every
page-table entry the kernel writes into the machine's page tables (present / migration entry /
PROT_NONE / none; a scan's batch in one compiled call) and drops the cached lines of freed
frames.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

from hwemu.errors import HwemuError
from hwemu.linux.kernel import KernelObserver
from hwemu.linux.mm import PteKind
from hwemu.machine.layout import W_NAMES
from hwemu.machine.pagetable import (PTE_ACCESSED, PTE_DIRTY, PTE_MIGRATION, PTE_PRESENT,
                                     PTE_PROTNONE, make_pte, make_ptes)
from hwemu.machine.topology import slit_distances
from hwemu.stats import Stats

HW_COMPONENT = "os.hw"


class _Served(dict):
    """``metadata_served_<where>`` counter names, made once per level."""

    def __missing__(self, where):
        self[where] = name = f"metadata_served_{where}"
        return name


_SERVED = _Served()


class MachineHardware:
    """:class:`hwemu.linux.hw.Hardware` on a :class:`hwemu.machine.system.Machine`."""

    def __init__(self, machine):
        self.m = machine
        cfg = machine.config
        self.cfg = cfg
        self.num_nodes = cfg.num_nodes
        self.num_cpus = cfg.num_cpus
        # the kernel-side costs the model does not simulate: the machine's [os] table
        # (hwemu.machine.config.OsCosts; sources in docs/migration.md "MachineHardware")
        self.p = cfg.os
        pf = getattr(cfg, "prefetch", None)
        self.machine_prefetch = bool(getattr(pf, "enable", False))
        if self.machine_prefetch:
            # the machine's own L2 streamer sees every access_line: do not prefetch twice
            self.p = dataclasses.replace(self.p, metadata_prefetch_degree=0)
        # the firmware's SLIT from the machine file, else derived from measured latencies
        self._slit = slit_distances(cfg)
        self._hops = cfg.hops()
        self._cpu_node = [cfg.cpu_node(c) for c in range(cfg.num_cpus)]
        self._cpu_socket = [cfg.cpu_socket(c) for c in range(cfg.num_cpus)]
        self._cycles = {}           # cycles_ps by cycle count
        # component "os.hw" of the run's statistics
        self._stats = Stats()
        for key, unit in (("ipis", "count"), ("tlb_entries_dropped", "count"),
                          ("full_flushes", "count"), ("metadata_accesses", "count"),
                          ("copy_bytes", "bytes"), ("fill_bytes", "bytes")):
            self._stats.add(HW_COMPONENT, key, 0, unit)
        # metadata accesses counted one at a time (count_metadata, millions a run) wait here,
        # per level, until the statistics are read; their rows are made when first counted,
        # in the order counting them at once would make them
        self._meta_n = [0] * len(W_NAMES)
        self._meta_new = [True] * len(W_NAMES)
        self._meta_pf = 0
        self._pf_new = True
        self._meta_due = False
        self._atomic_ps = cfg.cycles_ps(self.p.atomic_cycles)
        # per socket: when each of its DMA engines is free again (ps), made on first use
        self._dma_free: dict[int, list[int]] = {}

    @property
    def stats(self) -> Stats:
        """Component "os.hw" of the run's statistics, up to date."""
        if self._meta_due:
            self._flush_metadata()
        return self._stats

    def _count(self, stat: str, value: int = 1, unit: str = "count") -> None:
        self._stats.inc(HW_COMPONENT, stat, value, unit)

    def counter(self, stat: str) -> int:
        """The current value of one of the adapter's counters (0 if never counted)."""
        return self.stats.get(HW_COMPONENT, stat, 0)

    # -- topology -------------------------------------------------------------------------
    def cpu_node(self, cpu: int) -> int:
        if not 0 <= cpu < self.num_cpus:
            raise HwemuError(f"cpu {cpu} does not exist ({self.cfg.name} has cpus 0-{self.num_cpus - 1})")
        return self._cpu_node[cpu]

    def distance(self, a: int, b: int) -> int:
        return self._slit[a][b]

    def node_start_pfn(self, node: int) -> int:
        return self.m.node_start_pfn(node)

    def node_frames(self, node: int) -> int:
        return self.m.node_frames(node)

    def node_of_paddr(self, paddr: int) -> int:
        return self.m.node_of_phys(paddr)

    # -- primitives -----------------------------------------------------------------------
    def cycles_ps(self, cpu: int, cycles: int) -> int:
        # a few distinct counts, converted millions of times a run: remembered
        ps = self._cycles.get(cycles)
        if ps is None:
            ps = self._cycles[cycles] = self.cfg.cycles_ps(cycles)
        return ps

    def mem_access_ps(self, cpu: int, paddr: int, write: bool, atomic: bool, at_ps: int) -> int:
        lat, where, npf = self.m.meta_access(cpu, paddr, write, atomic, self._atomic_ps,
                                             self.p.metadata_prefetch_degree, at_ps)
        self.count_metadata(where, npf)
        return lat

    def mem_access_seq_ps(self, cpu: int, gaps, paddrs, writes, atomics, at_ps: int) -> int:
        """A sequence of :meth:`mem_access_ps`, access ``i`` starting when access ``i - 1``
        ended plus ``gaps[i]`` ps, in one call into the machine. Returns the total time, gaps
        included. Counted as the accesses one by one would be."""
        total, where, npf = self.m.meta_access_seq(cpu, gaps, paddrs, writes, atomics,
                                                   self._atomic_ps,
                                                   self.p.metadata_prefetch_degree, at_ps)
        if len(where) and not self.count_metadata_batch(where, npf):
            # a counter is new: made in the order the accesses one by one would make it
            for w, n in zip(where.tolist(), npf.tolist()):
                self.count_metadata(w, n)
        return total

    def count_metadata_batch(self, where, npf) -> bool:
        """:meth:`count_metadata` of many accesses at once (``where``: levels as W_NAMES
        indices, -1 for no access; ``npf``: their prefetches; arrays of any shape), if every
        counter they touch exists already (True); else nothing is counted (False) and the
        caller counts them one by one, so that new counters are made in that order."""
        # accesses per level: bincount of the codes + 1 (code -1, no access, lands in bin 0)
        per = np.bincount(np.ravel(where) + 1, minlength=len(W_NAMES) + 1)[1:].tolist()
        prefetches = int(np.sum(npf))
        new = self._meta_new
        if any(n and new[c] for c, n in enumerate(per)) or (prefetches and self._pf_new):
            return False
        # added to count_metadata's waiting counts (their rows exist: none is new)
        counts = self._meta_n
        for c, n in enumerate(per):
            counts[c] += n
        self._meta_pf += prefetches
        self._meta_due = True
        return True

    def count_metadata(self, where: int, prefetches: int) -> None:
        """Count one metadata access served at level ``where`` (W_NAMES) and the prefetches
        of the metadata streamer it set off."""
        if self._meta_new[where]:
            self._meta_new[where] = False
            self._stats.inc(HW_COMPONENT, _SERVED[W_NAMES[where]], 0, "accesses")
        self._meta_n[where] += 1
        if prefetches:
            if self._pf_new:
                self._pf_new = False
                self._stats.inc(HW_COMPONENT, "metadata_prefetches", 0, "count")
            self._meta_pf += prefetches
        self._meta_due = True

    def _flush_metadata(self) -> None:
        """Add the counts :meth:`count_metadata` keeps waiting to the statistics."""
        inc = self._stats.inc
        n = self._meta_n
        inc(HW_COMPONENT, "metadata_accesses", sum(n), "count")
        for w, c in enumerate(n):
            if c:
                inc(HW_COMPONENT, _SERVED[W_NAMES[w]], c, "accesses")
                n[w] = 0
        if self._meta_pf:
            inc(HW_COMPONENT, "metadata_prefetches", self._meta_pf, "count")
            self._meta_pf = 0
        self._meta_due = False

    def _targets(self, cpu: int, targets: Iterable[int]) -> tuple[bool, list[int]]:
        ts = sorted(set(targets))
        return cpu in ts, [c for c in ts if c != cpu]

    def ipi_count(self, cpu: int, targets: Iterable[int]) -> int:
        return len(self._targets(cpu, targets)[1])

    def ipi_rtt_ps(self, a: int, b: int) -> int:
        """Round trip of an IPI from CPU ``a`` to CPU ``b``: grows with the link hops between
        their sockets' nodes."""
        hops = self._hops[self._cpu_node[a]][self._cpu_node[b]]
        return self.p.ipi_rtt_same_socket_ps + hops * self.p.ipi_rtt_per_hop_ps

    def flush_tlb(self, cpu: int, targets: Iterable[int], pages: int, at_ps: int,
                  pid: int | None = None, vaddrs: Iterable[int] = ()) -> int:
        local, remote = self._targets(cpu, targets)
        full = pages == 0 or pages > self.p.tlb_single_page_ceiling or pid is None
        m = self.m
        cpus = ([cpu] if local else []) + remote
        dropped = 0
        if full:
            m.flush_tlb_cpus(cpus)
            self._count("full_flushes", len(cpus))
            flush = self.p.tlb_flush_all_ps
        else:
            for v in vaddrs:
                dropped += m.flush_tlb(pid, int(v), False, cpus=cpus)
                dropped += m.flush_tlb(pid, int(v) & ~((1 << 21) - 1), True, cpus=cpus)
            flush = pages * self.p.tlb_flush_page_ps
        self._count("tlb_entries_dropped", dropped)
        cost = flush if local else 0
        if remote:
            worst = max(self.ipi_rtt_ps(cpu, c) for c in remote)
            cost = max(cost, len(remote) * self.p.ipi_send_ps + worst + flush)
            self._count("ipis", len(remote))
        return cost

    # -- accessed / dirty bits (optional Hardware methods, hwemu.linux.hw) -------------------
    def test_and_clear_young(self, pid: int, vaddr: int, huge: bool) -> bool:
        """ptep_test_and_clear_young: read and clear the accessed bit the machine's page walker
        set in the PTE word (no TLB flush, as on x86). No time: the caller charges the walk."""
        return self.m.pt.test_and_clear(int(pid), int(vaddr), bool(huge), PTE_ACCESSED)

    def test_and_clear_dirty(self, pid: int, vaddr: int, huge: bool) -> bool:
        """Read and clear the dirty bit of the PTE word (the caller flushes the TLBs, so that
        the next store sets it again)."""
        return self.m.pt.test_and_clear(int(pid), int(vaddr), bool(huge), PTE_DIRTY)

    def copy_ps(self, cpu: int, src_paddr: int, dst_paddr: int, nbytes: int, at_ps: int) -> int:
        end = self.m.copy_lines(cpu, src_paddr, dst_paddr, nbytes, start_ps=int(at_ps),
                                window=self.cfg.lfb + self.p.copy_prefetch_lines)
        self._count("copy_bytes", nbytes, "bytes")
        return max(0, end - int(at_ps))

    # -- page-copy DMA engines ([dma] table) ------------------------------------------------
    @property
    def dma_engines(self) -> int:
        """Page-copy DMA engines per socket (0: none)."""
        return self.cfg.dma.engines

    @property
    def dma_interrupt_ps(self) -> int:
        return self.cfg.dma.interrupt_ps

    def dma_busy_until(self) -> int:
        """When the last offloaded copy submitted so far, and its completion interrupt, end
        (0 if none was ever submitted): a migration waiting for it is still in flight."""
        ends = [t for free in self._dma_free.values() for t in free if t]
        return max(ends) + self.cfg.dma.interrupt_ps if ends else 0

    def dma_params(self):
        """The engines' build parameters as :class:`hwemu.dma.model.DmaParams`."""
        from hwemu.dma.model import DmaParams

        d = self.cfg.dma
        return DmaParams(data_width=8 * d.data_width_bytes, burst_len=d.burst_len,
                         max_outstanding=d.outstanding, max_write_outstanding=d.write_outstanding,
                         fifo_depth=d.fifo_depth or None, clock_hz=int(round(d.clock_hz)))

    def dma_copy_ps(self, cpu: int, src_paddr: int, dst_paddr: int, nbytes: int,
                    at_ps: int, desc_paddr: int | None = None) -> int:
        """An offloaded copy of ``nbytes`` (whole 4 KiB pages, one descriptor) submitted at
        ``at_ps`` to a DMA engine of ``cpu``'s socket: the time until the engine's completion
        status (ps), waiting for a busy engine included.

        The engine's pipeline is the RTL-calibrated recurrence of :mod:`hwemu.dma.model`
        (:func:`~hwemu.dma.model.simulate_copy`), burst by burst. Each read burst is issued at
        its AR handshake as line reads from the engine's socket through the links and
        controllers (``Machine.engine_lines``); its latency is the smallest one at which every
        beat arrives after its line did (the beats then stream one per engine cycle). Each
        line is written when its last beat is sent; a burst's write response comes when its
        lines' writes have completed. So the copy's traffic loads the modelled memory system
        and its time includes that memory system's latency and queueing.

        ``desc_paddr``: the descriptor is one of a chain in memory at that address; the engine
        first fetches it (:func:`hwemu.dma.model.fetch_cycles`, with the latency of that line
        read through the machine)."""
        import math

        from hwemu.dma.model import fetch_cycles, page_bursts, simulate_copy

        d = self.cfg.dma
        if d.engines <= 0:
            raise HwemuError(f"{self.cfg.name}: the machine has no DMA engine ([dma] engines = 0)")
        params = self.dma_params()
        pages = -(-int(nbytes) // 4096)
        sock = self._cpu_socket[cpu]
        free = self._dma_free.setdefault(sock, [0] * d.engines)
        e = min(range(len(free)), key=free.__getitem__)
        start = max(int(at_ps), free[e])
        queued = start - int(at_ps)
        period = 1e12 / params.clock_hz
        m = self.m
        if desc_paddr is not None:
            # the chained descriptor's fetch: AR register and handshake (2 edges), then the
            # line read through the machine
            arr = int(m.engine_lines(sock, int(desc_paddr) & ~63, 1, start + round(2 * period))[0])
            lat = max(1, math.ceil((arr - start) / period - 1e-9) - 2)
            start += round(fetch_cycles(params, lat) * period)
        beat = params.bytes_per_beat
        bursts = []                                  # (byte offset, beats) of every burst
        off = 0
        for _ in range(pages):
            for ln in page_bursts(params):
                bursts.append((off, ln))
                off += ln * beat
        arrive: dict[int, int] = {}                  # source line -> data arrival (ps)

        def edge(t_ps: int) -> int:                  # first edge at or after t_ps
            return math.ceil((t_ps - start) / period - 1e-9)

        def read_latency(k: int, hs: int) -> int:
            o, n = bursts[k]
            first, last = o >> 6, (o + n * beat - 1) >> 6
            new = [ln for ln in range(first, last + 1) if ln not in arrive]
            if new:
                t = start + round(hs * period)
                done = m.engine_lines(sock, src_paddr + (new[0] << 6), len(new), t)
                for ln, c in zip(new, done):
                    arrive[ln] = int(c)
            lat = 1
            for ln in range(first, last + 1):
                j = max(0, ((ln << 6) - o) // beat)  # first beat of this burst in line ln
                lat = max(lat, edge(arrive.pop(ln) if ((ln + 1) << 6) <= o + n * beat
                                    else arrive[ln]) - hs - j)
            return lat

        def write_latency(k: int, wfirst: int, wlast: int) -> int:
            o, n = bursts[k]
            end = o + n * beat
            lines = [ln for ln in range(o >> 6, ((end - 1) >> 6) + 1)
                     if o < ((ln + 1) << 6) <= end]            # lines this burst completes
            if not lines:
                return 1
            last_beat = (((lines[0] + 1) << 6) - o) // beat - 1   # the beat ending lines[0]
            done = m.engine_lines(sock, dst_paddr + (lines[0] << 6), len(lines),
                                  start + round((wfirst + last_beat) * period),
                                  round(64 // beat * period), True)
            return max(1, edge(int(done.max())) - wlast)

        cycles = simulate_copy(pages, params, read_latency, write_latency)
        end = start + round(cycles * period)
        free[e] = end
        self._count("dma_copies")
        self._count("dma_bytes", int(nbytes), "bytes")
        self._count("dma_queue_time", queued, "ps")
        return end - int(at_ps)

    def zero_page_paddr(self, node: int) -> int:
        # Frame 0 of a node holds the struct pages of the node's own memmap frames, which
        # are never touched; it stands for the kernel's zero page of that node.
        return self.m.phys_addr(node, 0)

    def fill_ps(self, cpu: int, dst_paddr: int, nbytes: int, at_ps: int) -> int:
        node = self.m.node_of_phys(dst_paddr)
        src = self.zero_page_paddr(node)
        done = int(at_ps)
        window = self.cfg.lfb + self.p.copy_prefetch_lines
        for off in range(0, nbytes, 4096):
            done = self.m.copy_lines(cpu, src, dst_paddr + off, min(4096, nbytes - off),
                                     start_ps=done, window=window)
        self._count("fill_bytes", nbytes, "bytes")
        return max(0, done - int(at_ps))


_STATE = {PteKind.PRESENT: PTE_PRESENT, PteKind.MIGRATION: PTE_MIGRATION,
          PteKind.PROTNONE: PTE_PROTNONE}


class MachineSync(KernelObserver):
    """Keeps the machine's page tables identical to the kernel's entries and drops the lines
    of freed frames from the machine's caches (writing dirty ones back)."""

    mirrors_page_tables = True
    loop_faults_ok = True

    def __init__(self, machine, engine=None):
        self.m = machine
        self.engine = engine
        self.changes = 0

    def pte_changed(self, pid, vaddr, huge, kind, paddr, node):
        self.changes += 1
        if kind is PteKind.NONE:
            self.m.unmap_page(pid, vaddr, huge)
            return
        # same frame (e.g. present <-> PROT_NONE): the A/D bits stay, as pte_modify keeps them
        self.m.set_pte_keep_ad(pid, vaddr, make_pte(paddr, node, huge, _STATE[kind]))

    def ptes_changed(self, pid, changes):
        if any(kind is PteKind.NONE for _, _, kind, _, _ in changes):
            super().ptes_changed(pid, changes)
            return
        self.changes += len(changes)
        vaddrs, huges, kinds, paddrs, nodes = zip(*changes)
        self.m.set_ptes_keep_ad(pid, list(vaddrs),
                                make_ptes(paddrs, nodes, huges, [_STATE[k] for k in kinds]))

    def page_freed(self, paddr, nbytes):
        at = self.engine.now_ps if self.engine is not None else 0
        self.m.drop_lines(paddr, nbytes, at)
