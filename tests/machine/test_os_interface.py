"""The OS interface end to end: a page migrated at an event while a thread uses it."""

import numpy as np
import pytest

from hwemu.errors import HwemuError
from hwemu.machine import layout
from hwemu.machine import pagetable as PT
from hwemu.machine.replay import run_chunks
from hwemu.machine.system import Machine
from hwemu.traces.format import TraceChunk

from machine_testkit import NS

BASE = 0x20000000


def test_migrate_page_under_a_running_thread(tiny):
    m = Machine(tiny, threads=1, cpus=[0])          # cpu 0: socket 0, node 0
    # the page starts on node 1 (remote); the thread streams over it and beyond
    m.map_page(0, BASE, 1, 3)
    n = 4000
    addr = BASE + (np.arange(n) * 64) % 4096
    chunk = TraceChunk.from_arrays(np.ones(n, np.uint8), addr.astype(np.uint64), np.full(n, 8),
                                   insts=np.full(n, 20, np.uint32))
    events = []
    migrated_at = {}

    def on_event(mm):
        events.append(mm.thread_clock(0))
        if len(events) == 1:
            # steps of a migration, in the order the kernel performs them
            old = mm.get_pte(0, BASE)
            mm.set_pte(0, BASE, PT.pte_with_state(old, PT.PTE_MIGRATION))
            assert mm.flush_tlb(0, BASE, cpus=[0]) >= 1
            start = mm.thread_clock(0)
            dst_frame = 9
            end = mm.copy_lines(0, PT.pte_phys(old), mm.phys_addr(0, dst_frame), 4096,
                                start_ps=start)
            assert end > start
            migrated_at["end"] = end
            mm.map_page(0, BASE, 0, dst_frame)
            mm.flush_tlb(0, BASE, cpus=[0])
            mm.advance_thread(0, end - start)       # the copy occupied the thread's CPU
            return None
        return None

    def on_fault(stop):
        raise AssertionError(f"unexpected fault {stop}")

    run_chunks(m, [chunk], on_fault, on_event, first_event_ps=40_000 * NS)
    assert len(events) == 1 and events[0] >= 40_000 * NS
    assert PT.pte_node(m.get_pte(0, BASE)) == 0
    # accesses before the migration were remote, afterwards local (the copy invalidated the
    # cached source lines, so the first touches after it go to node 0's memory)
    assert m.S.served[0, layout.W_REMOTE_DRAM] > 0 and m.S.served[0, layout.W_LOCAL_DRAM] > 0
    assert m.S.dram_cnt[0, 1] == 64                 # the copy wrote 64 lines to node 0
    assert m.thread_clock(0) > migrated_at["end"]


def test_migration_entry_fault_waits(tiny):
    m = Machine(tiny, threads=1)
    m.map_page(0, BASE, 0, 1)
    pte = m.get_pte(0, BASE)
    m.set_pte(0, BASE, PT.pte_with_state(pte, PT.PTE_MIGRATION))
    m.load_chunk(TraceChunk.from_arrays([1], [BASE], [8]))
    s = m.run()
    assert s.fault == "migration_entry"
    # the OS makes the thread wait for the page lock, then restores a present PTE
    m.set_thread_clock(0, 50_000 * NS)
    m.set_pte(0, BASE, pte)
    assert m.run().reason == "chunk-done"
    assert m.thread_clock(0) >= 50_000 * NS


def test_access_line_for_kernel_metadata(tiny):
    m = Machine(tiny, threads=1)
    pa = m.phys_addr(1, 5)
    lat, where = m.access_line(0, pa, write=False, at_ps=1_000_000 * NS)
    assert where == "remote_dram" and lat > 74 * NS
    assert m.access_line(0, pa, at_ps=2_000_000 * NS) == (2 * NS, "l1")
    # another socket writes it (an atomic): cpu 0's copy is invalidated
    assert m.access_line(2, pa, write=True, at_ps=3_000_000 * NS)[1] in ("local_dram", "remote_cache")
    assert m.access_line(0, pa, at_ps=4_000_000 * NS)[1] == "remote_cache"
    assert m.node_start_pfn(1) == (1 << 30) >> 12


