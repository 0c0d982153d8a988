"""The memory hierarchy of the timing model: caches, coherence and the path to memory.

``access(S, cpu, node, pa, is_write, is_ifetch, t)`` serves one cache-line access that a core
issues at time ``t`` for physical address ``pa`` (whose frame is on ``node``) and returns the
time its data is available plus where it was served. All state lives in the arrays of ``S``
(see :mod:`hwemu.machine.state`).

Performance: every helper here that takes ``S`` is compiled with ``_nrt=False`` (no reference
counting; none of them allocates) and is called with ``S`` by reference
(:func:`hwemu.machine.stateref.state_ref`): passing the tuple of ~100 arrays by value, with
reference counting, cost ~1 us per call. Entry points called from Python (:func:`access`) take
the tuple and make the reference once.

Levels: private L1I/L1D and L2 per core, one shared LLC per socket. Hit latencies are
load-to-use, cumulative (an L2 hit costs the L2 latency, not L1 + L2). Every level is a
multi-instance :class:`hwemu.cachesim.setassoc.CacheState` (one instance per core, or per
socket for the LLC) driven through the core's row primitives (``set_row``, ``find_in_row``,
``victim_in_row``, ``install``, ``touch_line``, ``set_coh``, ``invalidate_line``); the MESI state
of a line is its ``coh`` byte and "dirty" means M. Each level replaces by its own TOML
``policy``.

Coherence (MESI): private lines are S, E or M. The LLC of a socket is inclusive of its cores'
private caches and keeps, per line, a core-valid bit mask (the snoop filter) and whether its
copy is dirty with respect to memory. Across sockets the home agent acts as a directory: on an
LLC miss the other sockets' LLCs are consulted.

- Read, line modified in another core of the socket: served by the LLC plus ``core_snoop``;
  the owner downgrades to S and its data is written into the LLC.
- Read, line modified in another socket: served cache to cache (requester -> home -> owner ->
  requester over the links), the owner downgrades to S and writes the line back to its home.
- Write (RFO or upgrade of an S line): every other copy is invalidated: other cores of the
  socket (``core_snoop``), other sockets (a request/ack round trip over the links, overlapped
  with the data fetch).
- Evictions: dirty private lines are written into the LLC; a dirty LLC victim is written back
  to its home memory (posted: it occupies links, buses and banks, but nobody waits); an LLC
  victim is invalidated in the private caches holding it (inclusion).

L2 superqueue and stream prefetcher (docs/machine.md): every L2 miss holds one of
``superqueue`` entries per core until its data arrive (a demand miss waits for one). The
streamer trains on the L1 misses reaching L2, one stream per 4 KiB physical page; after two
steps in one direction it issues up to ``degree`` prefetches per lookup, at most ``distance``
lines ahead, within the page: into L2 with a free superqueue entry, else into the LLC only.
A prefetched line records when its data arrive; a demand that comes earlier waits for them.

Remote trackers (``[uncore] remote_trackers``, docs/machine.md): an LLC miss whose home is
another node needs one of the tracker entries that home preallocates to the requesting core,
held until the data arrive; a demand waits for the first to free, a prefetch finding none is
dropped. This bounds the requests a socket has in flight across the links, and with it
(Little's law) the queueing delay on the remote path.

Path to memory from socket ``s`` (node ``n_s``) to home node ``h``: local
``mc_latency + DRAM + mc_latency``; remote adds ``mesh_latency`` at the requester on each
way and the link traversal (request header out, 64 bytes + header back) with queueing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hwemu.cachesim.setassoc import MESI_E, MESI_I, MESI_M, MESI_S
from hwemu.cachesim.setassoc import P_ASSOC
from hwemu.cachesim.setassoc import (find_in_row, install, invalidate_line, same_set_row,
                                     set_coh, set_row, touch_line, victim_in_row)
from hwemu.machine.dram import dram_access, write_room
from hwemu.machine.interconnect import traverse
from hwemu.machine.stateref import prefetch, state_ref
from hwemu.machine.layout import (CT_STAMP, C_CPS, C_L1D_LAT, C_L1I_LAT, C_L2_LAT, C_LLC_LAT,
                                  C_MESH, C_PF_DEG, C_PF_DIST, C_PF_ON, C_PF_STREAMS, C_SNOOP,
                                  C_SOCKETS, C_SQ, DP_MC_LAT, K_INVAL_SENT, K_L1D_HIT, K_L1D_MISS,
                                  K_L1I_HIT, K_L1I_MISS, K_L1_WB, K_L2_HIT, K_L2_MISS, K_L2_WB,
                                  K_LLC_HIT, K_LLC_MISS, K_LLC_WB, K_PF_DROP, K_PF_ISSUED,
                                  K_PF_LATE, K_PF_LLC, K_PF_USEFUL, K_RT_WAIT, K_SNOOP, K_SQ_FULL,
                                  PF_CONF, PF_DIR, PF_FRONT, PF_LAST, PF_N, PF_PAGE, PF_STAMP,
                                  W_CXL, W_L1, W_L2, W_LLC, W_LOCAL_DRAM, W_REMOTE_CACHE,
                                  W_REMOTE_DRAM)

W_RETRY = -1          # access_below_l1: no remote tracker free, stall and issue again

# L2 superqueue and stream prefetcher
MAX_SQ = 64
MAX_RT = 64           # remote trackers per core and home node (``[uncore] remote_trackers``)
PF_TRAIN = 2          # same-direction steps within a page before a stream issues prefetches
PAGE_LINES = 64       # a stream stays within its 4 KiB page


def stream_table(ncpu: int, streams: int) -> np.ndarray:
    """Per-CPU stream table: one row per field (``PF_*``), one column per tracked stream (page
    -1 = free), so that the search of a page and of the least recently used stream reads two
    contiguous rows."""
    t = np.zeros((ncpu, PF_N, max(1, streams)), np.int64)
    t[:, PF_PAGE, :] = -1
    return t

ONE = np.uint64(1)


# A literal argument (True, 0, a module's int constant) makes numba compile the callee once more
# for that value (the miss path is large: seconds each); the constants helpers are passed are
# typed values instead: booleans, coherence states and message payloads.
_T, _F = np.bool_(True), np.bool_(False)
ST_I, ST_S, ST_E, ST_M = np.int64(MESI_I), np.int64(MESI_S), np.int64(MESI_E), np.int64(MESI_M)
REQ, DATA = np.int64(0), np.int64(64)      # payload bytes: a request, a line of data
# where a caller's own lookup found a line (fill_l1, fill_l2): not held / not looked up (L1)
ABSENT, UNKNOWN = np.int64(-1), np.int64(-2)


@njit(cache=True, inline="always")
def _bit(i):
    return ONE << np.uint64(i)


# ---------------------------------------------------------------------------------------------
# memory and links


@njit(cache=True, _nrt=False)
def send(S, src, dst, t, payload):
    """A message between nodes (0 cost within a node); mesh latency at socket ends."""
    if src == dst:
        return t
    t2 = t
    if S.node_socket[src] >= 0:
        t2 += S.cfg[C_MESH]
    t2 = traverse(S.route_next, S.route_chan, S.chan_lat, S.chan_ppb, S.chan_hdr, S.chan_busy,
                  S.chan_bytes, src, dst, t2, payload)
    if S.node_socket[dst] >= 0:
        t2 += S.cfg[C_MESH]
    return t2


@njit(cache=True, _nrt=False, inline="always")
def dram(S, node, line_local, t, is_write):
    return dram_access(S.dram_p, node, line_local, t, is_write, S.bank_row, S.bank_ready,
                       S.bank_act, S.bank_wr_end, S.bank_last, S.chan_bus, S.dram_x, S.dram_cnt)


@njit(cache=True, _nrt=False)
def node_of_line(S, line):
    pa = line << 6
    for n in range(S.node_base.shape[0]):
        if pa >= S.node_base[n] and pa < S.node_base[n] + S.node_size[n]:
            return n
    return -1


@njit(cache=True, _nrt=False, inline="always")
def mem_read(S, src_node, home, line, t):
    """Read a line from ``home``'s memory on behalf of node ``src_node``; returns data time."""
    local = line - (S.node_base[home] >> 6)
    mc = S.dram_p[home, DP_MC_LAT]
    t1 = send(S, src_node, home, t, REQ) + mc
    t2 = dram(S, home, local, t1, _F) + mc
    return send(S, home, src_node, t2, DATA)


