"""TPP (Linux memory tiering): promotion of hot CXL pages on hinting faults, the hot
threshold, the promotion rate limit, demotion of cold pages by kswapd under pressure."""

import pytest
from hypothesis import given, settings, strategies as st

from hwemu.errors import HwemuError
from hwemu.linux.mempolicy import Mempolicy
from hwemu.linux.mm import PG, PteKind
from hwemu.policies.registry import get_policy, list_policies
from hwemu.linux.page_alloc import compute_watermarks

from advanced_kit import BASE, MS, P, US, Sim, TierHardware


def tpp(**kw):
    base = dict(scan_delay="10us", scan_period="100us", hot_threshold="50us", kswapd_check="5us")
    base.update(kw)
    return get_policy("tpp", **base)


def on_cxl(n, policy, **kw):
    """n pages first-touched on the CXL node 2 by thread 1 (CPU 0, node 0)."""
    sim = Sim(policy, pages=max(64, n), mempolicy=Mempolicy("preferred", (2,)), **kw)
    for i in range(n):
        sim.access(1, BASE + i * P, True)
    sim.vma.policy = None            # later allocations: local (the promotion target)
    return sim


def test_registered_with_linux_defaults():
    info = {p["name"]: p for p in list_policies()}["tpp"]
    params = {p["name"]: p for p in info["params"]}
    assert params["hot_threshold"]["default"] is None          # from the run's time scale
    assert params["promote_rate_limit_MBps"]["default"] == 65536
    assert "numa_balancing_hot_threshold_ms" in params["hot_threshold"]["linux"]
    with pytest.raises(HwemuError, match="policy tpp: unknown parameter 'hot'"):
        get_policy("tpp", hot="1s")
    with pytest.raises(HwemuError, match="policy tpp: hot_threshold: .*soon"):
        get_policy("tpp", hot_threshold="soon")


def test_hot_pages_are_promoted_cold_ones_stay():
    sim = on_cxl(8, tpp())
    assert [sim.node_of(BASE + i * P) for i in range(8)] == [2] * 8
    sim.advance(10 * US + 1)                      # the first scan: CXL pages become PROT_NONE
    assert all(sim.k.mm(1).ptes[(BASE + i * P) >> 12].kind is PteKind.PROTNONE for i in range(8))
    values = [sim.k.read_now(1, BASE + i * P) for i in range(8)]
    for i in range(4):                            # hint-fault latency ~ 0: hot
        sim.access(1, BASE + i * P)
    sim.advance(60 * US)                          # past the 50 us threshold
    for i in range(4, 8):                         # latency > 50 us: not hot
        sim.access(1, BASE + i * P)
    assert [sim.node_of(BASE + i * P) for i in range(8)] == [0] * 4 + [2] * 4
    assert [sim.k.read_now(1, BASE + i * P) for i in range(8)] == values
    assert sim.count("linux.numa", "pgpromote_success") == 4
    assert sim.count("linux.migrate", "pages_migrated") == 4
    assert sim.policy.n["not_hot"] == 4
    stats = sim.finish()
    assert stats.get("policy.tpp", "promoted") == 4
    # promotions went through the protocol: the faulting thread paid for them
    assert sim.count("linux.migrate.steps", "12_copy_calls") == 4


def test_top_tier_pages_are_not_scanned():
    sim = Sim(tpp())
    for i in range(8):
        sim.access(1, BASE + i * P, True)         # local: node 0
    sim.advance(300 * US)
    assert sim.count("linux.numa", "protnone_entries") == 0
    assert sim.policy.n["scans"] == 3


