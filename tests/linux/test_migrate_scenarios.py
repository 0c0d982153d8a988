"""Whole migrations through the syscalls: backouts, shared and file pages, THP, waits."""

from hwemu.linux.hw import ParametricHardware
from hwemu.linux.kernel import Kernel, KernelObserver, Meter
from hwemu.linux.mempolicy import MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT, Mempolicy
from hwemu.linux.migrate import (
    EACCES, EBUSY, EFAULT, EIO, ENODEV, ENOENT, ENOMEM, Migrator, alloc_on_node,
)
from hwemu.linux.mm import PG, PteKind, VmaKind
from hwemu.linux.syscalls import mbind, migrate_pages, move_pages, numa_maps, run_syscall

from linux_testkit import BASE, FixedHardware, make, run, touch

P = 4096


def pages_at(n, base=BASE):
    return [base + i * P for i in range(n)]


def test_move_pages_moves_and_reports_status(kern):
    k = kern
    for a in pages_at(4):
        touch(k, 1, a)
    vals = [k.read_now(1, a) for a in pages_at(4)]
    r = run_syscall(k, move_pages(k, 0, 1, pages_at(4), [1, 1, 1, 1]), 0)
    assert r.ret == 0 and r.status == [1, 1, 1, 1]
    assert [k.follow_page(1, a).node for a in pages_at(4)] == [1] * 4
    assert [k.read_now(1, a) for a in pages_at(4)] == vals
    assert k.counter("linux.migrate", "pages_migrated") == 4
    assert k.counter("linux.migrate", "passes") == 1
    # Every moved page is back on an LRU list of node 1 with one reference per mapping.
    for a in pages_at(4):
        p = k.follow_page(1, a)
        assert p.test(PG.LRU) and p.refcount == 1 and p.mapcount == 1 and not p.test(PG.LOCKED)


def test_query_only_and_error_statuses(kern):
    k = kern
    touch(k, 1, BASE)
    outside = 0x1000                              # no VMA there
    not_present = BASE + 5 * P
    r = run_syscall(k, move_pages(k, 0, 1, [BASE, outside, not_present], None), 0)
    assert r.ret == 0 and r.status == [0, -EFAULT, -ENOENT]
    r = run_syscall(k, move_pages(k, 0, 1, [BASE], [7]), 0)
    assert r.ret == -ENODEV
    r = run_syscall(k, move_pages(k, 0, 1, [BASE, outside, BASE + P], [1, 1, 1]), 0)
    assert r.status[1] == -EFAULT and r.status[0] == 1 and r.status[2] == -ENOENT
    assert r.ret == 0


def test_pinned_page_stays_and_is_reported_as_linux_does(kern):
    k = kern
    for a in pages_at(3):
        touch(k, 1, a)
    pinned = k.pin_user_pages(1, BASE + P, 1, "pin")[0]
    ref0 = pinned.refcount

    class Entries(KernelObserver):
        kinds = []

        def pte_changed(self, pid, vaddr, huge, kind, paddr, node):
            if vaddr == BASE + P:
                self.kinds.append(kind)
    k.observers.append(Entries())
    r = run_syscall(k, move_pages(k, 0, 1, pages_at(3), [1, 1, 1], status_init="unset"), 0)
    # migrate_pages() returns 1 (one folio not migrated); move_pages returns the number of
    # pages not migrated and leaves the batch's statuses unwritten.
    assert r.migrations[0].rc == 1
    assert r.ret == 1
    assert r.status == ["unset"] * 3
    assert r.reasons == {1: "EAGAIN: pinned, not unmapped (folio_maybe_dma_pinned)"}
    # try_to_migrate_one refuses the pinned exclusive anonymous page: its entry is put back,
    # it is never a migration entry (no access waits on it), and the unmap phase fails in
    # every pass: 3 asynchronous, then 7 synchronous; the move phase never sees it.
    assert PteKind.MIGRATION not in Entries.kinds
    assert k.counter("linux.migrate", "unmap_refused_pinned") == 10
    assert k.counter("linux.migrate", "passes") == 10
    assert k.counter("linux.migrate", "move_passes") == 1     # the two other pages, one pass
    assert pinned.node == 0 and k.follow_page(1, BASE + P) is pinned
    assert pinned.refcount == ref0 and pinned.test(PG.LRU) and not pinned.test(PG.LOCKED)
    assert k.mm(1).ptes[(BASE + P) >> 12].kind is PteKind.PRESENT
    assert k.follow_page(1, BASE).node == 1 and k.follow_page(1, BASE + 2 * P).node == 1
    assert k.counter("linux.migrate", "failed_EAGAIN") == 1
    # Once unpinned it moves.
    k.unpin_user_pages([pinned], "pin")
    r = run_syscall(k, move_pages(k, 0, 1, [BASE + P], [1]), 0)
    assert r.ret == 0 and r.status == [1]


