"""Memory controllers: channels, ranks, bank groups, banks, row buffers and DDR timing, with
read scheduling (FR-FCFS), a write queue drained between watermarks, and queueing.

The controller is an *issue-time* model: a request is scheduled completely when it reaches the
controller (the core needs its completion time then), against state that records what earlier
requests have booked: busy-until times per bank, calendars of data-bus slots per channel, and
short histories of ACT and column commands per rank and bank group. A request that reaches the
controller of its node at time ``t``:

1. maps its node-local line address to (channel, rank, bank, row): ``interleave`` bytes go to
   one channel, then another; within a channel, rows are striped across the banks of all
   ranks; channel and bank choices are rotated by a hash of the higher address bits (as
   controllers hash to spread strided streams and row conflicts), see ``map_line``. Bank ``b``
   of a rank is in bank group ``b mod bank_groups``;
2. waits until the bank can take a command (``bank_ready``) and, if the rank is refreshing
   (every ``tREFI`` for ``tRFC``, ranks staggered), until the refresh ends; a refresh
   precharges the bank, closing its row;
3. row hit: the column command issues at once. Closed bank: ACT, then ``tRCD``. Row conflict:
   PRE no earlier than ``tRAS`` after the last ACT, ``tRTP`` after the last column command and
   ``tWR`` after the last write data, then ``tRP``, ACT, ``tRCD``. An ACT also respects the
   other ACTs of its rank: ``tRRD_S`` apart (``tRRD_L`` within a bank group) and at most four
   in any ``tFAW`` window;
4. a read's column command is not placed between a write's column command and ``tWTR_S``
   (``tWTR_L`` in the same bank group) after the end of its data, on the same rank (writes
   close together form one window); column commands of one bank group are ``tCCD_L`` apart (across
   groups ``tCCD_S`` = ``tBURST``, which the bus slots enforce);
5. data appears ``tCL`` (``tCWL`` for a write) after the column command and needs the channel
   bus for ``tBURST``. The bus is a calendar of burst slots (``tBURST`` each): the transfer
   takes the first free slot at or after the earliest possible time, so a request to an idle
   bank can use a gap left before a transfer booked later (as a controller that reorders
   across banks does), and the column command is delayed to fit its slot;
6. ``page_policy = "close"`` precharges right after the access (the next access pays ACT only).

Scheduling (``scheduler = "frfcfs"``): requests to one bank are served in arrival order, except
that a row hit to the row that a booked row switch is about to close is served first if it fits
before that precharge (first ready). It never delays what was booked before it: in an issue-time
model a booked request's completion is already known. ``"fcfs"`` turns this off.

Writes (``write_queue > 0``): a write is posted into its channel's write queue (it is complete
for the requester when accepted) and is never issued on arrival. A write reaches the controller
stamped with the completion of the fill that evicted its line, ahead of reads other cores have
yet to send, so an idle channel at its arrival says nothing about the reads around it. Queued
writes are issued in two ways:

- *in idle gaps*: a read that finds the channel without reads in flight since the end of its
  latest read (and since the queue's latest write arrived) issues as many queued writes into
  that gap as fit before it (their bursts, ``tCWL`` and ``tWTR_L``), row hits first;
- *by watermark drains*: when the queue reaches the high watermark a drain becomes due at that
  write's arrival; it is booked when the first read stamped at or after that time arrives, so
  that reads stamped earlier (seen later) are booked before it, and issues writes (row hits
  first, then oldest) down to the low watermark. Their bursts take the bus and the following
  reads of the rank pay the write-to-read turnaround, so reads are blocked during the drain.
  Writebacks beyond a full queue wait in the caches' writeback buffers (back-pressure); only
  when twice ``write_queue`` writes are waiting is the drain booked at once.

A read that finds its line in the write queue is served from it (forwarded). With
``write_queue = 0`` a write is scheduled on arrival like a read and its completion is returned.

Latency therefore rises with load because requests find banks, buses and queues busy and wait:
no latency table is involved.

Counters per node (``cnt`` columns, names in ``DC_NAMES`` of :mod:`hwemu.machine.layout`):
reads, writes, row hits, row empty (closed), row conflicts, total wait (ps) before the column
command beyond the unloaded case, row hits served ahead of a booked row switch, writes issued by
watermark drains, writes issued in idle gaps before a read, reads forwarded from the write queue.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hwemu.machine import layout
from hwemu.machine.params import DRAM_PARAMS
from hwemu.machine.stateref import prefetch
from hwemu.machine.times import LONG_AGO, NEVER
from hwemu.machine.layout import (DC_HIT_FIRST, DC_N, DC_READS, DC_ROW_CONFLICT, DC_ROW_EMPTY,
                                  DC_ROW_HIT, DC_WAIT_PS, DC_WQ_DRAINED, DC_WQ_FWD, DC_WQ_IDLE,
                                  DC_WRITES, DP_BANKS, DP_BANKS_SH, DP_BANK_BASE, DP_BG,
                                  DP_BG_BASE, DP_BG_SH, DP_BLEN, DP_BUNIT, DP_CH, DP_CHAN_BASE,
                                  DP_CH_SH, DP_CLOSE, DP_FRFCFS, DP_IL_LINES, DP_IL_SH, DP_N,
                                  DP_NBK_SH, DP_RANKS, DP_RANK_BASE, DP_RL_SH, DP_ROW_LINES,
                                  DP_RTRS, DP_RTW, DP_TBURST, DP_TCCDL, DP_TCL, DP_TCMD, DP_TCWL,
                                  DP_TFAW, DP_TRAS, DP_TRCD, DP_TREFI, DP_TRFC, DP_TRP, DP_TRRDL,
                                  DP_TRRDS, DP_TRTP, DP_TWR, DP_TWTRL, DP_TWTRS, DP_WQ, DP_WQ_HI,
                                  DP_WQ_LO, DP_X_BANK, DP_X_BG, DP_X_CH, DP_X_RANK)

BUS_UNITS = 1 << 16   # calendar horizon in bus units: 16384 bursts (~49 us at 3 ns) per channel
BUS_MASK = BUS_UNITS - 1   # a unit's calendar entry: u mod BUS_UNITS (a mask: no division)
BUS_TAG = 256         # a calendar entry is unit * BUS_TAG + rank + 1 (+ BUS_WRITE for a write)
BUS_WRITE = 64        # ... with BUS_CMD added when a command holds the command bus in that unit
BUS_CMD = 128

# layout of the auxiliary state array ``x`` (one flat int64 array, sections per node)
NACT = 8              # ACT history per rank (tRRD, tFAW); any order of arrival
NCOL = 8              # column-command history per bank group (tCCD_L)
XB = 3                # per bank: row a booked switch will close, its PRE time, next column time
XB_PROW, XB_PPRE, XB_PREADY = 0, 1, 2
XR = 2 * NACT + 4     # per rank: ACT times, their bank groups, next index, write window (2 words)
XR_IDX, XR_WS = 2 * NACT, 2 * NACT + 1
XR_REFOFF = 2 * NACT + 3   # ... and its refresh offset (ranks and channels staggered, dram_state)
XG = NCOL + 3         # per bank group: column times, next index, write window
XG_IDX, XG_WS = NCOL, NCOL + 1
# per channel: queued writes, read-busy-until, latest write arrival, when a drain is due
# (NEVER: none), SEEN_WORDS words of a filter of the queued lines (a bit per hash of 8 bits);
# then the queued lines, then their (bank, row) keys, WQ_STORE * write_queue words each
XC_N, XC_RD, XC_WT, XC_DUE = 0, 1, 2, 3
XC_SEEN, SEEN_WORDS = 4, 4
XC_HDR = XC_SEEN + SEEN_WORDS
# A channel's queue holds up to WQ_STORE * write_queue writes: the controller's write queue and,
# beyond it, writebacks held back in the caches' writeback buffers by its back-pressure (the
# drain that a full queue forces is booked at once, see dram_access)
WQ_STORE = 2
WQ_WORDS = 2 * WQ_STORE   # words per write-queue entry of the channel (line and key)
# typed, not literal, booleans: numba compiles a callee once per literal value
_T, _F = np.bool_(True), np.bool_(False)
IDLE_DRAIN_PS = 2_000_000   # idle-time drains are placed at most 2 us back (well inside BUS_UNITS)


# the [dram] parameters whose value is copied into their column of the row as it is
_COLUMN_PARAMS = tuple((column, p.attribute)
                       for column, p in layout.declared_columns(DRAM_PARAMS, "DP_"))


def write_watermarks(d) -> tuple[int, int]:
    """The write-queue watermarks in entries from the fractions ``write_high`` and
    ``write_low`` (1 <= low < high <= write_queue; (0, 0) without a write queue)."""
    n = d.write_queue
    if n <= 0:
        return 0, 0
    h = max(1, min(n, round(d.write_high * n)))
    return h, min(h - 1, round(d.write_low * n))


def _log2_exact(v: int) -> int:
    """log2 of ``v`` if it is a power of two, else -1."""
    return v.bit_length() - 1 if v > 0 and v & (v - 1) == 0 else -1


def dram_params(nodes) -> np.ndarray:
    """The per-node parameter array from NodeConfig objects: the columns the ``[dram]``
    parameters declare (:mod:`hwemu.machine.layout`), then the ones computed here, which also
    assign bank/channel bases and the sections of the auxiliary state array."""
    p = np.zeros((len(nodes), DP_N), np.int64)
    bank_base = chan_base = rank_base = bg_base = 0
    for n in nodes:
        d = n.dram
        row = p[n.id]
        for column, attribute in _COLUMN_PARAMS:
            row[column] = getattr(d, attribute)
        row[DP_ROW_LINES] = d.row_bytes // 64
        row[DP_IL_LINES] = d.interleave_bytes // 64
        row[DP_CLOSE] = 1 if d.page_policy == "close" else 0
        row[DP_FRFCFS] = 1 if d.scheduler == "frfcfs" else 0
        row[DP_WQ_HI], row[DP_WQ_LO] = write_watermarks(d)
        row[DP_BANK_BASE] = bank_base
        row[DP_CHAN_BASE] = chan_base
        row[DP_RANK_BASE] = rank_base
        row[DP_BG_BASE] = bg_base
        # the bus calendar counts in burst slots; with a rank-switch or read-to-write gap it
        # counts in quarter bursts (one tCK of a BL8 burst) when tBURST allows, so that the gap
        # can be 1-3 tCK
        fine = d.tRTRS_ps > 0 or d.tRPRE_ps > 0 or d.tCMD_ps > 0
        blen = 4 if fine and d.tBURST_ps % 4 == 0 else 1
        unit = d.tBURST_ps // blen
        row[DP_BUNIT] = unit
        row[DP_BLEN] = blen
        row[DP_RTRS] = -(-d.tRTRS_ps // unit)
        row[DP_RTW] = -(-(d.tRTRS_ps + d.tRPRE_ps) // unit)
        row[DP_TCMD] = unit if d.tCMD_ps > 0 else 0     # one command per calendar unit
        for column, v in ((DP_IL_SH, row[DP_IL_LINES]), (DP_CH_SH, d.channels),
                          (DP_RL_SH, row[DP_ROW_LINES]), (DP_NBK_SH, d.ranks * d.banks),
                          (DP_BANKS_SH, d.banks), (DP_BG_SH, d.bank_groups)):
            row[column] = _log2_exact(int(v))
        bank_base += d.channels * d.ranks * d.banks
        chan_base += d.channels
        rank_base += d.channels * d.ranks
        bg_base += d.channels * d.ranks * d.bank_groups
    # sections of x: all banks, then all ranks, then all bank groups, then channels by node
    off = bank_base * XB
    p[:, DP_X_BANK] = 0
    p[:, DP_X_RANK] = off
    off += rank_base * XR
    p[:, DP_X_BG] = off
    off += bg_base * XG
    for n in nodes:
        p[n.id, DP_X_CH] = off
        off += n.dram.channels * channel_words(n.dram.write_queue)
    return p


@njit(cache=True, inline="always")
def channel_words(wq):
    """Words of a channel's section of ``x`` with a write queue of ``wq`` entries."""
    return XC_HDR + WQ_WORDS * wq


