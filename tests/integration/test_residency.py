"""hwemu.sim.residency: resident pages per node, each page once, from page-table changes."""

from hwemu.linux.mm import HPAGE_NR, PteKind
from hwemu.sim.residency import Residency

P, M, N = PteKind.PRESENT, PteKind.MIGRATION, PteKind.NONE


def test_a_migrating_page_counts_once_as_in_flight():
    r = Residency(2)
    r.pte_changed(1, 0x1000, False, P, 0xA000, 0)           # first touch on node 0
    r.pte_changed(1, 0x2000, False, P, 0xB000, 0)
    assert (r.resident, r.in_flight) == ([2, 0], [0, 0])
    r.pte_changed(1, 0x1000, False, M, 0xA000, 0)           # step 4: migration entry
    assert (r.resident, r.in_flight) == ([1, 0], [1, 0])    # in flight, counted on its source
    r.pte_changed(1, 0x1000, False, P, 0xC000, 1)           # step 16: restored, new frame
    assert (r.resident, r.in_flight) == ([1, 1], [0, 0])


def test_hinting_faults_shared_pages_and_huge_pages():
    r = Residency(2)
    r.pte_changed(1, 0x1000, False, P, 0xA000, 0)
    r.pte_changed(2, 0x5000, False, P, 0xA000, 0)           # the same frame, another process
    assert r.resident == [1, 0]
    r.pte_changed(1, 0x1000, False, PteKind.PROTNONE, 0xA000, 0)   # NUMA hinting: resident
    assert r.resident == [1, 0]
    r.pte_changed(1, 0x1000, False, N, -1, -1)
    r.pte_changed(2, 0x5000, False, N, -1, -1)              # unmapped everywhere
    assert r.resident == [0, 0] and r._frames == {}
    r.pte_changed(1, 0x20_0000, True, P, 0x40_0000, 1)      # a THP
    assert r.resident == [0, HPAGE_NR]
    r.pte_changed(1, 0x20_0000, True, N, -1, -1)            # split: the PMD goes,
    for i in range(HPAGE_NR):                               # 512 PTEs appear
        r.pte_changed(1, 0x20_0000 + i * 4096, False, P, 0x40_0000 + i * 4096, 1)
    assert r.resident == [0, HPAGE_NR] and r.in_flight == [0, 0]
