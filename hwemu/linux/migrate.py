"""The kernel's migrate_pages() (mm/migrate.c), one function per protocol step.

Every step of docs/migration.md (PROTOCOL.md "Moving one page") is a generator method of
:class:`Migrator` named ``step_NN_...``. It changes the state the way Linux does and charges its
own cost, on the CPU doing the migration, from hardware primitives (code cycles, the cache
lines it touches, TLB flushes and IPIs, the copy). The cost shows up in the per-step
statistics (component ``linux.migrate.steps``).

Control flow follows Linux 6.x:

* :meth:`Migrator.migrate_pages` cuts the list into batches of up to 512 base pages
  (NR_MAX_BATCHED_MIGRATION). ``mode="async"`` runs each batch with up to 10 passes;
  ``mode="sync"`` (move_pages, migrate_pages, mbind) first runs the batch asynchronously with 3
  passes (trylock, no waiting for writeback, TLB flushes batched) and then every folio that
  failed one by one synchronously with 7 passes (sleeping on the page lock and on writeback)
  - 10 passes in all, as ``migrate_pages_sync``.
* :meth:`migrate_pages_batch` unmaps every folio of the batch (steps 1-4), flushes the
  deferred TLB entries once (try_to_unmap_flush), then moves them (steps 5-18). -EAGAIN
  leaves a folio on its list for the next pass; -EBUSY and other errors are permanent for the
  batch; -ENOMEM stops everything. A large folio whose target cannot be allocated is split
  and its pages migrated after the batch (unless the reason is NUMA balancing).

Effects of a step become visible when the step starts; the CPU is then busy for its cost.
While a page's PTEs are migration entries (step 4 until step 16) user accesses fault and sleep
on the old page's lock (released in step 17): the wait is part of their latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generator

from hwemu.linux.kernel import Kernel, Meter
from hwemu.linux.mm import HPAGE_NR, MIGRATED_FLAGS, NO_FLAGS, PG, Page, Pte, PteKind, PAGE_SHIFT
from hwemu.linux.rmap import TlbBatch, page_mappings, remove_migration_ptes, try_to_migrate

# errno values (include/uapi/asm-generic/errno-base.h)
ENOENT, EIO, EAGAIN, ENOMEM, EACCES, EFAULT, EBUSY, ENODEV, EINVAL = 2, 5, 11, 12, 13, 14, 16, 19, 22
ERRNO_NAMES = {ENOENT: "ENOENT", EIO: "EIO", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES",
               EFAULT: "EFAULT", EBUSY: "EBUSY", ENODEV: "ENODEV", EINVAL: "EINVAL"}

MIGRATEPAGE_SUCCESS = 0
MIGRATEPAGE_UNMAP = 1

NR_MAX_BATCHED_MIGRATION = HPAGE_NR                  # 512 base pages per batch
NR_MAX_MIGRATE_PAGES_RETRY = 10
NR_MAX_MIGRATE_ASYNC_RETRY = 3
NR_MAX_MIGRATE_SYNC_RETRY = NR_MAX_MIGRATE_PAGES_RETRY - NR_MAX_MIGRATE_ASYNC_RETRY

MR_SYSCALL = "syscall"
MR_MEMPOLICY_MBIND = "mempolicy_mbind"
MR_NUMA_MISPLACED = "numa_misplaced"

# Kernel-code cycles of each step (beyond the cache lines and flushes it touches); estimates of
# the instruction path lengths, calibrated as described in docs/migration.md.
STEP_CYCLES = {
    "syscall": 400,          # move_pages entry: copy arrays, find_mm_struct, lru_cache_disable
    "lookup": 70,            # per page: get_user, vma_lookup, folio_walk (lines charged apart)
    "isolate": 40,           # folio_isolate_lru
    "alloc_new": 90,         # alloc_migration_target -> __alloc_pages from the per-cpu list
    "01_lock_old": 15,
    "02_writeback": 8,
    "03_lock_new": 15,
    "04_unmap": 40,          # try_to_migrate set-up (rmap costs in hwemu.linux.rmap)
    "tlb_flush_batch": 60,   # try_to_unmap_flush
    "05_lock_mapping": 15,
    "06_check_refcount": 20,
    "07_check_mapping": 15,
    "08_prepare_new": 30,
    "09_switch_mapping": 25,
    "10_move_refs": 15,
    "11_unlock_mapping": 10,
    "12_copy": 20,
    "13_copy_flags": 60,     # folio_migrate_flags: bit tests/sets, cpupid, memcg, page_owner
    "14_clear_old_flags": 15,
    "15_start_writeback": 10,
    "16_restore_ptes": 30,
    "17_unlock": 15,
    "18_putback_free": 90,   # folio_add_lru + free_unref_page of the old page
    "backout": 40,
    "putback": 40,
    "split": 2000,
}

STEP_ORDER = ["syscall", "lookup", "isolate", "alloc_new", "01_lock_old", "02_writeback",
              "03_lock_new", "04_unmap", "tlb_flush_batch", "05_lock_mapping",
              "06_check_refcount", "07_check_mapping", "08_prepare_new", "09_switch_mapping",
              "10_move_refs", "11_unlock_mapping", "12_copy", "13_copy_flags",
              "14_clear_old_flags", "15_start_writeback", "16_restore_ptes", "17_unlock",
              "18_putback_free", "backout", "putback", "split"]


@dataclass
class FolioState:
    """What migrate_folio_unmap records for migrate_folio_move (dst->private in Linux)."""

    src: Page
    dst: Page | None = None
    locked: bool = False
    dst_locked: bool = False
    was_mapped: bool = False
    was_mlocked: bool = False
    copied: bool = False           # contents already copied by the batch copy (step 12)


@dataclass
class MigrateResult:
    rc: int = 0                       # number of folios not migrated, or -ENOMEM
    nr_succeeded: int = 0             # base pages
    nr_failed_pages: int = 0
    nr_thp_succeeded: int = 0
    nr_thp_failed: int = 0
    nr_thp_split: int = 0
    passes: int = 0
    moved: dict[int, int] = field(default_factory=dict)      # old pfn -> new pfn
    reasons: dict[int, str] = field(default_factory=dict)    # old pfn -> last failure reason
    remaining: list[Page] = field(default_factory=list)      # failures, for putback


class Migrator:
    """One invocation context of migrate_pages() on one CPU."""

    def __init__(self, kernel: Kernel, cpu: int, get_new: Callable[[Page], Page | None],
                 mode: str = "sync", reason: str = MR_SYSCALL, copy_engine=None):
        assert mode in ("sync", "async")
        self.k = kernel
        self.cpu = cpu
        self.get_new = get_new
        self.mode = mode
        self.reason = reason
        self.copy_engine = copy_engine or kernel.copy_engine
        self.batch = TlbBatch()
        self.res = MigrateResult()
        self.owner = ("migrate", id(self))

    # -- accounting -------------------------------------------------------------------------
    def _meter(self) -> Meter:
        return Meter(self.k, self.cpu)

    def _charge(self, step: str, m: Meter, waited_ps: int = 0) -> Generator:
        """Charge ``m`` to ``step``; ``waited_ps`` (sleep inside the step) is added to the
        step's elapsed time but not to CPU busy time."""
        m.cycles(STEP_CYCLES[step])
        cost = m.take()
        if cost:
            yield cost
        self.k.charge_step(step, cost + waited_ps)

    def _fail(self, page: Page, why: str) -> None:
        self.res.reasons[page.pfn] = why

    # -- phase 2: the new page -----------------------------------------------------------------
    def step_alloc_new(self, src: Page) -> Generator:
        m = self._meter()
        dst = self.get_new(src)
        if dst is not None:
            m.page(dst, write=True)                  # prep_new_page: the new struct page
            dst.refcount = 1
        yield from self._charge("alloc_new", m)
        return dst

    # -- steps 1-4 ----------------------------------------------------------------------------
    def step_01_lock_old(self, st: FolioState, force: bool) -> Generator:
        """Lock the old page: trylock; in sync mode sleep on the lock."""
        m = self._meter()
        m.page(st.src, atomic=True)
        waited = 0
        if not self.k.trylock_page(st.src, self.owner):
            if not force:
                yield from self._charge("01_lock_old", m)
                return False
            yield from self._charge("01_lock_old", m)
            t0 = self.k.engine.now_ps
            yield from self.k.lock_page(st.src, self.owner)
            waited = self.k.engine.now_ps - t0
            self.k.count("linux.migrate", "lock_wait_time", waited, "ps")
            m = self._meter()
            m.page(st.src, atomic=True)
        yield from self._charge("01_lock_old", m, waited)
        st.locked = True
        st.was_mlocked = st.src.test(PG.MLOCKED)
        return True

    def step_02_writeback(self, st: FolioState, force: bool) -> Generator:
        """Writeback must be complete: -EBUSY in async passes, wait in sync passes."""
        m = self._meter()
        m.page(st.src)
        if not st.src.test(PG.WRITEBACK):
            yield from self._charge("02_writeback", m)
            return 0
        if not force:
            yield from self._charge("02_writeback", m)
            return -EBUSY
        yield from self._charge("02_writeback", m)
        t0 = self.k.engine.now_ps
        yield from self.k.wait_on_writeback(st.src)
        waited = self.k.engine.now_ps - t0
        self.k.count("linux.migrate", "writeback_wait_time", waited, "ps")
        yield from self._charge("02_writeback", self._meter(), waited)
        return 0

    def step_03_lock_new(self, st: FolioState) -> Generator:
        m = self._meter()
        m.page(st.dst, atomic=True)
        ok = self.k.trylock_page(st.dst, self.owner)
        yield from self._charge("03_lock_new", m)
        st.dst_locked = ok
        return ok

    def step_04_unmap(self, st: FolioState) -> Generator:
        """try_to_migrate: every mapping becomes a migration entry (rmap walk; TLB flush now
        or batched). Returns True when the mapcount reached zero."""
        m = self._meter()
        src = st.src
        if src.mapcount > 0:
            batch = self.batch if (self.mode_now == "async" and self.k.tlb_batch) else None
            try_to_migrate(self.k, m, src, batch)
            st.was_mapped = True
        yield from self._charge("04_unmap", m)
        return src.mapcount == 0

    def step_tlb_flush_batch(self) -> Generator:
        m = self._meter()
        self.batch.flush(self.k, m)
        yield from self._charge("tlb_flush_batch", m)

    # -- steps 5-11: the mapping (file pages; anonymous pages only check the refcount) --------
    def expected_refs(self, page: Page) -> int:
        """folio_expected_refs: the isolation reference, plus the page cache's (and the
        private data's) when the page has a mapping."""
        mapping = page.file_mapping
        refs = 1
        if mapping is None:
            return refs
        refs += page.nr_pages
        if page.test(PG.PRIVATE):
            refs += 1
        return refs

    def step_05_lock_mapping(self, st: FolioState) -> Generator:
        f = st.src.file_mapping
        m = self._meter()
        m.touch(f.kaddr, atomic=True)
        waited = 0
        while f.lock_holder is not None:        # spin (irq-off spinlock)
            t0 = self.k.engine.now_ps
            yield f.lock_wait
            waited += self.k.engine.now_ps - t0
        f.lock_holder = self.owner
        if waited:
            self.k.engine.cpus.occupy(self.cpu, self.k.engine.now_ps - waited, waited)
        yield from self._charge("05_lock_mapping", m, waited)

    def step_06_check_refcount(self, st: FolioState) -> Generator:
        src = st.src
        m = self._meter()
        m.page(src, atomic=True)                 # folio_ref_freeze (cmpxchg)
        ok = src.refcount == self.expected_refs(src)
        yield from self._charge("06_check_refcount", m)
        return ok

    def step_07_check_mapping(self, st: FolioState) -> Generator:
        src = st.src
        f = src.file_mapping
        m = self._meter()
        m.touch(f.slot_paddr(src.index))
        ok = f.pages.get(src.index) is src
        yield from self._charge("07_check_mapping", m)
        return ok

    def step_08_prepare_new(self, st: FolioState) -> Generator:
        src, dst = st.src, st.dst
        m = self._meter()
        m.page(src)
        m.page(dst, write=True)
        dst.index = src.index
        dst.mapping = src.mapping
        if src.test(PG.SWAPBACKED):
            dst.set(PG.SWAPBACKED)
        yield from self._charge("08_prepare_new", m)

    def step_09_switch_mapping(self, st: FolioState) -> Generator:
        src, dst = st.src, st.dst
        f = src.file_mapping
        m = self._meter()
        m.touch(f.slot_paddr(src.index), write=True)
        f.pages[src.index] = dst
        yield from self._charge("09_switch_mapping", m)

    def step_10_move_refs(self, st: FolioState) -> Generator:
        src, dst = st.src, st.dst
        m = self._meter()
        m.page(dst, atomic=True)
        m.page(src, atomic=True)
        dst.refcount += src.nr_pages             # folio_ref_add(newfolio, nr)
        src.refcount -= src.nr_pages             # folio_ref_unfreeze(folio, expected - nr)
        # Dirty accounting moves with the page cache slot.
        if src.test(PG.DIRTY):
            src.clear(PG.DIRTY)
            dst.set(PG.DIRTY)
        yield from self._charge("10_move_refs", m)

    def step_11_unlock_mapping(self, st: FolioState) -> Generator:
        f = st.src.file_mapping
        m = self._meter()
        m.touch(f.kaddr, atomic=True)
        f.lock_holder = None
        f.lock_wait.wake(self.k.engine)
        yield from self._charge("11_unlock_mapping", m)

    # -- steps 12-18 --------------------------------------------------------------------------
    def step_12_batch_copy(self, states: list[FolioState]) -> Generator:
        """Step 12 for every unmapped folio of the batch at once, before the move phase, on a
        copy engine that takes batches (the DMA engines: one descriptor per folio, chained, one
        completion interrupt for the batch, as the proposed migration copy offload does in
        migrate_pages_batch). The migrating task waits for the whole batch; each folio's own
        step 12 then finds its contents copied."""
        from hwemu.engine import Sleep

        m = self._meter()
        pairs = [(st.src, st.dst) for st in states]
        for st in states:
            st.dst.data = list(st.src.data)      # contents at the start of the copy
            st.copied = True
        cpu_ps, wait_ps = self.copy_engine.copy_batch(self.k, self.cpu, pairs, m.start_ps)
        m.add(cpu_ps)
        m.cycles(STEP_CYCLES["12_copy"] * len(states))
        cost = m.take()
        yield cost
        yield Sleep(wait_ps)
        self.k.charge_step("12_copy", cost + wait_ps, len(states))
        self.k.count("linux.migrate", "bytes_copied", sum(st.src.size_bytes for st in states), "B")
        self.k.count("linux.migrate", "batch_copies")

    def step_12_copy(self, st: FolioState) -> Generator:
        src, dst = st.src, st.dst
        if st.copied:                            # done by step_12_batch_copy
            return
            yield  # noqa: unreachable - makes this a generator
        m = self._meter()
        dst.data = list(src.data)                # contents at the start of the copy
        cpu_ps, wait_ps = self.copy_engine.copy(self.k, self.cpu, src, dst, m.start_ps)
        m.add(cpu_ps)
        if wait_ps:
            from hwemu.engine import Sleep
            m.cycles(STEP_CYCLES["12_copy"])
            cost = m.take()
            yield cost
            yield Sleep(wait_ps)
            self.k.charge_step("12_copy", cost + wait_ps)
        else:
            yield from self._charge("12_copy", m)
        self.k.count("linux.migrate", "bytes_copied", src.size_bytes, "B")

    def step_13_copy_flags(self, st: FolioState) -> Generator:
        src, dst = st.src, st.dst
        m = self._meter()
        m.page(src)
        m.page(dst, write=True)
        dst.flags |= (src.flags & MIGRATED_FLAGS)
        dst.last_cpupid = src.last_cpupid
        yield from self._charge("13_copy_flags", m)

    def step_14_clear_old_flags(self, st: FolioState) -> Generator:
        src = st.src
        m = self._meter()
        m.page(src, write=True)
        src.clear(PG.ACTIVE | PG.UNEVICTABLE | PG.REFERENCED | PG.DIRTY | PG.PRIVATE | PG.YOUNG
                  | PG.MLOCKED | PG.RECLAIM)
        src.last_cpupid = -1
        if src.file_mapping is not None:
            src.mapping = None                   # old page-cache page no longer stands for anything
        yield from self._charge("14_clear_old_flags", m)

    def step_15_start_writeback(self, st: FolioState) -> Generator:
        """Writeback queued while the page was busy (PG_reclaim) starts on the new page."""
        dst = st.dst
        m = self._meter()
        started = False
        if dst.test(PG.RECLAIM) and dst.test(PG.DIRTY) and dst.file_mapping is not None \
                and not dst.test(PG.SWAPBACKED):
            dst.clear(PG.RECLAIM)
            m.page(dst, atomic=True)
            self.k.start_writeback(dst, self.k.writeback_io_ps)
            started = True
        yield from self._charge("15_start_writeback", m)
        if started:
            self.k.count("linux.migrate", "writeback_started")

    def step_16_restore_ptes(self, st: FolioState, target: Page) -> Generator:
        m = self._meter()
        if st.was_mapped:
            remove_migration_ptes(self.k, m, st.src, target)
        yield from self._charge("16_restore_ptes", m)

    def step_17_unlock(self, st: FolioState) -> Generator:
        m = self._meter()
        m.page(st.dst, atomic=True)
        self.k.unlock_page(st.dst)
        st.dst_locked = False
        m.page(st.src, atomic=True)
        self.k.unlock_page(st.src)
        st.locked = False
        yield from self._charge("17_unlock", m)

    def step_18_putback_free(self, st: FolioState) -> Generator:
        src, dst = st.src, st.dst
        m = self._meter()
        self.k.lru_add(dst, m)
        self.k.folio_put(dst)                    # the allocation reference
        m.page(src, atomic=True)
        self.k.folio_put(src)                    # isolation reference: the old page is freed
        assert src.freed, f"old page still referenced after migration: {src!r}"
        yield from self._charge("18_putback_free", m)
        if self.k.on_migrated is not None:
            self.k.on_migrated(src.nr_pages)

    # -- backing out ----------------------------------------------------------------------------
    def backout_src(self, st: FolioState, to_ret: bool, ret: list) -> Generator:
        """migrate_folio_undo_src: restore the PTEs, unlock."""
        m = self._meter()
        if st.was_mapped:
            remove_migration_ptes(self.k, m, st.src, st.src)
            st.was_mapped = False
        if st.locked:
            m.page(st.src, atomic=True)
            self.k.unlock_page(st.src)
            st.locked = False
        if to_ret:
            ret.append(st.src)
        yield from self._charge("backout", m)

    def backout_dst(self, st: FolioState) -> Generator:
        """migrate_folio_undo_dst: unlock and free the new page."""
        m = self._meter()
        dst = st.dst
        if dst is not None:
            if st.dst_locked:
                m.page(dst, atomic=True)
                self.k.unlock_page(dst)
                st.dst_locked = False
            dst.mapping = None
            dst.flags = NO_FLAGS
            self.k.folio_put(dst)
            st.dst = None
        yield from self._charge("backout", m)

    # -- one folio: unmap half and move half ----------------------------------------------------
    def migrate_folio_unmap(self, src: Page, ret: list) -> Generator:
        """Steps 1-4 (and the new page). Returns (rc, FolioState)."""
        st = FolioState(src)
        force = self.mode_now == "sync"
        if src.refcount == 1:
            # Freed from under us: only the isolation reference is left.
            src.clear(PG.ACTIVE | PG.UNEVICTABLE)
            self.k.folio_put(src)
            return MIGRATEPAGE_SUCCESS, st
        dst = yield from self.step_alloc_new(src)
        if dst is None:
            self._fail(src, "ENOMEM: target node full")
            return -ENOMEM, st
        st.dst = dst
        rc = -EAGAIN
        if not (yield from self.step_01_lock_old(st, force)):
            self._fail(src, "EAGAIN: page locked")
        else:
            wb = yield from self.step_02_writeback(st, force)
            if wb:
                rc = wb
                self._fail(src, "EBUSY: under writeback")
            elif not (yield from self.step_03_lock_new(st)):
                self._fail(src, "EAGAIN: new page locked")
            else:
                if (yield from self.step_04_unmap(st)):
                    return MIGRATEPAGE_UNMAP, st
                self._fail(src, "EAGAIN: pinned, not unmapped (folio_maybe_dma_pinned)"
                           if src.is_anon and src.is_pinned else "EAGAIN: still mapped")
        # out: a folio that will be retried stays on the from list.
        yield from self.backout_src(st, rc != -EAGAIN, ret)
        yield from self.backout_dst(st)
        return rc, st

    def move_to_new_folio(self, st: FolioState) -> Generator:
        """Steps 5-15. Returns MIGRATEPAGE_SUCCESS or -EAGAIN."""
        src = st.src
        f = src.file_mapping
        if f is None:
            if not (yield from self.step_06_check_refcount(st)):
                self._fail(src, "EAGAIN: extra references (pinned or in use)")
                return -EAGAIN
            yield from self.step_08_prepare_new(st)
        else:
            yield from self.step_05_lock_mapping(st)
            if not (yield from self.step_06_check_refcount(st)):
                yield from self.step_11_unlock_mapping(st)
                self._fail(src, "EAGAIN: extra references (pinned or in use)")
                return -EAGAIN
            if not (yield from self.step_07_check_mapping(st)):
                yield from self.step_11_unlock_mapping(st)
                self._fail(src, "EAGAIN: mapping changed")
                return -EAGAIN
            yield from self.step_08_prepare_new(st)
            yield from self.step_09_switch_mapping(st)
            yield from self.step_10_move_refs(st)
            yield from self.step_11_unlock_mapping(st)
        yield from self.step_12_copy(st)
        yield from self.step_13_copy_flags(st)
        yield from self.step_14_clear_old_flags(st)
        yield from self.step_15_start_writeback(st)
        return MIGRATEPAGE_SUCCESS

    def migrate_folio_move(self, st: FolioState, ret: list) -> Generator:
        rc = yield from self.move_to_new_folio(st)
        if rc == MIGRATEPAGE_SUCCESS:
            src, dst = st.src, st.dst
            yield from self.step_16_restore_ptes(st, dst)
            yield from self.step_17_unlock(st)
            self.res.moved[src.pfn] = dst.pfn
            self.res.reasons.pop(src.pfn, None)
            yield from self.step_18_putback_free(st)
            return rc
        if rc == -EAGAIN:
            return rc                            # stays unmapped on the unmap list
        yield from self.backout_src(st, True, ret)
        yield from self.backout_dst(st)
        return rc

    # -- THP split ------------------------------------------------------------------------------
    def try_split_folio(self, src: Page) -> Generator:
        """split_folio_to_list for an isolated anonymous THP: 512 isolated base pages, the PMD
        mapping(s) split into PTEs. Returns the pages, or None when it cannot be split
        (pinned, under writeback, or references beyond mappings + isolation)."""
        k = self.k
        if src.order == 0 or not src.is_anon or src.pincount or src.refcount != src.mapcount + 1:
            return None
        if src.test(PG.WRITEBACK):               # split_folio refuses folios under writeback
            return None
        if not k.trylock_page(src, self.owner):
            return None
        m = self._meter()
        maps = page_mappings(src, kinds=(PteKind.PRESENT, PteKind.PROTNONE))
        nmaps = len(maps)
        for mp in maps:                          # __split_huge_pmd
            mm = mp.mm
            k._ensure_table(mm, mp.addr, False, m, self.cpu)
            del mm.pmds[mp.addr >> 21]
            k.notify_pte(mm, mp.addr, True, None)
            for i in range(HPAGE_NR):
                e = mm.ptes[(mp.addr >> PAGE_SHIFT) + i] = Pte(mp.entry.kind, src.pfn + i,
                                                              mp.entry.writable, mp.entry.young,
                                                              mp.entry.dirty)
                k.notify_pte(mm, mp.addr + i * 4096, False, e)
            m.touch(mm.pte_paddr(mp.addr, False), write=True)
        pages = [src]
        data = src.data
        flags = src.flags & ~(PG.HEAD | PG.LOCKED)
        for i in range(1, HPAGE_NR):
            p = k._new_page(src.pfn + i, src.node, 0)
            p.flags = flags
            p.mapping = src.mapping
            p.index = src.index + i
            p.data = [data[i]]
            p.mapcount = nmaps
            p.refcount = nmaps + 1               # its mappings + the isolation reference
            p.last_cpupid = src.last_cpupid
            m.page(p, write=True)
            pages.append(p)
        src.order = 0
        k._node_frames[src.node] -= HPAGE_NR - 1     # its tail frames are pages of their own now
        src.clear(PG.HEAD)
        src.data = [data[0]]
        k.unlock_page(src)
        yield from self._charge("split", m)
        k.count("linux.migrate", "thp_split")
        return pages

    # -- the batch and the passes -----------------------------------------------------------------
    def migrate_pages_batch(self, from_list: list[Page], mode: str, ret: list,
                            split: list | None, nr_pass: int) -> Generator:
        self.mode_now = mode
        res = self.res
        nr_failed = 0
        retry = 1
        rc_saved = 0
        unmapped: list[FolioState] = []
        nosplit = self.reason == MR_NUMA_MISPLACED
        pass_ = 0
        while pass_ < nr_pass and retry:
            retry = 0
            nr_retry_pages = 0
            res.passes += 1
            self.k.count("linux.migrate", "passes")
            for folio in list(from_list):
                is_thp = folio.order > 0
                nr = folio.nr_pages
                rc, st = yield from self.migrate_folio_unmap(folio, ret)
                if rc == -ENOMEM:
                    nr_failed += 1
                    res.nr_thp_failed += is_thp
                    if folio.order and not nosplit and split is not None:
                        subpages = yield from self.try_split_folio(folio)
                        if subpages is not None:
                            from_list.remove(folio)
                            split.extend(subpages)
                            res.nr_thp_split += is_thp
                            continue
                    res.nr_failed_pages += nr + nr_retry_pages
                    rc_saved = rc
                    break
                if rc == -EAGAIN:
                    retry += 1
                    nr_retry_pages += nr
                elif rc == MIGRATEPAGE_SUCCESS:
                    from_list.remove(folio)
                    res.nr_succeeded += nr
                    res.nr_thp_succeeded += is_thp
                elif rc == MIGRATEPAGE_UNMAP:
                    from_list.remove(folio)
                    unmapped.append(st)
                else:
                    # Permanent failure for this batch (-EBUSY ...): already on ret.
                    from_list.remove(folio)
                    nr_failed += 1
                    res.nr_thp_failed += is_thp
                    res.nr_failed_pages += nr
            if rc_saved:
                break
            pass_ += 1
        if not rc_saved:
            nr_failed += retry
            res.nr_failed_pages += nr_retry_pages
        # move: flush the deferred TLB entries of the whole batch once.
        if unmapped:
            yield from self.step_tlb_flush_batch()
            if getattr(self.copy_engine, "batches", False):
                yield from self.step_12_batch_copy(unmapped)
        retry = 1
        pass_ = 0
        while unmapped and pass_ < nr_pass and retry:
            retry = 0
            nr_retry_pages = 0
            self.k.count("linux.migrate", "move_passes")
            for st in list(unmapped):
                nr = st.src.nr_pages
                is_thp = st.src.order > 0
                rc = yield from self.migrate_folio_move(st, ret)
                if rc == -EAGAIN:
                    retry += 1
                    nr_retry_pages += nr
                    continue
                unmapped.remove(st)
                if rc == MIGRATEPAGE_SUCCESS:
                    res.nr_succeeded += nr
                    res.nr_thp_succeeded += is_thp
                else:
                    nr_failed += 1
                    res.nr_failed_pages += st.src.nr_pages
            pass_ += 1
        nr_failed += retry if unmapped else 0
        for st in unmapped:
            res.nr_failed_pages += st.src.nr_pages
        rc = rc_saved or nr_failed
        # out: undo what is still unmapped; those folios go to ret.
        for st in list(unmapped):
            yield from self.backout_src(st, True, ret)
            yield from self.backout_dst(st)
        unmapped.clear()
        return rc

    def migrate_pages_sync(self, from_list: list[Page], ret: list, split: list) -> Generator:
        nr_failed = 0
        folios: list[Page] = []
        splits_before = self.res.nr_thp_split
        rc = yield from self.migrate_pages_batch(from_list, "async", folios, split,
                                                 NR_MAX_MIGRATE_ASYNC_RETRY)
        if rc < 0:
            ret.extend(folios)
            return rc
        # Fall back to migrating every failed folio one by one, synchronously. Their async
        # failures are not counted: they are retried. A large folio split in the async pass
        # is not retried: it counts as one failure (Linux: nr_failed += astats.nr_split), so
        # migrate_pages() returns non-zero unless every piece moves.
        nr_failed += self.res.nr_thp_split - splits_before
        self.res.nr_failed_pages = 0
        from_list.extend(folios)
        while from_list:
            one = [from_list.pop(0)]
            rc = yield from self.migrate_pages_batch(one, "sync", ret, split,
                                                     NR_MAX_MIGRATE_SYNC_RETRY)
            ret.extend(one)
            if rc < 0:
                ret.extend(from_list)
                from_list.clear()
                return rc
            nr_failed += rc
        return nr_failed

    def migrate_pages(self, from_list: list[Page]) -> Generator:
        """migrate_pages(): returns a :class:`MigrateResult`; ``rc`` is the number of folios
        not migrated (0: all moved) or -ENOMEM. Folios that did not move are in
        ``result.remaining`` (still isolated: the caller puts them back)."""
        self.res = MigrateResult()
        self.mode_now = self.mode
        from_list = list(from_list)
        ret: list[Page] = []
        rc_gather = 0
        attempted = sum(p.nr_pages for p in from_list)
        self.k.count("linux.migrate", "pages_attempted", attempted)
        failed_pages_total = 0
        while from_list:
            nr_pages, cut = 0, len(from_list)
            for i, p in enumerate(from_list):
                nr_pages += p.nr_pages
                if nr_pages >= NR_MAX_BATCHED_MIGRATION:
                    cut = i + 1
                    break
            folios, from_list = from_list[:cut], from_list[cut:]
            split: list[Page] = []
            self.res.nr_failed_pages = 0
            if self.mode == "async":
                rc = yield from self.migrate_pages_batch(folios, "async", ret, split,
                                                         NR_MAX_MIGRATE_PAGES_RETRY)
            else:
                rc = yield from self.migrate_pages_sync(folios, ret, split)
            ret.extend(folios)
            failed_pages_total += self.res.nr_failed_pages
            if rc < 0:
                rc_gather = rc
                ret.extend(split)
                ret.extend(from_list)
                from_list = []
                break
            if split:
                # Minimal effort for the pieces of a split THP: async, one pass.
                self.res.nr_failed_pages = 0
                yield from self.migrate_pages_batch(split, "async", ret, None, 1)
                ret.extend(split)
                failed_pages_total += self.res.nr_failed_pages
            rc_gather += rc
        res = self.res
        res.nr_failed_pages = failed_pages_total
        # De-duplicate while keeping order (a folio appears once).
        seen, remaining = set(), []
        for p in ret:
            if id(p) not in seen and not p.freed:
                seen.add(id(p))
                remaining.append(p)
        res.remaining = remaining
        if not remaining:
            rc_gather = 0
        res.rc = rc_gather
        k = self.k
        k.count("linux.migrate", "pages_migrated", res.nr_succeeded)
        k.count("linux.migrate", "thp_migrated", res.nr_thp_succeeded)
        for p in remaining:
            why = res.reasons.get(p.pfn, "ENOMEM: not attempted" if rc_gather == -ENOMEM else "unknown")
            k.count_failure(why.split(':')[0], p.nr_pages)
        return res

    def putback(self, pages: list[Page]) -> Generator:
        """putback_movable_pages: failures go back on the LRU, dropping the isolation ref."""
        for p in pages:
            m = self._meter()
            self.k.putback_lru_page(p, m)
            yield from self._charge("putback", m)


def alloc_on_node(kernel: Kernel, node: int) -> Callable[[Page], Page | None]:
    """alloc_migration_target with __GFP_THISNODE: a page of the same order on ``node``."""
    def get_new(src: Page) -> Page | None:
        return kernel.alloc_page(src.order, node, thisnode=True)
    return get_new