def queued_writes(p: np.ndarray, x: np.ndarray, node: int) -> int:
    """Writes accepted by ``node``'s controller and not issued yet (all its channels)."""
    words = channel_words(int(p[node, DP_WQ]))
    return sum(int(x[int(p[node, DP_X_CH]) + ch * words + XC_N]) for ch in range(int(p[node, DP_CH])))


def _x_size(p: np.ndarray) -> int:
    nid = int(np.argmax(p[:, DP_X_CH]))
    return int(p[nid, DP_X_CH] + p[nid, DP_CH] * channel_words(int(p[nid, DP_WQ])))


def dram_state(p: np.ndarray):
    """Fresh state arrays: (bank_row, bank_ready, bank_act, bank_wr_end, bank_last, chan_bus, x,
    cnt); ``x`` holds the scheduler's histories and write queues (layout: ``XB``, ``XR``, ...)."""
    nb = int((p[:, DP_CH] * p[:, DP_RANKS] * p[:, DP_BANKS]).sum())
    nc = int(p[:, DP_CH].sum())
    bank_row = np.full(nb, -1, np.int64)
    bank_ready = np.zeros(nb, np.int64)
    bank_act = np.full(nb, LONG_AGO, np.int64)
    bank_wr_end = np.full(nb, LONG_AGO, np.int64)
    bank_last = np.full(nb, LONG_AGO, np.int64)
    chan_bus = np.full((nc, BUS_UNITS), -1, np.int64)
    x = np.full(_x_size(p), LONG_AGO, np.int64)
    x[0:nb * XB:XB] = -1                                   # no row awaits a switch
    nr = int((p[:, DP_CH] * p[:, DP_RANKS]).sum())
    r0 = int(p[0, DP_X_RANK])
    for r in range(nr):
        x[r0 + r * XR + NACT:r0 + r * XR + 2 * NACT] = -1  # bank group of the ACT
        x[r0 + r * XR + XR_IDX] = 0
    for n in range(p.shape[0]):
        # refreshes of the ranks of a node are staggered over tREFI, channels offset a little
        trefi, ranks, nch = int(p[n, DP_TREFI]), int(p[n, DP_RANKS]), int(p[n, DP_CH])
        for c in range(nch):
            for r in range(ranks):
                g = int(p[n, DP_RANK_BASE]) + c * ranks + r
                x[r0 + g * XR + XR_REFOFF] = ((r * trefi) // ranks
                                              + (c * trefi) // (ranks * nch + 1))
    ng = int((p[:, DP_CH] * p[:, DP_RANKS] * p[:, DP_BG]).sum())
    g0 = int(p[0, DP_X_BG])
    for g in range(ng):
        x[g0 + g * XG + XG_IDX] = 0
    for n in range(p.shape[0]):
        for c in range(int(p[n, DP_CH])):
            b = int(p[n, DP_X_CH] + c * channel_words(int(p[n, DP_WQ])))
            x[b + XC_N] = 0
            x[b + XC_SEEN:b + XC_SEEN + SEEN_WORDS] = 0
            x[b + XC_DUE] = NEVER
    cnt = np.zeros((p.shape[0], DC_N), np.int64)
    return bank_row, bank_ready, bank_act, bank_wr_end, bank_last, chan_bus, x, cnt


@njit(cache=True, inline="always")
def _mix(x):
    """A cheap 64-bit hash (splitmix64 finaliser) used for address-bit XOR mapping."""
    z = np.uint64(x) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(31))
    return np.int64(z >> np.uint64(1))


