"""Interconnect: point-to-point links between nodes, routed hop by hop, with queueing.

Every undirected link ``i`` between nodes ``a`` and ``b`` is two directed channels: ``2i``
(a -> b) and ``2i+1`` (b -> a), each with its own bandwidth. A channel's time is divided into
flit slots (the time to serialise ``FLIT_BYTES`` bytes); a message of ``n`` bytes entering
channel ``c`` at time ``t`` takes the first run of ``ceil(n / FLIT_BYTES)`` free consecutive
slots at or after ``t`` and arrives ``latency`` after its last slot (store and forward at each
hop). A message that finds the channel busy therefore waits: that wait is the queueing delay
that makes remote latency rise with load. (A slot calendar rather than a single busy-until
time lets a message use a gap before a transfer that was booked for later, so bookings made
slightly out of time order do not block each other.)

Routing is by fewest hops (ties broken by lowest next-hop node id), computed once.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def shortest_paths(num_nodes: int, edges: list[tuple[int, int]]):
    """(hops[i][j], next_hop[i][j]) by BFS; -1 where unreachable."""
    adj = [sorted({b for a, b in edges if a == u} | {a for a, b in edges if b == u})
           for u in range(num_nodes)]
    dist = [[-1] * num_nodes for _ in range(num_nodes)]
    nxt = [[-1] * num_nodes for _ in range(num_nodes)]
    for dst in range(num_nodes):
        # BFS from the destination gives, for every node, its distance to dst.
        dist[dst][dst] = 0
        frontier = [dst]
        seen = {dst}
        while frontier:
            new = []
            for u in frontier:
                for v in adj[u]:
                    if v not in seen:
                        seen.add(v)
                        dist[v][dst] = dist[u][dst] + 1
                        new.append(v)
            frontier = new
        for u in range(num_nodes):
            if u == dst or dist[u][dst] < 0:
                continue
            cands = [v for v in adj[u] if dist[v][dst] == dist[u][dst] - 1]
            nxt[u][dst] = min(cands)
    return dist, nxt


def build_routes(num_nodes: int, links) -> tuple[np.ndarray, np.ndarray]:
    """route_next[u, v] (next node) and route_chan[u, v] (directed channel) arrays."""
    edges = [(l.a, l.b) for l in links]
    _, nxt = shortest_paths(num_nodes, edges)
    route_next = np.full((num_nodes, num_nodes), -1, np.int64)
    route_chan = np.full((num_nodes, num_nodes), -1, np.int64)
    for u in range(num_nodes):
        for v in range(num_nodes):
            n = nxt[u][v]
            if n < 0:
                continue
            route_next[u, v] = n
            # the lowest-numbered link between u and n
            for l in links:
                if (l.a, l.b) == (u, n):
                    route_chan[u, v] = 2 * l.id
                    break
                if (l.b, l.a) == (u, n):
                    route_chan[u, v] = 2 * l.id + 1
                    break
    return route_next, route_chan


FLIT_BYTES = 8
LINK_SLOTS = 1 << 16
LINK_MASK = LINK_SLOTS - 1   # a slot's calendar entry: s mod LINK_SLOTS (a mask: no division)


def link_arrays(links):
    """Per directed channel: latency (ps), ps per flit slot (int), header bytes."""
    n = 2 * len(links)
    lat = np.zeros(max(n, 1), np.int64)
    unit = np.ones(max(n, 1), np.int64)
    hdr = np.zeros(max(n, 1), np.int64)
    for l in links:
        for c in (2 * l.id, 2 * l.id + 1):
            lat[c] = l.latency_ps
            unit[c] = max(1, int(round(FLIT_BYTES * 1e12 / l.bandwidth_bps)))
            hdr[c] = l.header_bytes
    return lat, unit, hdr


def link_calendar(links) -> np.ndarray:
    return np.full((max(2 * len(links), 1), LINK_SLOTS), -1, np.int64)


@njit(cache=True, _nrt=False)
def traverse(route_next, route_chan, chan_lat, chan_ppb, chan_hdr, chan_busy, chan_bytes,
             src, dst, t, payload):
    """Send a message of ``payload`` bytes (plus each link's header) from node ``src`` to node
    ``dst`` starting at time ``t``; returns the arrival time. ``chan_ppb`` holds ps per flit
    slot, ``chan_busy`` the slot calendars; updates them and the byte counts."""
    u = src
    while u != dst:
        c = route_chan[u, dst]
        nbytes = payload + chan_hdr[c]
        k = (nbytes + FLIT_BYTES - 1) // FLIT_BYTES
        unit = chan_ppb[c]
        s = (t + unit - 1) // unit
        j = 0
        while j < k:                      # find k consecutive free slots from s
            if chan_busy[c, (s + j) & LINK_MASK] == s + j:
                s = s + j + 1
                j = 0
            else:
                j += 1
        for j in range(k):
            chan_busy[c, (s + j) & LINK_MASK] = s + j
        chan_bytes[c] += nbytes
        t = (s + k) * unit + chan_lat[c]
        u = route_next[u, dst]
    return t
