"""Nomad: asynchronous transactional promotion. A page written during the copy is not
committed and is retried; no write is ever lost; a clean page commits with a short unmap and
the faulting thread does not wait for the copy."""

from hypothesis import given, settings, strategies as st

from hwemu.engine import Sleep
from hwemu.linux.mempolicy import Mempolicy
from hwemu.linux.mm import PG, PteKind
from hwemu.policies.registry import get_policy

from advanced_kit import BASE, COPY_PS_PER_BYTE, P, US, Sim


def nomad(**kw):
    base = dict(scan_delay="10us", scan_period="100us", hot_threshold="50us", kswapd_check="5us")
    base.update(kw)
    return get_policy("nomad", **base)


def cxl_sim(policy, n=1):
    # threads 1 and 2 on CPU 0 (node 0); the promotion thread runs on CPU 1
    sim = Sim(policy, threads={1: 0, 2: 0}, mempolicy=Mempolicy("preferred", (2,)))
    for i in range(n):
        sim.access(1, BASE + i * P, True)
    sim.vma.policy = None
    return sim


def writer(sim, addr, until_ps, gap_ps, log):
    k = sim.k

    def proc():
        while k.engine.now_ps < until_ps:
            _, value = yield k.access(2, addr, True)
            log.append(value)
            yield Sleep(gap_ps)
    return k.engine.spawn(proc(), None, name="writer")


def hint_fault_ps(sim):
    sim.advance(15 * US)                                     # scan at 10 us (+ its flush)
    t0 = sim.k.engine.now_ps
    sim.access(1, BASE)
    return sim.k.engine.now_ps - t0


def test_clean_page_commits_and_the_fault_does_not_wait():
    sim = cxl_sim(nomad())
    value = sim.k.read_now(1, BASE)
    fault_ps = hint_fault_ps(sim)                            # hint fault: queued, returns
    assert sim.node_of(BASE) == 2                            # not migrated by the fault
    assert fault_ps < 4096 * COPY_PS_PER_BYTE                # shorter than one page copy
    tpp = cxl_sim(get_policy("tpp", scan_delay="10us", scan_period="100us",
                             hot_threshold="50us"))
    tpp_fault_ps = hint_fault_ps(tpp)
    assert tpp.node_of(BASE) == 0                            # TPP migrated inside the fault
    assert tpp_fault_ps > fault_ps + 4096 * COPY_PS_PER_BYTE
    sim.advance(50 * US)                                     # kpromoted runs on CPU 1
    assert sim.node_of(BASE) == 0
    assert sim.k.read_now(1, BASE) == value
    n = sim.policy.n
    assert (n["queued"], n["tpm_attempts"], n["tpm_commits"], n["tpm_aborts_dirty"]) == (1, 1, 1, 0)
    stats = sim.finish()
    # the copy ran while the page was mapped: the unmapped window and the copy are disjoint
    copy, unmapped = stats.get("policy.nomad", "copy_time"), stats.get("policy.nomad", "unmapped_time")
    assert copy >= 4096 * COPY_PS_PER_BYTE
    (kind, _t0, pages, nbytes, duration), = sim.migrations
    assert (kind, pages, nbytes) == ("nomad_promotion", 1, 4096)
    assert 0 < unmapped and copy + unmapped <= duration
    assert sim.k.mm(1).ptes[BASE >> 12].kind is PteKind.PRESENT


def test_write_during_copy_aborts_and_retries_then_commits():
    pol = nomad(max_retries=3)
    sim = cxl_sim(pol)
    sim.advance(10 * US + 1)
    log = []
    # a store every 100 ns for 40 us: every copy (409.6 ns) overlaps one
    w = writer(sim, BASE, sim.k.engine.now_ps + 40 * US, 100_000, log)
    sim.access(1, BASE)                                      # queue the promotion
    sim.advance(45 * US)
    assert w.done
    n = pol.n
    assert n["tpm_aborts_dirty"] == 4 and n["tpm_retries"] == 3 and n["tpm_dropped"] == 1
    assert n["tpm_commits"] == 0 and sim.node_of(BASE) == 2
    assert sim.k.read_now(1, BASE) == log[-1]                # no lost write
    # without the writer the next hot fault commits
    now = sim.k.engine.now_ps
    sim.advance(110 * US - now + 1)                          # just after the scan at 110 us
    sim.access(1, BASE)
    sim.advance(20 * US)
    assert n["tpm_commits"] == 1 and sim.node_of(BASE) == 0
    assert sim.k.read_now(1, BASE) == log[-1]