@njit(cache=True, _nrt=False, inline="always")
def mem_write(S, src_node, home, line, t):
    """Write a line to ``home``'s memory (posted); returns when the write has completed."""
    local = line - (S.node_base[home] >> 6)
    mc = S.dram_p[home, DP_MC_LAT]
    t1 = send(S, src_node, home, t, DATA) + mc
    return dram(S, home, local, t1, _T)


# ---------------------------------------------------------------------------------------------
# private caches and coherence actions


@njit(cache=True, _nrt=False)
def core_state(S, cpu, line):
    """Highest state of ``line`` among the private caches of ``cpu``."""
    st = ST_I
    l1d, l2 = S.l1d, S.l2
    i = find_in_row(l1d, set_row(l1d, cpu, line), line)
    if i >= 0 and l1d.coh[i] > st:
        st = l1d.coh[i]
    i = find_in_row(l2, set_row(l2, cpu, line), line)
    if i >= 0 and l2.coh[i] > st:
        st = l2.coh[i]
    return st


@njit(cache=True, _nrt=False)
def core_downgrade(S, cpu, line):
    """Make ``line`` shared in ``cpu``'s caches; returns True if it was modified there."""
    was_m = False
    l1d, l2 = S.l1d, S.l2
    i = find_in_row(l1d, set_row(l1d, cpu, line), line)
    if i >= 0:
        if l1d.coh[i] == ST_M:
            was_m = True
        set_coh(l1d, i, ST_S)
    i = find_in_row(l2, set_row(l2, cpu, line), line)
    if i >= 0:
        if l2.coh[i] == ST_M:
            was_m = True
        set_coh(l2, i, ST_S)
    return was_m


