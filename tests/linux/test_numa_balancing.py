"""Automatic NUMA balancing: scanning, hinting faults, the two-stage filter, the scan period."""

from hwemu.linux.mm import PteKind
from hwemu.linux.numa_balancing import NumaBalancing, NumaBalancingParams

from linux_testkit import BASE, make, touch

P = 4096
US = 1_000_000


def params(**kw):
    base = dict(scan_delay_ps=10 * US, scan_period_min_ps=50 * US, scan_period_max_ps=800 * US,
                scan_size_bytes=1 << 20, min_free_frames=8)
    base.update(kw)
    return NumaBalancingParams(**base)


def test_pages_follow_the_thread_that_uses_them():
    k = make()
    for i in range(8):
        touch(k, 1, BASE + i * P)
    nb = NumaBalancing(k, params())
    nb.start(1)
    k.move_thread(1, 2)                       # the thread now runs on node 1
    for _ in range(3):
        k.engine.run_until(k.engine.now_ps + 60 * US)
        for i in range(8):
            touch(k, 1, BASE + i * P, False)
    assert [k.follow_page(1, BASE + i * P).node for i in range(8)] == [1] * 8
    assert k.counter("linux.numa", "pages_migrated") == 8
    assert k.counter("linux.fault", "numa_hint_faults") >= 8
    assert all(k.mm(1).ptes[(BASE + i * P) >> 12].kind is PteKind.PRESENT for i in range(8))
    # Misplaced-page migrations are asynchronous, with the NUMA-misplaced reason.
    assert k.counter("linux.migrate", "passes") == 8


def test_two_stage_filter():
    k = make()
    k.add_thread(1, 2, 2)                     # thread 2 on node 1
    touch(k, 1, BASE)
    page = k.follow_page(1, BASE)
    nb = NumaBalancing(k, params())
    nb.start(1)
    nb.tasks[1].scan_seq = 10                 # past the first scans of the task
    t1, t2 = k.thread(1), k.thread(2)
    page.last_cpupid = (t1.cpu << 16) | t1.tid
    # Previous fault from node 0 by another thread: a fault from node 1 does not migrate ...
    assert nb.should_migrate(page, t2, 1) is False
    # ... but a second fault from node 1 in a row does.
    assert nb.should_migrate(page, t2, 1) is True
    assert page.last_cpupid == (t2.cpu << 16) | t2.tid


def test_scan_period_adapts_to_locality():
    k = make()
    nb = NumaBalancing(k, params())
    nb.start(1)
    st = nb.tasks[1]
    st.faults_local, st.faults_remote = 10, 0
    nb._update_period(st)
    assert st.scan_period_ps == 50 * US + 3 * 5 * US          # ratio 10: +3 slots
    st.faults_local, st.faults_remote = 0, 10
    nb._update_period(st)
    assert st.scan_period_ps == 50 * US                       # clamped at the minimum
    for _ in range(40):
        st.faults_local, st.faults_remote = 10, 0
        nb._update_period(st)
    assert st.scan_period_ps == 800 * US                      # and at the maximum


def test_scan_respects_scan_size_and_wraps():
    k = make()
    for i in range(8):
        touch(k, 1, BASE + i * P)
    nb = NumaBalancing(k, params(scan_size_bytes=3 * P))
    nb.start(1)
    k.engine.run_until(k.engine.now_ps + 11 * US)             # first scan: 3 pages
    kinds = [k.mm(1).ptes[(BASE + i * P) >> 12].kind for i in range(8)]
    assert kinds.count(PteKind.PROTNONE) == 3 and kinds[:3] == [PteKind.PROTNONE] * 3
    assert nb.tasks[1].scan_offset == BASE + 2 * P + 1
    k.engine.run_until(k.engine.now_ps + 100 * US)            # two more scans: wrapped
    assert nb.tasks[1].scan_seq >= 1


def test_compressed_divides_linux_times_and_keeps_the_scan_size():
    from hwemu.linux.numa_balancing import compressed

    linux = NumaBalancingParams()
    assert compressed(None, 1) == linux
    c = compressed(params(), 5000)
    assert (c.scan_delay_ps, c.scan_period_min_ps, c.scan_period_max_ps) == (
        200 * US, 200 * US, 12_000 * US)
    assert (c.scan_size_bytes, c.min_free_frames) == (1 << 20, 8)
    assert compressed(None, 3).scan_delay_ps == 333_333_333_333


