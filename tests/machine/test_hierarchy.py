"""Caches, coherence and the path to memory between exact, hand-computed latencies.

Tiny machine (tests/machine/tiny.toml): 1 GHz; L1 2 ns, L2 10 ns, LLC 30 ns (load-to-use);
mc_latency 10 ns each way; DRAM tRCD 12, tCL 8, tBURST 4 (bus slots of 4 ns); mesh 5 ns;
link 20 ns + 1 ns per 8-byte flit (request 1 flit, data 9 flits).
"""

import pytest

from hwemu.cachesim.setassoc import MESI_E as ST_E
from hwemu.cachesim.setassoc import MESI_M as ST_M
from hwemu.cachesim.setassoc import MESI_S as ST_S
from hwemu.cachesim.setassoc import P_SETS, find_in
from hwemu.machine import layout
from hwemu.machine import hierarchy as H
from hwemu.machine.layout import DC_READS, DC_WRITES
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
    return d - t, layout.W_NAMES[w]


def l1_state(m, cpu, line):
    i = find_in(m.S.l1d, cpu, line)
    return None if i < 0 else int(m.S.l1d.coh[i])


def test_miss_to_local_dram_then_l1_hit(m):
    a = pa(m, 0, 0)
    assert acc(m, 0, 0, a, T) == (74 * NS, "local_dram")    # 30 + 10 + (12+8+4) + 10
    assert acc(m, 0, 0, a + 8, T + 1000 * NS) == (2 * NS, "l1")
    assert l1_state(m, 0, a >> 6) == ST_E                    # nobody else has it
    assert m.S.ccnt[0, layout.K_L1D_MISS] == 1 and m.S.ccnt[0, layout.K_L1D_HIT] == 1


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
    assert m.S.ccnt[1, layout.K_SNOOP] == 1 and m.S.ccnt[0, layout.K_SNOOP] == 1


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
    assert find_in(m.S.llc, 1, line) == -1


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
    sets = int(S.llc.params[P_SETS])                          # 64 sets, 4 ways
    lines = [k * sets for k in range(5)]                      # one LLC set
    for i, l in enumerate(lines):
        acc(m, 0, 0, pa(m, 0, l), T + i * 1000 * NS, write=True)
    # the first line was evicted from the LLC: inclusion removed it from cpu 0, and its
    # modified data went back to memory
    assert l1_state(m, 0, lines[0]) is None
    assert int(S.dram_cnt[0, DC_WRITES]) == 1 and int(S.dram_cnt[0, DC_READS]) == 5
    assert S.ccnt[0, layout.K_LLC_WB] == 1


def test_instruction_fetch_uses_l1i(m):
    a = pa(m, 0, 100)
    assert acc(m, 0, 0, a, T, ifetch=True)[1] == "local_dram"
    assert acc(m, 0, 0, a, T + 1000 * NS, ifetch=True) == (2 * NS, "l1")
    assert m.S.ccnt[0, layout.K_L1I_HIT] == 1


@pytest.mark.parametrize("policy", ["lru", "fifo"])
def test_replacement_policy_from_toml_is_used(tmp_path, policy):
    from hwemu.cachesim import setassoc as sa
    from hwemu.machine.config import load_machine
    from machine_testkit import TINY

    f = tmp_path / "p.toml"
    f.write_text(f'base = "{TINY}"\n[cache.l1d]\npolicy = "{policy}"\n')
    m = Machine(load_machine(str(f)), threads=1, cpus=[0])
    assert int(m.S.l1d.params[sa.P_POLICY]) == sa.POLICIES[policy]
    assert int(m.S.l2.params[sa.P_POLICY]) == sa.POLICY_LRU
    a0, a8, a16 = pa(m, 0, 0), pa(m, 0, 8), pa(m, 0, 16)      # one L1D set (8 sets, 2 ways)
    acc(m, 0, 0, a0, T)
    acc(m, 0, 0, a8, T + 1000 * NS)
    assert acc(m, 0, 0, a0, T + 2000 * NS) == (2 * NS, "l1")   # hit: LRU makes 8 the victim
    acc(m, 0, 0, a16, T + 3000 * NS)
    if policy == "lru":
        assert acc(m, 0, 0, a0, T + 4000 * NS) == (2 * NS, "l1")
        assert acc(m, 0, 0, a8, T + 5000 * NS) == (10 * NS, "l2")
    else:                                       # FIFO: 0 was inserted first, whatever the hit
        assert acc(m, 0, 0, a8, T + 4000 * NS) == (2 * NS, "l1")
        assert acc(m, 0, 0, a0, T + 5000 * NS) == (10 * NS, "l2")


def test_random_llc_is_seeded(tmp_path):
    from hwemu.cachesim import setassoc as sa
    from hwemu.machine.config import load_machine
    from machine_testkit import TINY

    f = tmp_path / "r.toml"
    f.write_text(f'base = "{TINY}"\n[cache.llc]\npolicy = "random"\n')
    cfg = load_machine(str(f))

    def resident(seed):
        m = Machine(cfg, threads=1, cpus=[0], seed=seed)
        sets = int(m.S.llc.params[sa.P_SETS])                    # 64 sets, 4 ways
        for k in range(40):                                       # 40 lines of LLC set 0
            acc(m, 0, 0, pa(m, 0, k * sets), T + k * 1000 * NS)
        return sa.resident_blocks(m.S.llc, 0).tolist()

    assert len(resident(1)) == 4
    assert resident(1) == resident(1)
    assert any(resident(1) != resident(s) for s in (2, 3, 4))
