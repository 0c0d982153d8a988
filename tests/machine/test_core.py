"""The replay loop (cores), TLBs, faults and the OS interface, on the tiny machine."""

import numpy as np
import pytest

from hwemu.errors import HwemuError
from hwemu.machine import layout
from hwemu.machine import pagetable as PT
from hwemu.machine.replay import FirstTouch, run_chunks
from hwemu.machine.system import Machine
from hwemu.traces.format import TraceChunk

from machine_testkit import NS, align

L, S_, I_ = 1, 2, 0
BASE = 0x10000000


def chunk(kinds, addrs, insts=None, tid=None, size=8):
    n = len(kinds)
    return TraceChunk.from_arrays(np.array(kinds), np.array(addrs, np.uint64), np.full(n, size),
                                  tid=None if tid is None else np.array(tid),
                                  insts=None if insts is None else np.array(insts))


def mapped(tiny, threads=1, cpus=None, pages=16, node=0):
    m = Machine(tiny, threads=threads, cpus=cpus)
    for p in range(pages):
        m.map_page(0, BASE + p * 4096, node, p)
    return m


def test_instructions_advance_the_clock(tiny):
    m = mapped(tiny)
    m.warm_tlb(0, 0, [BASE])
    m.load_chunk(chunk([L, L], [BASE, BASE], insts=[10, 5]))
    assert m.run().reason == "chunk-done"
    # 15 instructions at CPI 1, 1 GHz; loads overlap, so only the ROB could stall (it does not)
    assert m.thread_clock(0) == 15 * NS
    assert m.S.th_insts[0] == 15 and m.S.th_acc[0] == 2
    # first load issued at 10 ns went to DRAM: controller at 10+30+10, data after tRCD+tCL in
    # the next 4 ns bus slot, +4 burst, +10 back; the second hit L1 (2 ns)
    first = align(50 * NS + 20 * NS, 4 * NS) + 4 * NS + 10 * NS - 10 * NS
    assert first == 76 * NS
    assert m.S.th_lat_sum[0] == first + 2 * NS


def test_tlb_costs_stlb_and_page_walk(tiny):
    m = mapped(tiny)
    m.set_dependent(0)
    m.load_chunk(chunk([L, L, L], [BASE, BASE + 8, BASE + 4096 * 3]))
    m.run()
    # first: page walk (STLB 5 + walk 50) then DRAM 74; second: L1 TLB + L1 hit
    lat = [55 * NS + 74 * NS, 2 * NS]
    assert m.S.ccnt[0, layout.K_STLB_MISS] == 2 and m.S.ccnt[0, layout.K_DTLB_MISS] == 2
    assert m.S.th_lat_sum[0] > sum(lat)
    # after flushing the page, the walk is paid again
    n = m.flush_tlb(0, BASE)
    assert n == 2                              # L1 DTLB and STLB entries
    m.load_chunk(chunk([L], [BASE + 16]))
    before = int(m.S.th_lat_sum[0])
    m.run()
    assert int(m.S.th_lat_sum[0]) - before == 55 * NS + 2 * NS


def test_tlb_2mib_entries_hit_in_the_l1_dtlb_and_the_stlb(tiny):
    # The replay skips the 2 MiB lookups until a TLB has held a 2 MiB entry (layout.CT_HUGE_TLB):
    # once one has, they must hit. Six 2 MiB pages; the 2 MiB L1 DTLB (2 sets x 2 ways) loses
    # page 0 to pages 2 and 4, the STLB (8 sets) keeps all of them.
    m = Machine(tiny)
    for k in range(6):
        m.map_page(0, BASE + k * (2 << 20), 0, k * 512, huge=True)
    assert m.S.ctr[layout.CT_HUGE_TLB] == 0
    m.load_chunk(chunk([L] * 8, [BASE, BASE + 8192] + [BASE + k * (2 << 20) for k in range(1, 6)]
                       + [BASE + 4096]))
    assert m.run().reason == "chunk-done"
    assert m.S.ctr[layout.CT_HUGE_TLB] == 1
    # BASE + 8192 hits page 0's L1 entry; BASE + 4096 at the end misses L1, hits the STLB
    assert m.S.ccnt[0, layout.K_DTLB_MISS] == 7
    assert m.S.ccnt[0, layout.K_STLB_MISS] == 6
    assert m.S.faults[0].tolist() == [0, 0, 0]


