"""The numpy state of a modelled machine, gathered in one named tuple for the compiled code.

:func:`build_state` turns a :class:`~hwemu.machine.config.MachineConfig` into the arrays every
component works on. Field groups (see the component modules for their meaning):

- ``cfg`` scalar parameters (indices ``C_*`` in layout.py), ``ctr`` (columns ``CT_*`` in
  layout.py: an access counter, the time stamps of the prefetcher's stream table; whether a TLB
  has held a 2 MiB entry);
- caches ``l1i``, ``l1d``, ``l2`` (one instance per CPU) and ``llc`` (one instance per socket):
  each a :class:`hwemu.cachesim.setassoc.CacheState`, the one set-associative core of hwemu,
  with its own replacement policy, clock and random generator; ``llc_cv`` core-valid masks
  (one per LLC line, indexed by the core's flat line index);
- TLBs ``itlb``, ``dtlb4``, ``dtlb2``, ``stlb`` (``CacheState``, LRU, one instance per CPU,
  tags are TLB keys) and ``*_v`` (the cached PTE of every TLB line);
- DRAM ``dram_p`` (per-node parameters), bank/channel busy-until state, ``dram_cnt``;
- links ``route_*``, ``chan_*`` (per directed channel latency, ps/byte, header, busy, bytes);
- nodes ``node_socket``, ``socket_node``, ``node_base``, ``node_size`` (physical layout);
  ``cpu_socket`` (each CPU's socket: a load, where ``cpu // cores_per_socket`` is a division);
- threads ``th_*`` (clock, CPU, process, instruction count, fill-buffer state, cursors;
  ``th_wait``: time the OS made the thread's next access wait, e.g. on a page under
  migration, added to that access's latency when it completes; ``th_more``: the thread has
  records in the trace beyond the loaded chunk, see replay.Feeder);
- statistics ``hist``, ``served``, ``faults``, ``ccnt``;
- L2 superqueue and stream prefetcher ``sq_done`` (per CPU: completion time of each entry),
  ``pf_tab`` (per CPU stream table), ``l2_rdy``/``l2_pf`` (per L2 line: data-arrival time and
  not-yet-used flag of a prefetched line), ``llc_rdy`` (per LLC line: data-arrival time of a
  line an LLC prefetch is still fetching); ``rt_done`` (per CPU and home node: completion
  time of each remote tracker entry), ``node_rt`` (per home node: entries it preallocates to
  each core, ``[uncore]``/``[[node]] remote_trackers``; 0 = unbounded);
- first touch in the loop (core.py; columns ``FT_*`` in layout.py): ``ft_ctl`` (the
  page-table inserts the loop may still make, 0 = first touch goes to Python, and what it
  made since Python last looked), ``ft_next`` (per node: the next free 4 KiB frame of
  machine-only first-touch placement);
- first touches the OS model lets the loop serve (``hwemu.machine.osfault``, columns ``KF_*``,
  ``RG_*``, ``RS_*``, ``KN_*``, ``KT_*``, ``KL_*`` in layout.py): ``kf_ctl``, the registered
  regions ``kf_rk``/``kf_rv``/``kf_reg``, placements ``kf_place``, frame reservations
  ``kf_res``/``kf_resc``, per node ``kf_nodes`` and LRU tails ``kf_tail``, CPU occupancy
  ``kf_busy``, per-thread pending entries ``kf_th``, the log ``kf_log``, scratch ``kf_slots``;
- the OS model's metadata streamer (``hwemu.machine.memops.meta_access``): per CPU the recent
  demand lines ``mp_rec`` (``mp_nrec`` of them, oldest first) and the prefetched, unused lines
  ``mp_pf`` (``mp_npf``).

Replacement seeds: cache or TLB ``k`` (in the order l1i, l1d, l2, llc, itlb, dtlb4, dtlb2,
stlb) gets seed ``seed * 8 + k``, so ``--seed`` changes every random-policy cache and runs with
one seed are identical.
"""

from __future__ import annotations

import mmap
from collections import namedtuple

import numpy as np

from hwemu.cachesim import setassoc as sa
from hwemu.machine.hierarchy import MAX_SQ, stream_table
from hwemu.machine.config import MachineConfig
from hwemu.machine.core import FAULT_KINDS, HIST_BINS, MAX_LFB
from hwemu.machine.dram import dram_params, dram_state
from hwemu.machine.interconnect import build_routes, link_arrays, link_calendar
from hwemu.machine.layout import (CT_N, FT_N, C_L1D_LAT, C_L1I_LAT, C_L2_LAT, C_LLC_LAT, C_N,
                                  C_NNODES, C_PPI, C_STLB_LAT, K_N, W_N, declared_columns)
