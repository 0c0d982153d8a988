"""Latency and bandwidth measured through the model, the way Intel's Memory Latency Checker
measures a real machine.

Idle latency: one thread on the first CPU of the CPU node chases pointers (every load depends
on the previous one) through a 2 GiB buffer (half the node if smaller) of 2 MiB pages on the
memory node (their translations preloaded in the TLBs), visiting cache
lines in random order; the mean load-to-use latency after a warm-up is the idle latency.

Loaded latency: the same probe on the first CPU of the node while every other CPU of that node
streams reads through its own 64 MiB buffer on the memory node, issuing one load every
``delay`` core cycles (and never more than its line-fill buffers allow). For each delay the
probe's mean latency and the memory node's delivered read bandwidth are measured over a window
of simulated time after a warm-up. Delay 0 gives saturation.

Everything is replayed by the same compiled loop as ``hwemu run``; nothing is tabulated.
"""

from __future__ import annotations

import numpy as np

from hwemu.errors import HwemuError
from hwemu.machine.config import MachineConfig
from hwemu.machine.driver import StopHandler, replay
from hwemu.machine.system import Machine
from hwemu.traces.format import TraceChunk
from hwemu.machine.layout import C_PPI, DC_READS

HUGE = 1 << 21
PROBE_BUFFER = 2 << 30
TRAFFIC_BUFFER = 64 << 20
PROBE_BASE = 1 << 40
TRAFFIC_BASE = 1 << 42
DEFAULT_DELAYS = (0, 2, 5, 10, 15, 20, 30, 50, 100, 200, 400, 1000, 3000, 9000)


def _check_nodes(cfg: MachineConfig, cpu_node: int, mem_node: int) -> None:
    if not 0 <= cpu_node < cfg.num_nodes or not cfg.nodes[cpu_node].has_cpus:
        raise HwemuError(f"--cpu-node {cpu_node}: not a node with CPUs (CPU nodes: "
                         f"{', '.join(map(str, cfg.cpu_nodes()))})")
    if not 0 <= mem_node < cfg.num_nodes:
        raise HwemuError(f"--mem-node {mem_node}: no such node (0..{cfg.num_nodes - 1})")