def test_fault_stops_costs_and_resumes(tiny):
    m = Machine(tiny)
    m.load_chunk(chunk([L, S_], [BASE + 100, BASE + 104]))
    s = m.run()
    assert (s.reason, s.fault, s.thread, s.vaddr, s.kind) == ("fault", "not_present", 0, BASE + 100, L)
    assert m.thread_clock(0) == 2_000 * NS                   # fault_cost
    m.map_page(0, BASE, 1, 7)
    assert m.run().reason == "chunk-done"
    assert m.S.th_acc[0] == 2 and m.S.faults[0].tolist() == [1, 0, 0]
    # the page was on node 1, the thread on cpu 0 (socket 0): remote DRAM
    assert m.S.served[0, layout.W_REMOTE_DRAM] == 1 and m.S.served[0, layout.W_L1] == 1


def test_migration_entry_and_hint_faults(tiny):
    m = mapped(tiny)
    pte = m.get_pte(0, BASE)
    m.set_pte(0, BASE, PT.pte_with_state(pte, PT.PTE_MIGRATION))
    m.load_chunk(chunk([L], [BASE]))
    s = m.run()
    assert s.fault == "migration_entry" and PT.pte_state(s.pte) == PT.PTE_MIGRATION
    m.set_pte(0, BASE, PT.pte_with_state(pte, PT.PTE_PROTNONE))
    s = m.run()
    assert s.fault == "numa_hint"
    m.set_pte(0, BASE, pte)
    assert m.run().reason == "chunk-done"
    assert m.S.faults[0].tolist() == [0, 1, 1]


def test_event_stops_at_scheduled_time(tiny):
    m = mapped(tiny)
    m.load_chunk(chunk([L] * 100, [BASE + 64 * i for i in range(100)], insts=[10] * 100))
    s = m.run(stop_ps=300 * NS)
    assert s.reason == "event"
    assert 300 * NS <= m.thread_clock(0) < 300 * NS + 200 * NS
    done = int(m.S.th_acc[0])
    assert 0 < done < 100
    assert m.run().reason == "chunk-done" and m.S.th_acc[0] == 100


def test_fill_buffers_limit_outstanding_misses(tiny):
    m = mapped(tiny)
    m.warm_tlb(0, 0, [BASE + 4096 * p for p in range(4)])
    m.S.th_lfb[0] = 1
    m.load_chunk(chunk([L, L], [BASE, BASE + 4096 * 3]))
    m.run()
    # one fill buffer: the second miss issues when the first completes (74 ns) and the core
    # waits for it; each access's latency excludes that wait
    assert m.thread_clock(0) == 74 * NS
    assert m.S.th_odone[0, 0] > 74 * NS
    # neither latency includes the wait: both are plain DRAM accesses (74 ns + bus slot)
    assert m.S.th_lat_sum[0] <= 2 * 78 * NS


def test_rob_window_waits_for_old_load(tiny):
    m = mapped(tiny)
    m.warm_tlb(0, 0, [BASE, BASE + 4096])
    m.load_chunk(chunk([L, L], [BASE, BASE + 4096], insts=[0, 100]))
    m.run()
    # the second record is 100 instructions (100 ns) later: beyond the 64-instruction ROB,
    # so the first miss (done at 74 ns) has completed; clock = 100 ns, no extra stall
    assert m.thread_clock(0) == 100 * NS
    m2 = mapped(tiny)
    m2.warm_tlb(0, 0, [BASE, BASE + 4096, BASE + 8192])
    m2.load_chunk(chunk([L, L, L], [BASE, BASE + 4096, BASE + 8192], insts=[0, 70, 1]))
    m2.run()
    # at the second record (70 instructions later) the first miss is 70 >= 64 old: wait to 74 ns
    assert m2.thread_clock(0) == 74 * NS + 1 * NS


def test_dependent_chain_serialises(tiny):
    m = mapped(tiny)
    m.set_dependent(0)
    m.warm_tlb(0, 0, [BASE + 4096 * p for p in range(4)])
    m.load_chunk(chunk([L, L], [BASE, BASE + 4096 * 2]))
    m.run()
    assert m.thread_clock(0) == int(m.S.th_lat_sum[0])
    assert m.thread_clock(0) >= 2 * 74 * NS


