"""Page tables: PTE encoding, per-process hash tables, growth and deletion."""

import pytest

from hwemu.errors import HwemuError
from hwemu.machine import pagetable as PT


def test_pte_encoding():
    pte = PT.make_pte(0x40000000 + 0x5000, 3, huge=False, state=PT.PTE_MIGRATION)
    assert PT.pte_state(pte) == PT.PTE_MIGRATION and PT.pte_node(pte) == 3
    assert PT.pte_phys(pte) == 0x40005000 and not PT.pte_huge(pte)
    h = PT.make_pte(0x200000, 1, huge=True)
    assert PT.pte_huge(h) and PT.pte_state(h) == PT.PTE_PRESENT
    assert PT.pte_state(PT.pte_with_state(h, PT.PTE_PROTNONE)) == PT.PTE_PROTNONE
    with pytest.raises(ValueError):
        PT.make_pte(0x1000, 0, huge=True)


def test_tables_per_process_grow_and_delete():
    pt = PT.PageTables()
    for i in range(10000):
        pt.set(0, i << 12, PT.make_pte(i << 12, 0))
    pt.set(1, 0, PT.make_pte(0x7000, 1))
    assert len(pt) == 10001
    assert PT.pte_phys(pt.get(0, (1234 << 12) + 5)) == 1234 << 12
    assert PT.pte_node(pt.get(1, 0)) == 1 and PT.pte_node(pt.get(0, 0)) == 0
    assert pt.clear(0, 1234 << 12) and pt.get(0, 1234 << 12) == 0
    assert not pt.clear(0, 1234 << 12)
    pt.set(0, 1234 << 12, PT.make_pte(0x9000, 0))      # reuse after a tombstone
    assert PT.pte_phys(pt.get(0, 1234 << 12)) == 0x9000
    assert len(pt) == 10001


def test_huge_pages_translate_first():
    pt = PT.PageTables()
    pt.set(0, 0x200000, PT.make_pte(0x400000, 0, huge=True))
    assert PT.pte_huge(pt.get(0, 0x2FFFFF))
    got = sorted(v for _, v, _ in pt.mappings(0))
    assert got == [0x200000]
    with pytest.raises(HwemuError):
        pt.set(0, -1, 1)


def test_accessed_dirty_bits_encoding_and_test_and_clear():
    pte = PT.make_pte(0x40005000, 3)
    assert not PT.pte_young(pte) and not PT.pte_dirty(pte)
    both = pte | PT.PTE_ACCESSED | PT.PTE_DIRTY
    # the bits do not disturb state, node, frame
    assert (PT.pte_state(both), PT.pte_node(both), PT.pte_phys(both)) == (1, 3, 0x40005000)
    pt = PT.PageTables()
    pt.set(2, 0x40005000, both)
    assert pt.test_and_clear(2, 0x40005123, False, PT.PTE_ACCESSED)
    assert not pt.test_and_clear(2, 0x40005000, False, PT.PTE_ACCESSED)
    assert pt.get(2, 0x40005000) == pte | PT.PTE_DIRTY
    assert pt.test_and_clear(2, 0x40005000, False, PT.PTE_DIRTY)
    assert pt.get(2, 0x40005000) == pte
    assert not pt.test_and_clear(2, 0x9000, False, PT.PTE_DIRTY)     # not mapped


def _replay(m, kinds, vaddr):
    import numpy as np

    from hwemu.machine.replay import run_chunks
    from hwemu.traces.format import TraceChunk

    n = len(kinds)
    chunk = TraceChunk.from_arrays(np.array(kinds, np.uint8), np.full(n, vaddr, np.uint64),
                                   np.full(n, 8, np.uint16), insts=np.full(n, 1, np.uint32))

    def on_fault(stop):
        raise AssertionError(f"unexpected fault {stop}")

    run_chunks(m, [chunk], on_fault)


def test_walker_sets_accessed_first_store_sets_dirty(tiny):
    """x86 semantics: A on the walk that fills the TLB, D on the first store through a clean
    translation; a cached translation does not set a cleared bit again until it is flushed.
    The bits cost no time: the clocks equal those of a run that never stores through a clean
    entry."""
    from hwemu.machine.system import Machine

    base = 0x20000000
    m = Machine(tiny, threads=1, cpus=[0])
    m.map_page(0, base, 0, 3)
    _replay(m, [1, 1], base)                      # two loads: one walk
    pte = m.get_pte(0, base)
    assert PT.pte_young(pte) and not PT.pte_dirty(pte)
    _replay(m, [2, 2], base)                      # stores: D once
    assert PT.pte_dirty(m.get_pte(0, base))
    assert m.pt.test_and_clear(0, base, False, PT.PTE_ACCESSED)
    assert m.pt.test_and_clear(0, base, False, PT.PTE_DIRTY)
    _replay(m, [1, 1], base)                      # TLB hit: A stays clear (no flush)
    assert not PT.pte_young(m.get_pte(0, base))
    m.flush_tlb(0, base)
    _replay(m, [2], base)                         # walk again: A; store: D
    pte = m.get_pte(0, base)
    assert PT.pte_young(pte) and PT.pte_dirty(pte)
    # timing: the same accesses on a machine whose PTE already has A and D set
    m1 = Machine(tiny, threads=1, cpus=[0])
    m1.map_page(0, base, 0, 3)
    m2 = Machine(tiny, threads=1, cpus=[0])
    m2.set_pte(0, base, m2.map_page(0, base, 0, 3) | PT.PTE_ACCESSED | PT.PTE_DIRTY)
    for mm in (m1, m2):
        _replay(mm, [2, 1, 2, 1], base)
    assert m1.thread_clock(0) == m2.thread_clock(0)
    assert int(m1.S.th_lat_sum[0]) == int(m2.S.th_lat_sum[0])
