"""One test per protocol step: exact state transitions and exact costs on fixed-cost hardware."""

from hwemu.linux.migrate import EBUSY, STEP_CYCLES, FolioState, Migrator, alloc_on_node
from hwemu.linux.mm import PG, PteKind, VmaKind
from hwemu.linux.kernel import Meter

from linux_testkit import ATOMIC_PS, BASE, COPY_PS_PER_BYTE, LINE_PS, make, run, touch

A = LINE_PS
AT = LINE_PS + ATOMIC_PS


def setup_page(k, addr=BASE, isolate=True):
    touch(k, 1, addr, True)
    page = k.follow_page(1, addr)
    if isolate:
        assert k.isolate_lru_page(page, Meter(k, 0))
    mig = Migrator(k, 0, alloc_on_node(k, 1), "sync")
    mig.mode_now = "sync"
    return page, mig


def step_time(k, name):
    return k.step_costs[name].time_ps


def test_isolate_takes_reference_and_clears_lru(kern):
    k = kern
    touch(k, 1, BASE)
    page = k.follow_page(1, BASE)
    assert page.test(PG.LRU) and page.refcount == 1 and page.mapcount == 1
    assert page.pfn in k.lru[0][page.lru]
    lst = page.lru
    m = Meter(k, 0)
    assert k.isolate_lru_page(page, m)
    assert not page.test(PG.LRU) and page.lru is None and page.refcount == 2
    assert page.pfn not in k.lru[0][lst]
    assert m.ps == AT + AT                       # TestClearPageLRU + lruvec lock
    assert not k.isolate_lru_page(page, Meter(k, 0))   # already isolated
    assert page.refcount == 2


def test_alloc_new_on_target_node(kern):
    k = kern
    page, mig = setup_page(k)
    dst = run(k, mig.step_alloc_new(page))
    assert dst.node == 1 and dst.refcount == 1 and dst.order == 0 and dst.mapping is None
    assert step_time(k, "alloc_new") == A + STEP_CYCLES["alloc_new"]


def test_step01_lock_old_trylock_and_wait(kern):
    k = kern
    page, mig = setup_page(k)
    st = FolioState(page)
    assert run(k, mig.step_01_lock_old(st, False)) is True
    assert page.test(PG.LOCKED) and page.lock_owner == mig.owner and st.locked
    assert step_time(k, "01_lock_old") == AT + STEP_CYCLES["01_lock_old"]
    k.unlock_page(page)
    # Early pass: trylock fails on a page someone else holds -> no state change.
    k.hold_page_lock(page, 50_000_000)
    k.engine.run_until(k.engine.now_ps + 1)
    st2 = FolioState(page)
    assert run(k, mig.step_01_lock_old(st2, False)) is False
    assert not st2.locked and page.lock_owner == "holder"
    # Late pass: sleeps until the holder unlocks (the wait is in the step's time).
    t0 = k.engine.now_ps
    assert run(k, mig.step_01_lock_old(st2, True)) is True
    assert page.lock_owner == mig.owner
    assert k.engine.now_ps >= t0 + 49_000_000
    assert k.counter("linux.migrate", "lock_wait_time") > 49_000_000


def test_step02_writeback_backs_out_early_and_waits_late(kern):
    k = kern
    page, mig = setup_page(k)
    st = FolioState(page)
    assert run(k, mig.step_02_writeback(st, False)) == 0
    k.start_writeback(page, 20_000_000)
    end = page.writeback_end_ps
    assert run(k, mig.step_02_writeback(st, False)) == -EBUSY
    assert page.test(PG.WRITEBACK)
    assert run(k, mig.step_02_writeback(st, True)) == 0
    assert not page.test(PG.WRITEBACK)
    assert k.engine.now_ps >= end


