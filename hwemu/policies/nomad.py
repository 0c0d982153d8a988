"""Nomad: transactional, asynchronous page promotion (Xiang et al., "Nomad: Non-Exclusive
Memory Tiering via Transactional Page Migration", OSDI 2024).

Nomad keeps TPP's way of finding hot pages (hint-fault latency on scanned slow-tier pages,
hot threshold, rate limit; demotion by kswapd) but changes how a promotion is done:

* The hinting fault does not migrate. It queues the page for a promotion kernel thread and
  returns at once, so the application never waits for a copy.
* The thread migrates each page with *transactional page migration* (TPM), a variant of the
  protocol of hwemu.linux.migrate implemented here step by step:

  1. isolate the page, allocate the new page, lock both (protocol steps 1-3);
  2. **clear the dirty bit** of every PTE mapping the page (the page's PG_dirty keeps the
     information) and flush those TLB entries, so the next store sets it again;
  3. **copy while the page stays mapped** (step 12): the application keeps reading and
     writing the old page;
  4. **unmap** (step 4: migration entries, TLB shootdown) and, in the same instant, check the
     dirty bits. A PTE that became dirty means a store reached the old page during the copy:
     the transaction **aborts** (the PTEs are restored to the old page, the new page freed)
     and the page is re-queued, up to ``max_retries`` times;
  5. otherwise **commit**: the reference count check (step 6), the new page takes the old
     page's identity and flags (steps 8, 13-15), the PTEs point at the new page (16), both
     pages are unlocked (17) and the old page freed (18). Only steps 4-17 - no copy - run
     with the page unmapped.

  No write is lost: a store before the dirty-bit check is seen by it (and the transaction
  aborts), a store after it faults on the migration entry and waits for the new page.
* Nomad's page *shadowing* (keeping the slow-tier copy of a clean promoted page so that its
  demotion is a remap) is not modelled: demotion copies, as in TPP.

Pages that are not anonymous (page cache, shmem) are promoted with the ordinary protocol.
"""

from __future__ import annotations

from collections import deque
from typing import Generator

from hwemu.engine import Sleep
from hwemu.linux.kernel import KernelObserver, Meter
from hwemu.linux.migrate import MR_NUMA_MISPLACED, FolioState, Migrator, alloc_on_node
from hwemu.linux.mm import MIGRATED_FLAGS, NO_FLAGS, PAGE_SHIFT, PG, Page, PteKind
from hwemu.linux.rmap import (RMAP_CYCLES, page_mappings, pte_test_and_clear, remove_migration_ptes,
                              try_to_migrate)
from hwemu.policies.base import HintFault, Param, PolicyContext
from hwemu.policies.tpp import Tpp

MR_NOMAD = "nomad_promotion"
QUEUE_CYCLES = 200        # enqueue a promotion request and wake the thread (fault side)
CLEAN_CYCLES = 60         # per mapping: read-modify-write the PTE to clear its dirty bit
SHADOW_CYCLES = 150       # shadow bookkeeping: look-up / insert / erase in the shadow index


class _ShadowWatch(KernelObserver):
    """Frees a page's shadow when the page itself is freed (by any path)."""

    def __init__(self, policy: "Nomad"):
        self.policy = policy

    def page_freed(self, paddr: int, nbytes: int) -> None:
        self.policy.drop_shadow(paddr >> PAGE_SHIFT)