def test_promotion_rate_limit():
    # 1 MB/s = 256 candidates per second: within the first second the 256th is refused.
    sim = on_cxl(300, tpp(promote_rate_limit_MBps=1, scan_size="4MiB", scan_delay="2ms",
                          scan_period="10ms", hot_threshold="5ms"))
    assert sim.k.engine.now_ps < 2 * MS
    sim.advance(2 * MS - sim.k.engine.now_ps + 1)  # the first scan
    for i in range(300):
        sim.access(1, BASE + i * P)
    nodes = [sim.node_of(BASE + i * P) for i in range(300)]
    assert nodes.count(0) == 255
    assert sim.policy.n["rate_limited"] == 45
    # a new one-second window admits candidates again
    # (entries still PROT_NONE since the scan at 12 ms keep that scan time: not hot now)
    sim.advance(1002 * MS - sim.k.engine.now_ps + 1)
    for i in range(255, 300):
        sim.access(1, BASE + i * P)
    assert [sim.node_of(BASE + i * P) for i in range(300)].count(0) == 255
    sim.advance(1012 * MS - sim.k.engine.now_ps + 1)  # rescanned at 1012 ms
    for i in range(255, 300):
        sim.access(1, BASE + i * P)
    assert [sim.node_of(BASE + i * P) for i in range(300)].count(0) == 300


def test_threshold_adjusts_to_rate_limit():
    pol = tpp(promote_rate_limit_MBps=1, threshold_period="100ms")
    on_cxl(4, pol)
    st = pol.prom[0]
    rl = 256                     # pages per second: 25 candidates per 100 ms expected
    # far fewer candidates than the rate limit allows: the threshold grows by 1/8 per period
    pol._adjust_threshold(st, 101 * MS, rl, 50 * US)
    assert st.threshold_ps == 50 * US + 50 * US * 2 // 16
    # many more: it shrinks
    st.nr_cand += 10_000
    pol._adjust_threshold(st, 202 * MS, rl, 50 * US)
    assert st.threshold_ps == 50 * US


def test_watermarks_follow_linux():
    sim = Sim(tpp())
    wm = compute_watermarks(sim.k, 10)
    # 3 x 1952 allocatable frames = 23424 KiB: min_free_kbytes = isqrt(16 * 23424) = 612
    assert wm.min == [153 * 1952 // 5856] * 3
    assert wm.low[0] == wm.min[0] + max(wm.min[0] // 4, 1952 * 10 // 10000)
    assert wm.high[0] - wm.low[0] == wm.low[0] - wm.min[0]
    assert wm.promo[0] - wm.high[0] == wm.low[0] - wm.min[0]


def test_cold_pages_are_demoted_under_pressure():
    pol = tpp(scan_delay="1s")                     # no promotion scans during this test
    sim = Sim(pol, threads={1: 1}, pages=2048)
    cap = sim.k.alloc.nodes[0].capacity
    wm = pol.wm
    n = cap - wm.low[0] - 4                       # node 0 ends below its low watermark
    hot = list(range(n - 16, n))                  # touched last and again and again
    for i in range(n):
        sim.access(1, BASE + i * P, True)
    used_pt = cap - sim.k.alloc.nodes[0].free_count - n
    assert sim.k.alloc.nodes[0].free_count < wm.low[0]
    values = {i: sim.k.read_now(1, BASE + i * P) for i in range(n)}
    for _ in range(200):                           # kswapd runs meanwhile on CPU 0
        for i in hot:
            sim.access(1, BASE + i * P)
        sim.advance(5 * US)
    free = sim.k.alloc.nodes[0].free_count
    assert free >= wm.high[0]
    assert pol.n["kswapd_runs"] >= 1
    demoted = [i for i in range(n) if sim.node_of(BASE + i * P) == 2]
    assert len(demoted) == pol.n["demoted"] == sim.count("linux.numa", "pgdemote_kswapd")
    assert len(demoted) >= wm.high[0] - wm.low[0]
    assert not set(demoted) & set(hot)
    assert all(sim.node_of(BASE + i * P) == 0 for i in hot)
    # demotion is a real migration: contents kept, entries present, node 0 frames freed
    assert all(sim.k.read_now(1, BASE + i * P) == values[i] for i in range(n))
    assert cap - free == n - len(demoted) + used_pt
    assert sim.migrations and sim.migrations[0][0] == "demotion"


def test_no_slow_tier_means_no_work():
    sim = Sim(tpp(), hw=TierHardware(cpus=(2, 2)))
    for i in range(4):
        sim.access(1, BASE + i * P, True)
    sim.advance(1 * MS)
    assert sim.policy.n["scans"] == 0 and sim.count("linux.migrate", "pages_migrated") == 0


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 599), st.booleans(), st.integers(0, 40)),
                    min_size=20, max_size=150))