from hwemu.machine.memops import MP_PF_LINES, MP_RECENT_LINES
from hwemu.machine.osfault import kf_arrays
from hwemu.machine.params import PARAMS

NODE_ALIGN = 1 << 30
HUGE_PAGE = 1 << 21     # host huge page (x86-64 Linux transparent huge pages)
HUGE_MIN = 1 << 20      # arrays from this size on are placed on huge pages (on_huge_pages)

FIELDS = (
    "cfg", "ctr",
    "l1i", "l1d", "l2", "llc", "llc_cv",
    "itlb", "itlb_v", "dtlb4", "dtlb4_v", "dtlb2", "dtlb2_v", "stlb", "stlb_v",
    "dram_p", "bank_row", "bank_ready", "bank_act", "bank_wr_end", "bank_last", "chan_bus",
    "dram_x", "dram_cnt",
    "route_next", "route_chan", "chan_lat", "chan_ppb", "chan_hdr", "chan_busy", "chan_bytes",
    "node_socket", "socket_node", "node_base", "node_size", "cpu_socket",
    "th_clock", "th_cpu", "th_pid", "th_insts", "th_lfb", "th_dep", "th_odone", "th_oinst",
    "th_pend", "th_pte", "th_txd", "th_wait", "th_pos", "th_end", "th_more", "th_acc",
    "th_lat_sum",
    "hist", "served", "faults", "ccnt",
    "sq_done", "pf_tab", "l2_rdy", "l2_pf", "llc_rdy", "rt_done", "node_rt",
    "ft_ctl", "ft_next",
    "kf_ctl", "kf_rk", "kf_rv", "kf_reg", "kf_place", "kf_res", "kf_resc", "kf_nodes", "kf_tail",
    "kf_busy", "kf_th", "kf_log", "kf_slots",
    "mp_rec", "mp_nrec", "mp_pf", "mp_npf",
)
State = namedtuple("State", FIELDS)


