"""Memory traffic the OS issues through the model on behalf of a CPU (page copies, flushes)."""

from __future__ import annotations

import numpy as np
from numba import njit

from hwemu.machine.hierarchy import (DATA, access, mem_read, mem_write, node_of_line, send,
                                     socket_probe)
from hwemu.machine.stateref import handle_state, state_ref
from hwemu.machine.layout import C_LLC_LAT, C_SOCKETS

# plain (not literal) booleans: a literal one makes numba compile the callee again
_T, _F = np.bool_(True), np.bool_(False)

#: the OS model's metadata streamer remembers this many recent demand lines per CPU ...
MP_RECENT_LINES = 32
#: ... and this many prefetched lines not used yet
MP_PF_LINES = 64


@njit(cache=True, _nrt=False)
def coherent_read(S, my, home, line, t):
    """A read of ``line`` (home node ``home``) at ``t`` on behalf of node ``my`` that leaves no
    copy cached: a modified copy comes from the cache holding it, every cached copy is
    invalidated, else the line comes from memory. Returns when the data arrives."""
    tr = np.int64(-1)
    for s in range(S.cfg[C_SOCKETS]):
        present, dirty = socket_probe(S, s, line, _T, home, t)
        if dirty:
            tr = send(S, S.socket_node[s], my, t + S.cfg[C_LLC_LAT], DATA)
    if tr < 0:
        tr = mem_read(S, my, home, line, t)
    return tr


@njit(cache=True, _nrt=False)
def coherent_write(S, my, home, line, t):
    """A whole-line write of ``line`` at ``t`` from node ``my``: every cached copy is dropped,
    the line goes to memory (posted). Returns when the write has completed."""
    for s in range(S.cfg[C_SOCKETS]):
        socket_probe(S, s, line, _T, home, t)
    return mem_write(S, my, home, line, t)


@njit(cache=True)
def copy_lines(S0, cpu, src_pa, dst_pa, nbytes, t0, window):
    """Copy ``nbytes`` (whole lines) from ``src_pa`` to ``dst_pa`` as ``cpu`` would with
    non-temporal loads and stores, ``window`` lines in flight. Source lines held in any cache
    are invalidated there (a modified one is read from that cache instead of memory);
    destination lines are dropped from every cache. Reads and writes go through the links,
    buses and banks of the model, so the copy contends with everything else. Returns the time
    the last write completed (``t0`` for an empty copy)."""
    return copy_lines_in(S0, cpu, src_pa, dst_pa, nbytes, t0, window, np.empty(window, np.int64))


@njit(cache=True, _nrt=False)
def copy_lines_in(S0, cpu, src_pa, dst_pa, nbytes, t0, window, slots):
    """:func:`copy_lines` with the caller's scratch array ``slots`` (at least ``window`` long)
    for the completion times of the lines in flight: nothing is allocated, so the replay loop
    (compiled without reference counting) can call it."""
    S = state_ref(S0)           # helpers take the state by reference (stateref.py)
    my = S.socket_node[S.cpu_socket[cpu]]
    nl = (nbytes + 63) // 64
    sl0 = src_pa >> 6
    dl0 = dst_pa >> 6
    sn = node_of_line(S, sl0)
    dn = node_of_line(S, dl0)
    for q in range(window):
        slots[q] = t0
    end = t0
    for i in range(nl):
        j = 0
        for q in range(1, window):
            if slots[q] < slots[j]:
                j = q
        tr = coherent_read(S, my, sn, sl0 + i, slots[j])
        tw = coherent_write(S, my, dn, dl0 + i, tr)
        slots[j] = tw
        if tw > end:
            end = tw
    return end


@njit(cache=True)
def engine_lines(S0, socket, pa, nlines, t0, step, is_write, out):
    """Lines ``pa``, ``pa + 64``, ... (``nlines``) read or written by a device on the uncore of
    ``socket`` (a page-copy DMA engine), line ``i`` issued at ``t0 + i * step``. Coherent like
    :func:`copy_lines`: a read takes a modified line from the cache holding it (and leaves it
    there invalid), a write invalidates the line in every cache; memory traffic goes through
    the links, buses and banks. ``out[i]``: when line ``i``'s data arrived (read) or its write
    completed."""
    S = state_ref(S0)
    my = S.socket_node[socket]
    l0 = pa >> 6
    home = node_of_line(S, l0)
    for i in range(nlines):
        t = t0 + i * step
        if is_write:
            out[i] = coherent_write(S, my, home, l0 + i, t)
        else:
            out[i] = coherent_read(S, my, home, l0 + i, t)


