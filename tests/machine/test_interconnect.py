"""Links between mock endpoints: routing, exact latency, queueing when busy."""

import numpy as np

from hwemu.machine.config import load_machine
from hwemu.machine.interconnect import (build_routes, link_arrays, link_calendar, shortest_paths,
                                        traverse)

from machine_testkit import NS


def _links(cfg):
    rn, rc = build_routes(cfg.num_nodes, cfg.links)
    lat, unit, hdr = link_arrays(cfg.links)
    return rn, rc, lat, unit, hdr, link_calendar(cfg.links), np.zeros(lat.shape, np.int64)


def test_routes_on_a_ring():
    dist, nxt = shortest_paths(4, [(0, 1), (1, 2), (2, 3), (3, 0)])
    assert dist[0] == [0, 1, 2, 1]
    assert nxt[0][2] == 1                   # tie broken by the lower next hop
    cfg = load_machine("skx-4s-ring")
    rn, rc = build_routes(4, cfg.links)
    assert rn[0, 2] == 1 and rn[1, 2] == 2 and rc[0, 1] == 0 and rc[1, 0] == 1


def test_one_hop_exact_latency(tiny):
    L = _links(tiny)
    t = 1000 * NS
    # 8 GB/s, 8-byte flits: 1 ns per flit. A request is one 8-byte header: 1 flit + 20 ns.
    assert traverse(*L, 0, 1, t, 0) == t + 1 * NS + 20 * NS
    # data: 64 + 8 bytes = 9 flits, in the other direction (independent channel)
    assert traverse(*L, 1, 0, t, 64) == t + 9 * NS + 20 * NS
    assert L[6].tolist() == [8, 72]


def test_busy_link_queues(tiny):
    L = _links(tiny)
    t = 1000 * NS
    a = traverse(*L, 1, 0, t, 64)
    b = traverse(*L, 1, 0, t, 64)         # same time: waits for the first to serialise
    assert b == a + 9 * NS
    # a message booked earlier in time than a later booking uses the gap before it
    c = traverse(*L, 1, 0, t + 1000 * NS, 64)
    d = traverse(*L, 1, 0, t + 500 * NS, 64)
    assert c == t + 1000 * NS + 29 * NS and d == t + 500 * NS + 29 * NS


def test_two_hops_store_and_forward():
    cfg = load_machine("skx-4s-ring")
    L = _links(cfg)
    lat = cfg.links[0].latency_ps
    unit = L[3][0]
    flits = (64 + cfg.links[0].header_bytes + 7) // 8
    t = 10 ** 9
    one = traverse(*L, 0, 1, t, 64)
    assert one - t == -(-t // unit) * unit - t + flits * unit + lat
    two = traverse(*L, 2, 0, t, 64)
    assert two - t >= 2 * (flits * unit + lat)
    assert L[6].sum() == 3 * (64 + cfg.links[0].header_bytes)