def test_get_user_pages_reference_also_blocks(kern):
    k = kern
    touch(k, 1, BASE)
    k.pin_user_pages(1, BASE, 1, "get")
    r = run_syscall(k, move_pages(k, 0, 1, [BASE], [1]), 0)
    assert r.ret == 1 and k.follow_page(1, BASE).node == 0


def test_page_already_isolated_is_ebusy(kern):
    k = kern
    touch(k, 1, BASE)
    page = k.follow_page(1, BASE)
    assert k.isolate_lru_page(page, Meter(k, 0))      # someone else isolated it
    r = run_syscall(k, move_pages(k, 0, 1, [BASE], [1]), 0)
    assert r.ret == 0 and r.status == [-EBUSY]


def test_writeback_is_waited_for_in_late_passes(kern):
    k = kern
    touch(k, 1, BASE)
    page = k.follow_page(1, BASE)
    k.start_writeback(page, 40_000_000)
    end = page.writeback_end_ps
    r = run_syscall(k, move_pages(k, 0, 1, [BASE], [1]), 0)
    assert r.ret == 0 and r.status == [1]
    assert k.engine.now_ps >= end
    assert k.counter("linux.migrate", "writeback_wait_time") > 0
    # The async pass saw -EBUSY and the folio went to the synchronous pass.
    assert k.counter("linux.migrate", "passes") == 2


def test_locked_page_is_waited_for_in_late_passes(kern):
    k = kern
    touch(k, 1, BASE)
    page = k.follow_page(1, BASE)
    k.hold_page_lock(page, 30_000_000)
    k.engine.run_until(k.engine.now_ps + 1)
    r = run_syscall(k, move_pages(k, 0, 1, [BASE], [1]), 0)
    assert r.ret == 0 and k.follow_page(1, BASE).node == 1
    assert k.counter("linux.migrate", "lock_wait_time") > 0
    assert k.counter("linux.migrate", "passes") == 4   # 3 async trylock failures + 1 sync


def test_enomem_when_target_full():
    hw = FixedHardware(frames=512)        # 512 frames, the memmap+slab take the first ones
    k = Kernel(hw)
    k.create_process(1)
    k.add_thread(1, 1, 0)
    k.mmap(1, BASE, 64 * P, VmaKind.ANON)
    for a in pages_at(4):
        touch(k, 1, a)
    # Fill node 1 completely.
    while k.alloc.alloc(0, 1, thisnode=True) is not None:
        pass
    r = run_syscall(k, move_pages(k, 0, 1, pages_at(4), [1] * 4), 0)
    assert r.ret == -ENOMEM
    for a in pages_at(4):
        p = k.follow_page(1, a)
        assert p.node == 0 and p.test(PG.LRU) and p.refcount == 1
        assert k.mm(1).ptes[a >> 12].kind is PteKind.PRESENT
    assert k.counter("linux.migrate", "failed_ENOMEM") == 4


def shared_setup():
    k = make()
    k.create_process(2)
    k.add_thread(2, 2, 1)
    k.mmap(1, BASE + (1 << 20), 8 * P, VmaKind.SHARED, file="shm")
    k.mmap(2, 0x20_0000_0000, 8 * P, VmaKind.SHARED, file="shm")
    touch(k, 1, BASE + (1 << 20))
    touch(k, 2, 0x20_0000_0000, False)
    page = k.follow_page(1, BASE + (1 << 20))
    assert k.follow_page(2, 0x20_0000_0000) is page and page.mapcount == 2
    return k, page


def test_shared_page_needs_move_all_and_then_every_mapping_moves():
    k, page = shared_setup()
    addr = BASE + (1 << 20)
    r = run_syscall(k, move_pages(k, 0, 1, [addr], [1]), 0)
    assert r.status == [-EACCES] and page.node == 0
    r = run_syscall(k, move_pages(k, 0, 1, [addr], [1], MPOL_MF_MOVE_ALL), 0)
    assert r.ret == 0 and r.status == [1]
    new = k.follow_page(1, addr)
    assert new.node == 1 and k.follow_page(2, 0x20_0000_0000) is new
    assert new.mapcount == 2 and new.refcount == 3      # two mappings + the page cache
    assert k.files["shm"].pages[0] is new and page.freed
    for pid, a in ((1, addr), (2, 0x20_0000_0000)):
        e = k.mm(pid).ptes[a >> 12]
        assert e.kind is PteKind.PRESENT and e.pfn == new.pfn


