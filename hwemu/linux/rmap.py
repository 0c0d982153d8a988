"""The reverse map: from a page to every (process, VMA, address) that maps it (mm/rmap.c).

Anonymous pages reach their VMAs through ``page.mapping`` (an :class:`AnonVma`) and
``page.index`` (the linear page index of the address); file and shmem pages through the
file's ``i_mmap`` list and the page's file offset. ``page_vma_mapped`` then checks that the
entry at that address really refers to the page (present, NUMA-hinting or migration entry).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwemu.linux.mm import HPAGE_SHIFT, MM, PAGE_SHIFT, PG, Page, Pte, PteKind, VMA

# Kernel-code cycles per rmap operation (see docs/migration.md "Calibration").
RMAP_CYCLES = {
    "walk_setup": 90,      # rmap_walk_anon/file: take the lock, interval-tree look-up
    "per_vma": 80,         # vma_address + page_vma_mapped_walk set-up
    "unmap_pte": 120,      # ptep_clear_flush / set migration entry / rmap remove / mmu notifier
    "remap_pte": 110,      # remove_migration_pte: make PTE, rmap add, update_mmu_cache
}


@dataclass
class Mapping:
    mm: MM
    vma: VMA
    addr: int
    entry: Pte
    is_pmd: bool


def rmap_vmas(page: Page) -> list[tuple[VMA, int]]:
    """Every (vma, address) where ``page`` could be mapped, in a deterministic order."""
    out = []
    m = page.mapping
    if m is None:
        return out
    vmas = m.vmas if page.is_anon else m.i_mmap
    for vma in sorted(vmas, key=lambda v: (v.mm.pid, v.start)):
        addr = vma.addr_of_index(page.index)
        if addr is not None:
            out.append((vma, addr))
    return out


def page_mappings(page: Page, kinds=(PteKind.PRESENT, PteKind.PROTNONE),
                  pfn: int | None = None) -> list[Mapping]:
    """page_vma_mapped_walk over rmap_vmas: the entries of the given kinds pointing at
    ``pfn`` (default: the page itself)."""
    pfn = page.pfn if pfn is None else pfn
    out = []
    for vma, addr in rmap_vmas(page):
        mm = vma.mm
        if page.order:
            entry, is_pmd = mm.pmds.get(addr >> HPAGE_SHIFT), True
        else:
            entry, is_pmd = mm.ptes.get(addr >> PAGE_SHIFT), False
        if entry is not None and entry.kind in kinds and entry.pfn == pfn:
            out.append(Mapping(mm, vma, addr, entry, is_pmd))
    return out


def _walk_cost(kernel, meter, page: Page, mappings_vmas) -> None:
    meter.cycles(RMAP_CYCLES["walk_setup"])
    m = page.mapping
    if m is not None:
        meter.touch(m.kaddr, atomic=True)        # anon_vma rwsem / i_mmap rwsem (read)
    for vma, _addr in mappings_vmas:
        meter.cycles(RMAP_CYCLES["per_vma"])
        meter.touch(vma.kaddr)


def try_to_migrate(kernel, meter, page: Page, batch: "TlbBatch | None") -> list[Mapping]:
    """Replace every present/NUMA-hinting entry of ``page`` by a migration entry.

    Each removal drops a mapcount and the mapping's reference; the PTE's dirty bit moves to
    the page. The TLB entries that may cache the translation are flushed right away (to the
    CPUs of the mm, by IPI) or, with ``batch``, recorded for one flush of the whole batch
    (TTU_BATCH_FLUSH), as Linux does when the mm runs on other CPUs too.
    """
    vmas = rmap_vmas(page)
    _walk_cost(kernel, meter, page, vmas)
    done = []
    # folio_try_share_anon_rmap_pte/pmd refuses an exclusive anonymous folio that may be
    # DMA-pinned (folio_maybe_dma_pinned): try_to_migrate_one puts the cleared entry back and
    # stops the walk, so the folio stays mapped, no access ever waits on it, and the
    # migration fails with -EAGAIN ("still mapped") in every pass.
    refuse_pinned = page.is_anon and page.is_pinned
    for mp in page_mappings(page):
        mm = mp.mm
        meter.cycles(RMAP_CYCLES["unmap_pte"])
        kernel.walk_cost(meter, mm, mp.addr, mp.is_pmd, write=True)   # xchg of the entry
        if refuse_pinned:
            # ptep_clear_flush, then set_pte_at(pteval): the flush is paid, the entry is
            # unchanged (present or PROT_NONE)
            cost = kernel.hw.flush_tlb(meter.cpu, mm.cpumask, 1 if page.order == 0 else 0,
                                       meter.start_ps + meter.ps, mm.pid, (mp.addr,))
            meter.add(cost)
            kernel.count("linux.tlb", "flushes")
            kernel.count("linux.tlb", "ipis_sent", kernel.hw.ipi_count(meter.cpu, mm.cpumask))
            kernel.count("linux.tlb", "flush_time", cost, "ps")
            kernel.count("linux.migrate", "unmap_refused_pinned")
            break
        done.append(mp)
        e = mp.entry
        if e.dirty:
            page.set(PG.DIRTY)
        if e.young:
            page.set(PG.REFERENCED)
        was_protnone = e.kind is PteKind.PROTNONE
        e.kind = PteKind.MIGRATION
        e.young = e.young and not was_protnone
        kernel.notify_pte(mm, mp.addr, mp.is_pmd, e)
        meter.page(page, atomic=True)                   # _mapcount--
        page.mapcount -= 1
        meter.page(page, atomic=True)                   # folio_put (the mapping's ref)
        page.refcount -= 1
        assert page.refcount >= 1, "isolated page lost its isolation reference"
        targets = mm.cpumask
        others = targets - {meter.cpu}
        if batch is not None and others:
            # should_defer_flush(): the mm ran on other CPUs -> batch the flush.
            batch.add(targets, mm)
            kernel.count("linux.tlb", "deferred_flushes")
        else:
            # flush_tlb_page / flush_tlb_range: the local CPU if it runs the mm, IPIs to the
            # others; a 2 MiB range exceeds the single-page ceiling -> full flush.
            flush_targets = targets
            cost = kernel.hw.flush_tlb(meter.cpu, flush_targets, 1 if page.order == 0 else 0,
                                       meter.start_ps + meter.ps, mm.pid, (mp.addr,))
            ipis = kernel.hw.ipi_count(meter.cpu, flush_targets)
            meter.add(cost)
            kernel.count("linux.tlb", "flushes")
            kernel.count("linux.tlb", "ipis_sent", ipis)
            kernel.count("linux.tlb", "flush_time", cost, "ps")
    return done


def remove_migration_ptes(kernel, meter, src: Page, dst: Page) -> int:
    """Replace every migration entry pointing at ``src`` with a present entry for ``dst``
    (``dst`` is ``src`` itself when backing out). Returns how many entries were restored."""
    vmas = rmap_vmas(dst)
    _walk_cost(kernel, meter, dst, vmas)
    n = 0
    for mp in page_mappings(dst, kinds=(PteKind.MIGRATION,), pfn=src.pfn):
        meter.cycles(RMAP_CYCLES["remap_pte"])
        kernel.walk_cost(meter, mp.mm, mp.addr, mp.is_pmd, write=True)
        mp.entry.kind = PteKind.PRESENT
        mp.entry.pfn = dst.pfn
        kernel.notify_pte(mp.mm, mp.addr, mp.is_pmd, mp.entry)
        meter.page(dst, atomic=True)                    # folio_get + _mapcount++
        dst.refcount += 1
        dst.mapcount += 1
        n += 1
    return n


class TlbBatch:
    """The per-task batch of deferred TLB flushes (struct tlbflush_unmap_batch)."""

    def __init__(self):
        self.cpus: set[int] = set()
        self.entries = 0

    def add(self, cpus: set[int], mm: MM) -> None:
        self.cpus |= cpus
        self.entries += 1

    def flush(self, kernel, meter) -> int:
        """try_to_unmap_flush(): one full flush on every CPU of the batch (IPIs to the others).
        Returns the number of IPIs sent."""
        if not self.entries:
            return 0
        targets = set(self.cpus)
        cost = kernel.hw.flush_tlb(meter.cpu, targets, 0, meter.start_ps + meter.ps)
        ipis = kernel.hw.ipi_count(meter.cpu, targets)
        meter.add(cost)
        kernel.count("linux.tlb", "batched_flushes")
        kernel.count("linux.tlb", "ipis_sent", ipis)
        kernel.count("linux.tlb", "flush_time", cost, "ps")
        kernel.count("linux.tlb", "entries_in_batched_flushes", self.entries)
        self.cpus.clear()
        self.entries = 0
        return ipis


def pte_test_and_clear(kernel, mp, bit: str) -> bool:
    """Test and clear the accessed (``bit="young"``) or dirty (``"dirty"``) bit of one
    mapping: the OS model's ``Pte`` bit, or'ed with the hardware's own bit when the hardware
    interface keeps one (optional methods ``test_and_clear_young(pid, vaddr, huge)`` /
    ``test_and_clear_dirty(pid, vaddr, huge)``: a page-table walker that sets A/D bits in its
    PTE words, as x86 does)."""
    e = mp.entry
    val = getattr(e, bit)
    setattr(e, bit, False)
    hw_fn = getattr(kernel.hw, f"test_and_clear_{bit}", None)
    if hw_fn is not None and hw_fn(mp.mm.pid, mp.addr, mp.is_pmd):
        val = True
    return val
