"""Caches, coherence and the path to memory between exact, hand-computed latencies.

Tiny machine (tests/machine/tiny.toml): 1 GHz; L1 2 ns, L2 10 ns, LLC 30 ns (load-to-use);
mc_latency 10 ns each way; DRAM tRCD 12, tCL 8, tBURST 4 (bus slots of 4 ns); mesh 5 ns;
link 20 ns + 1 ns per 8-byte flit (request 1 flit, data 9 flits).
"""

import pytest

from hwemu.machine import hierarchy as H
from hwemu.machine.cache import ST_E, ST_M, ST_S, find
from hwemu.machine.dram import DC_READS, DC_WRITES
from hwemu.machine.system import Machine

from machine_testkit import NS, align

T = 1_000_000 * NS


@pytest.fixture
def m(tiny):
    return Machine(tiny, threads=4, cpus=[0, 1, 2, 3])


def pa(m, node, line):
    return int(m.S.node_base[node]) + line * 64


def acc(m, cpu, node, addr, t, write=False, ifetch=False):
    d, w = H.access(m.S, cpu, node, addr, write, ifetch, t)
    return d - t, H.W_NAMES[w]


def l1_state(m, cpu, line):
    S = m.S
    r = cpu * S.cfg[H.C_L1D_SETS] + line % S.cfg[H.C_L1D_SETS]
    w = find(S.l1d_t, r, line)
    return None if w < 0 else int(S.l1d_st[r, w])


def test_miss_to_local_dram_then_l1_hit(m):
    a = pa(m, 0, 0)
    assert acc(m, 0, 0, a, T) == (74 * NS, "local_dram")    # 30 + 10 + (12+8+4) + 10
    assert acc(m, 0, 0, a + 8, T + 1000 * NS) == (2 * NS, "l1")
    assert l1_state(m, 0, a >> 6) == ST_E                    # nobody else has it
    assert m.S.ccnt[0, H.K_L1D_MISS] == 1 and m.S.ccnt[0, H.K_L1D_HIT] == 1


def test_l2_hit_after_l1_eviction(m):
    a = pa(m, 0, 0)
    acc(m, 0, 0, a, T)
    # two more lines in the same L1 set (8 sets, 2 ways) push it out of L1, not out of L2
    acc(m, 0, 0, pa(m, 0, 8), T + 1000 * NS)
    acc(m, 0, 0, pa(m, 0, 16), T + 2000 * NS)
    assert acc(m, 0, 0, a, T + 3000 * NS) == (10 * NS, "l2")


def test_llc_hit_from_another_core_and_snoops(m):
    a = pa(m, 0, 0)
    line = a >> 6
    acc(m, 0, 0, a, T)
    # cpu 1 (same socket) finds it in the LLC; cpu 0 holds it clean: no snoop cost
    assert acc(m, 1, 0, a, T + 1000 * NS) == (30 * NS, "llc")
    assert l1_state(m, 0, line) == ST_S and l1_state(m, 1, line) == ST_S
    # cpu 0 writes its shared copy: upgrade through the LLC, invalidating cpu 1 (+7 ns snoop)
    assert acc(m, 0, 0, a, T + 2000 * NS, write=True) == (37 * NS, "llc")
    assert l1_state(m, 0, line) == ST_M and l1_state(m, 1, line) is None
    # a write hit on M is an L1 hit
    assert acc(m, 0, 0, a, T + 3000 * NS, write=True) == (2 * NS, "l1")
    # cpu 1 reads the modified line: snoop cpu 0 (+7), which downgrades to S
    assert acc(m, 1, 0, a, T + 4000 * NS) == (37 * NS, "llc")
    assert l1_state(m, 0, line) == ST_S
    assert m.S.ccnt[1, H.K_SNOOP] == 1 and m.S.ccnt[0, H.K_SNOOP] == 1


def test_remote_cache_to_cache_and_write_invalidation(m):
    a = pa(m, 0, 0)
    line = a >> 6
    acc(m, 0, 0, a, T)
    acc(m, 0, 0, a, T + 1000 * NS, write=True)               # M in cpu 0 (socket 0)
    writes0 = int(m.S.dram_cnt[0, DC_WRITES])
    # cpu 2 on socket 1: LLC miss; home (node 0) forwards to the owner socket 0:
    # 30 (own LLC) + [5 mesh + 1 flit + 20 link + 5 mesh] + 30 (owner LLC)
    # + [5 + 9 flits + 20 + 5] data back = 130 ns
    t = T + 2000 * NS
    assert acc(m, 2, 0, a, t) == (130 * NS, "remote_cache")
    # the owner downgraded to S and wrote the line back to its home memory
    assert l1_state(m, 0, line) == ST_S and l1_state(m, 2, line) == ST_S
    assert int(m.S.dram_cnt[0, DC_WRITES]) == writes0 + 1
    # now cpu 0 writes: socket 1's copies are invalidated (LLC and cpu 2's caches)
    d, where = acc(m, 0, 0, a, T + 3000 * NS, write=True)
    assert where == "llc" and d >= 30 * NS + 2 * 31 * NS       # waits for the invalidation ack
    assert l1_state(m, 2, line) is None
    r = 1 * m.S.cfg[H.C_LLC_SETS] + line % m.S.cfg[H.C_LLC_SETS]
    assert find(m.S.llc_t, r, line) == -1


def test_remote_dram_exact(m):
    a = pa(m, 0, 4096)                                        # untouched row
    t = T
    # request: 30 LLC + 5 mesh + 1 flit + 20 link + 5 mesh, then 10 to the controller
    t_mc = t + 71 * NS
    data = align(t_mc + 20 * NS, 4 * NS) + 4 * NS             # tRCD+tCL, burst slot
    back = data + 10 * NS + 5 * NS + 9 * NS + 20 * NS + 5 * NS
    assert acc(m, 2, 0, a, t) == (back - t, "remote_dram")
    # channel 0 is node 0 -> 1 (the data, 64 + 8 bytes), channel 1 is 1 -> 0 (the request)
    assert m.S.chan_bytes.tolist() == [72, 8]


def test_dirty_llc_victim_is_written_back_and_back_invalidated(m):
    S = m.S
    sets = int(S.cfg[H.C_LLC_SETS])                           # 64 sets, 4 ways
    lines = [k * sets for k in range(5)]                      # one LLC set
    for i, l in enumerate(lines):
        acc(m, 0, 0, pa(m, 0, l), T + i * 1000 * NS, write=True)
    # the first line was evicted from the LLC: inclusion removed it from cpu 0, and its
    # modified data went back to memory
    assert l1_state(m, 0, lines[0]) is None
    assert int(S.dram_cnt[0, DC_WRITES]) == 1 and int(S.dram_cnt[0, DC_READS]) == 5
    assert S.ccnt[0, H.K_LLC_WB] == 1


def test_instruction_fetch_uses_l1i(m):
    a = pa(m, 0, 100)
    assert acc(m, 0, 0, a, T, ifetch=True)[1] == "local_dram"
    assert acc(m, 0, 0, a, T + 1000 * NS, ifetch=True) == (2 * NS, "l1")
    assert m.S.ccnt[0, H.K_L1I_HIT] == 1
