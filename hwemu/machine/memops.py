"""Memory traffic the OS issues through the model on behalf of a CPU (page copies, flushes)."""

from __future__ import annotations

import numpy as np
from numba import njit

from hwemu.machine.hierarchy import access, mem_read, mem_write, node_of_line, send, socket_probe
from hwemu.machine.stateref import handle_ref, state_ref
from hwemu.machine.layout import C_CPS, C_LLC_LAT, C_SOCKETS


@njit(cache=True, _nrt=False)
def coherent_read(S, my, home, line, t):
    """A read of ``line`` (home node ``home``) at ``t`` on behalf of node ``my`` that leaves no
    copy cached: a modified copy comes from the cache holding it, every cached copy is
    invalidated, else the line comes from memory. Returns when the data arrives."""
    tr = np.int64(-1)
    for s in range(S.cfg[C_SOCKETS]):
        present, dirty = socket_probe(S, s, line, True, home, t)
        if dirty:
            tr = send(S, S.socket_node[s], my, t + S.cfg[C_LLC_LAT], 64)
    if tr < 0:
        tr = mem_read(S, my, home, line, t)
    return tr


@njit(cache=True, _nrt=False)
def coherent_write(S, my, home, line, t):
    """A whole-line write of ``line`` at ``t`` from node ``my``: every cached copy is dropped,
    the line goes to memory (posted). Returns when the write has completed."""
    for s in range(S.cfg[C_SOCKETS]):
        socket_probe(S, s, line, True, home, t)
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
    cps = S.cfg[C_CPS]
    my = S.socket_node[cpu // cps]
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
            present, dirty = socket_probe(S, s, l0 + i, True, home, t)
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
    H = handle_ref(h)
    return access(H.S, cpu, node, pa, is_write, False, t)


@njit(cache=True)
def copy_handle(h, cpu, src_pa, dst_pa, nbytes, t0, window):
    """:func:`copy_lines` on the state of handle ``h``."""
    H = handle_ref(h)
    return copy_lines(H.S, cpu, src_pa, dst_pa, nbytes, t0, window)


@njit(cache=True)
def engine_handle(h, socket, pa, nlines, t0, step, is_write, out):
    """:func:`engine_lines` on the state of handle ``h``."""
    H = handle_ref(h)
    engine_lines(H.S, socket, pa, nlines, t0, step, is_write, out)