def test_migrate_pages_skips_shared_unless_move_all():
    k, page = shared_setup()
    touch(k, 1, BASE)
    assert run_syscall(k, migrate_pages(k, 0, 1, [0], [1]), 0) == 0
    assert k.follow_page(1, BASE).node == 1 and page.node == 0
    assert run_syscall(k, migrate_pages(k, 0, 1, [0], [1], move_all=True), 0) == 0
    assert k.follow_page(1, BASE + (1 << 20)).node == 1


def test_file_page_slot_switched_and_lookups_find_new_page(kern):
    k = kern
    faddr = BASE + (2 << 20)
    k.mmap(1, faddr, 4 * P, VmaKind.FILE, file="data")
    touch(k, 1, faddr)
    old = k.follow_page(1, faddr)
    r = run_syscall(k, move_pages(k, 0, 1, [faddr], [1]), 0)
    assert r.ret == 0
    new = k.files["data"].pages[0]
    assert new is not old and new.node == 1 and old.freed
    assert new.mapping is k.files["data"] and new.index == 0 and new.test(PG.DIRTY)
    # A second process mapping the file later finds the new page through the cache.
    k.create_process(3)
    k.add_thread(3, 3, 3)
    k.mmap(3, 0x30_0000_0000, 4 * P, VmaKind.FILE, file="data")
    lat, value = touch(k, 3, 0x30_0000_0000, False)
    assert k.follow_page(3, 0x30_0000_0000) is new and value == new.data[0]


def test_access_during_migration_waits_and_write_is_not_lost():
    hw = ParametricHardware(cpus_per_node=2, mem_per_node_bytes=32 << 20)
    k = Kernel(hw)
    k.create_process(1)
    k.add_thread(1, 1, 0)
    k.add_thread(1, 2, 2)
    k.mmap(1, BASE, 64 * P, VmaKind.ANON)
    for a in pages_at(32):
        touch(k, 1, a)
    proc = k.engine.spawn(move_pages(k, 1, 1, pages_at(32), [1] * 32), 1)
    # Run until the unmap of the batch has replaced the first PTE, then store to that page
    # from the other thread.
    target = BASE
    while k.mm(1).ptes[target >> 12].kind is not PteKind.MIGRATION:
        assert k.engine.queue.step() is not None
    t0 = k.engine.now_ps
    acc = k.access(2, target, True)
    k.engine.run_process(proc)
    k.engine.run_process(acc)
    lat, value = acc.value
    assert lat > 1_000_000                     # it waited for the protocol to release the page
    assert k.follow_page(1, target).node == 1
    assert k.read_now(1, target) == value
    assert k.counter("linux.fault", "migration_wait_faults") >= 1
    assert k.counter("linux.fault", "fault_wait_time") > 0
    assert acc.end_ps > t0


def thp_kernel(mem=16 << 20):
    hw = ParametricHardware(cpus_per_node=2, mem_per_node_bytes=mem)
    k = Kernel(hw)
    k.create_process(1, thp=True)
    k.add_thread(1, 1, 0)
    k.mmap(1, BASE, 4 << 20, VmaKind.ANON, thp=True)
    return k


def test_thp_migrates_whole():
    k = thp_kernel()
    touch(k, 1, BASE + 5 * P)
    page = k.follow_page(1, BASE)
    assert page.order == 9 and k.mm(1).pmds[BASE >> 21].kind is PteKind.PRESENT
    vals = list(page.data)
    r = run_syscall(k, move_pages(k, 0, 1, [BASE], [1]), 0)
    assert r.ret == 0 and r.status == [1]
    new = k.follow_page(1, BASE + 100 * P)
    assert new.order == 9 and new.node == 1 and new.data == vals
    assert k.mm(1).pmds[BASE >> 21].pfn == new.pfn
    assert k.counter("linux.migrate", "bytes_copied") == 2 << 20
    assert k.counter("linux.migrate", "thp_migrated") == 1
    text, rows = numa_maps(k, 1)
    assert rows[0]["nodes"] == {1: 512}


