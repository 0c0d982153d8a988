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