def test_step03_lock_new(kern):
    k = kern
    page, mig = setup_page(k)
    st = FolioState(page, dst=run(k, mig.step_alloc_new(page)))
    assert run(k, mig.step_03_lock_new(st)) is True
    assert st.dst.test(PG.LOCKED) and st.dst_locked
    assert step_time(k, "03_lock_new") == AT + STEP_CYCLES["03_lock_new"]


def test_step04_unmap_installs_migration_entries(kern):
    k = kern
    page, mig = setup_page(k)
    st = FolioState(page)
    pte = k.mm(1).ptes[BASE >> 12]
    assert pte.kind is PteKind.PRESENT and pte.dirty
    assert run(k, mig.step_04_unmap(st)) is True
    assert pte.kind is PteKind.MIGRATION and pte.pfn == page.pfn and pte.writable
    assert page.mapcount == 0 and page.refcount == 1     # only the isolation reference
    assert page.test(PG.DIRTY)                            # dirty bit moved to the page
    assert st.was_mapped
    # Single-threaded mm on the migrating CPU: one local single-page flush, no IPI.
    assert k.counter("linux.tlb", "flushes") == 1
    assert k.counter("linux.tlb", "ipis_sent") == 0
    assert ("flush", 0, (0,), 1) in k.hw.calls


def test_step04_batches_flush_when_mm_runs_elsewhere():
    k = make()
    k.add_thread(1, 2, 2)                                 # another thread on node 1
    page, mig = setup_page(k)
    mig.mode_now = "async"
    st = FolioState(page)
    assert run(k, mig.step_04_unmap(st)) is True
    assert mig.batch.entries == 1 and mig.batch.cpus == {0, 2}
    assert k.stats.get("linux.tlb", "flushes") is None
    t0 = k.engine.now_ps
    run(k, mig.step_tlb_flush_batch())
    assert k.counter("linux.tlb", "ipis_sent") == 1
    assert k.counter("linux.tlb", "batched_flushes") == 1
    assert mig.batch.entries == 0
    assert k.engine.now_ps - t0 == 2_000_000 + STEP_CYCLES["tlb_flush_batch"]


def test_step04_fails_when_a_mapping_is_left(kern):
    k = kern
    page, mig = setup_page(k)
    page.mapcount += 1          # a mapping the reverse map cannot reach
    st = FolioState(page)
    assert run(k, mig.step_04_unmap(st)) is False
    assert page.mapcount == 1
    run(k, mig.backout_src(st, False, []))
    pte = k.mm(1).ptes[BASE >> 12]
    assert pte.kind is PteKind.PRESENT and pte.pfn == page.pfn
    assert page.mapcount == 2 and page.refcount == 2


def file_setup(k):
    """Process 1 maps file 'f' at BASE+1MiB; page 0 is faulted in by a write."""
    faddr = BASE + (1 << 20)
    k.mmap(1, faddr, 16 << 12, VmaKind.FILE, file="f")
    touch(k, 1, faddr, True)
    page = k.follow_page(1, faddr)
    f = k.files["f"]
    assert f.pages[0] is page and page.refcount == 2 and page.mapcount == 1
    assert k.isolate_lru_page(page, Meter(k, 0))
    mig = Migrator(k, 0, alloc_on_node(k, 1), "sync")
    mig.mode_now = "sync"
    st = FolioState(page)
    st.dst = run(k, mig.step_alloc_new(page))
    assert run(k, mig.step_01_lock_old(st, True))
    assert run(k, mig.step_03_lock_new(st))
    assert run(k, mig.step_04_unmap(st))
    return f, page, mig, st, faddr