def on_huge_pages(a: np.ndarray) -> np.ndarray:
    """``a`` copied into memory of its own that starts on a host huge-page boundary and is
    marked for transparent huge pages (``madvise(MADV_HUGEPAGE)``), if it is at least
    ``HUGE_MIN`` bytes; else ``a`` itself. Host speed only: the replay indexes the LLC's and the
    private caches' arrays and the DRAM bus calendars (tens of MB on a 2-socket preset) at
    random, and with 4 KiB pages nearly every such access also misses the host's TLB; numpy's
    own allocations are not aligned to huge pages, so only part of an array gets them."""
    if a.nbytes < HUGE_MIN or not hasattr(mmap, "MADV_HUGEPAGE"):
        return a
    n = -(-a.nbytes // HUGE_PAGE) * HUGE_PAGE
    buf = mmap.mmap(-1, n + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    whole = np.frombuffer(buf, np.uint8)
    off = -whole.ctypes.data % HUGE_PAGE
    try:
        buf.madvise(mmap.MADV_HUGEPAGE, off, n)
    except OSError:             # not supported by this kernel: ordinary pages
        pass
    b = whole[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    b[...] = a
    return b


def _huge_fields(values):
    """The state's arrays (and those of its caches) on huge pages (on_huge_pages)."""
    out = []
    for v in values:
        if isinstance(v, sa.CacheState):
            v = sa.CacheState(*[on_huge_pages(x) for x in v])
        elif isinstance(v, np.ndarray):
            v = on_huge_pages(v)
        out.append(v)
    return out


def node_layout(cfg: MachineConfig) -> tuple[np.ndarray, np.ndarray]:
    """Physical base address and size of every node (bases aligned to 1 GiB)."""
    base = np.zeros(cfg.num_nodes, np.int64)
    size = np.zeros(cfg.num_nodes, np.int64)
    nxt = 0
    for n in cfg.nodes:
        base[n.id] = nxt
        size[n.id] = n.size_bytes
        nxt += -(-n.size_bytes // NODE_ALIGN) * NODE_ALIGN
    return base, size


def build_state(cfg: MachineConfig, threads: int = 1, seed: int = 0) -> State:
    ncpu = cfg.num_cpus
    c = np.zeros(C_N, np.int64)
    for column, p in declared_columns(PARAMS, "C_"):
        c[column] = int(getattr(cfg.section(p.section), p.attribute))
    c[C_NNODES] = cfg.num_nodes
    c[C_L1I_LAT] = cfg.cycles_ps(cfg.l1i.latency_cycles)
    c[C_L1D_LAT] = cfg.cycles_ps(cfg.l1d.latency_cycles)
    c[C_L2_LAT] = cfg.cycles_ps(cfg.l2.latency_cycles)
    c[C_LLC_LAT] = cfg.cycles_ps(cfg.llc.latency_cycles)
    tlb = cfg.tlb
    c[C_STLB_LAT] = cfg.cycles_ps(tlb.stlb_latency_cycles)
    c[C_PPI] = max(1, int(round(cfg.base_cpi * cfg.period_ps)))

    def cache(k, name, cc, instances):
        return sa.new_cache_sets(cc.sets, cc.ways, cc.policy, int(seed) * 8 + k, instances,
                                 64, where=f"[cache.{name}] policy")

    def tlb_cache(k, key, instances):
        entries, ways = tlb.entries_ways(key)
        c = sa.new_cache_sets(entries // ways, ways, "lru", int(seed) * 8 + k, instances, 1,
                              where=f"[tlb] {key}")
        return c, np.zeros(c.tags.shape[0], np.int64)

    l1i = cache(0, "l1i", cfg.l1i, ncpu)
    l1d = cache(1, "l1d", cfg.l1d, ncpu)
    l2 = cache(2, "l2", cfg.l2, ncpu)
    llc = cache(3, "llc", cfg.llc, cfg.sockets)
    llc_cv = np.zeros(llc.tags.shape[0], np.uint64)
    itlb = tlb_cache(4, "l1i", ncpu)
    dtlb4 = tlb_cache(5, "l1d_4k", ncpu)
    dtlb2 = tlb_cache(6, "l1d_2m", ncpu)
    stlb = tlb_cache(7, "stlb", ncpu)
    dp = dram_params(cfg.nodes)
    dst = dram_state(dp)
    route_next, route_chan = build_routes(cfg.num_nodes, cfg.links)
    chan_lat, chan_ppb, chan_hdr = link_arrays(cfg.links)
    node_socket = np.array([n.socket for n in cfg.nodes], np.int64)
    socket_node = np.array([cfg.socket_node(s) for s in range(cfg.sockets)], np.int64)
    node_base, node_size = node_layout(cfg)
    T = max(1, int(threads))
    return State(*_huge_fields((
        c, np.zeros(CT_N, np.int64),
        l1i, l1d, l2, llc, llc_cv,
        *itlb, *dtlb4, *dtlb2, *stlb,
        dp, *dst,
        route_next, route_chan, chan_lat, chan_ppb, chan_hdr,
        link_calendar(cfg.links), np.zeros(chan_lat.shape, np.int64),
        node_socket, socket_node, node_base, node_size,
        np.arange(ncpu, dtype=np.int64) // cfg.cores_per_socket,
        np.zeros(T, np.int64), np.arange(T, dtype=np.int64) % ncpu, np.zeros(T, np.int64),
        np.zeros(T, np.int64), np.full(T, cfg.lfb, np.int64), np.zeros(T, np.uint8),
        np.zeros((T, MAX_LFB), np.int64), np.zeros((T, MAX_LFB), np.int64),
        np.zeros(T, np.uint8), np.zeros(T, np.int64), np.zeros(T, np.int64), np.zeros(T, np.int64),
        np.zeros(T, np.int64), np.zeros(T, np.int64), np.zeros(T, np.uint8),
        np.zeros(T, np.int64), np.zeros(T, np.int64),
        np.zeros(HIST_BINS, np.int64), np.zeros((cfg.sockets, W_N), np.int64),
        np.zeros((T, len(FAULT_KINDS)), np.int64), np.zeros((ncpu, K_N), np.int64),
        np.zeros((ncpu, MAX_SQ), np.int64), stream_table(ncpu, cfg.prefetch.streams),
        np.zeros(l2.tags.shape[0], np.int64), np.zeros(l2.tags.shape[0], np.uint8),
        np.zeros(llc.tags.shape[0], np.int64),
        np.zeros((ncpu, cfg.num_nodes, max([1] + [n.remote_trackers for n in cfg.nodes])),
                 np.int64),
        np.array([n.remote_trackers for n in cfg.nodes], np.int64),
        np.zeros(FT_N, np.int64), np.zeros(cfg.num_nodes, np.int64),
        *kf_arrays(cfg.num_nodes, ncpu, T),
        np.zeros((ncpu, MP_RECENT_LINES + 1), np.int64), np.zeros(ncpu, np.int64),
        np.zeros((ncpu, MP_PF_LINES + 1), np.int64), np.zeros(ncpu, np.int64),
    )))