@njit(cache=True, _nrt=False)
def _drop(c, cpu, line):
    """Invalidate ``line`` in ``cpu``'s instance of ``c``; its MESI state before (I if absent)."""
    i = find_in_row(c, set_row(c, cpu, line), line)
    if i < 0:
        return ST_I
    st = c.coh[i]
    invalidate_line(c, i)
    return st


@njit(cache=True, _nrt=False)
def core_invalidate(S, cpu, line):
    """Drop ``line`` from ``cpu``'s caches; returns (had_copy, was_modified)."""
    s1 = _drop(S.l1d, cpu, line)
    s2 = _drop(S.l2, cpu, line)
    s3 = _drop(S.l1i, cpu, line)
    had = s1 != ST_I or s2 != ST_I or s3 != ST_I
    return had, (s1 == ST_M or s2 == ST_M)


@njit(cache=True, _nrt=False, inline="always")
def socket_probe(S, sock, line, exclusive, home, t):
    """Snoop ``line`` in socket ``sock`` (LLC and cores): invalidate if ``exclusive``, else
    downgrade to shared. Returns (present, was_dirty). A dirty line that is only downgraded is
    written back to ``home`` (posted, at time t)."""
    cps = S.cfg[C_CPS]
    llc = S.llc
    i = find_in_row(llc, set_row(llc, sock, line), line)
    if i < 0:
        return False, False
    dirty = llc.coh[i] == ST_M
    cv = S.llc_cv[i]
    c = 0
    while cv != 0:
        if cv & ONE:
            cpu = sock * cps + c
            if exclusive:
                had, m = core_invalidate(S, cpu, line)
                if m:
                    dirty = True
            else:
                if core_downgrade(S, cpu, line):
                    dirty = True
        cv >>= ONE
        c += 1
    if exclusive:
        invalidate_line(llc, i)
        S.llc_cv[i] = 0
    else:
        set_coh(llc, i, ST_S)
        if dirty:
            mem_write(S, S.socket_node[sock], home, line, t)
    return True, dirty


@njit(cache=True, _nrt=False)
def _llc_mark_dirty(S, cpu, line, t):
    sock = S.cpu_socket[cpu]
    llc = S.llc
    i = find_in_row(llc, set_row(llc, sock, line), line)
    if i >= 0:
        set_coh(llc, i, ST_M)
    else:  # not held (cannot happen with inclusion, kept for safety): write to memory
        home = node_of_line(S, line)
        if home >= 0:
            mem_write(S, S.socket_node[sock], home, line, t)


@njit(cache=True, _nrt=False, inline="always")
def fill_l2(S, cpu, line, st, t, i):
    """Put ``line`` in ``cpu``'s L2 with state ``st`` (or update the copy it holds); a dirty
    victim is marked dirty in the LLC. ``i``: where the caller's lookup, made since the L2 last
    changed, found the line in this L2 (``ABSENT``: not there; every caller has looked).
    Returns the line's index."""
    l2 = S.l2
    r = set_row(l2, cpu, line)
    if i >= 0:
        if st > l2.coh[i] or st == ST_S:
            set_coh(l2, i, st)
        touch_line(l2, i)
        return i
    i = victim_in_row(l2, r)
    old = np.int64(l2.tags[i])            # -1: the line is invalid
    if old >= 0 and l2.coh[i] == ST_M:
        S.ccnt[cpu, K_L2_WB] += 1
        _llc_mark_dirty(S, cpu, old, t)
    install(l2, i, line, st)
    S.l2_pf[i] = 0
    S.l2_rdy[i] = 0
    return i


