"""Reclaim by demotion (mm/vmscan.c): kswapd, LRU aging and ``demote_folio_list``.

A top-tier node's kswapd runs while the node's free memory is below its reclaim goal (the
high watermark, or the promotion watermark when a promotion was refused): it ages the node's
LRU lists (``shrink_active_list``: active -> inactive, clearing the accessed bits;
``shrink_inactive_list``: a referenced inactive folio is activated, an unreferenced one is a
demotion candidate) and migrates candidates in batches to the slow tier
(``demote_folio_list``: MIGRATE_ASYNC, MR_DEMOTION, ``alloc_demote_folio``). Used by the
tiering policies (hwemu.policies.tpp, nomad, hotness); the policies decide when to wake it.
"""

from __future__ import annotations

from itertools import islice
from typing import Callable, Generator

from hwemu.linux.kernel import Meter
from hwemu.linux.migrate import Migrator
from hwemu.linux.mm import LRU, PAGE_SHIFT, PG, Page
from hwemu.linux.rmap import page_mappings, pte_test_and_clear

MR_DEMOTION = "demotion"
SWAP_CLUSTER_MAX = 32                 # include/linux/swap.h: reclaim batch
SHRINK_CYCLES = 250                   # shrink_folio_list per folio: rmap walk set-up, checks


def folio_referenced(kernel, page: Page, meter: Meter) -> bool:
    """``folio_referenced``: test and clear the accessed (young) bit of every PTE mapping the
    page (rmap walk; x86 does not flush the TLB for this) and the page's PG_referenced."""
    maps = page_mappings(page)
    meter.cycles(SHRINK_CYCLES)
    young = False
    for mp in maps:
        was = pte_test_and_clear(kernel, mp, "young")
        kernel.walk_cost(meter, mp.mm, mp.addr, mp.is_pmd, write=was)
        young = young or was
    ref = page.test(PG.REFERENCED)
    page.clear(PG.REFERENCED)
    return young or ref


class DemotionAlloc:
    """``alloc_demote_folio``: a page of the same order on the demotion target, else on any
    other slow-tier node (nearest first), never on a top-tier node."""

    def __init__(self, kernel, order_nodes: list[int]):
        self.k = kernel
        self.nodes = order_nodes

    def __call__(self, src: Page) -> Page | None:
        for n in self.nodes:
            p = self.k.alloc_page(src.order, n, thisnode=True)
            if p is not None:
                return p
        return None


def shrink_lists(kernel, node: int, nr: int, m: Meter, counters: dict) -> list[Page]:
    """Age ``node``'s LRU lists and isolate up to ``nr`` cold folios (demotion candidates).
    ``shrink_active_list`` refills the inactive lists when they are smaller than the active
    ones; ``shrink_inactive_list`` walks the inactive tails (oldest first): referenced folios
    are activated, the others isolated. Counts ``deactivated`` and ``activated`` in
    ``counters``."""
    k = kernel
    lru = k.lru[node]
    for active, inactive in ((LRU.ACTIVE_ANON, LRU.INACTIVE_ANON),
                             (LRU.ACTIVE_FILE, LRU.INACTIVE_FILE)):
        need = max(nr, (len(lru[active]) - len(lru[inactive])) // 2)
        for page in list(islice(lru[active].values(), need)):
            if len(lru[inactive]) >= nr and len(lru[inactive]) >= len(lru[active]):
                break
            folio_referenced(k, page, m)          # deactivation clears the young bits
            if k.isolate_lru_page(page, m):
                page.clear(PG.ACTIVE)
                k.putback_lru_page(page, m)
                counters["deactivated"] += 1
    out: list[Page] = []
    scanned = 0
    limit = 4 * nr + 16
    for lst in (LRU.INACTIVE_ANON, LRU.INACTIVE_FILE):
        # at most ``limit`` folios are looked at: copy only those (the lists are the node's)
        for page in list(islice(lru[lst].values(), max(limit - scanned, 0))):
            if len(out) >= nr or scanned >= limit:
                break
            scanned += 1
            if page.test(PG.LOCKED) or page.test(PG.WRITEBACK) or page.is_pinned:
                continue
            if folio_referenced(k, page, m):
                if k.isolate_lru_page(page, m):
                    page.set(PG.ACTIVE)
                    k.putback_lru_page(page, m)
                    counters["activated"] += 1
                continue
            if page.mapcount > 1 and page.file_mapping is not None:
                continue
            if k.isolate_lru_page(page, m):
                out.append(page)
    return out


def demote_folio_list(kernel, pages: list[Page], nodes: list[int], cpu: int, counters: dict,
                      record_migration: Callable | None = None) -> Generator:
    """``demote_folio_list``: migrate ``pages`` to the first of ``nodes`` with room
    (MIGRATE_ASYNC, MR_DEMOTION), put the failures back on their LRU. Counts ``demoted`` and
    ``demote_failed`` in ``counters`` and ``pgdemote_kswapd`` in the kernel's counters.
    Returns the base pages moved."""
    k = kernel
    t0 = k.engine.now_ps
    mig = Migrator(k, cpu, DemotionAlloc(k, nodes), "async", MR_DEMOTION)
    res = yield from mig.migrate_pages(pages)
    if res.remaining:
        yield from mig.putback(res.remaining)
    counters["demoted"] += res.nr_succeeded
    counters["demote_failed"] += sum(p.nr_pages for p in res.remaining)
    k.count("linux.numa", "pgdemote_kswapd", res.nr_succeeded)
    if record_migration is not None and res.nr_succeeded:
        record_migration("demotion", t0, res.nr_succeeded, res.nr_succeeded << PAGE_SHIFT,
                         k.engine.now_ps - t0)
    return res.nr_succeeded


def kswapd(kernel, node: int, cpu: int, goal: Callable[[], int], batch: int,
           demote: Callable[[list[Page], int, int], Generator], counters: dict) -> Generator:
    """One run of ``node``'s kswapd on ``cpu`` (``balance_pgdat``): while the node's free
    frames are below ``goal()``, isolate up to ``batch`` cold folios and ``demote`` them
    (``demote(pages, node, cpu)``, a generator returning the pages moved); gives up after four
    rounds in a row that free nothing. Counts ``kswapd_runs``."""
    k = kernel
    counters["kswapd_runs"] += 1
    stuck = 0
    while k.alloc.nodes[node].free_count < goal() and stuck < 4:
        want = goal() - k.alloc.nodes[node].free_count
        m = Meter(k, cpu)
        cands = shrink_lists(k, node, min(batch, max(want, 1)), m, counters)
        cost = m.take()
        if cost:
            yield cost
        if not cands:
            stuck += 1
            continue
        moved = yield from demote(cands, node, cpu)
        stuck = 0 if moved else stuck + 1
