"""Cycle model of the ``page_copy_dma`` engine: what an offloaded page copy costs.

The model follows the engine's pipeline burst by burst. A batch of ``pages`` 4 KiB pages is cut
into the same INCR bursts the RTL issues (at most ``burst_len`` beats, never across a 4 KiB
boundary). For burst ``k`` of ``len_k`` beats, with every time a clock edge counted from the
descriptor handshake (edge 0) and ``L`` the memory read latency in cycles:

    ar(k)     = max(ar(k-1) + 1,                      one read request per cycle
                    rlast(k - O) + 1,                 at most O reads in flight
                    pop(S_k - D) + 1)                 FIFO space for the whole burst
    rfirst(k) = max(ar(k) + 1 + L, rlast(k-1) + 1)    read data: latency, then one beat/cycle
    rlast(k)  = rfirst(k) + len_k - 1
    aw(k)     = max(rlast(k) + 1, aw(k-1) + 1,        a burst is written once fully read
                    b(k - W) + 1)                     at most W writes awaiting a response
    wfirst(k) = max(aw(k) + 1, wlast(k-1) + 1)        write data: one beat/cycle
    wlast(k)  = wfirst(k) + len_k - 1
    b(k)      = max(wlast(k) + Lw, b(k-1) + 1)        write response after Lw cycles
    cycles    = b(last) + 2                           status valid two edges after the last B

where ``O`` = max_outstanding, ``W`` = max_write_outstanding, ``D`` = fifo_depth (beats), ``S_k``
the beats requested up to and including burst ``k`` and ``pop(p)`` the edge of the ``p``-th
write beat. (ar is the edge the AR register is loaded, the AR handshake is one edge later.)

In steady state with equal bursts of ``B`` beats this max-plus system settles to one burst
every ``P`` cycles, the largest of its loop delays divided by the bursts each loop can hold:

    P = max(B,                        data bus: bandwidth-bound, DATA_WIDTH/8 bytes per cycle
            (L + B + 1) / O,          read requests in flight: latency-bound
            (L + 2B + 2) / (D / B),   buffer space held from request until written out
            (B + Lw + 1) / W)         write responses in flight

``steady_beats_per_cycle`` gives ``B / P``. ``copy_cycles`` evaluates the recurrence exactly for
the first 20 000 bursts (at least 64 pages; a 2 MiB page is 512 pages of 8 to 512 bursts) and
extends it by whole steady-state periods beyond that, so long copies cost little to model.
Chains of descriptors in memory add :func:`fetch_cycles` per descriptor (:func:`chain_cycles`).
Validated against the RTL by ``hwemu dma calibrate`` and the RTL tests (docs/dma.md).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from hwemu.errors import HwemuError

PAGE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class DmaParams:
    """Build parameters of the engine plus its clock.

    data_width: AXI data bus width in bits (64, 128, 256).
    burst_len: MAX_BURST_LEN, beats per burst (1..256).
    max_outstanding: MAX_OUTSTANDING, read bursts in flight.
    max_write_outstanding: MAX_WRITE_OUTSTANDING, write bursts awaiting their response.
    fifo_depth: FIFO_DEPTH in beats; None = the RTL default, (max_outstanding + 1) bursts.
    clock_hz: the engine's clock frequency (for times in picoseconds).
    write_latency: cycles from the last write beat to the write response (memory side).
    """

    data_width: int = 128
    burst_len: int = 16
    max_outstanding: int = 4
    max_write_outstanding: int = 8
    fifo_depth: int | None = None
    clock_hz: int = 1_000_000_000
    write_latency: int = 1

    def __post_init__(self):
        if self.data_width not in (64, 128, 256):
            raise HwemuError(f"dma: data_width={self.data_width}: must be 64, 128 or 256")
        if not 1 <= self.burst_len <= 256:
            raise HwemuError(f"dma: burst_len={self.burst_len}: must be 1..256")
        if self.max_outstanding < 1:
            raise HwemuError(f"dma: max_outstanding={self.max_outstanding}: must be >= 1")
        if self.max_write_outstanding < 1:
            raise HwemuError(f"dma: max_write_outstanding={self.max_write_outstanding}: "
                             "must be >= 1")
        if self.fifo_depth is not None and self.fifo_depth < self.burst:
            raise HwemuError(f"dma: fifo_depth={self.fifo_depth}: must hold one burst "
                             f"({self.burst} beats)")
        if self.clock_hz <= 0:
            raise HwemuError(f"dma: clock_hz={self.clock_hz}: must be positive")
        if self.write_latency < 1:
            raise HwemuError(f"dma: write_latency={self.write_latency}: must be >= 1")

    @property
    def bytes_per_beat(self) -> int:
        return self.data_width // 8

    @property
    def beats_per_page(self) -> int:
        return PAGE_BYTES // self.bytes_per_beat

    @property
    def burst(self) -> int:
        """Beats in a full burst (MAX_BURST_LEN capped at one page)."""
        return min(self.burst_len, self.beats_per_page)

    @property
    def depth(self) -> int:
        """FIFO depth in beats as built."""
        if self.fifo_depth is not None:
            return self.fifo_depth
        return (self.max_outstanding + 1) * self.burst

    def rtl_parameters(self) -> dict:
        """The Verilog parameters of this configuration."""
        p = {"DATA_WIDTH": self.data_width, "MAX_BURST_LEN": self.burst_len,
             "MAX_OUTSTANDING": self.max_outstanding,
             "MAX_WRITE_OUTSTANDING": self.max_write_outstanding}
        if self.fifo_depth is not None:
            p["FIFO_DEPTH"] = self.fifo_depth
        return p


def page_bursts(params: DmaParams) -> tuple[int, ...]:
    """Burst lengths (beats) the engine issues for one 4 KiB page."""
    out, off, bpp, b = [], 0, params.beats_per_page, params.burst
    while off < bpp:
        n = min(b, bpp - off)
        out.append(n)
        off += n
    return tuple(out)


def steady_period(params: DmaParams, mem_latency_cycles: int) -> Fraction:
    """Cycles per full burst in steady state (equal bursts), the largest loop bound."""
    b = params.burst
    lat = mem_latency_cycles
    return max(Fraction(b),
               Fraction(lat + b + 1, params.max_outstanding),
               Fraction((lat + 2 * b + 2) * b, params.depth),
               Fraction(b + params.write_latency + 1, params.max_write_outstanding))


def binding_bound(params: DmaParams, mem_latency_cycles: int) -> str:
    """Which loop sets the steady-state rate: "bandwidth", "outstanding", "buffer" or
    "write-responses" (the first of equals, in that order)."""
    b = params.burst
    lat = mem_latency_cycles
    bounds = [("bandwidth", Fraction(b)),
              ("outstanding", Fraction(lat + b + 1, params.max_outstanding)),
              ("buffer", Fraction((lat + 2 * b + 2) * b, params.depth)),
              ("write-responses", Fraction(b + params.write_latency + 1,
                                           params.max_write_outstanding))]
    top = max(v for _, v in bounds)
    return next(name for name, v in bounds if v == top)


def steady_beats_per_cycle(params: DmaParams, mem_latency_cycles: int) -> float:
    """Sustained copy throughput in beats per cycle (1.0 = the bus is saturated)."""
    return float(params.burst / steady_period(params, mem_latency_cycles))


def steady_bytes_per_cycle(params: DmaParams, mem_latency_cycles: int) -> float:
    return steady_beats_per_cycle(params, mem_latency_cycles) * params.bytes_per_beat


def _simulate(lengths: list[int], p: DmaParams, lat: int, read_latency=None,
              write_latency=None) -> list[int]:
    """Evaluate the recurrence; return b(k) for every burst.

    ``read_latency(k, edge)`` and ``write_latency(k, wfirst, wlast)``, when given, replace the
    constant latencies ``lat`` and ``p.write_latency`` burst by burst (cycles, at least 1):
    ``edge`` is burst ``k``'s AR handshake, ``wfirst``/``wlast`` its first and last write beat
    (:func:`simulate_copy`)."""
    n = len(lengths)
    o, mw, d, lw = p.max_outstanding, p.max_write_outstanding, p.depth, p.write_latency
    ar = [0] * n
    rlast = [0] * n
    aw = [0] * n
    wfirst = [0] * n
    wlast = [0] * n
    bt = [0] * n
    cum = []          # beats requested up to and including burst k
    s = 0
    for ln in lengths:
        s += ln
        cum.append(s)
    prev_ar, prev_rlast, prev_aw, prev_wlast, prev_b = 0, -1, -1, -1, -1
    for k in range(n):
        ln = lengths[k]
        t = prev_ar + 1
        if k >= o:
            t = max(t, rlast[k - o] + 1)
        need = cum[k] - d           # this many beats must have been written out
        if need > 0:
            j = bisect_left(cum, need)          # burst holding write beat number `need`
            first = cum[j - 1] if j else 0
            t = max(t, wfirst[j] + (need - first - 1) + 1)
        ar[k] = prev_ar = t
        rf = max(t + 1 + (lat if read_latency is None else read_latency(k, t + 1)),
                 prev_rlast + 1)
        rlast[k] = prev_rlast = rf + ln - 1
        a = max(prev_rlast + 1, prev_aw + 1)
        if k >= mw:
            a = max(a, bt[k - mw] + 1)
        aw[k] = prev_aw = a
        wf = max(a + 1, prev_wlast + 1)
        wfirst[k] = wf
        wlast[k] = prev_wlast = wf + ln - 1
        if write_latency is not None:
            lw = write_latency(k, wf, prev_wlast)
        bt[k] = prev_b = max(prev_wlast + lw, prev_b + 1)
    return bt


# Bursts evaluated exactly (at least _MIN_EXACT_PAGES pages) before extending the result by
# whole steady-state periods.
_EXACT_BURSTS = 20_000
_MIN_EXACT_PAGES = 64
_MAX_PERIOD_PAGES = 16


def _exact_pages(params: DmaParams) -> int:
    return max(_MIN_EXACT_PAGES, _EXACT_BURSTS // len(page_bursts(params)))


@lru_cache(maxsize=4096)
def _cycles(pages: int, params: DmaParams, lat: int) -> int:
    per_page = list(page_bursts(params))
    nb = len(per_page)
    m = _exact_pages(params)
    if pages <= m:
        return _simulate(per_page * pages, params, lat)[-1] + 2
    bt = _simulate(per_page * m, params, lat)
    ends = [bt[(i + 1) * nb - 1] for i in range(m)]            # end of page i + 1
    inc = [b - a for a, b in zip(ends, ends[1:])]              # cost of page i + 2
    # A max-plus system like this one is eventually periodic: the per-page costs repeat with
    # some period p (pages). Find the shortest p that holds over the last pages of the window
    # (at least 3p and 48 pages, so a long period is not mistaken for a short one) and extend.
    for p in range(1, _MAX_PERIOD_PAGES + 1):
        span = max(3 * p, 3 * _MAX_PERIOD_PAGES)
        if span + p > len(inc):
            break
        if all(inc[-k] == inc[-k - p] for k in range(1, span + 1)):
            q, rem = divmod(pages - m, p)
            block = inc[len(inc) - p:]
            return ends[-1] + q * sum(block) + sum(block[:rem]) + 2
    # no short period: extend by the mean cost of the last half of the window
    half = inc[len(inc) // 2:]
    per = Fraction(sum(half), len(half))
    return int(ends[-1] + 2 + math.ceil(per * (pages - m)))


def copy_cycles(pages: int, params: DmaParams, mem_latency_cycles: int) -> int:
    """Engine clock cycles to copy ``pages`` contiguous 4 KiB pages in one descriptor.

    Counted from the descriptor handshake to the first cycle the completion status is valid,
    with a memory that returns read data ``mem_latency_cycles`` after accepting the request
    (>= 1) and never stalls.
    """
    if pages < 1:
        raise HwemuError(f"dma: pages={pages}: must be >= 1")
    if mem_latency_cycles < 1:
        raise HwemuError(f"dma: mem_latency_cycles={mem_latency_cycles}: must be >= 1")
    return _cycles(int(pages), params, int(mem_latency_cycles))


def simulate_copy(pages: int, params: DmaParams, read_latency, write_latency) -> int:
    """Cycles to copy ``pages`` 4 KiB pages (as :func:`copy_cycles`) against a memory whose
    latency varies burst by burst: ``read_latency(k, edge)`` is the read latency of burst ``k``
    whose AR handshake is at ``edge`` (cycles from the descriptor handshake; the first beat
    arrives that many cycles later, the others one per cycle), ``write_latency(k, wfirst,
    wlast)`` the cycles from its last write beat to its write response. Both at least 1. The
    callbacks are called once per burst in burst order; they may issue the burst's traffic to a
    memory model (the emulator's engines in runs do, hwemu.sim.hardware). With constant
    callbacks the result equals ``copy_cycles`` exactly."""
    if pages < 1:
        raise HwemuError(f"dma: pages={pages}: must be >= 1")
    lengths = list(page_bursts(params)) * int(pages)
    return _simulate(lengths, params, 0, read_latency, write_latency)[-1] + 2


def fetch_cycles(params: DmaParams, mem_latency_cycles: int) -> int:
    """Cycles to fetch one 32-byte chain descriptor before its copy starts.

    One burst of 32 bytes (``nb`` = 1) or, when MAX_BURST_LEN is shorter, ``nb`` single beats
    one after the other; each costs the AR register and handshake (2) plus the latency, and the
    burst's beats and one cycle to decode follow: ``nb * (2 + L) + fetch burst length``.
    """
    if mem_latency_cycles < 1:
        raise HwemuError(f"dma: mem_latency_cycles={mem_latency_cycles}: must be >= 1")
    beats = 32 // params.bytes_per_beat
    fb = beats if params.burst >= beats else 1
    return (beats // fb) * (2 + mem_latency_cycles) + fb


def chain_cycles(pages: list[int] | tuple[int, ...], params: DmaParams,
                 mem_latency_cycles: int) -> int:
    """Cycles from submitting a chain pointer to the last status of the chain.

    Each descriptor is fetched (:func:`fetch_cycles`), then copied exactly like a submitted
    one (:func:`copy_cycles`); the next fetch starts when its status is taken (here: at once).
    """
    if not pages:
        raise HwemuError("dma: a chain needs at least one descriptor")
    f = fetch_cycles(params, mem_latency_cycles)
    return sum(f + copy_cycles(n, params, mem_latency_cycles) for n in pages)


def copy_time_ps(pages: int, page_bytes: int, params: DmaParams, mem_latency_ps: int) -> int:
    """Picoseconds to copy ``pages`` pages of ``page_bytes`` each (a multiple of 4 KiB).

    A 2 MiB huge page is 512 contiguous 4 KiB pages in one descriptor. The memory latency is
    rounded up to whole engine cycles.
    """
    if page_bytes <= 0 or page_bytes % PAGE_BYTES:
        raise HwemuError(f"dma: page_bytes={page_bytes}: must be a positive multiple of 4096")
    period = 10**12 / params.clock_hz
    lat = max(1, math.ceil(mem_latency_ps / period - 1e-9))
    cycles = copy_cycles(pages * (page_bytes // PAGE_BYTES), params, lat)
    return round(cycles * period)