@njit(cache=True, _nrt=False, inline="always")
def fill_l1(S, cpu, line, st, is_ifetch, t, i):
    """Put ``line`` in ``cpu``'s L1I or L1D with state ``st`` (or update the copy it holds); a
    dirty L1D victim is written into L2, or the LLC. ``i``: as for :func:`fill_l2`, or
    ``UNKNOWN`` when the caller has not looked the line up (:func:`access`)."""
    if is_ifetch:
        l1i = S.l1i
        r = set_row(l1i, cpu, line)
        if i == UNKNOWN:
            i = find_in_row(l1i, r, line)
        if i >= 0:
            set_coh(l1i, i, ST_S)
            touch_line(l1i, i)
        else:
            install(l1i, victim_in_row(l1i, r), line, ST_S)
        return
    l1d = S.l1d
    r = set_row(l1d, cpu, line)
    if i == UNKNOWN:
        i = find_in_row(l1d, r, line)
    if i >= 0:
        set_coh(l1d, i, st)
        touch_line(l1d, i)
        return
    i = victim_in_row(l1d, r)
    old = np.int64(l1d.tags[i])
    if old >= 0 and l1d.coh[i] == ST_M:
        # write the dirty victim into L2 if it holds the line, else into the LLC
        S.ccnt[cpu, K_L1_WB] += 1
        l2 = S.l2
        i2 = find_in_row(l2, set_row(l2, cpu, old), old)
        if i2 >= 0:
            set_coh(l2, i2, ST_M)
        else:
            _llc_mark_dirty(S, cpu, old, t)
    install(l1d, i, line, st)


@njit(cache=True, _nrt=False, inline="always")
def llc_fill(S, sock, line, t, rl):
    """Allocate ``line`` in socket ``sock``'s LLC (clean; ``rl``: its row there); evict and
    back-invalidate a victim. Returns the LLC line index."""
    cps = S.cfg[C_CPS]
    llc = S.llc
    i = victim_in_row(llc, rl)
    old = np.int64(llc.tags[i])
    if old >= 0:
        dirty = llc.coh[i] == ST_M
        cv = S.llc_cv[i]
        c = 0
        while cv != 0:
            if cv & ONE:
                had, m = core_invalidate(S, sock * cps + c, old)
                if m:
                    dirty = True
            cv >>= ONE
            c += 1
        if dirty:
            home = node_of_line(S, old)
            if home >= 0:
                S.ccnt[sock * cps, K_LLC_WB] += 1
                mem_write(S, S.socket_node[sock], home, old, t)
    install(llc, i, line, ST_S)
    S.llc_cv[i] = 0
    S.llc_rdy[i] = 0
    return i


# ---------------------------------------------------------------------------------------------
# the access path


@njit(cache=True, _nrt=False)
def l1_would_hit(S, cpu, line, is_write, is_ifetch):
    """Whether the access would hit L1 (no side effects)."""
    if is_ifetch:
        return find_in_row(S.l1i, set_row(S.l1i, cpu, line), line) >= 0
    l1d = S.l1d
    i = find_in_row(l1d, set_row(l1d, cpu, line), line)
    return i >= 0 and (not is_write or l1d.coh[i] >= ST_E)


@njit(cache=True, _nrt=False)
def l1_hit(S, cpu, line, is_write, is_ifetch):
    """Serve from L1 if possible (updating replacement and state). True on a hit."""
    S.ctr[CT_STAMP] += 1
    if is_ifetch:
        l1i = S.l1i
        i = find_in_row(l1i, set_row(l1i, cpu, line), line)
        if i >= 0:
            touch_line(l1i, i)
            S.ccnt[cpu, K_L1I_HIT] += 1
            return True
        S.ccnt[cpu, K_L1I_MISS] += 1
        return False
    l1d = S.l1d
    i = find_in_row(l1d, set_row(l1d, cpu, line), line)
    if i >= 0 and (not is_write or l1d.coh[i] >= ST_E):
        touch_line(l1d, i)
        if is_write:
            set_coh(l1d, i, ST_M)
        S.ccnt[cpu, K_L1D_HIT] += 1
        return True
    S.ccnt[cpu, K_L1D_MISS] += 1
    return False


@njit(cache=True, _nrt=False, inline="always")
def sq_entry(S, cpu):
    """The superqueue entry of ``cpu`` that frees first, and when it frees."""
    e = 0
    best = S.sq_done[cpu, 0]
    for j in range(1, S.cfg[C_SQ]):
        d = S.sq_done[cpu, j]
        if d < best:
            best = d
            e = j
    return e, best


@njit(cache=True, _nrt=False)
def rt_entry(S, cpu, home):
    """The remote tracker of ``cpu`` at home node ``home`` that frees first, and when."""
    e = 0
    best = S.rt_done[cpu, home, 0]
    for j in range(1, S.node_rt[home]):
        d = S.rt_done[cpu, home, j]
        if d < best:
            best = d
            e = j
    return e, best