class _Frames:
    """Hand out 2 MiB-aligned frame ranges of one node."""

    def __init__(self, m: Machine, node: int):
        self.m, self.node, self.next = m, node, 0

    def map_huge(self, pid: int, vbase: int, nbytes: int) -> None:
        pages = -(-nbytes // HUGE)
        if (self.next + pages * 512) > self.m.node_frames(self.node):
            raise HwemuError(f"node {self.node} is too small for the measurement buffers")
        for p in range(pages):
            self.m.map_page(pid, vbase + p * HUGE, self.node, self.next, huge=True)
            self.next += 512


class _Until(StopHandler):
    """Replay a pre-mapped measurement up to a time (no fault may happen)."""

    def __init__(self, stop_ps: int | None):
        self.stop_ps = stop_ps

    def stop_time(self) -> int | None:
        return self.stop_ps


def _run_to(m: Machine, stop_ps: int | None) -> None:
    replay(m, _Until(stop_ps))


def _probe_size(cfg: MachineConfig, mem_node: int) -> int:
    """The probe buffer: 2 GiB, or half the node if it is smaller (whole 2 MiB pages)."""
    return max(HUGE, min(PROBE_BUFFER, cfg.nodes[mem_node].size_bytes // 2 // HUGE * HUGE))


def _probe_chunk(rng, n: int, tid: int = 0, size: int = PROBE_BUFFER) -> TraceChunk:
    lines = rng.integers(0, size // 64, n, dtype=np.int64)
    addr = (PROBE_BASE + lines * 64).astype(np.uint64)
    return TraceChunk.from_arrays(np.ones(n, np.uint8), addr, np.full(n, 8, np.uint16),
                                  tid=np.full(n, tid, np.uint16))


def idle_latency_ns(cfg: MachineConfig, cpu_node: int, mem_node: int, samples: int = 4000,
                    warmup: int = 2000, seed: int = 1) -> float:
    """Mean pointer-chase latency from the first CPU of ``cpu_node`` to ``mem_node`` (ns)."""
    _check_nodes(cfg, cpu_node, mem_node)
    cpu = cfg.node_cpus(cpu_node)[0]
    m = Machine(cfg, threads=1, cpus=[cpu], seed=seed)
    m.set_dependent(0)
    size = _probe_size(cfg, mem_node)
    _Frames(m, mem_node).map_huge(0, PROBE_BASE, size)
    m.warm_tlb(cpu, 0, range(PROBE_BASE, PROBE_BASE + size, HUGE))
    rng = np.random.default_rng(seed)
    m.load_chunk(_probe_chunk(rng, warmup, size=size))
    _run_to(m, None)
    acc0, lat0 = int(m.S.th_acc[0]), int(m.S.th_lat_sum[0])
    m.load_chunk(_probe_chunk(rng, samples, size=size))
    _run_to(m, None)
    n = int(m.S.th_acc[0]) - acc0
    return (int(m.S.th_lat_sum[0]) - lat0) / n / 1000.0


def idle_matrix(cfg: MachineConfig, samples: int = 4000) -> list[list[float]]:
    """idle_latency_ns[cpu node][memory node] for every CPU node (rows) and every node."""
    return [[round(idle_latency_ns(cfg, c, n, samples=samples), 1) for n in range(cfg.num_nodes)]
            for c in cfg.cpu_nodes()]


def loaded_point(cfg: MachineConfig, cpu_node: int, mem_node: int, delay_cycles: int,
                 window_ps: int = 40_000_000, warmup_ps: int = 5_000_000, seed: int = 1,
                 traffic_cpus: int | None = None) -> dict:
    """One point of the loaded-latency curve: probe latency and node read bandwidth."""
    _check_nodes(cfg, cpu_node, mem_node)
    cpus = cfg.node_cpus(cpu_node)
    if traffic_cpus is not None:
        cpus = cpus[:1 + traffic_cpus]
    nthreads = len(cpus)
    m = Machine(cfg, threads=nthreads, cpus=cpus, seed=seed)
    m.set_dependent(0)
    frames = _Frames(m, mem_node)
    size = _probe_size(cfg, mem_node)
    frames.map_huge(0, PROBE_BASE, size)
    m.warm_tlb(cpus[0], 0, range(PROBE_BASE, PROBE_BASE + size, HUGE))
    rest = cfg.nodes[mem_node].size_bytes - size
    tbuf = max(HUGE, min(TRAFFIC_BUFFER, rest // max(nthreads, 1) // HUGE * HUGE))
    for t in range(1, nthreads):
        frames.map_huge(0, TRAFFIC_BASE + t * TRAFFIC_BUFFER, tbuf)
    total = window_ps + warmup_ps
    rng = np.random.default_rng(seed)
    insts = int(round(delay_cycles / cfg.base_cpi))
    ppi = int(m.S.cfg[C_PPI])
    min_gap = 4000  # ps: no core issues misses faster than lfb / latency allows (>= 4 ns)
    per_thread = int(total // max(insts * ppi, min_gap)) + 64
    probe_n = int(total // 60_000) + 64
    parts = [_probe_chunk(rng, probe_n, size=size)]
    for t in range(1, nthreads):
        lines = np.arange(per_thread, dtype=np.int64) % (tbuf // 64)
        addr = (TRAFFIC_BASE + t * TRAFFIC_BUFFER + lines * 64).astype(np.uint64)
        parts.append(TraceChunk.from_arrays(np.ones(per_thread, np.uint8), addr,
                                            np.full(per_thread, 8, np.uint16),
                                            tid=np.full(per_thread, t, np.uint16),
                                            insts=np.full(per_thread, insts, np.uint32)))
    chunk = TraceChunk(*(np.concatenate([getattr(p, c) for p in parts])
                         for c in ("kind", "tid", "size", "addr", "insts")))
    m.load_chunk(chunk)
    _run_to(m, warmup_ps)
    acc0, lat0 = int(m.S.th_acc[0]), int(m.S.th_lat_sum[0])
    rd0 = int(m.S.dram_cnt[mem_node, DC_READS])
    _run_to(m, total)
    if int(m.S.th_pos[0]) >= int(m.S.th_end[0]) or any(
            int(m.S.th_pos[t]) >= int(m.S.th_end[t]) for t in range(1, nthreads)):
        raise AssertionError("a measurement thread ran out of records before the window ended")
    n = int(m.S.th_acc[0]) - acc0
    lat = (int(m.S.th_lat_sum[0]) - lat0) / max(n, 1) / 1000.0
    reads = int(m.S.dram_cnt[mem_node, DC_READS]) - rd0
    bw = reads * 64 / (window_ps * 1e-12) / 1e9
    return {"delay_cycles": delay_cycles, "bandwidth_gbs": round(bw, 2), "latency_ns": round(lat, 1),
            "probe_samples": n}


def loaded_latency(cfg: MachineConfig, cpu_node: int, mem_node: int, delays=DEFAULT_DELAYS,
                   progress: bool = False, **kw) -> list[dict]:
    """Loaded-latency curve, from the highest delay (lowest load) to delay 0 (saturation)."""
    from tqdm import tqdm

    pts = []
    for d in tqdm(sorted(delays, reverse=True), disable=not progress, desc="loaded latency",
                  unit="point", leave=False):
        pts.append(loaded_point(cfg, cpu_node, mem_node, d, **kw))
    return pts