@njit(cache=True)
def drop_lines(S0, pa, nbytes, t):
    """Invalidate ``nbytes`` from ``pa`` in every cache, writing modified lines back to their
    home (posted at ``t``). Returns the number of lines that were modified."""
    S = state_ref(S0)           # helpers take the state by reference (stateref.py)
    n = 0
    l0 = pa >> 6
    home = node_of_line(S, l0)
    for i in range((nbytes + 63) // 64):
        for s in range(S.cfg[C_SOCKETS]):
            present, dirty = socket_probe(S, s, l0 + i, _T, home, t)
            if dirty:
                mem_write(S, S.socket_node[s], home, l0 + i, t)
                n += 1
    return n


# -- entries through the machine's compiled handle (hwemu.machine.stateref): typing and unboxing
# one handle instead of the state tuple of ~100 arrays makes a call from Python ~1 us instead of
# ~15 us (the OS model makes several per page fault: struct page, PTE, LRU lock, clear_page).

@njit(cache=True, _nrt=False)
def access_handle(h, cpu, node, pa, is_write, t):
    """:func:`hwemu.machine.hierarchy.access` (a data access) on the state of handle ``h``."""
    return access(handle_state(h), cpu, node, pa, is_write, _F, t)


@njit(cache=True, _nrt=False)
def _ordered_find(rows, n, cpu, x):
    for i in range(n[cpu]):
        if rows[cpu, i] == x:
            return i
    return -1


@njit(cache=True, _nrt=False)
def _ordered_drop(rows, n, cpu, i):
    k = n[cpu] - 1
    for j in range(i, k):
        rows[cpu, j] = rows[cpu, j + 1]
    n[cpu] = k


@njit(cache=True, _nrt=False)
def _ordered_add(rows, n, cpu, x, cap):
    """Append ``x`` (absent) to CPU ``cpu``'s ordered set; drop the oldest beyond ``cap``."""
    rows[cpu, n[cpu]] = x
    n[cpu] += 1
    if n[cpu] > cap:
        _ordered_drop(rows, n, cpu, np.int64(0))


@njit(cache=True, _nrt=False)
def _meta_prefetch(S, cpu, ln, demand, t):
    """One prefetch of the metadata streamer: a line read within the demand's 4 KiB page,
    unless already prefetched and unused. Returns 1 if issued."""
    if (ln >> 6) != (demand >> 6) or _ordered_find(S.mp_pf, S.mp_npf, cpu, ln) >= 0:
        return 0
    access(S, cpu, node_of_line(S, ln), ln << 6, _F, _F, t)
    _ordered_add(S.mp_pf, S.mp_npf, cpu, ln, np.int64(MP_PF_LINES))
    return 1


@njit(cache=True, _nrt=False)
def meta_access(S0, cpu, pa, is_write, atomic, atomic_ps, degree, t):
    """A kernel metadata access (struct page, PTE, lock word) by ``cpu`` at ``t``: through the
    caches, coherence, links and controllers (an atomic is a write plus ``atomic_ps``), then
    the L2 streamer for kernel metadata of the OS model (``degree`` lines; 0 when the machine
    has its own L2 prefetcher, which sees the access): a demand on a line it prefetched
    prefetches ``degree`` lines further; a demand on the line after a recent demand prefetches
    the next ``degree`` lines; prefetches are real line reads at ``t`` and never cross a 4 KiB
    page. Per CPU it remembers the last ``MP_RECENT_LINES`` demand lines and the last
    ``MP_PF_LINES`` prefetched, unused lines (``S.mp_*``). Returns (latency, where served,
    prefetches issued)."""
    S = state_ref(S0)
    line = pa >> 6
    done, where = access(S, cpu, node_of_line(S, line), pa, is_write or atomic, _F, t)
    lat = done - t
    if atomic:
        lat += atomic_ps
    npf = 0
    if degree > 0:
        i = _ordered_find(S.mp_pf, S.mp_npf, cpu, line)
        if i >= 0:
            _ordered_drop(S.mp_pf, S.mp_npf, cpu, i)
            npf += _meta_prefetch(S, cpu, line + degree, line, t)
        elif _ordered_find(S.mp_rec, S.mp_nrec, cpu, line - 1) >= 0:
            for ln in range(line + 1, line + 1 + degree):
                npf += _meta_prefetch(S, cpu, ln, line, t)
        if _ordered_find(S.mp_rec, S.mp_nrec, cpu, line) < 0:
            _ordered_add(S.mp_rec, S.mp_nrec, cpu, line, np.int64(MP_RECENT_LINES))
    return lat, where, npf


@njit(cache=True, _nrt=False)
def drop_lines_handle(h, pa, nbytes, t):
    """:func:`drop_lines` on the state of handle ``h``."""
    return drop_lines(handle_state(h), pa, nbytes, t)


@njit(cache=True, _nrt=False)
def meta_access_handle(h, cpu, pa, is_write, atomic, atomic_ps, degree, t):
    """:func:`meta_access` on the state of handle ``h``."""
    return meta_access(handle_state(h), cpu, pa, is_write, atomic, atomic_ps, degree, t)


@njit(cache=True, _nrt=False)
def meta_access_seq_handle(h, cpu, gaps, pas, flags, atomic_ps, degree, t0, where, npf):
    """A sequence of :func:`meta_access` calls on the state of handle ``h``, each starting
    when the one before has ended plus ``gaps[i]`` (the kernel's own cycles between them):
    access ``i`` of line ``pas[i]`` (``flags[i]``: bit 0 write, bit 1 atomic) starts at ``t0``
    plus every gap up to and including ``gaps[i]`` and every latency before it. Fills
    ``where`` and ``npf`` per access; returns the total time (gaps and latencies), the same
    as one :func:`meta_access` per access from Python, without a crossing for each."""
    S = handle_state(h)
    t = t0
    for i in range(pas.shape[0]):
        t += gaps[i]
        f = flags[i]
        lat, w, n = meta_access(S, cpu, pas[i], (f & 1) != 0, (f & 2) != 0, atomic_ps, degree,
                                t)
        where[i] = w
        npf[i] = n
        t += lat
    return t - t0


@njit(cache=True)
def copy_handle(h, cpu, src_pa, dst_pa, nbytes, t0, window):
    """:func:`copy_lines` on the state of handle ``h``."""
    return copy_lines(handle_state(h), cpu, src_pa, dst_pa, nbytes, t0, window)


@njit(cache=True)
def engine_handle(h, socket, pa, nlines, t0, step, is_write, out):
    """:func:`engine_lines` on the state of handle ``h``."""
    engine_lines(handle_state(h), socket, pa, nlines, t0, step, is_write, out)