@njit(cache=True, inline="always")
def _div(x, d, sh):
    """``x // d``, a shift when ``d`` is ``2 ** sh`` (``sh`` >= 0; floor semantics either way)."""
    return x >> sh if sh >= 0 else x // d


@njit(cache=True, inline="always")
def _mod(x, d, sh):
    """``x % d``, a mask when ``d`` is ``2 ** sh`` (``sh`` >= 0; floor semantics either way)."""
    return x & (d - 1) if sh >= 0 else x % d


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
    ilsh = p[node, DP_IL_SH]
    chsh = p[node, DP_CH_SH]
    chunk = _div(line, il, ilsh)
    grp = _div(chunk, nch, chsh)
    ch = _mod(chunk + _mix(grp), nch, chsh)
    lc = grp * il + _mod(line, il, ilsh)          # line index within the channel
    nbk = p[node, DP_RANKS] * p[node, DP_BANKS]
    nbksh = p[node, DP_NBK_SH]
    stripe = _div(lc, p[node, DP_ROW_LINES], p[node, DP_RL_SH])   # which row-sized stripe
    row = _div(stripe, nbk, nbksh)
    b = _mod(stripe + _mix(row + 0x5bd1e995), nbk, nbksh)
    rank = _div(b, p[node, DP_BANKS], p[node, DP_BANKS_SH])
    bank = _mod(b, p[node, DP_BANKS], p[node, DP_BANKS_SH])
    return ch, rank, bank, row