def test_a_store_that_meets_the_migration_entry_waits_for_the_new_page():
    pol = nomad()
    sim = cxl_sim(pol)
    sim.advance(10 * US + 1)
    sim.access(1, BASE)
    log = []
    # start storing shortly after the copy would have finished: the stores hit the short
    # unmapped window or the new page, never the lost old one
    writer(sim, BASE, sim.k.engine.now_ps + 30 * US, 37_000, log)
    sim.advance(40 * US)
    assert sim.k.read_now(1, BASE) == log[-1]
    assert pol.n["tpm_commits"] + pol.n["tpm_aborts_dirty"] >= 1


@settings(max_examples=40, deadline=None)
@given(gaps=st.lists(st.integers(50_000, 3_000_000), min_size=1, max_size=12),
       start=st.integers(0, 3_000_000), retries=st.integers(0, 3))
def test_no_lost_writes_property(gaps, start, retries):
    """Random store times around transactional promotions of two pages: every page ends
    holding the last value stored to it, on node 0 or 2, mapped and unlocked."""
    pol = nomad(max_retries=retries)
    sim = cxl_sim(pol, n=2)
    sim.k.access_log = []
    sim.advance(10 * US + 1)
    k = sim.k
    last = {}

    def proc():
        yield Sleep(start)
        for i, g in enumerate(gaps):
            addr = BASE + (i % 2) * P
            _, value = yield k.access(2, addr, True)
            last[addr] = value
            yield Sleep(g)
    k.engine.spawn(proc(), None, name="writer")
    sim.access(1, BASE)
    sim.access(1, BASE + P)
    sim.advance(60 * US)
    for addr in (BASE, BASE + P):
        if addr in last:
            assert k.read_now(1, addr) == last[addr]
        page = k.follow_page(1, addr)
        assert page.node in (0, 2) and not page.test(1)      # PG.LOCKED == 1
        assert k.mm(1).ptes[addr >> 12].kind is PteKind.PRESENT
        assert page.refcount == 1 and page.mapcount == 1
    # every load and store saw the latest value stored before it
    seen = {}
    for _t, _tid, addr, write, value in k.access_log:
        if write:
            seen[addr] = value
        elif addr in seen:
            assert value == seen[addr]
    assert pol.n["tpm_commits"] + pol.n["tpm_aborts_dirty"] + pol.n["tpm_aborts_busy"] \
        == pol.n["tpm_attempts"]


# -- page shadowing --------------------------------------------------------------------------------
def promoted(pol):
    """One page promoted from node 2 to node 0 by a committed transaction."""
    sim = cxl_sim(pol)
    old_pfn = sim.k.follow_page(1, BASE).pfn
    sim.advance(10 * US + 1)
    sim.access(1, BASE)
    sim.advance(20 * US)
    assert sim.node_of(BASE) == 0 and pol.n["tpm_commits"] == 1
    return sim, old_pfn


def demote_now(sim, pol, addr):
    """What kswapd does with a cold page: isolate it and demote it (on CPU 0)."""
    from hwemu.linux.kernel import Meter

    k = sim.k
    page = k.follow_page(1, addr)

    def proc():
        assert k.isolate_lru_page(page, Meter(k, 0))
        return (yield from pol.demote([page], 0, 0))
    return k.engine.run_process(k.engine.spawn(proc(), 0))


def test_commit_keeps_the_old_page_as_shadow():
    pol = nomad()
    sim, old_pfn = promoted(pol)
    new = sim.k.follow_page(1, BASE)
    shadow = pol.shadows[new.pfn]
    assert shadow.pfn == old_pfn and shadow.node == 2 and not shadow.freed
    assert shadow.data == new.data and shadow.mapcount == 0 and shadow.lru is None
    assert pol.n["shadows_kept"] == 1
    no_shadow = nomad(shadow=False)
    sim2, old2 = promoted(no_shadow)
    assert old2 not in sim2.k.pages and not no_shadow.shadows


def test_clean_page_is_demoted_by_remapping_to_its_shadow():
    pol = nomad()
    sim, old_pfn = promoted(pol)
    k = sim.k
    value = k.read_now(1, BASE)
    new_pfn = k.follow_page(1, BASE).pfn
    copied = sim.count("linux.migrate", "bytes_copied")
    free2 = k.alloc.nodes[2].free_count
    assert demote_now(sim, pol, BASE) == 1
    page = k.follow_page(1, BASE)
    assert (page.pfn, page.node) == (old_pfn, 2)            # back on its shadow
    assert k.read_now(1, BASE) == value
    assert sim.count("linux.migrate", "bytes_copied") == copied   # no copy
    assert k.alloc.nodes[2].free_count == free2               # no allocation
    assert new_pfn not in k.pages                             # the fast page is freed
    assert page.mapcount == 1 and page.refcount == 1 and page.lru is not None
    assert k.mm(1).ptes[BASE >> 12].kind is PteKind.PRESENT
    assert pol.n["shadow_remaps"] == 1 and not pol.shadows
    assert sim.count("linux.migrate.steps", "nomad_shadow_remap_calls") == 1


