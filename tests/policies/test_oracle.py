"""The oracle: offline best static placement from the whole trace, applied at time 0 with
zero migration cost; a bound that no other policy beats on a small case."""

import numpy as np
import pytest

from hwemu.errors import HwemuError
from hwemu.policies.registry import get_policy, parse_policy_spec
from hwemu.traces.format import TraceChunk, write_trace

from advanced_kit import BASE, P, US, Sim, TierHardware

ROUNDS = 12


def workload():
    """(tid, page, write) steps: thread 1 (node 0) first-touches pages 0-31; then thread 2
    (node 1) keeps reading pages 0-15 and thread 1 pages 16-31."""
    steps = [(1, i, True) for i in range(32)]
    for _ in range(ROUNDS):
        steps += [(2, i, False) for i in range(16)] + [(1, 16 + i, False) for i in range(16)]
    return steps


def write_workload(path, steps):
    tid = np.array([t for t, _, _ in steps], np.uint16)
    addr = np.array([BASE + i * P for _, i, _ in steps], np.uint64)
    kind = np.array([2 if w else 1 for _, _, w in steps], np.uint8)
    write_trace(path, TraceChunk.from_arrays(kind, addr, np.full(len(steps), 8, np.uint16), tid),
                "synthetic", "oracle test")


def replay(sim, steps):
    first = 32
    for j, (tid, page, write) in enumerate(steps):
        sim.access(tid, BASE + page * P, write)
        if j >= first and (j - first) % 32 == 31:
            sim.advance(20 * US)                      # time for scans, ticks, migrations
    return sim.latency_ps


def test_places_each_page_on_the_node_that_uses_it(tmp_path):
    steps = workload()
    write_workload(tmp_path / "t.hwt", steps)
    oracle = get_policy("oracle")
    sim = Sim(threads={1: 0, 2: 2}, trace=tmp_path / "t.hwt", placement=oracle)
    replay(sim, steps)
    assert [sim.node_of(BASE + i * P) for i in range(32)] == [1] * 16 + [0] * 16
    assert sim.count("linux.migrate", "pages_migrated") == 0
    assert sim.count("linux.numa", "protnone_entries") == 0
    assert sim.stats.get("policy.oracle", "pages_planned") == 32
    assert sim.stats.get("policy.oracle.node1", "pages_planned") == 16
    # cost: page 0-15: 1 store from node 0 (distance 20) + 12 loads from node 1 (10)
    assert sim.stats.get("policy.oracle", "planned_cost") == 16 * (20 + 120) + 16 * (13 * 10)