@njit(cache=True, inline="always")
def _refresh_window(t, off, trefi, trfc):
    """Start of the latest refresh window at or before t (rank refreshes at off + k*tREFI)."""
    x = t - off
    if x < 0:
        return np.int64(LONG_AGO)
    return t - x % trefi


@njit(cache=True, _nrt=False)
def _act_time(p, node, x, xr, bg, te):
    """Earliest ACT at or after ``te`` in rank history ``x[xr:]`` that keeps tRRD_S/tRRD_L to
    every recorded ACT of the rank and at most four ACTs in any tFAW window. The history may
    have been recorded out of time order; candidate times only move forward, so this ends."""
    rs = p[node, DP_TRRDS]
    rl = p[node, DP_TRRDL]
    faw = p[node, DP_TFAW]
    if rs == 0 and rl == 0 and faw == 0:
        return te
    # every recorded ACT at least the widest spacing before ``te`` (the usual case): none
    # constrains it, and the search below would return ``te`` unmoved
    newest = x[xr]
    for i in range(1, NACT):
        if x[xr + i] > newest:
            newest = x[xr + i]
    widest = rl if rl > rs else rs
    if faw > widest:
        widest = faw
    if newest <= te - widest:
        return te
    return _act_search(p, node, x, xr, bg, te)


@njit(cache=True, _nrt=False)
def _act_search(p, node, x, xr, bg, te):
    """:func:`_act_time`'s search of the rank's ACT history, without its early return."""
    rs = p[node, DP_TRRDS]
    rl = p[node, DP_TRRDL]
    faw = p[node, DP_TFAW]
    c = te
    for _ in range(4 * NACT):
        moved = False
        for i in range(NACT):
            a = x[xr + i]
            g = rl if x[xr + NACT + i] == bg else rs
            if a > c - g and a < c + g:
                c = a + g
                moved = True
        if faw > 0:
            # every window [s, s + tFAW) that contains c may hold at most 3 other ACTs
            for i in range(NACT):
                s = x[xr + i]
                if s <= c - faw or s > c:
                    continue
                k = 0
                for j in range(NACT):
                    if x[xr + j] >= s and x[xr + j] < s + faw:
                        k += 1
                if k >= 4:
                    c = s + faw
                    moved = True
            k = 0
            last = c
            for j in range(NACT):
                a = x[xr + j]
                if a >= c and a < c + faw:
                    k += 1
                    if a > last:
                        last = a
            if k >= 4:
                c = last + rs
                moved = True
        if not moved:
            break
    return c


@njit(cache=True, inline="always")
def _record(x, base, n, idx_off, t, extra_off, extra):
    """Insert t into a ring of n times at x[base:] (next index at x[base+idx_off])."""
    i = x[base + idx_off]
    x[base + i] = t
    if extra_off >= 0:
        x[base + extra_off + i] = extra
    x[base + idx_off] = (i + 1) % n


@njit(cache=True, inline="always")
def _write_window(x, w, tcol, tend, twtr):
    """Record a write (column ``tcol``, data end ``tend``) in the write window at x[w], x[w+1]:
    writes closer than the turnaround to the window merge into it, a later one starts anew."""
    if tcol > x[w + 1] + twtr:            # after the window (or none yet): a new window
        x[w] = tcol
        x[w + 1] = tend
    elif tend + twtr >= x[w]:             # overlaps or touches it: merge
        if tcol < x[w]:
            x[w] = tcol
        if tend > x[w + 1]:
            x[w + 1] = tend
    # else: well before the window (booked out of order); the later window is kept


@njit(cache=True, inline="always")
def _bus_rank(chan_bus, gc, u):
    """Rank (within the channel) whose burst holds bus unit u, or -1 if the unit is free; plus
    BUS_WRITE if that burst is a write."""
    v = chan_bus[gc, u & BUS_MASK]
    if v // BUS_TAG != u:
        return -1
    return v % BUS_CMD - 1


