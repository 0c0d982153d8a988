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

Mixed reads and writes (``read_write``, Intel MLC's ``-W`` modes, see ``RW_MODES``): each
streaming CPU repeats a short pattern of loads, stores and non-temporal stores over one to
three sequential buffers, so that the memory controller sees MLC's ratio of reads to writes.
A store to a line not in the caches reads it for ownership (one DRAM read) and writes it back
when the LLC evicts it (one DRAM write); a non-temporal store (record kind ``KIND_NT``) writes
the whole line to memory without reading it. The measurement windows are much shorter than
the time the streams take to turn the LLC over, so before a mode with ordinary stores the LLC
is filled with lines of the memory node, the steady-state share of them modified: the
evictions in the window then write back what a long-running MLC's would. Bandwidth is then
reads plus writes at the memory node, as MLC reports it.

Everything is replayed by the same compiled loop as ``hwemu run``; nothing is tabulated.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numba import njit

from hwemu.cachesim.setassoc import MESI_M, MESI_S, install, set_row, victim_in_row
from hwemu.errors import HwemuError
from hwemu.machine.config import MachineConfig
from hwemu.machine.core import KIND_NT
from hwemu.machine.layout import C_PPI, DC_READS, DC_WRITES
from hwemu.machine.driver import StopHandler, replay
from hwemu.machine.system import Machine
from hwemu.traces.format import TraceChunk

HUGE = 1 << 21
PROBE_BUFFER = 2 << 30
TRAFFIC_BUFFER = 64 << 20
PROBE_BASE = 1 << 40
TRAFFIC_BASE = 1 << 42
DEFAULT_DELAYS = (0, 2, 5, 10, 15, 20, 30, 50, 100, 200, 400, 1000, 3000, 9000)

# Traffic of the streaming CPUs, Intel MLC's --loaded_latency -W<n> modes (mlc --help). A mode
# is a pattern repeated by every streaming CPU: (record kind, buffer) per record, buffers
# walked sequentially, one line per record. "L" load, "S" store (read for ownership, later
# a writeback), "N" non-temporal store. Reads : writes are at the memory controller.
_L, _S, _N = 1, 2, KIND_NT
RW_MODES = {
    "R": ("all reads (the default)", ((_L, 0),)),
    "W2": ("2:1 reads:writes (a load and a store per step)", ((_L, 0), (_S, 1))),
    "W3": ("3:1 reads:writes (two loads, one store)", ((_L, 0), (_L, 0), (_S, 1))),
    "W4": ("3:2 reads:writes (a load, two stores)", ((_L, 0), (_S, 1), (_S, 1))),
    "W5": ("1:1 reads:writes (every line read and written: stores only)", ((_S, 0),)),
    "W6": ("0:1 non-temporal writes only", ((_N, 0),)),
    "W7": ("2:1 reads:non-temporal writes (two loads of one buffer, one streaming store)",
           ((_L, 0), (_L, 0), (_N, 1))),
    "W8": ("1:1 reads:non-temporal writes", ((_L, 0), (_N, 1))),
    "W9": ("3:1 reads:non-temporal writes", ((_L, 0), (_L, 0), (_L, 0), (_N, 1))),
    "W10": ("2:1 reads:non-temporal writes, stream-triad-like (loads of two buffers)",
            ((_L, 0), (_L, 1), (_N, 2))),
    "W11": ("3:1 reads:writes, stream-triad-like with read for ownership (loads of two buffers)",
            ((_L, 0), (_L, 1), (_S, 2))),
    "W12": ("4:1 reads:writes (three loads, one store)", ((_L, 0), (_L, 0), (_L, 0), (_S, 1))),
}
SKEW = 97            # lines between the streaming buffers of one CPU (see _traffic_records)
# CPU t starts its streams STREAM_SKEW * t lines into its buffers: the buffers are equally
# aligned (TRAFFIC_BUFFER apart), so without it the streams of every third CPU would walk the
# same LLC sets in step and, with a modified share to write back, evict each other's lines
# from the cores instead of the LLC's oldest ones (as MLC's separately allocated buffers do not)
STREAM_SKEW = 4099
RW_ALIASES = {"2:1": "W2", "3:1": "W3", "3:2": "W4", "1:1": "W5", "0:1": "W6"}


def rw_mode(text: str | None) -> str:
    """The canonical name (``R``, ``W2`` ... ``W12``) of a --read-write value: an MLC mode name
    (``W2``, ``-W2``, ``w2``), ``R``, or a ratio alias (``2:1``, ``3:1``, ``3:2``, ``1:1``,
    ``0:1``)."""
    if text is None:
        return "R"
    t = text.strip().upper().lstrip("-")
    t = RW_ALIASES.get(t, t)
    if t not in RW_MODES:
        raise HwemuError(f"--read-write {text!r}: expected one of {', '.join(RW_MODES)} "
                         f"or {', '.join(RW_ALIASES)}")
    return t


def _dirty_share(mode: str) -> float:
    """Share of the lines the streams bring into the LLC that they modify (steady state)."""
    pat = RW_MODES[mode][1]
    bufs = {b for _, b in pat}
    cached = {b for k, b in pat if k != _N}
    stored = {b for k, b in pat if k == _S}
    # every cached buffer advances one line per use in the pattern
    uses = {b: sum(1 for _, bb in pat if bb == b) for b in bufs}
    total = sum(uses[b] for b in cached)
    return sum(uses[b] for b in stored) / total if total else 0.0


def _traffic_records(mode: str, n: int, base: int, tbuf: int, start: int = 0):
    """(kind, addr) of ``n`` records of one streaming CPU: the mode's pattern over up to three
    buffers that split ``tbuf`` bytes at ``base``, each walked line by line (wrapping) from
    line ``start``."""
    pat = RW_MODES[mode][1]
    nbuf = 1 + max(b for _, b in pat)
    # buffers start SKEW lines apart beyond their size, not at a power of two, as separately
    # allocated buffers would: the same offset in every buffer would put their lines in the
    # same sets of every cache at once
    blines = tbuf // 64 // nbuf - 2 * SKEW
    kinds = np.array([k for k, _ in pat], np.uint8)
    bufs = np.array([b for _, b in pat], np.int64)
    i = np.arange(n, dtype=np.int64)
    step, j = i // len(pat), i % len(pat)
    # position of record i in its buffer: uses of that buffer before it in this step
    rank = np.array([sum(1 for jj in range(jj0) if pat[jj][1] == pat[jj0][1])
                     for jj0 in range(len(pat))], np.int64)
    per = np.array([sum(1 for _, b in pat if b == pat[jj0][1]) for jj0 in range(len(pat))],
                   np.int64)
    lines = (step * per[j] + rank[j] + start) % blines + bufs[j] * (blines + SKEW)
    return kinds[j], (base + lines * 64).astype(np.uint64)


@njit(cache=True)
def _fill_llc(llc, llc_cv, llc_rdy, sock, line0, n, dirty_num, dirty_den):
    """Install lines ``line0``.. ``line0 + n - 1`` in socket ``sock``'s LLC, ``dirty_num`` of
    every ``dirty_den`` modified, none in a core's caches (no time passes)."""
    for k in range(n):
        b = line0 + k
        i = victim_in_row(llc, set_row(llc, sock, b))
        install(llc, i, b, MESI_M if (k * dirty_num) % dirty_den < dirty_num else MESI_S)
        llc_cv[i] = 0
        llc_rdy[i] = 0


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
                 traffic_cpus: int | None = None, read_write: str | None = None) -> dict:
    """One point of the loaded-latency curve: probe latency and node bandwidth (reads; with
    ``read_write``, reads plus writes, and each separately)."""
    _check_nodes(cfg, cpu_node, mem_node)
    mode = rw_mode(read_write)
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
    share = Fraction(_dirty_share(mode)).limit_denominator(12)
    if share > 0:
        _prefill_llc(m, frames, cfg.nodes[cpu_node].socket, mem_node, share)
    total = window_ps + warmup_ps
    rng = np.random.default_rng(seed)
    insts = int(round(delay_cycles / cfg.base_cpi))
    ppi = int(m.S.cfg[C_PPI])
    min_gap = 4000  # ps: no core issues misses faster than lfb / latency allows (>= 4 ns)
    if mode != "R":
        min_gap = 2000  # a streaming store frees its buffer once the home has accepted it
    per_thread = int(total // max(insts * ppi, min_gap)) + 64
    probe_n = int(total // 60_000) + 64
    parts = [_probe_chunk(rng, probe_n, size=size)]
    for t in range(1, nthreads):
        if mode == "R":
            kind = np.ones(per_thread, np.uint8)
            lines = np.arange(per_thread, dtype=np.int64) % (tbuf // 64)
            addr = (TRAFFIC_BASE + t * TRAFFIC_BUFFER + lines * 64).astype(np.uint64)
        else:
            kind, addr = _traffic_records(mode, per_thread, TRAFFIC_BASE + t * TRAFFIC_BUFFER, tbuf,
                                          t * STREAM_SKEW)
        parts.append(TraceChunk.from_arrays(kind, addr,
                                            np.full(per_thread, 8, np.uint16),
                                            tid=np.full(per_thread, t, np.uint16),
                                            insts=np.full(per_thread, insts, np.uint32)))
    chunk = TraceChunk(*(np.concatenate([getattr(p, c) for p in parts])
                         for c in ("kind", "tid", "size", "addr", "insts")))
    m.load_chunk(chunk)
    _run_to(m, warmup_ps)
    acc0, lat0 = int(m.S.th_acc[0]), int(m.S.th_lat_sum[0])
    rd0 = int(m.S.dram_cnt[mem_node, DC_READS])
    wr0 = int(m.S.dram_cnt[mem_node, DC_WRITES])
    _run_to(m, total)
    if int(m.S.th_pos[0]) >= int(m.S.th_end[0]) or any(
            int(m.S.th_pos[t]) >= int(m.S.th_end[t]) for t in range(1, nthreads)):
        raise AssertionError("a measurement thread ran out of records before the window ended")
    n = int(m.S.th_acc[0]) - acc0
    lat = (int(m.S.th_lat_sum[0]) - lat0) / max(n, 1) / 1000.0
    reads = int(m.S.dram_cnt[mem_node, DC_READS]) - rd0
    bw = reads * 64 / (window_ps * 1e-12) / 1e9
    if read_write is None:
        return {"delay_cycles": delay_cycles, "bandwidth_gbs": round(bw, 2),
                "latency_ns": round(lat, 1), "probe_samples": n}
    writes = int(m.S.dram_cnt[mem_node, DC_WRITES]) - wr0
    wbw = writes * 64 / (window_ps * 1e-12) / 1e9
    return {"delay_cycles": delay_cycles, "bandwidth_gbs": round(bw + wbw, 2),
            "latency_ns": round(lat, 1), "read_gbs": round(bw, 2), "write_gbs": round(wbw, 2),
            "probe_samples": n}


def _prefill_llc(m: Machine, frames: "_Frames", sock: int, mem_node: int, share: Fraction) -> None:
    """Fill socket ``sock``'s LLC with lines of ``mem_node`` (frames past the buffers), the
    ``share`` of them modified, as the streams of a long-running measurement leave it."""
    from hwemu.cachesim.setassoc import P_ASSOC, P_SETS

    llc = m.S.llc
    n = int(llc.params[P_SETS]) * int(llc.params[P_ASSOC])
    pages = -(-n * 64 // HUGE)
    if frames.next + pages * 512 > m.node_frames(mem_node):
        raise HwemuError(f"node {mem_node} is too small for the measurement buffers")
    line0 = m.phys_addr(mem_node, frames.next) >> 6
    frames.next += pages * 512
    _fill_llc(llc, m.S.llc_cv, m.S.llc_rdy, sock, line0, n, share.numerator, share.denominator)


def loaded_latency(cfg: MachineConfig, cpu_node: int, mem_node: int, delays=DEFAULT_DELAYS,
                   progress: bool = False, **kw) -> list[dict]:
    """Loaded-latency curve, from the highest delay (lowest load) to delay 0 (saturation)."""
    from tqdm import tqdm

    pts = []
    for d in tqdm(sorted(delays, reverse=True), disable=not progress, desc="loaded latency",
                  unit="point", leave=False):
        pts.append(loaded_point(cfg, cpu_node, mem_node, d, **kw))
    return pts