@njit(cache=True, _nrt=False, inline="always")
def prefetch_row(c, row):
    """Host-cache prefetch of one set-associative row of cache ``c``: the first and last way
    of its tags and replacement stamps, and its MESI states. Returns the row's first and last
    way index (for the caller's own per-way arrays)."""
    a = c.params[P_ASSOC]
    b0 = row * a
    b1 = b0 + a - 1
    bm = (b0 + b1) >> 1         # a row of up to 24 ways spans at most 3 host lines
    prefetch(c.tags, b0)
    prefetch(c.tags, bm)
    prefetch(c.tags, b1)
    prefetch(c.repl, b0)
    prefetch(c.repl, bm)
    prefetch(c.repl, b1)
    prefetch(c.coh, b0)
    return b0, b1


@njit(cache=True, _nrt=False, inline="always")
def _prefetch_private_rows(S, r2, cpu, line, is_ifetch):
    """Host-cache prefetch (no effect on results) of what an access below L1 reads in the
    core's own caches: L2 row ``r2`` (tags, stamps, MESI states, prefetch flags and arrival
    times) and the L1 row the line will be filled into. Issued together, before the first of
    them is needed, so their host-cache misses overlap (the LLC's tens of MB of state evict
    the private caches' arrays from the host's own caches)."""
    b0, b1 = prefetch_row(S.l2, r2)
    prefetch(S.l2_pf, b0)
    prefetch(S.l2_rdy, b0)
    prefetch(S.l2_rdy, b1)
    l1 = S.l1i if is_ifetch else S.l1d
    prefetch_row(l1, set_row(l1, cpu, line))