def test_two_threads_share_in_time_order_and_cohere(tiny):
    m = mapped(tiny, threads=2, cpus=[0, 2])
    m.load_chunk(chunk([S_, L, S_, L], [BASE, BASE, BASE, BASE], tid=[0, 1, 0, 1], insts=[0, 500, 1000, 1500]))
    m.run()
    # thread 1 on socket 1 reads the line thread 0 modified: served cache to cache
    assert m.S.served[1, layout.W_REMOTE_CACHE] == 2
    assert m.S.ccnt[0, layout.K_INVAL_SENT] >= 1


def test_copy_lines_goes_through_links_and_memory(tiny):
    m = Machine(tiny)
    src = m.phys_addr(1, 10)
    dst = m.phys_addr(0, 20)
    T = 1_000_000 * NS
    end = m.copy_lines(0, src, dst, 64, start_ps=T)
    # read from node 1: 5 + 1 + 20 + 5 (request) + 10, DRAM, + 10 + 5 + 9 + 20 + 5 (data);
    # write to node 0: 10 + tRCD 12 + tCWL 8 into a bus slot + 4
    t_mc = T + 41 * NS
    rd = align(t_mc + 20 * NS, 4 * NS) + 4 * NS
    back = rd + 49 * NS
    wr = align(back + 10 * NS + 20 * NS, 4 * NS) + 4 * NS
    assert end == wr
    end2 = m.copy_lines(0, src, dst, 4096, start_ps=T)
    assert end2 > end
    assert int(m.S.dram_cnt[1, 0]) == 65 and int(m.S.dram_cnt[0, 1]) == 65
    with pytest.raises(HwemuError):
        m.copy_lines(0, 1 << 60, dst, 64)


def test_first_touch_places_on_the_cpu_node_with_fallback(tiny):
    from hwemu.machine.config import load_machine_text
    from machine_testkit import TINY

    cfg = load_machine_text(TINY.read_text().replace('size = "1GiB"', 'size = "2MiB"'), "t.toml")
    m = Machine(cfg, threads=1, cpus=[2])            # cpu 2 is on socket 1 = node 1
    ft = FirstTouch(m)
    n = 600
    run_chunks(m, [chunk([S_] * n, [BASE + 4096 * p for p in range(n)])], ft)
    assert ft.pages == [n - 512, 512]                # node 1 filled first, then node 0
    assert PT.pte_node(m.get_pte(0, BASE)) == 1
    assert PT.pte_node(m.get_pte(0, BASE + 4096 * 599)) == 0


def test_thread_interface(tiny):
    m = Machine(tiny, threads=2)
    m.move_thread(1, 3)
    assert m.thread_cpu(1) == 3
    assert m.advance_thread(1, 5000) == 5000
    m.set_thread_clock(1, 100)                       # never backwards
    assert m.thread_clock(1) == 5000
    with pytest.raises(HwemuError):
        m.move_thread(0, 99)
    with pytest.raises(HwemuError):
        m.move_thread(5, 0)
    with pytest.raises(HwemuError, match="thread id 3"):
        m.load_chunk(chunk([L], [BASE], tid=[3]))


def test_streaming_in_chunks_matches_one_chunk(tiny, tmp_path):
    from hwemu.machine.replay import run_trace
    from hwemu.traces.format import write_trace

    rng = np.random.default_rng(5)
    n = 5000
    addr = BASE + (rng.integers(0, 1 << 20, n) & ~7)
    kind = rng.choice([0, 1, 2, 3], n)
    p = tmp_path / "t.parquet"
    write_trace(p, TraceChunk.from_arrays(kind, addr, np.full(n, 4)), "synthetic")
    a = run_trace(tiny, p, chunk_records=1 << 20).summary
    b = run_trace(tiny, p, chunk_records=333).summary
    assert a == b and a["accesses"] == n