def test_no_lost_writes_under_promotion_and_demotion(ops):
    """One fast node (small) and one CXL node: random loads/stores while scans promote and
    kswapd demotes. Every page keeps the last value stored; references, LRU and frames stay
    consistent."""
    hw = TierHardware(cpus=(2, 0), frames=640)
    pol = tpp(kswapd_check="2us", reclaim_batch=8, hot_threshold="1s", scan_period="20us")
    sim = Sim(pol, hw=hw, threads={1: 0}, pages=600)
    k = sim.k
    last = {}
    for i in range(600):
        last[i] = sim.access(1, BASE + i * P, True)
    for i, write, dt in ops:
        v = sim.access(1, BASE + i * P, write)
        if write:
            last[i] = v
        else:
            assert v == last[i]
        sim.advance(dt * US)
    sim.advance(300 * US)
    for i in range(600):
        assert k.read_now(1, BASE + i * P) == last[i]
        page = k.follow_page(1, BASE + i * P)
        assert page.mapcount == 1 and page.refcount == 1 and page.lru is not None
        assert not page.test(PG.LOCKED)
    used = k.node_usage()
    assert used[0] + used[1] == 600
    assert not pol.prom[0].kswapd_running


def test_hardware_accessed_bits_keep_pages_on_the_fast_node():
    """With a hardware that keeps A bits (the OS model's own bits stale, as in a run whose
    accesses the OS does not see), kswapd's aging uses them."""
    from advanced_kit import AdBitsHardware

    hw = AdBitsHardware()
    pol = tpp(scan_delay="1s")
    sim = Sim(pol, hw=hw, threads={1: 1}, pages=2048)
    k = sim.k
    cap = k.alloc.nodes[0].capacity
    n = cap - pol.wm.low[0] - 4
    for i in range(n):
        sim.access(1, BASE + i * P, True)
    for e in k.mm(1).ptes.values():
        e.young = False
    hot = set(range(0, 64))                            # the oldest pages, in constant use
    hw.young = {BASE + i * P for i in hot}
    sim.advance(2 * US + 5 * US * 50)
    demoted = {i for i in range(n) if sim.node_of(BASE + i * P) == 2}
    assert demoted and not demoted & hot
    assert ("young", BASE) in hw.asked


def test_time_parameters_follow_the_schedule_time_scale():
    """Left at their defaults, the time parameters are Linux's (1 s scan delay, period and hot
    threshold, 60 s threshold period, 256 MiB) without a [numa_balancing] table, and scaled
    with it, as autonuma's are."""
    from types import SimpleNamespace

    from hwemu.linux.numa_balancing import NumaBalancingParams
    from hwemu.policies.tpp import resolve_time_scale

    sim = Sim()
    ctx = sim.ctx
    p = resolve_time_scale(get_policy("tpp").p, ctx)
    assert (p["scan_delay"], p["scan_period"], p["hot_threshold"], p["threshold_period"],
            p["scan_size"], p["second_ps"]) == (10**12, 10**12, 10**12, 60 * 10**12, 256 << 20, 10**12)
    ctx.schedule = SimpleNamespace(events=[], numa_balancing=NumaBalancingParams(
        scan_delay_ps=200 * 10**6, scan_period_min_ps=200 * 10**6,
        scan_period_max_ps=12 * 10**9, scan_size_bytes=1 << 20))
    p = resolve_time_scale(get_policy("tpp", hot_threshold="50us").p, ctx)
    assert (p["scan_delay"], p["scan_period"], p["hot_threshold"], p["threshold_period"],
            p["scan_size"], p["second_ps"]) == (200 * 10**6, 200 * 10**6, 50 * 10**6, 12 * 10**9,
                                                1 << 20, 200 * 10**6)
