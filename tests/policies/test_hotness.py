"""Sampled hot/cold tiering (HeMem/Memtis style): hot pages found by sampling move to the
fast tier, cold ones do not; cooling; demotion of cold pages to make room; NUMA placement
without a slow tier."""

from hwemu.linux.mempolicy import Mempolicy
from hwemu.policies.registry import get_policy, list_policies

from advanced_kit import BASE, P, US, Sim, TierHardware


def hotness(**kw):
    base = dict(sample_period=1, migrate_interval="100us")
    base.update(kw)
    return get_policy("hotness", **base)


def test_registered_with_hemem_defaults():
    info = {p["name"]: p for p in list_policies()}["hotness"]
    params = {p["name"]: p["default"] for p in info["params"]}
    assert (params["sample_period"], params["hot_read_threshold"], params["hot_write_threshold"],
            params["cooling_threshold"], params["migrate_interval"]) == (None, 8, 4, 18, None)
    # without a [numa_balancing] time scale: HeMem's own values
    pol = get_policy("hotness")
    Sim(pol)
    assert (pol.sample_every, pol.tick_ps) == (5003, 10 * 10**9)


def test_hot_pages_found_by_sampling_move_cold_ones_do_not():
    pol = hotness()
    sim = Sim(pol, mempolicy=Mempolicy("preferred", (2,)))
    for i in range(16):
        sim.access(1, BASE + i * P, True)              # first touch on the CXL node
    sim.vma.policy = None
    values = [sim.k.read_now(1, BASE + i * P) for i in range(16)]
    for _ in range(9):                                  # pages 0-7: 9 sampled loads each
        for i in range(8):
            sim.access(1, BASE + i * P)
    for i in range(8, 16):                              # pages 8-15: two loads each
        sim.access(1, BASE + i * P)
        sim.access(1, BASE + i * P)
    assert all(sim.node_of(BASE + i * P) == 2 for i in range(16))   # nothing moved yet
    sim.advance(100 * US - sim.k.engine.now_ps % (100 * US) + 20 * US)   # the interval ran
    assert [sim.node_of(BASE + i * P) for i in range(16)] == [0] * 8 + [2] * 8
    assert [sim.k.read_now(1, BASE + i * P) for i in range(16)] == values
    assert pol.n["promoted"] == 8 and pol.n["hot_pages"] == 8
    assert sim.count("linux.migrate", "pages_migrated") == 8
    assert sim.migrations[0][0] == "hotness_promotion"
    stats = sim.finish()
    assert stats.get("policy.hotness", "promoted") == 8


def test_writes_make_a_page_hot_sooner():
    pol = hotness()
    sim = Sim(pol, mempolicy=Mempolicy("preferred", (2,)))
    sim.access(1, BASE, True)
    sim.access(1, BASE + P, True)
    for _ in range(3):                                  # 4 sampled stores on page 0
        sim.access(1, BASE, True)
    for _ in range(3):                                  # 4 sampled loads on page 1 (< 8)
        sim.access(1, BASE + P)
    sim.advance(150 * US)
    assert (sim.node_of(BASE), sim.node_of(BASE + P)) == (0, 2)


def test_cooling_halves_every_count():
    pol = hotness(cooling_threshold=5)
    sim = Sim(pol, mempolicy=Mempolicy("preferred", (2,)))
    for i in range(2):
        sim.access(1, BASE + i * P, True)
    for _ in range(4):
        sim.access(1, BASE + P)                         # page 1: 4 loads
    for _ in range(6):
        sim.access(1, BASE)                             # page 0: the 6th load ticks the clock
    assert pol.clock == 1 and pol.n["cooling_ticks"] == 1
    h1 = pol.heat[(1, (BASE + P) >> 12)]
    assert pol.is_hot(h1) is False and h1.reads == 2   # 4 >> 1


def test_cold_pages_are_demoted_to_make_room():
    pol = hotness()
    sim = Sim(pol, pages=2048)
    cap = sim.k.alloc.nodes[0].capacity
    n = cap - pol.wm.high[0] - 4                        # node 0 nearly full (local first touch)
    for i in range(n):
        sim.access(1, BASE + i * P, True)
    hot = [n + i for i in range(8)]                     # placed on the CXL node
    sim.vma.policy = Mempolicy("preferred", (2,))
    for i in hot:
        sim.access(1, BASE + i * P, True)
    assert all(sim.node_of(BASE + i * P) == 2 for i in hot)
    for _ in range(4):
        for i in hot:
            sim.access(1, BASE + i * P, True)
    sim.advance(200 * US)
    assert all(sim.node_of(BASE + i * P) == 0 for i in hot)
    demoted = [i for i in range(n) if sim.node_of(BASE + i * P) == 2]
    assert len(demoted) == pol.n["demoted"] > 0
    assert demoted == list(range(len(demoted)))         # the oldest unsampled pages went first
    assert sim.k.alloc.nodes[0].free_count >= pol.wm.high[0]


def test_without_a_slow_tier_hot_pages_follow_their_cpus():
    pol = hotness()
    sim = Sim(pol, hw=TierHardware(cpus=(2, 2)), threads={1: 0, 2: 2})
    for i in range(4):
        sim.access(1, BASE + i * P, True)               # node 0
    for _ in range(8):
        sim.access(2, BASE, False)                      # page 0: only node 1 uses it
        sim.access(2, BASE + P, False)                  # page 1: both nodes, evenly
        sim.access(1, BASE + P, False)
    sim.advance(150 * US)
    assert [sim.node_of(BASE + i * P) for i in range(4)] == [1, 0, 0, 0]
    assert pol.n["numa_moved"] == 1


def test_only_large_mappings_are_managed():
    """min_region: samples of pages in smaller anonymous mappings are read (they cost the
    sampling CPU) and dropped, so they neither make pages hot nor count for cooling; pages
    of a mapping at least that large are managed as before (HeMem: mmaps of 1 GiB or more)."""
    for region, managed in (("1MiB", False), ("256KiB", True)):   # the VMA: 64 pages, 256 KiB
        pol = hotness(min_region=region)
        sim = Sim(pol, mempolicy=Mempolicy("preferred", (2,)))
        sim.access(1, BASE, True)                       # first touch on the CXL node
        sim.vma.policy = None
        for _ in range(8):
            sim.access(1, BASE, True)
        sim.advance(150 * US)
        assert sim.node_of(BASE) == (0 if managed else 2)
        assert pol.n["samples"] == 9
        assert pol.n["samples_unmanaged"] == (0 if managed else 9)
        assert len(pol.heat) == int(managed) and pol.n["promoted"] == int(managed)