def test_thp_split_when_target_has_no_huge_frame():
    k = thp_kernel()
    touch(k, 1, BASE + 7 * P)
    vals = list(k.follow_page(1, BASE).data)
    # Take every whole 2 MiB block of node 1, leaving only scattered 4 KiB frames.
    node1 = k.alloc.nodes[1]
    small = []
    while node1.free_huge_blocks() == 7:      # use up the partial block, split one whole one
        small.append(node1.alloc(0))
    while node1.free_huge_blocks():
        node1.alloc(9)
    for pfn in small[:-1]:
        node1.free(pfn, 0)
    assert node1.free_count >= 512
    r = run_syscall(k, move_pages(k, 0, 1, [BASE], [1]), 0)
    assert r.ret == 0
    assert k.counter("linux.migrate", "thp_split") == 1
    assert (BASE >> 21) not in k.mm(1).pmds
    for i in range(512):
        p = k.follow_page(1, BASE + i * P)
        assert p.order == 0 and p.node == 1 and p.data == [vals[i]]


def test_mbind_interleave_moves_and_strict_reports_eio(kern):
    k = kern
    for a in pages_at(8):
        touch(k, 1, a)
    pol = Mempolicy("interleave", (0, 1))
    assert run_syscall(k, mbind(k, 0, 1, BASE, 8 * P, pol, MPOL_MF_MOVE), 0) == 0
    # Pages already on a node of the policy stay; the VMA was split at the range's end.
    vmas = k.mm(1).vmas
    assert [(v.start, v.end) for v in vmas] == [(BASE, BASE + 8 * P), (BASE + 8 * P, BASE + 64 * P)]
    assert vmas[0].policy == pol and vmas[1].policy is None
    bind1 = Mempolicy("bind", (1,))
    k.pin_user_pages(1, BASE, 1, "pin")
    rc = run_syscall(k, mbind(k, 0, 1, BASE, 8 * P, bind1, MPOL_MF_MOVE | MPOL_MF_STRICT), 0)
    assert rc == -EIO
    assert k.follow_page(1, BASE).node == 0
    assert all(k.follow_page(1, a).node == 1 for a in pages_at(8)[1:])
    # New faults in the range follow the VMA policy.
    touch(k, 1, BASE + 20 * P)
    assert k.follow_page(1, BASE + 20 * P).node == 0      # outside the mbind range: local
    text, rows = numa_maps(k, 1)
    assert text.splitlines()[0].startswith(f"{BASE:08x} bind:1 anon=8 dirty=8")
    assert "N0=1 N1=7" in text.splitlines()[0]


def test_migrate_pages_node_remap_and_counts():
    hw = FixedHardware(nodes=3)
    k = Kernel(hw)
    k.create_process(1)
    k.add_thread(1, 1, 0)
    k.mmap(1, BASE, 64 * P, VmaKind.ANON, policy=Mempolicy("interleave", (0, 1, 2)))
    for a in pages_at(9):
        touch(k, 1, a)
    assert sorted(k.follow_page(1, a).node for a in pages_at(9)) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # {0,1} -> {1,2}: node 1's pages go to 2 first, then node 0's to 1 (no page moves twice).
    assert run_syscall(k, migrate_pages(k, 0, 1, [0, 1], [1, 2]), 0) == 0
    assert sorted(k.follow_page(1, a).node for a in pages_at(9)) == [1, 1, 1, 2, 2, 2, 2, 2, 2]
    assert k.counter("linux.migrate", "pages_migrated") == 6


def test_two_addresses_in_one_thp():
    k = thp_kernel()
    touch(k, 1, BASE)
    r = run_syscall(k, move_pages(k, 0, 1, [BASE, BASE + 3 * P], [1, 1]), 0)
    # The second address finds the THP already isolated by the first: -EBUSY, as in Linux;
    # the first batch (the whole THP) then moves.
    assert r.ret == 0 and r.status == [1, -EBUSY]
    assert k.follow_page(1, BASE + 3 * P).node == 1