def test_steps05_to_11_switch_the_mapping_slot(kern):
    k = kern
    f, page, mig, st, _ = file_setup(k)
    dst = st.dst
    assert page.refcount == 2                # page cache + isolation
    run(k, mig.step_05_lock_mapping(st))
    assert f.lock_holder == mig.owner
    assert mig.expected_refs(page) == 2
    assert run(k, mig.step_06_check_refcount(st)) is True
    assert run(k, mig.step_07_check_mapping(st)) is True
    run(k, mig.step_08_prepare_new(st))
    assert dst.mapping is f and dst.index == 0 and not dst.test(PG.SWAPBACKED)
    run(k, mig.step_09_switch_mapping(st))
    assert f.pages[0] is dst
    run(k, mig.step_10_move_refs(st))
    assert page.refcount == 1 and dst.refcount == 2
    assert dst.test(PG.DIRTY) and not page.test(PG.DIRTY)
    run(k, mig.step_11_unlock_mapping(st))
    assert f.lock_holder is None
    assert step_time(k, "05_lock_mapping") == AT + STEP_CYCLES["05_lock_mapping"]
    assert step_time(k, "09_switch_mapping") == A + STEP_CYCLES["09_switch_mapping"]


def test_step06_refcount_check_fails_on_extra_reference(kern):
    k = kern
    page, mig = setup_page(k)
    page.refcount += 1                       # e.g. get_user_pages
    st = FolioState(page)
    run(k, mig.step_04_unmap(st))
    assert run(k, mig.step_06_check_refcount(st)) is False


def test_step07_mapping_check_fails_when_slot_changed(kern):
    k = kern
    f, page, mig, st, _ = file_setup(k)
    f.pages[0] = st.dst                      # someone replaced the page in the cache
    run(k, mig.step_05_lock_mapping(st))
    assert run(k, mig.step_07_check_mapping(st)) is False


def test_steps12_to_18_complete_the_move(kern):
    k = kern
    page, mig = setup_page(k)
    page.set(PG.ACTIVE | PG.REFERENCED)
    page.last_cpupid = 77
    st = FolioState(page)
    st.dst = run(k, mig.step_alloc_new(page))
    dst = st.dst
    run(k, mig.step_01_lock_old(st, True))
    run(k, mig.step_03_lock_new(st))
    run(k, mig.step_04_unmap(st))
    assert run(k, mig.step_06_check_refcount(st))
    run(k, mig.step_08_prepare_new(st))
    assert dst.mapping is page.mapping and dst.index == page.index and dst.test(PG.SWAPBACKED)
    value = page.data[0]
    t0 = k.engine.now_ps
    run(k, mig.step_12_copy(st))
    assert dst.data == [value]
    assert k.engine.now_ps - t0 == 4096 * COPY_PS_PER_BYTE + STEP_CYCLES["12_copy"]
    assert k.counter("linux.migrate", "bytes_copied") == 4096
    run(k, mig.step_13_copy_flags(st))
    assert dst.test(PG.ACTIVE) and dst.test(PG.REFERENCED) and dst.test(PG.DIRTY)
    assert dst.last_cpupid == 77
    run(k, mig.step_14_clear_old_flags(st))
    assert not page.test(PG.ACTIVE) and not page.test(PG.DIRTY) and page.last_cpupid == -1
    assert page.test(PG.LOCKED)
    run(k, mig.step_15_start_writeback(st))
    assert not dst.test(PG.WRITEBACK)        # anonymous: no writeback
    run(k, mig.step_16_restore_ptes(st, dst))
    pte = k.mm(1).ptes[BASE >> 12]
    assert pte.kind is PteKind.PRESENT and pte.pfn == dst.pfn
    assert dst.mapcount == 1 and dst.refcount == 2          # mapping + allocation
    run(k, mig.step_17_unlock(st))
    assert not dst.test(PG.LOCKED) and not page.test(PG.LOCKED)
    free_before = k.alloc.nodes[0].free_count
    run(k, mig.step_18_putback_free(st))
    assert dst.test(PG.LRU) and dst.refcount == 1 and dst.pfn in k.lru[1][dst.lru]
    assert page.freed and page.pfn not in k.pages
    assert k.alloc.nodes[0].free_count == free_before + 1
    assert k.read_now(1, BASE) == value