class Nomad(Tpp):
    """Nomad: TPP's hot-page detection with asynchronous transactional promotion (copy while mapped, commit only if the page stayed clean)."""

    name = "nomad"

    PARAMS = Tpp.PARAMS + (
        Param("max_retries", "int", 3,
              "times a promotion aborted by a store during the copy is retried before the "
              "request is dropped (the page can be queued again by a later hinting fault)"),
        Param("retry_delay", "time", "0ns",
              "wait before a retried page is attempted again (0: at the back of the queue)"),
        Param("queue_limit", "int", 4096,
              "promotion requests held at most; further hot pages are not queued"),
        Param("promote_cpu", "int", -1,
              "CPU of the promotion thread (-1: the last CPU of the target node)"),
        Param("shadow", "bool", True,
              "keep the slow-tier page of a promoted page as its shadow (demoting a clean "
              "page is then a remap)"),
    )

    def attach(self, ctx: PolicyContext) -> None:
        super().attach(ctx)
        self.queue: deque = deque()                 # (page, dst, attempts)
        self.queued: set[int] = set()               # id(page) of pages in the queue
        self.thread_busy = False
        for key in ("queued", "queue_full", "tpm_attempts", "tpm_commits", "tpm_aborts_dirty",
                    "tpm_aborts_busy", "tpm_retries", "tpm_dropped", "tpm_skipped",
                    "shadows_kept", "shadow_remaps", "shadows_dirty", "shadows_freed",
                    "shadows_reclaimed"):
            self.n[key] = 0
        self.shadows: dict[int, Page] = {}          # pfn of the promoted page -> its shadow
        self.written: set[int] = set()              # shadowed pages written since promotion
        if self.p["shadow"]:
            self.k.observers.append(_ShadowWatch(self))
        self.unmapped_ps = 0                        # total time pages spent unmapped
        self.copy_ps = 0

    # -- the hinting fault: decide as TPP, queue instead of migrating ------------------------
    def promote(self, fault: HintFault, page: Page, dst: int) -> Generator:
        fault.meter.cycles(QUEUE_CYCLES)
        if id(page) in self.queued:
            return False
        if len(self.queue) >= self.p["queue_limit"]:
            self.n["queue_full"] += 1
            return False
        self.queue.append((page, dst, 0))
        self.queued.add(id(page))
        self.n["queued"] += 1
        self._wake(dst)
        return False
        yield  # noqa: unreachable - a generator like Tpp.promote

    def promote_cpu(self, dst: int) -> int:
        if self.p["promote_cpu"] >= 0:
            return self.p["promote_cpu"]
        cpus = [c for c in range(self.k.hw.num_cpus) if self.ctx.cpu_node(c) == dst]
        return cpus[-1] if cpus else 0

    def _wake(self, dst: int) -> None:
        if self.thread_busy:
            return
        self.thread_busy = True
        cpu = self.promote_cpu(dst)
        self.ctx.engine.spawn(self._thread(cpu), cpu, name="kpromoted")

    def _thread(self, cpu: int) -> Generator:
        try:
            while self.queue:
                page, dst, attempts = self.queue.popleft()
                self.queued.discard(id(page))
                if page.freed or page.node == dst:
                    self.n["tpm_skipped"] += 1
                    continue
                if not page.is_anon:
                    res = yield from self.ctx.migrate_gen([page], dst, cpu, "async",
                                                          MR_NUMA_MISPLACED)
                    if res is not None and res.nr_succeeded:
                        self.n["promoted"] += 1
                    continue
                rc = yield from self.tpm_migrate(page, dst, cpu)
                if rc == "dirty" and attempts + 1 <= self.p["max_retries"]:
                    self.n["tpm_retries"] += 1
                    if self.p["retry_delay"]:
                        yield Sleep(self.p["retry_delay"])
                    if not page.freed and id(page) not in self.queued:
                        self.queue.append((page, dst, attempts + 1))
                        self.queued.add(id(page))
                elif rc == "dirty":
                    self.n["tpm_dropped"] += 1
        finally:
            self.thread_busy = False

    # -- transactional page migration -------------------------------------------------------------
    def tpm_migrate(self, page: Page, dst: int, cpu: int) -> Generator:
        """One transaction. Returns "commit", "dirty" (a store hit the page during the copy:
        aborted), "busy" (locked, under writeback, extra references, no memory) or "skip"."""
        k = self.k
        t0 = k.engine.now_ps
        m = Meter(k, cpu)
        if not k.isolate_lru_page(page, m):
            yield m.take()
            self.n["tpm_skipped"] += 1
            return "skip"
        yield m.take()
        self.n["tpm_attempts"] += 1
        k.count("linux.migrate", "pages_attempted", page.nr_pages)
        mig = Migrator(k, cpu, alloc_on_node(k, dst), "async", MR_NOMAD)
        mig.mode_now = "async"
        st = FolioState(page)
        new = yield from mig.step_alloc_new(page)
        if new is None:
            yield from mig.putback([page])
            self.n["tpm_aborts_busy"] += 1
            return "busy"
        st.dst = new
        ok = yield from mig.step_01_lock_old(st, False)
        if ok:
            ok = (yield from mig.step_02_writeback(st, False)) == 0
        if ok:
            ok = yield from mig.step_03_lock_new(st)
        if not ok:
            return (yield from self._abort(mig, st, "busy"))
        # 2. clear the dirty bits while mapped (+ flush, so the next store sets them again)
        yield from self._clear_dirty(page, cpu)
        # 3. copy while mapped
        c0 = k.engine.now_ps
        yield from mig.step_12_copy(st)
        self.copy_ps += k.engine.now_ps - c0
        # 4. unmap and check, atomically (no yield between the check and the unmap)
        dirty = self._dirty_since_clear(page)
        u0 = k.engine.now_ps
        unmapped = yield from mig.step_04_unmap(st)
        yield from mig.step_tlb_flush_batch()
        if dirty:
            rc = yield from self._abort(mig, st, "dirty")
            self.unmapped_ps += k.engine.now_ps - u0
            return rc
        if not unmapped or not (yield from mig.step_06_check_refcount(st)):
            rc = yield from self._abort(mig, st, "busy")
            self.unmapped_ps += k.engine.now_ps - u0
            return rc
        # 5. commit
        assert new.data == page.data, "TPM committed a copy that differs from the page"
        yield from mig.step_08_prepare_new(st)
        yield from mig.step_13_copy_flags(st)
        yield from mig.step_14_clear_old_flags(st)
        yield from mig.step_15_start_writeback(st)
        yield from mig.step_16_restore_ptes(st, new)
        yield from mig.step_17_unlock(st)
        self.unmapped_ps += k.engine.now_ps - u0
        nr = page.nr_pages
        if self.p["shadow"]:
            yield from self._keep_shadow(mig, st)
        else:
            yield from mig.step_18_putback_free(st)
        self.n["tpm_commits"] += 1
        self.n["promoted"] += 1
        self.scan_time.pop(page.pfn, None)
        k.count("linux.migrate", "pages_migrated", nr)
        k.count("linux.numa", "pgpromote_success", nr)
        if self.ctx.record_migration is not None:
            self.ctx.record_migration("nomad_promotion", t0, nr, page.size_bytes,
                                      k.engine.now_ps - t0)
        return "commit"

    # -- shadows ------------------------------------------------------------------------------------
    def _keep_shadow(self, mig: Migrator, st: FolioState) -> Generator:
        """Step 18 with shadowing: the new page goes on the LRU; the old page keeps the
        isolation reference as the shadow's and stays allocated, off the LRU, unmapped."""
        k = self.k
        src, dst = st.src, st.dst
        m = Meter(k, mig.cpu)
        k.lru_add(dst, m)
        k.folio_put(dst)                         # the allocation reference
        m.cycles(SHADOW_CYCLES)
        m.page(src, write=True)
        self.shadows[dst.pfn] = src
        self.n["shadows_kept"] += 1
        cost = m.take()
        k.charge_step("18_putback_free", cost)
        if cost:
            yield cost

    def drop_shadow(self, pfn: int, why: str = "shadows_freed") -> bool:
        self.written.discard(pfn)
        shadow = self.shadows.pop(pfn, None)
        if shadow is None:
            return False
        self.n[why] += 1
        shadow.mapping = None
        self.k.folio_put(shadow)
        return True

    def _dirty_since_clear(self, page: Page) -> bool:
        """Did a store reach the page since its PTE dirty bits were cleared? (The bits are read
        and cleared; the information moves to PG_dirty.)"""
        dirty = False
        for mp in page_mappings(page):
            if pte_test_and_clear(self.k, mp, "dirty"):
                dirty = True
        if dirty:
            page.set(PG.DIRTY)
        return dirty

    def shadow_valid(self, page: Page) -> bool:
        """The page was not written since its promotion: no dirty PTE. A page found written
        is remembered (``self.written``) so that later checks agree."""
        if page.pfn not in self.shadows:
            return False
        if page.pfn in self.written or self._dirty_since_clear(page):
            self.written.add(page.pfn)
            return False
        return True

    def demote(self, pages: list[Page], node: int, cpu: int) -> Generator:
        """Demotion (kswapd): a clean page with a shadow is remapped to it; the others are
        copied as in TPP (their shadows freed first)."""
        rest, moved = [], 0
        for page in pages:
            if page.pfn in self.shadows:
                ok = yield from self.remap_to_shadow(page, cpu)
                if ok:
                    moved += page.nr_pages
                    continue
            rest.append(page)
        if rest:
            moved += yield from super().demote(rest, node, cpu)
        return moved

    def remap_to_shadow(self, page: Page, cpu: int) -> Generator:
        """Demote isolated ``page`` by pointing its PTEs at its shadow. False (shadow freed,
        page untouched) when the page was written since its promotion or cannot be moved."""
        k = self.k
        t0 = k.engine.now_ps
        m = Meter(k, cpu)
        m.cycles(SHADOW_CYCLES)
        shadow = self.shadows.get(page.pfn)
        if not k.trylock_page(page, ("nomad-shadow", id(self))):
            yield m.take()
            return False
        m.page(page, atomic=True)
        # the dirty check and the unmap happen in the same instant
        if not self.shadow_valid(page):
            k.unlock_page(page)
            self.drop_shadow(page.pfn, "shadows_dirty")
            yield m.take()
            return False
        maps = try_to_migrate(k, m, page, None)
        if page.mapcount != 0 or page.refcount != 1 or page.pincount:
            remove_migration_ptes(k, m, page, page)
            k.unlock_page(page)
            yield m.take()
            return False
        assert shadow.data == page.data, "a clean page differs from its shadow"
        self.shadows.pop(page.pfn)
        self.written.discard(page.pfn)
        m.page(shadow, write=True)
        shadow.flags = (shadow.flags & ~MIGRATED_FLAGS) | (page.flags & MIGRATED_FLAGS)
        shadow.last_cpupid = page.last_cpupid
        shadow.mapping, shadow.index = page.mapping, page.index
        if maps:
            remove_migration_ptes(k, m, page, shadow)
        k.unlock_page(page)
        k.lru_add(shadow, m)
        k.folio_put(shadow)                      # the reference the shadow index held
        page.flags = NO_FLAGS
        page.mapping = None
        k.folio_put(page)                        # isolation reference: the fast page is freed
        assert page.freed
        cost = m.take()
        k.charge_step("nomad_shadow_remap", cost)
        if cost:
            yield cost
        self.n["shadow_remaps"] += 1
        self.n["demoted"] += page.nr_pages
        k.count("linux.numa", "pgdemote_kswapd", page.nr_pages)
        if self.ctx.record_migration is not None:
            self.ctx.record_migration("nomad_shadow_demotion", t0, page.nr_pages, 0,
                                      k.engine.now_ps - t0)
        return True

    def _check_watermarks(self) -> None:
        """TPP's periodic check, plus shadow reclaim on slow nodes below the low watermark."""
        if self.shadows:
            for n in self.slow:
                a = self.k.alloc.nodes[n]
                if a.free_count >= self.wm.low[n]:
                    continue
                mine = [(pfn, s) for pfn, s in self.shadows.items() if s.node == n]
                dirty = [pfn for pfn, _ in mine
                         if pfn in self.k.pages and not self.shadow_valid(self.k.pages[pfn])]
                for pfn in dirty + [pfn for pfn, _ in mine if pfn not in dirty]:
                    if a.free_count >= self.wm.high[n]:
                        break
                    self.drop_shadow(pfn, "shadows_reclaimed")
        super()._check_watermarks()

    def _clear_dirty(self, page: Page, cpu: int) -> Generator:
        k = self.k
        m = Meter(k, cpu)
        m.cycles(RMAP_CYCLES["walk_setup"])
        for mp in page_mappings(page, kinds=(PteKind.PRESENT, PteKind.PROTNONE)):
            m.cycles(CLEAN_CYCLES)
            k.walk_cost(m, mp.mm, mp.addr, mp.is_pmd, write=True)
            if pte_test_and_clear(k, mp, "dirty"):
                page.set(PG.DIRTY)                  # the page stays dirty for reclaim
            cost = k.hw.flush_tlb(cpu, mp.mm.cpumask, 1 if page.order == 0 else 0,
                                  m.start_ps + m.ps, mp.mm.pid, (mp.addr,))
            m.add(cost)
            k.count("linux.tlb", "flushes")
            k.count("linux.tlb", "ipis_sent", k.hw.ipi_count(cpu, mp.mm.cpumask))
            k.count("linux.tlb", "flush_time", cost, "ps")
        cost = m.take()
        k.charge_step("nomad_clear_dirty", cost)
        if cost:
            yield cost

    def _abort(self, mig: Migrator, st: FolioState, why: str) -> Generator:
        """Undo the transaction: PTEs back to the old page, unlock, free the new page, old page
        back on the LRU."""
        ret: list = []
        yield from mig.backout_src(st, True, ret)
        yield from mig.backout_dst(st)
        yield from mig.putback([st.src])
        self.n["tpm_aborts_dirty" if why == "dirty" else "tpm_aborts_busy"] += 1
        self.k.count("linux.migrate", "pages_failed", st.src.nr_pages)
        return why

    def finish(self, now_ps: int) -> None:
        super().finish(now_ps)
        comp = f"policy.{self.name}"
        self.ctx.stats.add(comp, "unmapped_time", self.unmapped_ps, "ps")
        self.ctx.stats.add(comp, "copy_time", self.copy_ps, "ps")
        self.ctx.stats.add(comp, "shadows_held", len(self.shadows), "count")