def test_async_mode_for_numa_balancing_does_not_split_or_wait(kern):
    k = kern
    touch(k, 1, BASE)
    page = k.follow_page(1, BASE)
    k.start_writeback(page, 50_000_000)
    assert k.isolate_lru_page(page, Meter(k, 0))
    mig = Migrator(k, 0, alloc_on_node(k, 1), "async", "numa_misplaced")
    res = run(k, mig.migrate_pages([page]))
    # -EBUSY is a permanent failure for an async batch: one pass, no waiting.
    assert res.rc == 1 and res.reasons[page.pfn] == "EBUSY: under writeback"
    assert k.counter("linux.migrate", "passes") == 1
    assert page.test(PG.WRITEBACK) and page.node == 0
    run(k, mig.putback(res.remaining))
    assert page.test(PG.LRU) and page.refcount == 1


def test_page_cache_lookup_spins_on_mapping_lock_then_finds_new_page():
    k = make()
    faddr = BASE + (2 << 20)
    k.mmap(1, faddr, 4 * P, VmaKind.FILE, file="data")
    touch(k, 1, faddr)
    k.create_process(2)
    k.add_thread(2, 2, 3)
    k.mmap(2, 0x30_0000_0000, 4 * P, VmaKind.FILE, file="data")
    f = k.files["data"]
    proc = k.engine.spawn(move_pages(k, 0, 1, [faddr], [1]), 0)
    while f.lock_holder is None:                 # step 5 taken
        assert k.engine.queue.step() is not None
    fault = k.fault(2, 0x30_0000_0000, False)
    k.engine.run_process(proc)
    res = k.engine.run_process(fault)
    new = f.pages[0]
    assert new.node == 1 and res.pfn == new.pfn
    spun = k.counter("linux.fault", "mapping_lock_spin_time")
    slept = k.counter("linux.fault", "page_lock_wait_time")
    assert spun > 0 and slept > 0                # spun on xa_lock, then slept on the new page
    assert new.mapcount == 2 and new.refcount == 3


def test_mbind_move_all_moves_shared_pages():
    k, page = shared_setup()
    addr = BASE + (1 << 20)
    pol = Mempolicy("bind", (1,))
    assert run_syscall(k, mbind(k, 0, 1, addr, P, pol, MPOL_MF_MOVE), 0) == 0
    assert page.node == 0                         # shared: skipped without MOVE_ALL
    assert run_syscall(k, mbind(k, 0, 1, addr, P, pol, MPOL_MF_MOVE | MPOL_MF_STRICT), 0) == 0
    assert page.node == 0                         # skipping a shared page is not a failure
    assert run_syscall(k, mbind(k, 0, 1, addr, P, pol, MPOL_MF_MOVE_ALL), 0) == 0
    assert k.follow_page(1, addr).node == 1 and k.follow_page(2, 0x20_0000_0000).node == 1


def test_observer_sees_every_entry_change_and_the_freed_frame(kern):
    from hwemu.linux.kernel import KernelObserver

    class Rec(KernelObserver):
        def __init__(self):
            self.events = []

        def pte_changed(self, pid, vaddr, huge, kind, paddr, node):
            self.events.append(("pte", pid, vaddr, huge, kind.value, paddr, node))

        def page_freed(self, paddr, nbytes):
            self.events.append(("free", paddr, nbytes))

    k = kern
    rec = Rec()
    k.observers.append(rec)
    touch(k, 1, BASE)
    old = k.follow_page(1, BASE)
    run_syscall(k, move_pages(k, 0, 1, [BASE], [1]), 0)
    new = k.follow_page(1, BASE)
    assert rec.events == [
        ("pte", 1, BASE, False, "present", old.paddr, 0),
        ("pte", 1, BASE, False, "migration", old.paddr, 0),
        ("pte", 1, BASE, False, "present", new.paddr, 1),
        ("free", old.paddr, 4096),
    ]


def test_thp_split_that_only_partly_moves_is_a_failure():
    """Linux: a THP split for lack of a free 2 MiB block counts as one failed folio
    (migrate_pages_sync: nr_failed += nr_split); migrate_pages() returns 0 only if every piece
    moved. move_pages then returns the number not migrated and writes no status."""
    k = thp_kernel()
    touch(k, 1, BASE + 7 * P)
    node1 = k.alloc.nodes[1]
    while node1.free_huge_blocks() == 7:           # break one 2 MiB block into 4 KiB frames
        node1.alloc(0)
    while node1.free_huge_blocks():
        node1.alloc(9)
    while node1.free_count > 95:                   # 95 free frames for 512 pieces
        node1.alloc(0)
    r = run_syscall(k, move_pages(k, 0, 1, [BASE], [1], status_init="unset"), 0)
    assert k.counter("linux.migrate", "thp_split") == 1
    assert k.counter("linux.migrate", "pages_migrated") == 95
    assert sum(k.follow_page(1, BASE + i * P).node == 0 for i in range(512)) == 417
    assert r.migrations[0].rc == 1 and r.ret == 1 and r.status == ["unset"]
    assert r.reasons == {0: "ENOMEM: THP split, 417 of 512 pieces not moved"}