def test_capacity_aware(tmp_path):
    # node 1 can hold only a few pages: the most accessed go there, the rest to the next best
    hw = TierHardware(cpus=(2, 2, 0), frames=1024)
    steps = [(1, i, True) for i in range(40)] + [(2, i, False) for i in range(40) for _ in range(1 + i)]
    write_workload(tmp_path / "t.hwt", steps)
    sim = Sim(hw=hw, threads={1: 0, 2: 2}, trace=tmp_path / "t.hwt", pages=64)
    oracle = get_policy("oracle")
    k = sim.k
    # fill node 1 so that only 10 frames remain above its reserve
    from hwemu.linux.page_alloc import compute_watermarks
    wm = compute_watermarks(k, 10)
    filler = k.alloc.nodes[1].free_count - wm.high[1] - (40 // 512 + 4) - 10
    for _ in range(filler):
        assert k.alloc_page(0, 1, thisnode=True) is not None
    plan = oracle.compute(sim.ctx)
    on1 = sorted(v - (BASE >> 12) for _, v, n in plan if n == 1)
    assert on1 == list(range(30, 40))                # the 10 most accessed pages
    assert all(n == 0 for _, v, n in plan if v - (BASE >> 12) < 30)


def test_without_mappings_one_vma_per_run(tmp_path):
    steps = workload()
    write_workload(tmp_path / "t.hwt", steps)
    sim = Sim(threads={1: 0, 2: 2}, trace=tmp_path / "t.hwt", pages=0,
              placement=get_policy("oracle"))
    vmas = sim.k.mm(1).vmas
    assert [(v.start, v.end, v.policy.nodes) for v in vmas] == [
        (BASE, BASE + 16 * P, (1,)), (BASE + 16 * P, BASE + 32 * P, (0,))]
    replay(sim, steps)
    assert [sim.node_of(BASE + i * P) for i in range(32)] == [1] * 16 + [0] * 16


def test_needs_the_trace():
    with pytest.raises(HwemuError, match="policy oracle: needs the trace"):
        Sim(placement=get_policy("oracle"))


def test_is_a_placement_policy():
    place, migr = parse_policy_spec("oracle")
    assert (place.name, migr.name) == ("oracle", "none")


COMPETITORS = {
    "none": {},
    "autonuma": dict(scan_delay="10us", scan_period_min="20us", scan_period_max="200us",
                     min_free_pages=8),
    "tpp": dict(scan_delay="10us", scan_period="20us", hot_threshold="15us"),
    "nomad": dict(scan_delay="10us", scan_period="20us", hot_threshold="15us"),
    "hotness": dict(sample_period=1, migrate_interval="20us"),
}


def test_at_least_as_good_as_every_other_policy(tmp_path):
    steps = workload()
    write_workload(tmp_path / "t.hwt", steps)
    lat = {}
    for name, params in COMPETITORS.items():
        sim = Sim(get_policy(name, **params), threads={1: 0, 2: 2}, trace=tmp_path / "t.hwt")
        lat[name] = replay(sim, steps)
        if name in ("autonuma", "hotness"):
            # they do fix the placement, at a price
            assert sim.count("linux.migrate", "pages_migrated") >= 16
    sim = Sim(threads={1: 0, 2: 2}, trace=tmp_path / "t.hwt", placement=get_policy("oracle"))
    lat["oracle"] = replay(sim, steps)
    print({k: v / 1e6 for k, v in lat.items()})
    assert all(lat["oracle"] <= v for v in lat.values()), lat
    assert lat["oracle"] < lat["none"] and lat["oracle"] < lat["autonuma"]


# -- in the co-simulation, on the machine model --------------------------------------------------
MACHINE = """
base = "skx-2s-cxl"
name = "oracle-test"
[cache.l2]
size = "64KiB"
[cache.llc]
size = "1MiB"
ways = 16
[[node]]
socket = 0
size = "4MiB"
[[node]]
socket = 1
size = "4MiB"
[[node]]
name = "cxl0"
socket = -1
size = "64MiB"
dram = { channels = 2, mc_latency = "30ns" }
"""


def tiering_trace(path, n_random=12000, seed=3):
    """Two threads; each first writes a 2.5 MiB cold array then a 1 MiB hot one (the hot
    pages are touched last, when the DRAM nodes are full), then random 8-byte accesses, 85 %
    to its hot array."""
    rng = np.random.default_rng(seed)
    addrs, kinds, tids = [], [], []
    for t in range(2):
        base = 0x7000_0000_0000 + t * (1 << 32)
        cold, hot = 5 << 19, 1 << 20
        init = np.arange(base, base + cold + hot, 4096, dtype=np.uint64)
        is_hot = rng.random(n_random) < 0.85
        off = np.where(is_hot, cold + rng.integers(0, hot // 8, n_random) * 8,
                       rng.integers(0, cold // 8, n_random) * 8).astype(np.uint64)
        a = np.concatenate([init, base + off])
        k = np.concatenate([np.full(len(init), 2, np.uint8),
                            np.where(rng.random(n_random) < 0.3, 2, 1).astype(np.uint8)])
        addrs.append(a)
        kinds.append(k)
        tids.append(np.full(len(a), t, np.uint16))
    # round-robin in blocks of 64 records
    n = max(len(a) for a in addrs)
    A, K, T = [], [], []
    for i in range(0, n, 64):
        for t in range(2):
            A.append(addrs[t][i:i + 64])
            K.append(kinds[t][i:i + 64])
            T.append(tids[t][i:i + 64])
    A, K, T = np.concatenate(A), np.concatenate(K), np.concatenate(T)
    write_trace(path, TraceChunk.from_arrays(K, A, np.full(len(A), 8, np.uint16), T,
                                             np.full(len(A), 6, np.uint32)),
                "synthetic", "oracle cosim test")


COSIM_COMPETITORS = {
    "none": {},
    "autonuma": dict(scan_delay="100us", scan_period_min="200us", scan_period_max="2ms"),
    "tpp": dict(scan_delay="100us", scan_period="200us", hot_threshold="100us",
                kswapd_check="20us"),
    "nomad": dict(scan_delay="100us", scan_period="200us", hot_threshold="100us",
                  kswapd_check="20us"),
    "hotness": dict(sample_period=16, migrate_interval="10us"),
}


@pytest.mark.slow
def test_cosim_oracle_is_a_bound(tmp_path):
    from hwemu.sim.cosim import CoSim

    (tmp_path / "m.toml").write_text(MACHINE)
    tiering_trace(tmp_path / "t.parquet")
    res = {}
    for name, params in list(COSIM_COMPETITORS.items()) + [("oracle", None)]:
        kw = dict(placement=get_policy("oracle")) if name == "oracle" else \
            dict(migration=get_policy(name, **params))
        r = CoSim(str(tmp_path / "m.toml"), tmp_path / "t.parquet", cpus=[0, 1], **kw).run()
        res[name] = (r.summary["sim_time_ns"], r.summary["mean_latency_ns"],
                     r.summary["pages_migrated"])
    print(res)
    assert res["oracle"][2] == 0
    for name, (t, lat, _) in res.items():
        assert res["oracle"][0] <= t and res["oracle"][1] <= lat, (name, res)
    # the competitors are not idle on this case: the tiering policies do move pages
    assert res["tpp"][2] > 0 and res["nomad"][2] > 0 and res["hotness"][2] > 0
    assert res["oracle"][1] < res["none"][1]


# -- both demo cases, small: the oracle bounds every policy ------------------------------------
DEMO_NB = """
[numa_balancing]
scan_delay = "200us"
scan_period_min = "200us"
scan_period_max = "12ms"
scan_size = "1MiB"

[[process]]
pid = 1
name = "t"
"""


def numa_move_trace(path, pages=96, n_random=16000, seed=5):
    """As traces/demo/numa_move.parquet, smaller: each of 2 threads writes every page of its
    own array, then makes random 8-byte accesses to it (30 % stores, 70 % to the hot half)."""
    rng = np.random.default_rng(seed)
    A, K, T = [], [], []
    for t in range(2):
        base = 0x7000_0000_0000 + t * (1 << 32)
        size = pages * 4096
        init = np.arange(base, base + size, 4096, dtype=np.uint64)
        hot = rng.random(n_random) < 0.7
        off = np.where(hot, rng.integers(0, size // 16, n_random) * 8,
                       rng.integers(0, size // 8, n_random) * 8).astype(np.uint64)
        A.append(np.concatenate([init, base + off]))
        K.append(np.concatenate([np.full(len(init), 2, np.uint8),
                                 np.where(rng.random(n_random) < 0.3, 2, 1).astype(np.uint8)]))
        T.append(np.full(len(A[-1]), t, np.uint16))
    # interleave the two threads record by record
    A = np.stack(A, 1).ravel()
    K = np.stack(K, 1).ravel()
    T = np.stack(T, 1).ravel()
    write_trace(path, TraceChunk.from_arrays(K, A, np.full(len(A), 8, np.uint16), T,
                                             np.full(len(A), 100, np.uint32)),
                "synthetic", "oracle numa_move test")


DEMO_POLICIES = ("none", "manual", "autonuma", "tpp", "hotness", "nomad")


def _run_all(machine, trace, schedule, policies):
    from hwemu.sim.cosim import CoSim

    out = {}
    for name in policies + ("oracle",):
        kw = dict(placement=get_policy("oracle")) if name == "oracle" else \
            dict(migration=get_policy(name))
        r = CoSim(machine, trace, schedule=schedule, **kw).run()
        out[name] = r
    return out


def test_oracle_bounds_every_policy_when_threads_move(tmp_path):
    """numa_move in small: threads first-touch on socket 0 and move to socket 1 at 300 us.
    The oracle re-places the pages at the move for free; no policy has a lower mean latency
    or finishes sooner, and the oracle clearly beats a static placement."""
    (tmp_path / "m.toml").write_text(MACHINE)
    numa_move_trace(tmp_path / "t.parquet")
    sched = DEMO_NB + "".join(f"""
[[thread]]
tid = {t}
pid = 1
cpu = {t}
[[event]]
at = "300us"
action = "move_thread"
tid = {t}
cpu = {24 + t}
""" for t in range(2))
    (tmp_path / "s.toml").write_text(sched)
    res = _run_all(str(tmp_path / "m.toml"), tmp_path / "t.parquet", str(tmp_path / "s.toml"),
                   DEMO_POLICIES)
    lat = {k: r.summary["mean_latency_ns"] for k, r in res.items()}
    print(lat)
    o = res["oracle"]
    assert o.summary["thread_moves"] == 2
    assert o.summary["pages_migrated"] == 0                    # no protocol, no copy
    assert o.stats.get("policy.oracle", "pages_remapped") == 2 * 96
    assert o.summary["local_share"] > 0.99
    assert lat["oracle"] < 0.9 * lat["none"]
    for name, r in res.items():
        assert lat["oracle"] <= lat[name], (name, lat)
        assert o.summary["sim_time_ns"] <= r.summary["sim_time_ns"], name
    # the others do act on this case
    assert res["manual"].summary["pages_migrated"] > 0
    assert res["autonuma"].summary["pages_migrated"] > 0


def test_oracle_bounds_every_policy_on_tiering(tmp_path):
    """The tiering case in small (hot pages first touched on CXL), with the demo's time scale:
    the oracle bounds every policy, and tpp/nomad (scaled like autonuma) do promote."""
    # 2 MiB DRAM nodes, as skx-2s-cxl-demo: the hot arrays are first touched on CXL
    (tmp_path / "m.toml").write_text(MACHINE.replace('size = "4MiB"', 'size = "2MiB"'))
    tiering_trace(tmp_path / "t.parquet", n_random=8000)
    sched = DEMO_NB + """
[[thread]]
tid = 0
pid = 1
cpu = 0
[[thread]]
tid = 1
pid = 1
cpu = 24
"""
    (tmp_path / "s.toml").write_text(sched)
    res = _run_all(str(tmp_path / "m.toml"), tmp_path / "t.parquet", str(tmp_path / "s.toml"),
                   ("none", "autonuma", "tpp", "hotness", "nomad"))
    lat = {k: r.summary["mean_latency_ns"] for k, r in res.items()}
    print(lat, {k: (r.summary["pages_migrated"], r.summary["sim_time_ns"]) for k, r in res.items()})
    for name, r in res.items():
        assert lat["oracle"] <= lat[name], (name, lat)
        assert res["oracle"].summary["sim_time_ns"] <= r.summary["sim_time_ns"], name
    assert res["tpp"].summary["pages_migrated"] > 0
    assert res["nomad"].summary["pages_migrated"] > 0