def test_tlb_flushes_and_line_drops_through_the_handle(tiny):
    """flush_tlb (one page, on chosen CPUs), flush_tlb_cpus (everything) and drop_lines enter
    the compiled model through its handle: each drops exactly what it names."""
    import pytest

    from hwemu.errors import HwemuError

    m = Machine(tiny, threads=1, cpus=[0])
    for i in range(4):
        m.map_page(0, BASE + i * 4096, 0, 10 + i)
    m.warm_tlb(0, 0, [BASE + i * 4096 for i in range(4)])
    m.warm_tlb(1, 0, [BASE])
    assert m.flush_tlb(0, BASE + 4096, cpus=[1]) == 0          # CPU 1 never had that page
    assert m.flush_tlb(0, BASE + 4096, cpus=[0, 1]) >= 1       # CPU 0 had it
    assert m.flush_tlb(0, BASE + 4096, cpus=[0, 1]) == 0       # now gone
    m.flush_tlb_cpus([1])
    assert m.flush_tlb(0, BASE, cpus=[1]) == 0                 # CPU 1 flushed entirely
    assert m.flush_tlb(0, BASE, cpus=[0]) >= 1                 # CPU 0 untouched
    with pytest.raises(HwemuError, match="CPU 99 does not exist"):
        m.flush_tlb_cpus([0, 99])
    with pytest.raises(HwemuError, match="CPU -1 does not exist"):
        m.flush_tlb(0, BASE, cpus=[-1])
    # a modified line is written back when dropped, a clean one is not
    pa = m.phys_addr(0, 12)
    m.meta_access(0, pa, True, False, 0, 0, 0)
    m.meta_access(0, pa + 64, False, False, 0, 0, 0)
    assert m.drop_lines(pa, 128) == 1
    assert m.drop_lines(pa, 128) == 0