@njit(cache=True, _nrt=False, inline="always")
def _col_slot(p, node, x, xr, xg, chan_bus, gc, rank, tmin, lat, is_write):
    """First bus unit at which a burst of ``rank`` can start: its column command (start - lat)
    at or after ``tmin``, the burst's units free, ``tRTRS`` free units between it and a burst of
    another rank, ``tRPRE + tRTRS`` between a read burst of the rank and a write burst after it
    (the read-to-write turnaround), tCCD_L to the bank group's recorded column commands and,
    for a read, not inside a write window of the rank (bank group) or within tWTR_S (tWTR_L)
    after it: a read either goes before the writes or after their turnaround. Not booked."""
    unit = p[node, DP_BUNIT]
    blen = p[node, DP_BLEN]
    gap = p[node, DP_RTRS]
    rtw = p[node, DP_RTW]             # >= gap
    cmdbus = p[node, DP_TCMD] > 0
    tccdl = p[node, DP_TCCDL]
    tburst = unit * blen
    tccdl_b = (tccdl + tburst - 1) // tburst * tburst
    twtrs = p[node, DP_TWTRS]
    twtrl = p[node, DP_TWTRL]
    u = (tmin + lat + unit - 1) // unit
    lat_u = (-lat) // unit            # the calendar unit of time u * unit - lat is u + lat_u
    for _ in range(1 << 16):
        nxt = u
        for j in range(blen):
            if _bus_rank(chan_bus, gc, u + j) >= 0:
                nxt = u + j + 1
                break
        if nxt == u and rtw > 0:
            # before the burst: another rank's burst needs the rank switch, a read of this rank
            # before a write the read-to-write bubble; after it, the same for what follows
            for j in range(1, rtw + 1):
                r = _bus_rank(chan_bus, gc, u - j)
                if r < 0:
                    continue
                if (r % BUS_WRITE != rank and j <= gap) or (is_write and r == rank):
                    nxt = u - j + (gap if r % BUS_WRITE != rank else rtw) + 1
                    break
            if nxt == u:
                for j in range(rtw):
                    r = _bus_rank(chan_bus, gc, u + blen + j)
                    if r < 0:
                        continue
                    if (r % BUS_WRITE != rank and j < gap) or (not is_write and r == rank + BUS_WRITE):
                        nxt = u + j + 1
                        break
        if nxt != u:
            u = nxt
            continue
        tcol = u * unit - lat
        bump = LONG_AGO
        if cmdbus and _cmd_busy_unit(chan_bus, gc, u + lat_u):
            u += 1                        # the column command needs a free command slot
            continue
        if not is_write:
            if tcol >= x[xr + XR_WS] and tcol < x[xr + XR_WS + 1] + twtrs:
                bump = x[xr + XR_WS + 1] + twtrs
            if tcol >= x[xg + XG_WS] and tcol < x[xg + XG_WS + 1] + twtrl \
                    and x[xg + XG_WS + 1] + twtrl > bump:
                bump = x[xg + XG_WS + 1] + twtrl
        if tccdl > 0:
            # a bank group's bursts keep whole-burst spacing (tCCD_L rounded up to bursts), so
            # that the gap between them fits another group's burst, as a scheduler
            # interleaving bank groups would use it
            for i in range(NCOL):
                a = x[xg + i]
                if a > tcol - tccdl and a < tcol + tccdl and a + tccdl_b > bump:
                    bump = a + tccdl_b
        if bump == LONG_AGO:
            break
        u = (bump + lat + unit - 1) // unit
    return u


# The command bus shares the data bus's calendar: one command per calendar unit (one tCK with
# quarter-burst units), flagged with BUS_CMD in the entry of the unit it is issued in. A column
# command is tCL (tCWL) ahead of its data, so both are in the same stretch of the calendar.

@njit(cache=True, inline="always")
def _cmd_busy_unit(chan_bus, gc, u):
    """Whether a command already holds the command bus in calendar unit ``u``."""
    v = chan_bus[gc, u & BUS_MASK]
    return v // BUS_TAG == u and v % BUS_TAG >= BUS_CMD


@njit(cache=True, inline="always")
def _cmd_book(chan_bus, gc, t, unit):
    u = t // unit
    i = u & BUS_MASK
    v = chan_bus[gc, i]
    if v // BUS_TAG != u:
        chan_bus[gc, i] = u * BUS_TAG + BUS_CMD
    elif v % BUS_TAG < BUS_CMD:
        chan_bus[gc, i] = v + BUS_CMD


@njit(cache=True, _nrt=False)
def _cmd_slot(chan_bus, gc, t, unit):
    """Start of the first calendar unit at or after ``t`` whose command slot is free."""
    u = (t + unit - 1) // unit
    while _cmd_busy_unit(chan_bus, gc, u):
        u += 1
    return u * unit


@njit(cache=True, _nrt=False, inline="always")
def _act_cmd(p, node, x, xr, bg, te, chan_bus, gc, tcmd):
    """:func:`_act_time` on a free command-bus slot (``tcmd`` 0: no command bus)."""
    c = _act_time(p, node, x, xr, bg, te)
    if tcmd == 0:
        return c
    for _ in range(64):
        s = _cmd_slot(chan_bus, gc, c, tcmd)
        if s == c:
            break
        c = _act_time(p, node, x, xr, bg, s)
    return c