def test_step15_starts_queued_writeback_on_new_file_page(kern):
    k = kern
    f, page, mig, st, faddr = file_setup(k)
    page.set(PG.RECLAIM)
    for step in (mig.step_05_lock_mapping, mig.step_06_check_refcount, mig.step_07_check_mapping,
                 mig.step_08_prepare_new, mig.step_09_switch_mapping, mig.step_10_move_refs,
                 mig.step_11_unlock_mapping, mig.step_12_copy, mig.step_13_copy_flags,
                 mig.step_14_clear_old_flags, mig.step_15_start_writeback):
        run(k, step(st))
    assert st.dst.test(PG.WRITEBACK) and not st.dst.test(PG.RECLAIM)
    assert k.counter("linux.migrate", "writeback_started") == 1


def test_step17_unlock_wakes_a_blocked_access(kern):
    k = kern
    page, mig = setup_page(k)
    st = FolioState(page)
    st.dst = run(k, mig.step_alloc_new(page))
    run(k, mig.step_01_lock_old(st, True))
    run(k, mig.step_03_lock_new(st))
    run(k, mig.step_04_unmap(st))
    # A store by the owner now faults on the migration entry and sleeps.
    acc = k.access(1, BASE, True)
    k.engine.run_until(k.engine.now_ps + 5_000_000)
    assert not acc.done
    run(k, mig.step_06_check_refcount(st))
    run(k, mig.step_08_prepare_new(st))
    run(k, mig.step_12_copy(st))
    run(k, mig.step_16_restore_ptes(st, st.dst))
    assert not acc.done                      # still asleep on the old page's lock
    t_unlock = k.engine.now_ps
    run(k, mig.step_17_unlock(st))
    k.engine.run_process(acc)
    lat, value = acc.value
    assert acc.end_ps >= t_unlock
    assert st.dst.data[0] == value           # the store landed in the new page
    assert k.counter("linux.fault", "migration_entry_faults") >= 1


def test_backout_dst_frees_new_page(kern):
    k = kern
    page, mig = setup_page(k)
    st = FolioState(page)
    st.dst = run(k, mig.step_alloc_new(page))
    run(k, mig.step_03_lock_new(st))
    dst = st.dst
    free1 = k.alloc.nodes[1].free_count
    run(k, mig.backout_dst(st))
    assert dst.freed and k.alloc.nodes[1].free_count == free1 + 1 and st.dst is None


def test_call_time_is_exactly_the_sum_of_its_steps():
    from hwemu.linux.syscalls import move_pages, run_syscall

    k = make()
    k.add_thread(1, 2, 2)                       # the mm also runs on node 1: batched flush
    for i in range(40):
        touch(k, 1, BASE + i * 4096)
    k.pin_user_pages(1, BASE + 5 * 4096, 1, "get")   # one page backs out 10 times
    before = {name: c.time_ps for name, c in k.step_costs.items()}
    r = run_syscall(k, move_pages(k, 0, 1, [BASE + i * 4096 for i in range(40)], [1] * 40), 0)
    assert r.ret == 1
    steps = sum(c.time_ps - before.get(name, 0) for name, c in k.step_costs.items())
    assert steps == r.elapsed_ps


def test_fault_cost_is_exact():
    from hwemu.linux.kernel import FAULT_CYCLES

    k = make()
    res = k.engine.run_process(k.fault(1, BASE, True))
    # entry/exit + (PMD table: alloc + 4 KiB fill) + (PTE table: alloc + fill)
    # + alloc + anon + 4 KiB fill of the page + PMD/PTE line writes + struct page write
    # + LRU add (cycles, lruvec lock atomic, struct page write).
    expected = (FAULT_CYCLES["entry_exit"] + 2 * (FAULT_CYCLES["alloc"] + 4096)
                + FAULT_CYCLES["alloc"] + FAULT_CYCLES["anon_page"] + 4096
                + A + AT + A + FAULT_CYCLES["lru_add"] + AT + A)
    assert res.latency_ps == expected and res.kind == "anon"