def test_metadata_access_sequence_is_the_accesses_one_by_one(tiny):
    """meta_access_seq: the same latencies, levels, prefetches and machine state as one
    meta_access per line, each starting when the one before ended plus its gap."""
    rng = np.random.default_rng(3)
    a, b = Machine(tiny, threads=1, cpus=[0]), Machine(tiny, threads=1, cpus=[0])
    n = 300
    base = a.phys_addr(1, 40)
    # runs of neighbouring lines (the metadata streamer prefetches), repeats, both nodes
    pas = [int(base + 64 * (i // 3) + (rng.integers(0, 4) * 4096)) for i in range(n)]
    pas[::7] = [a.phys_addr(0, 5) + 64 * int(x) for x in rng.integers(0, 64, len(pas[::7]))]
    gaps = rng.integers(0, 2000, n).tolist()
    writes = rng.integers(0, 2, n).astype(bool).tolist()
    atomics = rng.integers(0, 2, n).astype(bool).tolist()
    t = 1_000_000
    one = []
    for g, pa, w, at in zip(gaps, pas, writes, atomics):
        t += g
        lat, where, npf = a.meta_access(0, pa, w, at, 7_000, 2, t)
        one.append((where, npf))
        t += lat
    total, where, npf = b.meta_access_seq(0, gaps, pas, writes, atomics, 7_000, 2, 1_000_000)
    assert total == t - 1_000_000
    assert list(zip(where.tolist(), npf.tolist())) == one
    assert sum(x[1] for x in one) > 0 and len(set(x[0] for x in one)) > 1
    for name in ("l1d", "l2", "llc"):
        ca, cb = getattr(a.S, name), getattr(b.S, name)
        assert np.array_equal(ca.tags, cb.tags) and np.array_equal(ca.coh, cb.coh)
    assert np.array_equal(a.S.dram_cnt, b.S.dram_cnt)


def test_page_table_batch_keeps_accessed_and_dirty_as_one_by_one():
    """PageTables.set_many_keep_ad: the entries one MachineSync.pte_changed each would leave,
    through the compiled batch and, from the entry where a table is short of room, entry by
    entry (the table grows there, as it would one entry after another)."""
    rng = np.random.default_rng(5)
    cap2 = PT.PageTables().t2.room()
    # (4 KiB entries, 2 MiB entries, share mapped before, a table grows): all fit; the 4 KiB
    # table must grow mid-batch; the 2 MiB table must; more entries than the 2 MiB table has
    # room for, all 4 KiB and mapped already (no new key)
    for n4, n2, mapped, grows in ((50, 20, 0.5, False), (3000, 20, 0.5, True),
                                  (40, cap2 + 300, 0.5, True), (cap2 + 500, 0, 1.0, False)):
        one, many = PT.PageTables(), PT.PageTables()
        vas = [(int(v) << 12, False) for v in rng.choice(1 << 20, n4, replace=False)]
        vas += [(int(v) << 21, True) for v in rng.choice(1 << 20, n2, replace=False) + (1 << 21)]
        vas = [vas[i] for i in rng.permutation(len(vas))]
        for va, huge in vas[: int(len(vas) * mapped)]:     # some young and dirty
            pte = PT.make_pte(int(rng.integers(1, 1 << 20)) << (21 if huge else 12), 1, huge)
            pte |= int(rng.integers(0, 4)) << 10
            one.set(7, va, pte)
            many.set(7, va, pte)
        new = []
        for va, huge in vas:
            old = one.get(7, va)
            same = old and rng.random() < 0.7
            shift = 21 if huge else 12
            phys = PT.pte_phys(old) if same else int(rng.integers(1, 1 << 20)) << shift
            new.append(PT.make_pte(phys, 0, huge, PT.PTE_PROTNONE))
        for (va, _), pte in zip(vas, new):
            old = one.get(7, va)
            if old and PT.pte_phys(old) == PT.pte_phys(pte) \
                    and PT.pte_huge(old) == PT.pte_huge(pte):
                pte |= int(old) & (PT.PTE_ACCESSED | PT.PTE_DIRTY)
            one.set(7, va, pte)
        shapes = (many.t2.keys.shape, many.t4.keys.shape)
        many.set_many_keep_ad(7, [va for va, _ in vas], new)
        for t in ("t2", "t4"):
            a, b = getattr(one, t), getattr(many, t)
            assert sorted(a.items()) == sorted(b.items())
            assert (a.live, a.used, a.keys.shape) == (b.live, b.used, b.keys.shape)
        assert (shapes != (many.t2.keys.shape, many.t4.keys.shape)) == grows
        assert any(one.get(7, va) & (PT.PTE_ACCESSED | PT.PTE_DIRTY) for va, _ in vas)


def test_make_ptes_is_make_pte_of_each():
    phys = [0x1000, 0x200000, 0x7FFF000]
    nodes, huge, states = [0, 3, 1], [False, True, False], [1, 3, 2]
    assert PT.make_ptes(phys, nodes, huge, states).tolist() == \
        [PT.make_pte(p, n, h, s) for p, n, h, s in zip(phys, nodes, huge, states)]
    import pytest
    with pytest.raises(ValueError, match="aligned"):
        PT.make_ptes([0x1000], [0], [True], [1])
    with pytest.raises(ValueError, match="node"):
        PT.make_ptes([0x1000], [200], [False], [1])


def test_metadata_access_outside_every_node_is_refused(tiny):
    """meta_access and meta_access_seq name a physical address that no node holds, and serve
    one at either end of the nodes' span."""
    m = Machine(tiny)
    ranges = m._node_ranges()
    first, end = min(b for b, _ in ranges), max(e for _, e in ranges)
    for pa in (first, end - 64):
        m.meta_access(0, pa, False, False, 0, 0, 0)
    m.meta_access_seq(0, [0, 0], [first, end - 64], [0, 0], [0, 0], 0, 0, 0)
    with pytest.raises(HwemuError, match=f"{end:#x} is not in any node"):
        m.meta_access(0, end, False, False, 0, 0, 0)
    with pytest.raises(HwemuError, match=f"{end + 4096:#x} is not in any node"):
        m.meta_access_seq(0, [0, 0], [first, end + 4096], [0, 0], [0, 0], 0, 0, 0)
    if first > 0:
        with pytest.raises(HwemuError, match="is not in any node"):
            m.meta_access(0, first - 64, False, False, 0, 0, 0)