@njit(cache=True, inline="always")
def _book(chan_bus, gc, u, blen, rank, is_write):
    k = rank + 1 + (BUS_WRITE if is_write else 0)
    for j in range(blen):
        i = (u + j) & BUS_MASK
        v = chan_bus[gc, i]
        cmd = BUS_CMD if v // BUS_TAG == u + j and v % BUS_TAG >= BUS_CMD else 0
        chan_bus[gc, i] = (u + j) * BUS_TAG + cmd + k


@njit(cache=True, inline="always")
def _bank_index(p, node, ch, rank, bank):
    """Index of a bank among the banks of every node (the bank_* arrays)."""
    return p[node, DP_BANK_BASE] + (ch * p[node, DP_RANKS] + rank) * p[node, DP_BANKS] + bank


@njit(cache=True, inline="always")
def _bank_place(p, node, gb):
    """(channel, rank, bank) of :func:`_bank_index` ``gb`` of ``node``."""
    local = gb - p[node, DP_BANK_BASE]
    nbanks = p[node, DP_BANKS]
    bsh = p[node, DP_BANKS_SH]
    per_ch = p[node, DP_RANKS] * nbanks
    psh = p[node, DP_NBK_SH]
    return (_div(local, per_ch, psh), _div(_mod(local, per_ch, psh), nbanks, bsh),
            _mod(local, nbanks, bsh))