def test_first_touch_page_is_mapped_only_after_it_is_cleared():
    """do_anonymous_page / do_huge_pmd_anonymous_page: the new folio is cleared, then mapped
    under the page-table lock; a second thread faulting the same range meanwhile maps nothing
    of its own (its folio is released when it finds the entry set)."""
    k = thp_kernel()
    k.add_thread(1, 2, 2)                                  # a second thread, on node 1
    key = BASE >> 21
    free0 = k.alloc.nodes[0].free_count + k.alloc.nodes[1].free_count
    f1 = k.fault(1, BASE + 3 * P, True)
    k.engine.run_until(1_000_000)                          # 1 us into a ~100 us clear
    assert key not in k.mm(1).pmds                         # not visible yet
    f2 = k.fault(2, BASE + 9 * P, False)                   # the other thread faults too
    k.engine.run_process(f1)
    k.engine.run_process(f2)
    page = k.follow_page(1, BASE)
    assert page.order == 9 and k.mm(1).pmds[key].pfn == page.pfn
    assert page.node == 0                                  # thread 1's, first-touch on node 0
    assert f1.end_ps - f1.start_ps > 50_000_000            # the clear of 2 MiB took its time
    assert k.counter("linux.fault", "anon_fault_raced") == 1
    # the racing fault's folio went back to the allocator: the THP and one page-table frame
    # (the PMD table) are in use, no more
    assert free0 - (k.alloc.nodes[0].free_count + k.alloc.nodes[1].free_count) == 512 + 1


class _DmaHardware(FixedHardware):
    """Fixed-cost hardware with one page-copy engine: every descriptor takes 3 us."""

    dma_engines = 1
    dma_interrupt_ps = 1_000_000

    def __init__(self):
        super().__init__()
        self.dma = []

    def dma_copy_ps(self, cpu, src_paddr, dst_paddr, nbytes, at_ps, desc_paddr=None):
        self.dma.append((src_paddr, dst_paddr, nbytes, at_ps, desc_paddr))
        return 3_000_000 * len(self.dma)          # one engine: the n-th finishes n x 3 us later


def test_dma_batch_copy_before_the_move_phase_exact_cost():
    """With engines, a batch's folios are copied together after the unmap phase (one chained
    descriptor each, one doorbell, one interrupt), and the migrating task sleeps meanwhile:
    step 12 = 150 + 3 x (50 cycles + a line write) + a locked line write, then the last
    descriptor's 9 us and the 1 us interrupt."""
    from hwemu.linux.copy import make_copy_engine
    from hwemu.linux.migrate import STEP_CYCLES
    from linux_testkit import ATOMIC_PS, CYCLE_PS, LINE_PS

    hw = _DmaHardware()
    k = make(hw)
    k.copy_engine = make_copy_engine("dma", hw)
    for a in pages_at(3):
        touch(k, 1, a)
    vals = [k.read_now(1, a) for a in pages_at(3)]
    before = k.engine.cpus.busy_ps[0]
    r = run_syscall(k, move_pages(k, 0, 1, pages_at(3), [1, 1, 1]), 0)
    assert r.ret == 0 and r.status == [1, 1, 1]
    assert [k.read_now(1, a) for a in pages_at(3)] == vals
    assert len(hw.dma) == 3 and all(d[2] == 4096 and d[4] is not None for d in hw.dma)
    assert len({d[3] for d in hw.dma}) == 1                      # submitted together
    cpu = (150 + 3 * 50 + 3 * STEP_CYCLES["12_copy"]) * CYCLE_PS + 4 * LINE_PS + ATOMIC_PS
    assert k.step_costs["12_copy"].time_ps == cpu + 9_000_000 + 1_000_000
    assert k.step_costs["12_copy"].calls == 3
    assert k.counter("linux.migrate", "batch_copies") == 1
    assert k.counter("linux.migrate", "bytes_copied") == 3 * 4096
    # the CPU was busy for the whole call except the 10 us the task slept on the engine
    assert k.engine.cpus.busy_ps[0] - before == r.elapsed_ps - 10_000_000
