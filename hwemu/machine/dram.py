"""Memory controllers: channels, ranks, banks, row buffers and DDR timing, with queueing.

State is a set of busy-until times (picoseconds) per bank and per channel data bus. A request
that reaches the controller of its node at time ``t``:

1. maps its node-local line address to (channel, rank, bank, row): ``interleave`` bytes go to
   one channel, then another; within a channel, rows are striped across the banks of all
   ranks; channel and bank choices are rotated by a hash of the higher address bits (as
   controllers hash to spread strided streams and row conflicts), see ``map_line``;
2. waits until the bank can take a command (``bank_ready``) and, if the rank is refreshing
   (every ``tREFI`` for ``tRFC``, ranks staggered), until the refresh ends; a refresh
   precharges the bank, closing its row;
3. row hit: the column command issues at once. Closed bank: ACT, then ``tRCD``. Row conflict:
   PRE no earlier than ``tRAS`` after the last ACT and ``tWR`` after the last write data, then
   ``tRP``, ACT, ``tRCD``;
4. data appears ``tCL`` (``tCWL`` for a write) after the column command and needs the channel
   bus for ``tBURST``. The bus is a calendar of burst slots (``tBURST`` each): the transfer
   takes the first free slot at or after the earliest possible time, so a request to an idle
   bank can use a gap left before a transfer booked later (as a controller that reorders
   across banks does), and the column command is delayed to fit its slot;
5. ``page_policy = "close"`` precharges right after the access (the next access pays ACT only).

Requests are served in the order the model presents them (first come, first served per bank on
a busy-until timeline). Latency therefore rises with load because requests find banks and
buses busy and wait: no latency table is involved.

Counters per node (``cnt`` columns): reads, writes, row hits, row empty (closed), row
conflicts, total wait (ps) before the column command beyond the unloaded case.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# columns of the per-node parameter array
DP_CH, DP_RANKS, DP_BANKS, DP_ROW_LINES, DP_IL_LINES = 0, 1, 2, 3, 4
DP_TCL, DP_TCWL, DP_TRCD, DP_TRP, DP_TRAS, DP_TBURST, DP_TWR, DP_TREFI, DP_TRFC = 5, 6, 7, 8, 9, 10, 11, 12, 13
DP_CLOSE, DP_MC_LAT, DP_BANK_BASE, DP_CHAN_BASE = 14, 15, 16, 17
DP_N = 18

# counter columns
DC_READS, DC_WRITES, DC_ROW_HIT, DC_ROW_EMPTY, DC_ROW_CONFLICT, DC_WAIT_PS = 0, 1, 2, 3, 4, 5
DC_N = 6
BUS_SLOTS = 1 << 14   # calendar horizon: 16384 bursts (~49 us at 3 ns) per channel
DC_NAMES = ("reads", "writes", "row_hits", "row_empty", "row_conflicts", "bank_wait")


def dram_params(nodes) -> np.ndarray:
    """The per-node parameter array from NodeConfig objects; also assigns bank/channel bases."""
    p = np.zeros((len(nodes), DP_N), np.int64)
    bank_base = chan_base = 0
    for n in nodes:
        d = n.dram
        p[n.id] = 0
        p[n.id, DP_CH] = d.channels
        p[n.id, DP_RANKS] = d.ranks
        p[n.id, DP_BANKS] = d.banks
        p[n.id, DP_ROW_LINES] = d.row_bytes // 64
        p[n.id, DP_IL_LINES] = d.interleave_bytes // 64
        p[n.id, DP_TCL] = d.tCL_ps
        p[n.id, DP_TCWL] = d.tCWL_ps
        p[n.id, DP_TRCD] = d.tRCD_ps
        p[n.id, DP_TRP] = d.tRP_ps
        p[n.id, DP_TRAS] = d.tRAS_ps
        p[n.id, DP_TBURST] = d.tBURST_ps
        p[n.id, DP_TWR] = d.tWR_ps
        p[n.id, DP_TREFI] = d.tREFI_ps
        p[n.id, DP_TRFC] = d.tRFC_ps
        p[n.id, DP_CLOSE] = 1 if d.page_policy == "close" else 0
        p[n.id, DP_MC_LAT] = d.mc_latency_ps
        p[n.id, DP_BANK_BASE] = bank_base
        p[n.id, DP_CHAN_BASE] = chan_base
        bank_base += d.channels * d.ranks * d.banks
        chan_base += d.channels
    return p


def dram_state(p: np.ndarray):
    """Fresh state arrays: (bank_row, bank_ready, bank_act, bank_wr_end, bank_last, chan_bus, cnt)."""
    nb = int((p[:, DP_CH] * p[:, DP_RANKS] * p[:, DP_BANKS]).sum())
    nc = int(p[:, DP_CH].sum())
    bank_row = np.full(nb, -1, np.int64)
    bank_ready = np.zeros(nb, np.int64)
    bank_act = np.full(nb, -(1 << 40), np.int64)
    bank_wr_end = np.full(nb, -(1 << 40), np.int64)
    bank_last = np.full(nb, -(1 << 40), np.int64)
    chan_bus = np.full((nc, BUS_SLOTS), -1, np.int64)
    cnt = np.zeros((p.shape[0], DC_N), np.int64)
    return bank_row, bank_ready, bank_act, bank_wr_end, bank_last, chan_bus, cnt


@njit(cache=True, inline="always")
def _mix(x):
    """A cheap 64-bit hash (splitmix64 finaliser) used for address-bit XOR mapping."""
    z = np.uint64(x) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(31))
    return np.int64(z >> np.uint64(1))


@njit(cache=True, inline="always")
def map_line(p, node, line):
    """(channel, rank, bank-in-rank, row) of a node-local line number.

    Channel: ``interleave``-byte chunks rotate over the channels, the rotation offset hashed
    from the higher address bits (a bijection within each group of ``channels`` chunks).
    Bank: row-sized stripes of a channel rotate over all banks of all ranks, XOR/rotation-hashed
    with the row number. Both spread regularly strided streams as real controllers' hashes do.
    """
    nch = p[node, DP_CH]
    il = p[node, DP_IL_LINES]
    chunk = line // il
    grp = chunk // nch
    ch = (chunk + _mix(grp)) % nch
    lc = grp * il + line % il                     # line index within the channel
    rl = p[node, DP_ROW_LINES]
    nbk = p[node, DP_RANKS] * p[node, DP_BANKS]
    stripe = lc // rl                             # which row-sized stripe
    row = stripe // nbk
    b = (stripe + _mix(row + 0x5bd1e995)) % nbk
    rank = b // p[node, DP_BANKS]
    bank = b % p[node, DP_BANKS]
    return ch, rank, bank, row


@njit(cache=True, inline="always")
def _refresh_window(t, off, trefi, trfc):
    """Start of the latest refresh window at or before t (rank refreshes at off + k*tREFI)."""
    x = t - off
    if x < 0:
        return np.int64(-(1 << 40))
    return t - x % trefi


@njit(cache=True)
def dram_access(p, node, line, t, is_write,
                bank_row, bank_ready, bank_act, bank_wr_end, bank_last, chan_bus, cnt):
    """Serve one 64-byte read or write of node-local ``line`` arriving at the controller at
    ``t``. Returns the time the last data beat has crossed the channel bus."""
    ch, rank, bank, row = map_line(p, node, line)
    nbanks = p[node, DP_BANKS]
    gb = p[node, DP_BANK_BASE] + (ch * p[node, DP_RANKS] + rank) * nbanks + bank
    gc = p[node, DP_CHAN_BASE] + ch
    trefi = p[node, DP_TREFI]
    trfc = p[node, DP_TRFC]
    off = (rank * trefi) // p[node, DP_RANKS] + (ch * trefi) // (p[node, DP_RANKS] * p[node, DP_CH] + 1)

    tcmd = t if t > bank_ready[gb] else bank_ready[gb]
    # refresh: a command may not issue inside a refresh window of its rank
    ws = _refresh_window(tcmd, off, trefi, trfc)
    if tcmd < ws + trfc:
        tcmd = ws + trfc
    # a refresh since the bank's last access precharged it
    open_row = bank_row[gb]
    if bank_last[gb] < ws:
        open_row = -1

    trcd = p[node, DP_TRCD]
    if open_row == row:
        tcol = tcmd
        tact = bank_act[gb]
        cnt[node, DC_ROW_HIT] += 1
        unloaded = 0
    elif open_row < 0:
        tact = tcmd
        tcol = tact + trcd
        cnt[node, DC_ROW_EMPTY] += 1
        unloaded = trcd
    else:
        tpre = tcmd
        if bank_act[gb] + p[node, DP_TRAS] > tpre:
            tpre = bank_act[gb] + p[node, DP_TRAS]
        if bank_wr_end[gb] + p[node, DP_TWR] > tpre:
            tpre = bank_wr_end[gb] + p[node, DP_TWR]
        tact = tpre + p[node, DP_TRP]
        tcol = tact + trcd
        cnt[node, DC_ROW_CONFLICT] += 1
        unloaded = p[node, DP_TRP] + trcd
    lat = p[node, DP_TCWL] if is_write else p[node, DP_TCL]
    tburst = p[node, DP_TBURST]
    # the data bus is a calendar of burst slots: take the first free one at or after tcol+lat
    nslot = chan_bus.shape[1]
    slot = (tcol + lat + tburst - 1) // tburst
    while chan_bus[gc, slot % nslot] == slot:
        slot += 1
    chan_bus[gc, slot % nslot] = slot
    tdata = slot * tburst
    tcol = tdata - lat
    tend = tdata + tburst
    cnt[node, DC_WAIT_PS] += (tcol - t) - unloaded
    if is_write:
        cnt[node, DC_WRITES] += 1
        bank_wr_end[gb] = tend
    else:
        cnt[node, DC_READS] += 1
    bank_last[gb] = tcol
    if p[node, DP_CLOSE] != 0:
        # precharge as soon as allowed; the next access finds the bank closed
        tpre = tcol + tburst
        if tact + p[node, DP_TRAS] > tpre:
            tpre = tact + p[node, DP_TRAS]
        if is_write and tend + p[node, DP_TWR] > tpre:
            tpre = tend + p[node, DP_TWR]
        bank_row[gb] = -1
        bank_ready[gb] = tpre + p[node, DP_TRP]
    else:
        bank_row[gb] = row
        bank_act[gb] = tact
        bank_ready[gb] = tcol + tburst
    return tend