def _reference_scan(mm, start, budget):
    """The scan's choice written out plainly: every present entry at or after ``start`` (a THP
    at its 2 MiB base), in address order, as many as fit in ``budget`` pages."""
    todo = sorted([key << 21 for key, e in mm.pmds.items() if e.kind is PteKind.PRESENT
                   and key << 21 >= start]
                  + [key << 12 for key, e in mm.ptes.items() if e.kind is PteKind.PRESENT
                     and key << 12 >= start])
    taken, pages = [], 0
    for a in todo:
        nr = 512 if (a >> 12) not in mm.ptes else 1
        if pages + nr > budget:
            break
        taken.append(a)
        pages += nr
    return taken


def test_a_scan_takes_the_present_entries_from_its_offset_up_to_its_budget():
    """Between PROT_NONE entries left by earlier scans, and with a THP among the 4 KiB pages,
    each scan marks exactly the entries the plain definition picks, and wraps at the end."""
    from hwemu.linux.hw import ParametricHardware
    from hwemu.linux.kernel import Kernel
    from hwemu.linux.mm import VmaKind

    k = Kernel(ParametricHardware(cpus_per_node=2, mem_per_node_bytes=64 << 20))
    k.create_process(1)
    k.add_thread(1, 1, 0)
    k.mmap(1, BASE, 2 << 20, VmaKind.ANON)                        # 4 KiB pages
    k.mmap(1, BASE + (2 << 20), 2 << 20, VmaKind.ANON, thp=True)  # one THP
    k.mmap(1, BASE + (4 << 20), 2 << 20, VmaKind.ANON)
    for i in range(0, 512, 3):
        touch(k, 1, BASE + i * P)
    touch(k, 1, BASE + (2 << 20) + 7 * P)
    for i in range(0, 512, 5):
        touch(k, 1, BASE + (4 << 20) + i * P)
    mm = k.mm(1)
    assert mm.pmds[(BASE >> 21) + 1].kind is PteKind.PRESENT
    nb = NumaBalancing(k, params(scan_size_bytes=600 * P, scan_period_min_ps=10 * US,
                                 scan_period_max_ps=10 * US))
    nb.start(1)
    st = nb.tasks[1]
    seqs = []
    for step in range(12):
        start = st.scan_offset
        want = set(_reference_scan(mm, start, 600))
        before = {a for a, e in [(key << 21, e) for key, e in mm.pmds.items()]
                  + [(key << 12, e) for key, e in mm.ptes.items()] if e.kind is PteKind.PROTNONE}
        k.engine.run_until(k.engine.now_ps + 10 * US)            # one scan
        after = {a for a, e in [(key << 21, e) for key, e in mm.pmds.items()]
                 + [(key << 12, e) for key, e in mm.ptes.items()] if e.kind is PteKind.PROTNONE}
        assert after - before == want, step
        seqs.append(st.scan_seq)
        # fault a few of them back, so that the next scans find gaps
        for a in sorted(want)[::4]:
            touch(k, 1, a, False)
    assert seqs[-1] >= 2                                          # wrapped at least twice



def test_a_scan_skips_an_entry_a_migration_has_unmapped():
    """Once a scan has made the index of present PTEs, a page that a migration unmaps (its
    entry a migration entry, through notify_pte) leaves it: the next scan marks the other pages
    and leaves the migration entry alone."""
    from hwemu.linux.kernel import Meter
    from hwemu.linux.migrate import FolioState, Migrator, alloc_on_node

    from linux_testkit import run

    k = make()
    for i in range(8):
        touch(k, 1, BASE + i * P)
    nb = NumaBalancing(k, params(scan_period_min_ps=10 * US, scan_period_max_ps=10 * US))
    nb.start(1)
    nb._scan(1)                                   # makes the index; all eight PROT_NONE
    mm = k.mm(1)
    assert mm.present is not None and len(mm.present) == 0
    for i in range(8):
        touch(k, 1, BASE + i * P, False)          # hinting faults: all present again
    assert list(mm.present) == [(BASE >> 12) + i for i in range(8)]
    page = k.follow_page(1, BASE + 3 * P)
    assert k.isolate_lru_page(page, Meter(k, 0))
    mig = Migrator(k, 0, alloc_on_node(k, 1), "sync")
    mig.mode_now = "sync"
    st = FolioState(page)
    assert run(k, mig.step_01_lock_old(st, False)) is True
    assert run(k, mig.step_04_unmap(st)) is True
    assert mm.ptes[(BASE >> 12) + 3].kind is PteKind.MIGRATION
    assert (BASE >> 12) + 3 not in mm.present
    nb._scan(1)
    kinds = [mm.ptes[(BASE >> 12) + i].kind for i in range(8)]
    assert kinds == [PteKind.PROTNONE] * 3 + [PteKind.MIGRATION] + [PteKind.PROTNONE] * 4