def test_first_touch_in_the_loop_equals_the_python_handler(tiny):
    """The loop's own first touch (core._first_touch) and the Python handler give the same
    frames, page tables and statistics: 4 threads on both sockets, stores and loads over 600
    pages (more than the 4096-slot table holds before it grows, so the loop hands the fault
    back to Python to grow it), node 1 small (it fills up: the fallback goes through Python)."""
    from hwemu.machine.config import load_machine_text
    from hwemu.machine.replay import machine_stats
    from machine_testkit import TINY

    text = TINY.read_text().replace('size = "1GiB"', 'size = "16MiB"', 1)
    cfg = load_machine_text(text.replace('size = "1GiB"', 'size = "2MiB"'), "t.toml")
    rng = np.random.default_rng(3)
    n = 12000
    pages = rng.integers(0, 3000, n)
    kinds = rng.choice([L, S_], n)
    addrs = BASE + pages * 4096 + rng.integers(0, 64, n) * 64
    tids = rng.integers(0, 4, n)
    runs = []
    for in_loop in (False, True):
        m = Machine(cfg, threads=4, cpus=[0, 2, 3, 1])
        ft = FirstTouch(m, in_loop=in_loop)
        run_chunks(m, [chunk(kinds, addrs, tid=tids, insts=np.ones(n, np.int64))], ft)
        runs.append((machine_stats(m).to_frame(), sorted(m.pt.mappings()), ft.pages,
                     len(m.pt), m.pt.t4.used))
    (s0, map0, p0, n0, u0), (s1, map1, p1, n1, u1) = runs
    assert p0 == p1 and sum(p0) == len(np.unique(pages)) and p0[0] > 0 and p0[1] == 512
    assert map0 == map1 and n0 == n1 and u0 == u1
    assert s0.equals(s1)


def test_idle_stop_names_the_event_the_loop_would_return_at_once(tiny):
    """Machine.idle_stop: with every runnable thread at or past the stop time, the ``event``
    stop the loop would return for the earliest thread (the first of equal clocks), found
    without replaying; None when the loop would replay, or when nothing is loaded."""
    m = mapped(tiny, threads=2, cpus=[0, 1])
    assert m.idle_stop(0) is None                        # nothing loaded
    m.load_chunk(chunk([L, L, L, L], [BASE, BASE + 64, BASE, BASE + 64], insts=[10] * 4,
                       tid=[0, 1, 0, 1]))
    m.set_thread_clock(0, 500 * NS)
    m.set_thread_clock(1, 300 * NS)
    assert m.idle_stop(None) is None
    assert m.idle_stop(301 * NS) is None                 # thread 1 would replay
    acc = m.S.th_acc.copy()
    st = m.idle_stop(300 * NS)
    assert (st.reason, st.thread) == ("event", 1)
    assert st is m.run(300 * NS)                         # what the loop returns, the same stop
    assert (m.S.th_acc == acc).all()                     # and nothing was replayed
    m.set_thread_clock(1, 500 * NS)
    assert m.idle_stop(500 * NS).thread == 0             # equal clocks: the first thread
    # a fault the loop serves, ending by the earliest clock: the loop would install its page
    ctl = m.S.kf_ctl
    ctl[layout.KF_PENDING], ctl[layout.KF_NEXT_END] = 1, 500 * NS
    assert m.idle_stop(500 * NS) is None
    ctl[layout.KF_NEXT_END] = 501 * NS
    assert m.idle_stop(500 * NS).thread == 0


def test_handle_address_stays_and_sees_grown_page_tables(tiny):
    """Python passes the compiled entries the handle's payload address (an int). It stays the
    same when the page tables grow (their arrays are replaced in the handle in place), and the
    loop then translates through the new arrays: no fault on pages mapped after the growth."""
    m = mapped(tiny, pages=1)
    hp = m._handle()
    assert isinstance(hp, int) and hp == m._handle()
    keys = m.pt.t4.keys
    n = 3000                                             # more than the table's first room
    for p in range(1, n):
        m.map_page(0, BASE + p * 4096, 0, p)
    assert m.pt.t4.keys is not keys                      # the table grew
    assert m._handle() == hp
    m.load_chunk(chunk([L] * 4, [BASE + p * 4096 for p in (0, 1, n // 2, n - 1)]))
    assert m.run().reason == "chunk-done"
    assert int(m.S.faults.sum()) == 0 and int(m.S.th_acc.sum()) == 4