def test_written_page_is_demoted_with_a_copy_and_loses_its_shadow():
    pol = nomad()
    sim, old_pfn = promoted(pol)
    k = sim.k
    value = sim.access(1, BASE, True)                          # dirties the promoted page
    copied = sim.count("linux.migrate", "bytes_copied")
    assert demote_now(sim, pol, BASE) == 1
    page = k.follow_page(1, BASE)
    assert page.node == 2                   # (in the frame the shadow freed: lowest first)
    assert k.read_now(1, BASE) == value                        # the new value, not the shadow's
    assert sim.count("linux.migrate", "bytes_copied") == copied + 4096
    assert pol.n["shadows_dirty"] == 1 and not pol.shadows
    assert pol.n["shadow_remaps"] == 0


def test_shadows_are_reclaimed_when_the_slow_node_runs_low():
    pol = nomad()
    sim, old_pfn = promoted(pol)
    k = sim.k
    a = k.alloc.nodes[2]
    while a.free_count >= pol.wm.low[2]:
        k.alloc_page(0, 2, thisnode=True)
    sim.advance(10 * US)                                       # the watermark check runs
    assert pol.n["shadows_reclaimed"] == 1 and not pol.shadows
    assert old_pfn not in k.pages
    assert sim.node_of(BASE) == 0 and k.follow_page(1, BASE).refcount == 1


@settings(max_examples=40, deadline=None)
@given(gaps=st.lists(st.integers(50_000, 4_000_000), min_size=1, max_size=10),
       start=st.integers(0, 20_000_000), demote_at=st.integers(0, 30_000_000))
def test_no_lost_writes_with_shadow_demotion(gaps, start, demote_at):
    """Promotion (transactional, shadow kept), then a demotion at a random time (a remap to
    the shadow if the page stayed clean, else a copy), racing with stores."""
    from hwemu.linux.kernel import Meter

    pol = nomad()
    sim = cxl_sim(pol)
    k = sim.k
    k.access_log = []
    sim.advance(10 * US + 1)
    sim.access(1, BASE)                                        # queue the promotion
    last = []

    def writer_proc():
        yield Sleep(start)
        for g in gaps:
            _, value = yield k.access(2, BASE, True)
            last.append(value)
            yield Sleep(g)

    def demoter():
        yield Sleep(demote_at)
        page = k.follow_page(1, BASE)
        if page is not None and page.node == 0 and k.isolate_lru_page(page, Meter(k, 0)):
            yield from pol.demote([page], 0, 0)
    k.engine.spawn(writer_proc(), None, name="writer")
    k.engine.spawn(demoter(), 0, name="demoter")
    sim.advance(80 * US)
    if last:
        assert k.read_now(1, BASE) == last[-1]
    page = k.follow_page(1, BASE)
    assert k.mm(1).ptes[BASE >> 12].kind is PteKind.PRESENT
    assert page.refcount == 1 and page.mapcount == 1 and not page.test(1)
    seen = None
    for _t, _tid, _addr, write, value in k.access_log:
        if write:
            seen = value
        elif seen is not None:
            assert value == seen
    # every frame is accounted for: the mapped page plus at most one shadow
    held = [p for p in k.pages.values() if p.mapping is not None and p.index == BASE >> 12]
    assert len(held) == 1 + len(pol.shadows)


def test_hardware_dirty_bit_aborts_the_transaction():
    """A hardware dirty bit (stores the OS model does not see) aborts the transaction too."""
    from advanced_kit import AdBitsHardware

    hw = AdBitsHardware()
    pol = nomad(max_retries=2)
    sim = Sim(pol, hw=hw, threads={1: 0}, mempolicy=Mempolicy("preferred", (2,)))
    sim.access(1, BASE, True)
    sim.vma.policy = None
    hw.dirty = {BASE}
    sim.advance(10 * US + 1)
    sim.access(1, BASE)
    sim.advance(40 * US)
    assert pol.n["tpm_aborts_dirty"] == 3 and pol.n["tpm_commits"] == 0
    assert sim.node_of(BASE) == 2
    assert sim.k.follow_page(1, BASE).test(PG.DIRTY)
    hw.dirty.clear()
    sim.advance(100 * US)                                      # the next scan
    sim.access(1, BASE)
    sim.advance(20 * US)
    assert pol.n["tpm_commits"] == 1 and sim.node_of(BASE) == 0