@njit(cache=True, _nrt=False, inline="always")
def _prefetch_llc_rows(S, rl, sock):
    """Host-cache prefetch of what an LLC access reads (no effect on results): the tags,
    stamps, MESI states and payloads of row ``rl`` of socket ``sock``'s LLC, and the tags of the
    same set in the other sockets' LLCs. These arrays are far larger than the host's caches and
    indexed at random; issuing the loads together overlaps their misses."""
    llc = S.llc
    a = llc.params[P_ASSOC]
    b0, b1 = prefetch_row(llc, rl)
    bm = (b0 + b1) >> 1
    prefetch(S.llc_cv, b0)
    prefetch(S.llc_cv, bm)
    prefetch(S.llc_cv, b1)
    prefetch(S.llc_rdy, b0)
    prefetch(S.llc_rdy, bm)
    prefetch(S.llc_rdy, b1)
    for rs in range(S.cfg[C_SOCKETS]):
        if rs != sock:
            r0 = same_set_row(llc, rl, sock, rs) * a
            prefetch(llc.tags, r0)
            prefetch(llc.tags, r0 + (a - 1) // 2)
            prefetch(llc.tags, r0 + a - 1)


@njit(cache=True, _nrt=False)
def prefetch_below_l1(S, cpu, line, is_ifetch):
    """Host-cache prefetch (no effect on results) of the rows an access of ``line`` by ``cpu``
    that misses L1 reads: its L1 and L2 rows and the LLC rows of every socket. The replay loop
    issues it for a record a few records ahead of the one it serves, so that these loads
    overlap with the work on the records in between."""
    _prefetch_private_rows(S, set_row(S.l2, cpu, line), cpu, line, is_ifetch)
    sock = S.cpu_socket[cpu]
    _prefetch_llc_rows(S, set_row(S.llc, sock, line), sock)


@njit(cache=True, _nrt=False)
def beyond_l2(S, cpu, node, line, is_write, t, demand, ahead):
    """The LLC and memory part of an access that missed L2, issued at ``t``: LLC lookup,
    coherence, memory. Updates the LLC and other caches, not this core's L1/L2.
    Returns (done_time, where, state for the private caches). ``demand`` False (a prefetch)
    leaves the demand LLC counters alone. ``ahead``: the caller has had the LLC rows
    prefetched into the host's caches already (no effect on results)."""
    cps = S.cfg[C_CPS]
    sock = S.cpu_socket[cpu]
    lcpu = cpu - sock * cps
    llc = S.llc
    rl = set_row(llc, sock, line)
    if not ahead:
        _prefetch_llc_rows(S, rl, sock)
    il = find_in_row(llc, rl, line)
    tt = t + S.cfg[C_LLC_LAT]
    my_node = S.socket_node[sock]
    where = W_LLC
    others_sockets_have = False
    if il >= 0:
        if demand:
            S.ccnt[cpu, K_LLC_HIT] += 1
        if S.llc_rdy[il] > tt:          # an LLC prefetch of the line is still on its way
            tt = S.llc_rdy[il]
        touch_line(llc, il)
        cv = S.llc_cv[il]
        others = cv & ~_bit(lcpu)
        if others != 0:
            snooped = False
            c = 0
            o = others
            while o != 0:
                if o & ONE:
                    ocpu = sock * cps + c
                    if is_write:
                        had, m = core_invalidate(S, ocpu, line)
                        if had:
                            snooped = True
                            S.ccnt[cpu, K_INVAL_SENT] += 1
                        if m:
                            set_coh(llc, il, ST_M)
                    else:
                        if core_downgrade(S, ocpu, line):
                            snooped = True
                            set_coh(llc, il, ST_M)
                o >>= ONE
                c += 1
            if snooped:
                tt += S.cfg[C_SNOOP]
                S.ccnt[cpu, K_SNOOP] += 1
            if is_write:
                cv = cv & _bit(lcpu)
        # other sockets may share the line
        tinv = tt
        for rs in range(S.cfg[C_SOCKETS]):
            if rs == sock:
                continue
            if is_write:
                present, dirty = socket_probe(S, rs, line, _T, node, tt)
                if present:
                    S.ccnt[cpu, K_INVAL_SENT] += 1
                    rn = S.socket_node[rs]
                    ta = send(S, rn, my_node, send(S, my_node, rn, t + S.cfg[C_LLC_LAT], REQ), REQ)
                    if ta > tinv:
                        tinv = ta
            else:
                if find_in_row(llc, same_set_row(llc, rl, sock, rs), line) >= 0:
                    others_sockets_have = True
        tt = tinv
        S.llc_cv[il] = cv | _bit(lcpu)
        if is_write:
            st = ST_M
        elif (cv & ~_bit(lcpu)) != 0 or others_sockets_have:
            st = ST_S
        else:
            st = ST_E
        return tt, where, st
    # ---- LLC miss: the home agent consults the other sockets (directory)
    # A read of a remote home needs one of the tracker entries that home preallocates to this
    # core: a demand waits for the first to free, a prefetch that finds none is dropped.
    rt = -1
    if S.node_rt[node] > 0 and node != my_node:
        rt, free = rt_entry(S, cpu, node)
        if free > tt:
            if not demand:
                S.ccnt[cpu, K_PF_DROP] += 1
                return tt, -1, ST_I
            S.ccnt[cpu, K_RT_WAIT] += 1
            tt = free
    if demand:
        S.ccnt[cpu, K_LLC_MISS] += 1
    owner = -1
    tinv = tt
    for rs in range(S.cfg[C_SOCKETS]):
        if rs == sock:
            continue
        present, dirty = socket_probe(S, rs, line, is_write, node, tt)
        if present:
            others_sockets_have = True
            if dirty:
                owner = rs
            elif is_write:
                S.ccnt[cpu, K_INVAL_SENT] += 1
                rn = S.socket_node[rs]
                ta = send(S, rn, my_node,
                          send(S, node, rn, send(S, my_node, node, tt, REQ), REQ), REQ)
                if ta > tinv:
                    tinv = ta
    if owner >= 0:
        on = S.socket_node[owner]
        t1 = send(S, my_node, node, tt, REQ)          # request to the home agent
        t1 = send(S, node, on, t1, REQ)               # forwarded to the owner
        t1 += S.cfg[C_LLC_LAT]                        # owner's LLC / core snoop
        done = send(S, on, my_node, t1, DATA)         # data straight to the requester
        where = W_REMOTE_CACHE
    else:
        done = mem_read(S, my_node, node, line, tt)
        if node == my_node:
            where = W_LOCAL_DRAM
        elif S.node_socket[node] < 0:
            where = W_CXL
        else:
            where = W_REMOTE_DRAM
    if tinv > done:
        done = tinv
    if rt >= 0:
        S.rt_done[cpu, node, rt] = done
    il = llc_fill(S, sock, line, done, rl)
    S.llc_cv[il] = _bit(lcpu)
    if is_write:
        st = ST_M
    elif others_sockets_have:
        st = ST_S
    else:
        st = ST_E
    return done, where, st


@njit(cache=True, _nrt=False)
def prefetch_l2(S, cpu, node, line, t):
    """Prefetch ``line`` at ``t`` unless it is already in L2. With a free superqueue entry it
    is an L2 prefetch: the line is installed in L2 (and the LLC) marked prefetched, with the
    time its data arrive, and holds the entry until then. With the superqueue full it is an
    LLC prefetch (unless the LLC holds the line): fetched into the LLC only, holding no
    superqueue entry. Returns 1 for an L2 prefetch, 2 for an LLC prefetch, 0 for none."""
    l2 = S.l2
    r2 = set_row(l2, cpu, line)
    if find_in_row(l2, r2, line) >= 0:
        return 0
    e, free = sq_entry(S, cpu)
    if free > t:
        llc = S.llc
        rl = set_row(llc, S.cpu_socket[cpu], line)
        if find_in_row(llc, rl, line) >= 0:
            return 0
        done, where, st = beyond_l2(S, cpu, node, line, _F, t, _F, _F)
        if where < 0:                  # no remote tracker free: dropped
            return 0
        S.ccnt[cpu, K_PF_LLC] += 1
        il = find_in_row(llc, rl, line)
        if il >= 0:                    # always: the read has just allocated it
            S.llc_cv[il] = 0
            S.llc_rdy[il] = done
        return 2
    done, where, st = beyond_l2(S, cpu, node, line, _F, t, _F, _F)
    if where < 0:                      # no remote tracker free: dropped
        return 0
    S.ccnt[cpu, K_PF_ISSUED] += 1
    S.sq_done[cpu, e] = done
    i2 = fill_l2(S, cpu, line, st, done, ABSENT)    # beyond_l2 does not fill this L2
    S.l2_rdy[i2] = done
    S.l2_pf[i2] = 1
    return 1


@njit(cache=True, _nrt=False, inline="always")
def stream_train(S, cpu, node, line, t):
    """The L2 streamer sees an L2 lookup of ``line`` at ``t``: track the line's 4 KiB page;
    once a page has seen ``PF_TRAIN`` steps in one direction, issue up to ``degree``
    prefetches continuing the stream, at most ``distance`` lines ahead of this access and
    never past the page."""
    tab = S.pf_tab
    page = line // PAGE_LINES
    off = line - page * PAGE_LINES
    ctr = S.ctr[CT_STAMP]
    n = S.cfg[C_PF_STREAMS]
    # Whether the page is tracked, and the oldest stamp, as loops without an exit (the
    # compiler turns them into vector instructions), then a short scan for the index: the
    # same stream as one ordered scan that stops at the page finds, in fewer instructions
    # for the usual case of an untracked page.
    tracked = False
    for j in range(n):
        tracked |= tab[cpu, PF_PAGE, j] == page
    if tracked:
        e = 0
        while tab[cpu, PF_PAGE, e] != page:
            e += 1
    else:
        oldest = tab[cpu, PF_STAMP, 0]
        for j in range(n):             # from 0: a whole number of vectors
            oldest = min(oldest, tab[cpu, PF_STAMP, j])
        lru = 0
        while tab[cpu, PF_STAMP, lru] != oldest:
            lru += 1
        tab[cpu, PF_PAGE, lru] = page
        tab[cpu, PF_LAST, lru] = off
        tab[cpu, PF_DIR, lru] = 0
        tab[cpu, PF_CONF, lru] = 0
        tab[cpu, PF_FRONT, lru] = off
        tab[cpu, PF_STAMP, lru] = ctr
        return
    tab[cpu, PF_STAMP, e] = ctr
    d = off - tab[cpu, PF_LAST, e]
    if d == 0:
        return
    dr = 1 if d > 0 else -1
    if dr == tab[cpu, PF_DIR, e]:
        if tab[cpu, PF_CONF, e] < PF_TRAIN:
            tab[cpu, PF_CONF, e] += 1
    else:
        tab[cpu, PF_DIR, e] = dr
        tab[cpu, PF_CONF, e] = 1
        tab[cpu, PF_FRONT, e] = off
    tab[cpu, PF_LAST, e] = off
    if tab[cpu, PF_CONF, e] < PF_TRAIN:
        return
    front = tab[cpu, PF_FRONT, e]
    if (front - off) * dr < 0:
        front = off
    limit = off + dr * S.cfg[C_PF_DIST]
    base = page * PAGE_LINES
    n = 0
    while n < S.cfg[C_PF_DEG]:
        nxt = front + dr
        if nxt < 0 or nxt >= PAGE_LINES or (nxt - limit) * dr > 0:
            break
        front = nxt
        n += 1
        prefetch_l2(S, cpu, node, base + nxt, t)
    tab[cpu, PF_FRONT, e] = front


@njit(cache=True, _nrt=False)
def remote_tracker_free(S, cpu, node, line, t):
    """When a demand LLC miss of ``line`` (home ``node``) issued at ``t`` could take a remote
    tracker of ``cpu``: ``t`` if it needs none (local home, LLC hit, unbounded) or one is free."""
    if S.node_rt[node] == 0:
        return t
    sock = S.cpu_socket[cpu]
    if node == S.socket_node[sock]:
        return t
    e, free = rt_entry(S, cpu, node)
    if free <= t:
        return t
    llc = S.llc
    if find_in_row(llc, set_row(llc, sock, line), line) >= 0:
        return t
    return free


@njit(cache=True, _nrt=False)
def access_below_l1(S, cpu, node, pa, is_write, is_ifetch, t, retry, ahead, w1):
    """An access that missed L1 (or must upgrade a shared L1 line), issued at ``t``; ``w1``
    where the caller's lookup found the line in L1 (``ABSENT``, or ``UNKNOWN``: not looked up).
    Returns (done_time, where). With ``retry``, a demand LLC miss to a remote home that finds
    no free remote tracker changes nothing and returns (time one frees, W_RETRY): the core
    stalls until then and issues the access again (so that requests still reach the links in
    time order); without, the miss waits for the tracker in place. ``ahead``: the replay loop
    has had the access's rows prefetched into the host's caches already (core._prefetch_ahead;
    no effect on results)."""
    line = pa >> 6
    # ---- L2
    l2 = S.l2
    r2 = set_row(l2, cpu, line)
    if not ahead:
        _prefetch_private_rows(S, r2, cpu, line, is_ifetch)
    i2 = find_in_row(l2, r2, line)
    ready = t
    if i2 >= 0 and S.l2_pf[i2] != 0:
        # first demand use of a prefetched line; if its data are still on the way, wait
        S.l2_pf[i2] = 0
        S.ccnt[cpu, K_PF_USEFUL] += 1
        ready = S.l2_rdy[i2]
        if ready > t + S.cfg[C_L2_LAT]:
            S.ccnt[cpu, K_PF_LATE] += 1
    if i2 >= 0 and (not is_write or l2.coh[i2] >= ST_E):
        touch_line(l2, i2)
        S.ccnt[cpu, K_L2_HIT] += 1
        st = l2.coh[i2]
        if is_write:
            st = ST_M
        fill_l1(S, cpu, line, st, is_ifetch, t, w1)
        done = t + S.cfg[C_L2_LAT]
        if ready > done:
            done = ready
        if S.cfg[C_PF_ON] != 0:
            stream_train(S, cpu, node, line, t)
        return done, W_L2
    # ---- a superqueue entry for the miss (wait for the first to free if all are busy)
    e, free = sq_entry(S, cpu)
    tq = t
    if free > t:
        tq = free
    if retry and S.node_rt[node] != 0 and node != S.socket_node[S.cpu_socket[cpu]]:
        tr = remote_tracker_free(S, cpu, node, line, tq)
        if tr > tq:
            S.ccnt[cpu, K_RT_WAIT] += 1
            return tr, W_RETRY
    S.ccnt[cpu, K_L2_MISS] += 1
    if free > t:
        S.ccnt[cpu, K_SQ_FULL] += 1
    done, where, st = beyond_l2(S, cpu, node, line, is_write, tq, _T, ahead)
    if ready > done:
        done = ready
    S.sq_done[cpu, e] = done
    # beyond_l2 changes neither this line's L2 and L1 copies (it snoops other cores, and the
    # LLC victim it may drop from this core is another line) nor fills them: the lookups hold
    fill_l2(S, cpu, line, st, done, i2)
    fill_l1(S, cpu, line, st, is_ifetch, done, w1)
    if S.cfg[C_PF_ON] != 0:
        stream_train(S, cpu, node, line, t)
    return done, where


@njit(cache=True, _nrt=False)
def nt_store(S, cpu, node, line, t):
    """A non-temporal (streaming) store of the whole ``line`` (home ``node``) issued at ``t``,
    as ``movnt`` stores that fill a write-combining buffer: no read for ownership. Every cached
    copy is invalidated (a modified one is overwritten, so it is not written back) and the line
    goes to its home memory as a posted write, once the channel's write queue has room
    (:func:`hwemu.machine.dram.write_room`). Returns when the core's buffer is free again: the
    home has accepted the write and acknowledged it."""
    sock = S.cpu_socket[cpu]
    my_node = S.socket_node[sock]
    for s in range(S.cfg[C_SOCKETS]):
        socket_probe(S, s, line, _T, node, t)
    local = line - (S.node_base[node] >> 6)
    mc = S.dram_p[node, DP_MC_LAT]
    t1 = send(S, my_node, node, t + S.cfg[C_LLC_LAT], DATA) + mc
    t1 = write_room(S.dram_p, node, local, t1, S.bank_wr_end)
    dram(S, node, local, t1, _T)
    return send(S, node, my_node, t1 + mc, REQ)


@njit(cache=True, _nrt=False)
def access(S, cpu, node, pa, is_write, is_ifetch, t):
    """One cache-line access issued at ``t``: returns (done_time, where)."""
    R = state_ref(S)            # the helpers get the state by reference (stateref.py)
    if l1_hit(R, cpu, pa >> 6, is_write, is_ifetch):
        lat = R.cfg[C_L1I_LAT] if is_ifetch else R.cfg[C_L1D_LAT]
        return t + lat, W_L1
    return access_below_l1(R, cpu, node, pa, is_write, is_ifetch, t, _F, _F, UNKNOWN)
