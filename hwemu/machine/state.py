"""The numpy state of a modelled machine, gathered in one named tuple for the compiled code.

:func:`build_state` turns a :class:`~hwemu.machine.config.MachineConfig` into the arrays every
component works on. Field groups (see the component modules for their meaning):

- ``cfg`` scalar parameters (indices ``C_*`` in hierarchy.py), ``rng`` (xorshift seed),
  ``ctr`` (replacement clock);
- caches ``l1i_*``, ``l1d_*``, ``l2_*`` (one instance per CPU), ``llc_*`` (one per socket,
  with ``llc_cv`` core-valid masks);
- TLBs ``itlb_*``, ``dtlb4_*``, ``dtlb2_*``, ``stlb_*`` (tags, stamps, PTE values);
- DRAM ``dram_p`` (per-node parameters), bank/channel busy-until state, ``dram_cnt``;
- links ``route_*``, ``chan_*`` (per directed channel latency, ps/byte, header, busy, bytes);
- nodes ``node_socket``, ``socket_node``, ``node_base``, ``node_size`` (physical layout);
- threads ``th_*`` (clock, CPU, process, instruction count, fill-buffer state, cursors;
  ``th_wait``: time the OS made the thread's next access wait, e.g. on a page under
  migration, added to that access's latency when it completes);
- statistics ``hist``, ``served``, ``faults``, ``ccnt``;
- L2 superqueue and stream prefetcher ``sq_done`` (per CPU: completion time of each entry),
  ``pf_tab`` (per CPU stream table), ``l2_rdy``/``l2_pf`` (per L2 way: data-arrival time and
  not-yet-used flag of a prefetched line), ``llc_rdy`` (per LLC way: data-arrival time of a
  line an LLC prefetch is still fetching).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from hwemu.machine import hierarchy as H
from hwemu.machine.cache import POLICY_CODES, cache_arrays
from hwemu.machine.config import MachineConfig
from hwemu.machine.core import FAULT_KINDS, HIST_BINS, MAX_LFB
from hwemu.machine.dram import dram_params, dram_state
from hwemu.machine.interconnect import build_routes, link_arrays, link_calendar
from hwemu.machine.tlb import tlb_arrays

NODE_ALIGN = 1 << 30

FIELDS = (
    "cfg", "rng", "ctr",
    "l1i_t", "l1i_s", "l1i_st", "l1d_t", "l1d_s", "l1d_st", "l2_t", "l2_s", "l2_st",
    "llc_t", "llc_s", "llc_st", "llc_cv",
    "itlb_t", "itlb_s", "itlb_v", "dtlb4_t", "dtlb4_s", "dtlb4_v",
    "dtlb2_t", "dtlb2_s", "dtlb2_v", "stlb_t", "stlb_s", "stlb_v",
    "dram_p", "bank_row", "bank_ready", "bank_act", "bank_wr_end", "bank_last", "chan_bus",
    "dram_x", "dram_cnt",
    "route_next", "route_chan", "chan_lat", "chan_ppb", "chan_hdr", "chan_busy", "chan_bytes",
    "node_socket", "socket_node", "node_base", "node_size",
    "th_clock", "th_cpu", "th_pid", "th_insts", "th_lfb", "th_dep", "th_odone", "th_oinst",
    "th_pend", "th_pte", "th_txd", "th_wait", "th_pos", "th_end", "th_acc", "th_lat_sum",
    "hist", "served", "faults", "ccnt",
    "sq_done", "pf_tab", "l2_rdy", "l2_pf", "llc_rdy",
)
State = namedtuple("State", FIELDS)


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
    c = np.zeros(H.C_N, np.int64)
    c[H.C_CPS] = cfg.cores_per_socket
    c[H.C_SOCKETS] = cfg.sockets
    c[H.C_NNODES] = cfg.num_nodes
    c[H.C_L1I_LAT] = cfg.cycles_ps(cfg.l1i.latency_cycles)
    c[H.C_L1D_LAT] = cfg.cycles_ps(cfg.l1d.latency_cycles)
    c[H.C_L2_LAT] = cfg.cycles_ps(cfg.l2.latency_cycles)
    c[H.C_LLC_LAT] = cfg.cycles_ps(cfg.llc.latency_cycles)
    c[H.C_L1I_SETS] = cfg.l1i.sets
    c[H.C_L1D_SETS] = cfg.l1d.sets
    c[H.C_L2_SETS] = cfg.l2.sets
    c[H.C_LLC_SETS] = cfg.llc.sets
    c[H.C_L1I_POL] = POLICY_CODES[cfg.l1i.policy]
    c[H.C_L1D_POL] = POLICY_CODES[cfg.l1d.policy]
    c[H.C_L2_POL] = POLICY_CODES[cfg.l2.policy]
    c[H.C_LLC_POL] = POLICY_CODES[cfg.llc.policy]
    tlb = cfg.tlb
    c[H.C_ITLB_SETS] = tlb["l1i"][0] // tlb["l1i"][1]
    c[H.C_DTLB4_SETS] = tlb["l1d_4k"][0] // tlb["l1d_4k"][1]
    c[H.C_DTLB2_SETS] = tlb["l1d_2m"][0] // tlb["l1d_2m"][1]
    c[H.C_STLB_SETS] = tlb["stlb"][0] // tlb["stlb"][1]
    c[H.C_STLB_LAT] = cfg.cycles_ps(tlb["stlb_latency_cycles"])
    c[H.C_WALK] = tlb["page_walk_ps"]
    c[H.C_SNOOP] = cfg.core_snoop_ps
    c[H.C_MESH] = cfg.mesh_latency_ps
    c[H.C_FAULT] = cfg.fault_cost_ps
    c[H.C_PPI] = max(1, int(round(cfg.base_cpi * cfg.period_ps)))
    c[H.C_ROB] = cfg.rob
    c[H.C_SQ] = cfg.superqueue
    c[H.C_PF_ON] = 1 if cfg.prefetch.enable else 0
    c[H.C_PF_STREAMS] = cfg.prefetch.streams
    c[H.C_PF_DIST] = cfg.prefetch.distance
    c[H.C_PF_DEG] = cfg.prefetch.degree

    l1i = cache_arrays(ncpu, cfg.l1i.sets, cfg.l1i.ways)
    l1d = cache_arrays(ncpu, cfg.l1d.sets, cfg.l1d.ways)
    l2 = cache_arrays(ncpu, cfg.l2.sets, cfg.l2.ways)
    llc = cache_arrays(cfg.sockets, cfg.llc.sets, cfg.llc.ways)
    llc_cv = np.zeros(llc[0].shape, np.uint64)
    itlb = tlb_arrays(ncpu, c[H.C_ITLB_SETS], tlb["l1i"][1])
    dtlb4 = tlb_arrays(ncpu, c[H.C_DTLB4_SETS], tlb["l1d_4k"][1])
    dtlb2 = tlb_arrays(ncpu, c[H.C_DTLB2_SETS], tlb["l1d_2m"][1])
    stlb = tlb_arrays(ncpu, c[H.C_STLB_SETS], tlb["stlb"][1])
    dp = dram_params(cfg.nodes)
    dst = dram_state(dp)
    route_next, route_chan = build_routes(cfg.num_nodes, cfg.links)
    chan_lat, chan_ppb, chan_hdr = link_arrays(cfg.links)
    node_socket = np.array([n.socket for n in cfg.nodes], np.int64)
    socket_node = np.array([cfg.socket_node(s) for s in range(cfg.sockets)], np.int64)
    node_base, node_size = node_layout(cfg)
    T = max(1, int(threads))
    # Fibonacci hashing of the seed, modulo 2**64 (Python ints: no numpy overflow warning).
    rng = np.array([((int(seed) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) | 1], np.uint64)
    return State(
        c, rng, np.zeros(1, np.int64),
        *l1i, *l1d, *l2, *llc, llc_cv,
        *itlb, *dtlb4, *dtlb2, *stlb,
        dp, *dst,
        route_next, route_chan, chan_lat, chan_ppb, chan_hdr,
        link_calendar(cfg.links), np.zeros(chan_lat.shape, np.int64),
        node_socket, socket_node, node_base, node_size,
        np.zeros(T, np.int64), np.arange(T, dtype=np.int64) % ncpu, np.zeros(T, np.int64),
        np.zeros(T, np.int64), np.full(T, cfg.lfb, np.int64), np.zeros(T, np.uint8),
        np.zeros((T, MAX_LFB), np.int64), np.zeros((T, MAX_LFB), np.int64),
        np.zeros(T, np.uint8), np.zeros(T, np.int64), np.zeros(T, np.int64), np.zeros(T, np.int64),
        np.zeros(T, np.int64), np.zeros(T, np.int64),
        np.zeros(T, np.int64), np.zeros(T, np.int64),
        np.zeros(HIST_BINS, np.int64), np.zeros((cfg.sockets, H.W_N), np.int64),
        np.zeros((T, len(FAULT_KINDS)), np.int64), np.zeros((ncpu, H.K_N), np.int64),
        np.zeros((ncpu, H.MAX_SQ), np.int64), H.stream_table(ncpu, cfg.prefetch.streams),
        np.zeros(l2[0].shape, np.int64), np.zeros(l2[0].shape, np.uint8),
        np.zeros(llc[0].shape, np.int64),
    )