@njit(cache=True, _nrt=False)
def _serve_at(p, node, ch, rank, bank, row, t, is_write,
              bank_row, bank_ready, bank_act, bank_wr_end, bank_last, chan_bus, x, cnt):
    """Schedule one read or write arriving at the DRAM at ``t`` for a line that ``map_line``
    has placed at (ch, rank, bank, row); returns the time its last data beat has crossed the
    channel bus."""
    nbg = p[node, DP_BG]
    bg = _mod(bank, nbg, p[node, DP_BG_SH])
    grank = p[node, DP_RANK_BASE] + ch * p[node, DP_RANKS] + rank
    gb = _bank_index(p, node, ch, rank, bank)
    gc = p[node, DP_CHAN_BASE] + ch
    xb = p[node, DP_X_BANK] + gb * XB
    xr = p[node, DP_X_RANK] + grank * XR
    xg = p[node, DP_X_BG] + (grank * nbg + bg) * XG
    trefi = p[node, DP_TREFI]
    trfc = p[node, DP_TRFC]
    off = x[xr + XR_REFOFF]
    lat = p[node, DP_TCWL] if is_write else p[node, DP_TCL]
    tburst = p[node, DP_TBURST]
    unit = p[node, DP_BUNIT]
    tc = p[node, DP_TCMD]              # command-bus slot (0: not modelled)
    # Host-cache prefetch (no effect on results): the bus calendar is read at the first slot
    # after the column command; the calendar (0.5 MiB per channel) is out of the host's caches
    # by then. The earliest possible slot (a row hit now) and the next few lines cover the
    # usual cases.
    u0 = (t + lat + unit - 1) // unit
    for j in range(8):
        prefetch(chan_bus[gc], (u0 + 8 * j) & BUS_MASK)
    if tc > 0:
        # and the command slots from the earliest command on, tCL before
        prefetch(chan_bus[gc], (t // unit) & BUS_MASK)

    # first ready: a hit to the row that a booked switch will close goes first if it fits
    if p[node, DP_FRFCFS] != 0 and x[xb + XB_PROW] == row and x[xb + XB_PPRE] > t \
            and bank_row[gb] != row:
        tmin = t if t > x[xb + XB_PREADY] else x[xb + XB_PREADY]
        u = _col_slot(p, node, x, xr, xg, chan_bus, gc, rank, tmin, lat, is_write)
        tcol = u * unit - lat
        tend = tcol + lat + tburst
        if is_write:
            fits = tend + p[node, DP_TWR] <= x[xb + XB_PPRE]
        else:
            fits = tcol + p[node, DP_TRTP] <= x[xb + XB_PPRE]
        ws = _refresh_window(tcol, off, trefi, trfc)
        if fits and tcol >= ws + trfc and ws == _refresh_window(x[xb + XB_PREADY], off, trefi, trfc):
            _book(chan_bus, gc, u, p[node, DP_BLEN], rank, is_write)
            if tc > 0:
                _cmd_book(chan_bus, gc, tcol, tc)
            _record(x, xg, NCOL, XG_IDX, tcol, -1, 0)
            x[xb + XB_PREADY] = tcol + tburst
            cnt[node, DC_ROW_HIT] += 1
            cnt[node, DC_HIT_FIRST] += 1
            cnt[node, DC_WAIT_PS] += tcol - t
            if is_write:
                cnt[node, DC_WRITES] += 1
                _write_window(x, xr + XR_WS, tcol, tend, p[node, DP_TWTRS])
                _write_window(x, xg + XG_WS, tcol, tend, p[node, DP_TWTRL])
            else:
                cnt[node, DC_READS] += 1
            return tend

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
    activated = False
    if open_row == row:
        tcol = tcmd
        tact = bank_act[gb]
        cnt[node, DC_ROW_HIT] += 1
        unloaded = 0
    elif open_row < 0:
        tact = _act_cmd(p, node, x, xr, bg, tcmd, chan_bus, gc, tc)
        activated = True
        tcol = tact + trcd
        cnt[node, DC_ROW_EMPTY] += 1
        unloaded = trcd
    else:
        tpre = tcmd
        if bank_act[gb] + p[node, DP_TRAS] > tpre:
            tpre = bank_act[gb] + p[node, DP_TRAS]
        if bank_wr_end[gb] + p[node, DP_TWR] > tpre:
            tpre = bank_wr_end[gb] + p[node, DP_TWR]
        if bank_last[gb] + p[node, DP_TRTP] > tpre:
            tpre = bank_last[gb] + p[node, DP_TRTP]
        if tc > 0:
            tpre = _cmd_slot(chan_bus, gc, tpre, tc)
            _cmd_book(chan_bus, gc, tpre, tc)
        tact = _act_cmd(p, node, x, xr, bg, tpre + p[node, DP_TRP], chan_bus, gc, tc)
        activated = True
        tcol = tact + trcd
        cnt[node, DC_ROW_CONFLICT] += 1
        unloaded = p[node, DP_TRP] + trcd
        # the old row stays open until tpre: later hits to it may still be served first
        x[xb + XB_PROW] = open_row
        x[xb + XB_PPRE] = tpre
        x[xb + XB_PREADY] = tcmd
    u = _col_slot(p, node, x, xr, xg, chan_bus, gc, rank, tcol, lat, is_write)
    _book(chan_bus, gc, u, p[node, DP_BLEN], rank, is_write)
    tdata = u * unit
    tcol = tdata - lat
    tend = tdata + tburst
    _record(x, xg, NCOL, XG_IDX, tcol, -1, 0)
    if tc > 0:
        _cmd_book(chan_bus, gc, tcol, tc)
        if activated:
            _cmd_book(chan_bus, gc, tact, tc)
    if activated:
        _record(x, xr, NACT, XR_IDX, tact, NACT, bg)
    cnt[node, DC_WAIT_PS] += (tcol - t) - unloaded
    if is_write:
        cnt[node, DC_WRITES] += 1
        bank_wr_end[gb] = tend
        _write_window(x, xr + XR_WS, tcol, tend, p[node, DP_TWTRS])
        _write_window(x, xg + XG_WS, tcol, tend, p[node, DP_TWTRL])
    else:
        cnt[node, DC_READS] += 1
    bank_last[gb] = tcol
    if p[node, DP_CLOSE] != 0:
        # precharge as soon as allowed; the next access finds the bank closed
        tpre = tcol + tburst
        if tcol + p[node, DP_TRTP] > tpre:
            tpre = tcol + p[node, DP_TRTP]
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


@njit(cache=True, inline="always")
def _seen_bit(line):
    """(word, bit) of ``line`` in a channel's filter of queued lines (SEEN_WORDS * 64 = 256
    bits: the top 8 bits of a multiplicative hash)."""
    h = np.int64((np.uint64(line) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(56))
    return h >> 6, np.int64(1) << (h & 63)


@njit(cache=True, inline="always")
def _may_be_queued(x, xc, line):
    """False when ``line`` is certainly not in the channel's write queue (the filter)."""
    w, b = _seen_bit(line)
    return (x[xc + XC_SEEN + w] & b) != 0


@njit(cache=True, _nrt=False)
def _drain(p, node, xc, keep, t,
           bank_row, bank_ready, bank_act, bank_wr_end, bank_last, chan_bus, x, cnt):
    """Issue queued writes of the channel whose state is at ``x[xc:]``, from time ``t``, until
    ``keep`` remain: writes to open rows first, then the oldest. Returns the end of the last
    write's data (or LONG_AGO if none was issued)."""
    q = xc + XC_HDR
    cap = WQ_STORE * p[node, DP_WQ]
    n = x[xc + XC_N]
    last = np.int64(LONG_AGO)
    while n > keep:
        j = 0
        for i in range(n):
            k = x[q + cap + i]
            if bank_row[k >> 32] == (k & 0xFFFFFFFF):
                j = i
                break
        k = x[q + cap + j]
        for i in range(j, n - 1):
            x[q + i] = x[q + i + 1]
            x[q + cap + i] = x[q + cap + i + 1]
        n -= 1
        x[xc + XC_N] = n
        cnt[node, DC_WRITES] -= 1          # counted when it was accepted
        ch, rank, bank = _bank_place(p, node, k >> 32)
        e = _serve_at(p, node, ch, rank, bank, k & 0xFFFFFFFF, t, _T, bank_row, bank_ready,
                      bank_act, bank_wr_end, bank_last, chan_bus, x, cnt)
        if e > last:
            last = e
    for w in range(SEEN_WORDS):
        x[xc + XC_SEEN + w] = 0
    for i in range(n):
        w, b = _seen_bit(x[q + i])
        x[xc + XC_SEEN + w] |= b
    return last


@njit(cache=True, _nrt=False)
def dram_access(p, node, line, t, is_write,
                bank_row, bank_ready, bank_act, bank_wr_end, bank_last, chan_bus, x, cnt):
    """Serve one 64-byte read or write of node-local ``line`` arriving at the controller at
    ``t``. Returns the time the last data beat has crossed the channel bus, for a posted write
    (write queue enabled) the time it was accepted, for a read forwarded from the write queue
    ``t``."""
    wq = p[node, DP_WQ]
    ch, rank, bank, row = map_line(p, node, line)
    if wq == 0:
        return _serve_at(p, node, ch, rank, bank, row, t, is_write, bank_row, bank_ready,
                         bank_act, bank_wr_end, bank_last, chan_bus, x, cnt)
    xc = p[node, DP_X_CH] + ch * channel_words(wq)
    q = xc + XC_HDR
    n = x[xc + XC_N]
    if not is_write:
        if n > 0 and _may_be_queued(x, xc, line):
            for i in range(n):
                if x[q + i] == line:
                    cnt[node, DC_READS] += 1
                    cnt[node, DC_WQ_FWD] += 1
                    return t
        if x[xc + XC_DUE] <= t:
            # the queue reached its high watermark at XC_DUE, before this read arrived
            n = _due_drain(p, node, xc, bank_row, bank_ready, bank_act, bank_wr_end, bank_last,
                           chan_bus, x, cnt)
        if x[xc + XC_RD] < t and n > 0:
            # no read was in flight on this channel between the end of its latest read and
            # this one: the controller drained queued writes into that gap, as many as fit
            # before this read (their bursts and the write-to-read turnaround), and none
            # before the queue held them
            t0 = x[xc + XC_RD]
            if t0 < t - IDLE_DRAIN_PS:
                t0 = t - IDLE_DRAIN_PS
            if t0 < x[xc + XC_WT]:
                t0 = x[xc + XC_WT]
            if t0 < 0:
                t0 = 0
            fit = (t - t0 - p[node, DP_TCWL] - p[node, DP_TWTRL]) // p[node, DP_TBURST]
            if fit > 0:
                keep = n - fit if fit < n else 0
                cnt[node, DC_WQ_IDLE] += n - keep
                _drain(p, node, xc, keep, t0, bank_row, bank_ready, bank_act, bank_wr_end,
                       bank_last, chan_bus, x, cnt)
        e = _serve_at(p, node, ch, rank, bank, row, t, _F, bank_row, bank_ready, bank_act,
                      bank_wr_end, bank_last, chan_bus, x, cnt)
        if e > x[xc + XC_RD]:
            x[xc + XC_RD] = e
        return e
    # posted: a write to a line already queued merges with it. A write is never issued on
    # arrival, even to an idle channel: in this issue-time model a write arrives stamped with
    # the completion of the fill that evicted its line, ahead of the reads other cores have
    # yet to send, so "no read in flight" at its arrival does not mean the channel is idle.
    # Queued writes are issued by the next read that finds a gap before it, or by a drain.
    cnt[node, DC_WRITES] += 1
    if t > x[xc + XC_WT]:
        x[xc + XC_WT] = t
    if n > 0 and _may_be_queued(x, xc, line):
        for i in range(n):
            if x[q + i] == line:
                return t
    cap = WQ_STORE * wq
    x[q + n] = line
    x[q + cap + n] = (_bank_index(p, node, ch, rank, bank) << 32) | row
    w, b = _seen_bit(line)
    x[xc + XC_SEEN + w] |= b
    n += 1
    x[xc + XC_N] = n
    if n >= p[node, DP_WQ_HI] and x[xc + XC_DUE] == NEVER:
        x[xc + XC_DUE] = x[xc + XC_WT]
    if n >= cap:
        # full: the drain cannot wait for the reads stamped before it any longer
        _due_drain(p, node, xc, bank_row, bank_ready, bank_act, bank_wr_end, bank_last,
                   chan_bus, x, cnt)
    return t


@njit(cache=True, _nrt=False, inline="always")
def _due_drain(p, node, xc, bank_row, bank_ready, bank_act, bank_wr_end, bank_last, chan_bus,
               x, cnt):
    """The watermark drain that became due at ``x[xc + XC_DUE]``: issue queued writes from then
    down to the low watermark. It runs when the first read stamped at or after that time
    arrives (or when the queue is full), so that the reads stamped before it, which the
    issue-time model may see after the write that started the drain, are booked first, as a
    controller would have served them before the drain. Returns the writes left queued."""
    n = x[xc + XC_N]
    keep = p[node, DP_WQ_LO]
    t0 = x[xc + XC_DUE]
    x[xc + XC_DUE] = NEVER
    if n > keep:
        cnt[node, DC_WQ_DRAINED] += n - keep
        _drain(p, node, xc, keep, t0, bank_row, bank_ready, bank_act, bank_wr_end, bank_last,
               chan_bus, x, cnt)
    return x[xc + XC_N]


@njit(cache=True, _nrt=False, inline="always")
def write_room(p, node, line, t, bank_wr_end):
    """When a write of node-local ``line`` arriving at ``t`` finds room in its channel's write
    queue: a queue of ``write_queue`` entries holds the writes whose bursts are still ahead,
    so a write waits until the latest booked write burst of the channel (``bank_wr_end`` of
    its banks) is no more than a full queue (``write_queue`` bursts) ahead. Only streaming
    (non-temporal) stores use it; writebacks of evicted lines are paced by the fills that
    evict them. Reads nothing but ``bank_wr_end``; changes nothing."""
    wq = p[node, DP_WQ]
    if wq == 0:
        return t
    ch = map_line(p, node, line)[0]
    nb = p[node, DP_RANKS] * p[node, DP_BANKS]
    b0 = p[node, DP_BANK_BASE] + ch * nb
    last = np.int64(LONG_AGO)
    for b in range(b0, b0 + nb):
        if bank_wr_end[b] > last:
            last = bank_wr_end[b]
    room = last - wq * p[node, DP_TBURST]
    return room if room > t else t
