"""The L2 superqueue and the L2 stream prefetcher, with exact latencies on the tiny machine.

Tiny machine (tests/machine/tiny.toml): 1 GHz; L1 2 ns, L2 10 ns, LLC 30 ns (load-to-use).
A stream is a 4 KiB page (64 lines); it issues prefetches after two steps in one direction.
"""

import numpy as np
import pytest

from hwemu.errors import HwemuError
from hwemu.machine import layout
from hwemu.machine import hierarchy as H
from hwemu.cachesim.setassoc import find_in
from hwemu.machine.config import load_machine
from hwemu.machine.replay import machine_stats
from hwemu.machine.system import Machine
from hwemu.traces.format import TraceChunk

from machine_testkit import NS, TINY

T = 1_000_000 * NS
US = 1000 * NS


def machine(tmp_path, enable=True, streams=4, distance=4, degree=2, superqueue=16, cpus=4,
            extra=""):
    p = tmp_path / "pf.toml"
    p.write_text(f'base = "{TINY}"\nname = "tiny-pf"\n[core]\nsuperqueue = {superqueue}\n'
                 f'[prefetch]\nenable = {"true" if enable else "false"}\nstreams = {streams}\n'
                 f'distance = {distance}\ndegree = {degree}\n{extra}')
    cfg = load_machine(str(p))
    return Machine(cfg, threads=cpus, cpus=list(range(cpus)))


def pa(m, line, node=0):
    return int(m.S.node_base[node]) + line * 64


def acc(m, cpu, line, t, write=False):
    d, w = H.access(m.S, cpu, 0, pa(m, line), write, False, t)
    return d - t, layout.W_NAMES[w]


def in_l2(m, cpu, line):
    return find_in(m.S.l2, cpu, line) >= 0


def in_llc(m, sock, line):
    return find_in(m.S.llc, sock, line) >= 0


def cnt(m, cpu, k):
    return int(m.S.ccnt[cpu, k])


def warm_llc(m, lines, t=T):
    """CPU 1 reads the lines (clean, no prefetcher effect on CPU 0) so that they are LLC hits."""
    for i, ln in enumerate(lines):
        acc(m, 1, ln, t + i * US)


def test_stream_prefetches_ahead_and_demand_hits_l2(tmp_path):
    m = machine(tmp_path, distance=4, degree=2)
    warm_llc(m, range(16))
    t0 = T + 100 * US
    # lines 0, 1, 2 of the page: the third access (second step up) trains the stream
    assert acc(m, 0, 0, t0) == (30 * NS, "llc")
    assert acc(m, 0, 1, t0 + US) == (30 * NS, "llc")
    assert cnt(m, 0, layout.K_PF_ISSUED) == 0
    assert acc(m, 0, 2, t0 + 2 * US) == (30 * NS, "llc")
    # degree 2: lines 3 and 4 prefetched from the LLC, nothing further
    assert cnt(m, 0, layout.K_PF_ISSUED) == 2
    assert in_l2(m, 0, 3) and in_l2(m, 0, 4) and not in_l2(m, 0, 5)
    # a later demand to a prefetched line is an L2 hit with exactly the L2 latency
    assert acc(m, 0, 3, t0 + 3 * US) == (10 * NS, "l2")
    assert cnt(m, 0, layout.K_PF_USEFUL) == 1 and cnt(m, 0, layout.K_PF_LATE) == 0
    # that lookup continued the stream: 5 and 6 (at most distance 4 ahead of line 3 = 7)
    assert cnt(m, 0, layout.K_PF_ISSUED) == 4
    assert in_l2(m, 0, 5) and in_l2(m, 0, 6) and not in_l2(m, 0, 7)


def test_late_prefetch_makes_the_demand_wait(tmp_path):
    m = machine(tmp_path, distance=4, degree=2)
    warm_llc(m, range(16))
    t0 = T + 100 * US
    for i in range(3):
        acc(m, 0, i, t0 + i * US)
    t3 = t0 + 3 * US
    acc(m, 0, 3, t3)                        # L2 hit; prefetches 5 and 6 issued at t3 (LLC, 30 ns)
    # line 5 asked 5 ns later: its prefetch is in flight and completes at t3 + 30 ns
    assert acc(m, 0, 5, t3 + 5 * NS) == (25 * NS, "l2")
    assert cnt(m, 0, layout.K_PF_LATE) == 1 and cnt(m, 0, layout.K_PF_USEFUL) == 2
    # the prefetch has landed long before line 6 is asked for: a plain L2 hit
    assert acc(m, 0, 6, t3 + US) == (10 * NS, "l2")
    assert cnt(m, 0, layout.K_PF_LATE) == 1 and cnt(m, 0, layout.K_PF_USEFUL) == 3


def test_distance_bounds_a_high_degree_stream_and_dram_prefetch_data_time(tmp_path):
    m = machine(tmp_path, distance=4, degree=8)
    for i in range(3):
        acc(m, 0, i, T + i * US)
    # trained at line 2: 3..6 (distance 4), fetched from DRAM
    assert cnt(m, 0, layout.K_PF_ISSUED) == 4
    assert [in_l2(m, 0, ln) for ln in range(3, 8)] == [True] * 4 + [False]
    assert m.S.dram_cnt[0, 0] >= 7           # 3 demand + 4 prefetch reads reached the controller
    # each prefetched line records when its data arrive; asking earlier waits exactly until then
    S = m.S
    rdy = int(S.l2_rdy[find_in(S.l2, 0, 4)])
    t = T + 2 * US
    assert rdy > t + 10 * NS
    assert acc(m, 0, 4, t + NS) == (rdy - t - NS, "l2")
    assert cnt(m, 0, layout.K_PF_LATE) == 1


def test_descending_stream_and_page_boundary(tmp_path):
    m = machine(tmp_path, distance=8, degree=4)
    for i, ln in enumerate((40, 39, 38)):
        acc(m, 0, ln, T + i * US)
    assert [in_l2(m, 0, ln) for ln in (37, 36, 35, 34, 33)] == [True] * 4 + [False]
    # a stream ends at its 4 KiB page: from line 61, 62 only 63 remains, not 64 (next page)
    m2 = machine(tmp_path, distance=8, degree=4)
    for i, ln in enumerate((60, 61, 62)):
        acc(m2, 0, ln, T + i * US)
    assert cnt(m2, 0, layout.K_PF_ISSUED) == 1
    assert in_l2(m2, 0, 63) and not in_l2(m2, 0, 64)


def test_random_lines_and_disabled_prefetcher_issue_nothing(tmp_path):
    m = machine(tmp_path, enable=False)
    for i in range(12):
        acc(m, 0, i, T + i * US)
    assert cnt(m, 0, layout.K_PF_ISSUED) == 0 and cnt(m, 0, layout.K_PF_LLC) == 0
    m2 = machine(tmp_path)
    # alternating directions never train a stream
    for i, ln in enumerate((10, 12, 11, 13, 9, 14)):
        acc(m2, 0, ln, T + i * US)
    assert cnt(m2, 0, layout.K_PF_ISSUED) == 0


def test_full_superqueue_delays_demand_misses(tmp_path):
    m = machine(tmp_path, enable=False, superqueue=1)
    warm_llc(m, [0, 20])
    t = T + 100 * US
    # two L2 misses issued together: one superqueue entry, so the second waits for the first
    assert acc(m, 0, 0, t) == (30 * NS, "llc")
    assert acc(m, 0, 20, t) == (60 * NS, "llc")
    assert cnt(m, 0, layout.K_SQ_FULL) == 1
    # with 16 entries they overlap
    m2 = machine(tmp_path, enable=False, superqueue=16)
    warm_llc(m2, [0, 20])
    assert acc(m2, 0, 0, t) == (30 * NS, "llc")
    assert acc(m2, 0, 20, t) == (30 * NS, "llc")


def test_prefetches_beyond_the_superqueue_go_to_the_llc_only(tmp_path):
    m = machine(tmp_path, distance=8, degree=4, superqueue=2)
    for i in range(3):
        acc(m, 0, i, T + i * US)
    # at line 2 the demand miss holds one entry: line 3 takes the other, 4..6 go to the LLC
    assert cnt(m, 0, layout.K_PF_ISSUED) == 1 and cnt(m, 0, layout.K_PF_LLC) == 3
    assert in_l2(m, 0, 3)
    assert all(in_llc(m, 0, ln) and not in_l2(m, 0, ln) for ln in (4, 5, 6))
    S = m.S
    il = find_in(S.llc, 0, 5)
    assert S.llc_cv[il] == 0                     # in no core's private caches
    rdy = int(S.llc_rdy[il])
    # a demand for line 5 right away: superqueue entry free at the earliest completion, LLC
    # lookup, then the data of the LLC prefetch
    t = T + 2 * US + NS
    free = int(S.sq_done[0, :S.cfg[layout.C_SQ]].min())
    expect = max(max(t, free) + 30 * NS, rdy)
    assert acc(m, 0, 5, t) == (expect - t, "llc")
    # line 6 long after: a plain LLC hit
    assert acc(m, 0, 6, T + 10 * US) == (30 * NS, "llc")


def test_replay_stream_uses_prefetched_lines_and_reports_stats(tmp_path):
    base = 0x10000000
    res = {}
    for on in (False, True):
        m = machine(tmp_path, enable=on, distance=8, degree=2, cpus=1)
        for p in range(4):
            m.map_page(0, base + p * 4096, 0, p)
        n = 4 * 64
        addr = (base + np.arange(n, dtype=np.int64) * 64).astype(np.uint64)
        m.load_chunk(TraceChunk.from_arrays(np.ones(n, np.uint8), addr, np.full(n, 8, np.uint16),
                                            insts=np.full(n, 20, np.uint32)))
        assert m.run().reason == "chunk-done"
        df = machine_stats(m).to_frame()
        res[on] = (df, int(m.S.served[0, layout.W_L2]), int(m.S.th_lat_sum[0]), m.thread_clock(0))
    df_off, l2_off, lat_off, clk_off = res[False]
    df_on, l2_on, lat_on, clk_on = res[True]
    assert l2_off == 0 and "l2_pf_issued" not in set(df_off.stat)
    st = df_on.set_index(["component", "stat"])["value"]
    issued, useful = int(st[("node0.cpu0", "l2_pf_issued")]), int(st[("node0.cpu0", "l2_pf_useful")])
    # every page: 3 lines train the stream, the rest of its 64 lines are prefetched and used
    assert issued == 4 * 61 and useful == issued
    assert l2_on == useful
    assert lat_on < lat_off / 2 and clk_on < clk_off


def test_prefetch_config_errors(tmp_path):
    def load(text):
        p = tmp_path / "bad.toml"
        p.write_text(f'base = "{TINY}"\n{text}')
        return load_machine(str(p))

    with pytest.raises(HwemuError, match=r"\[prefetch\] enable: expected true or false"):
        load("[prefetch]\nenable = 1\n")
    with pytest.raises(HwemuError, match=r"\[prefetch\] distance: at most 63 lines"):
        load("[prefetch]\ndistance = 64\n")
    with pytest.raises(HwemuError, match=r"\[prefetch\] window: unknown key"):
        load("[prefetch]\nwindow = 3\n")
    with pytest.raises(HwemuError, match=r"\[core\] superqueue: at most 64"):
        load("[core]\nsuperqueue = 65\n")
    with pytest.raises(HwemuError, match=r"\[prefetch\] degree: must be at least 1"):
        load("[prefetch]\ndegree = 0\n")
    cfg = load("")
    assert cfg.prefetch.enable is False and cfg.superqueue == 4      # as many as tiny's lfb
    skx = load_machine("skx-2s")
    assert skx.prefetch.enable and skx.prefetch.streams == 32 and skx.prefetch.distance == 20
    assert skx.superqueue == 16


def test_skx_saturation_latency_with_prefetcher(tmp_path):
    """The streamer and superqueue keep more lines in flight per core than the fill buffers:
    at saturation the probe sees the measured 200-300 ns while bandwidth stays near 115 GB/s;
    with the prefetcher off, only the fill buffers' ~164 ns."""
    from hwemu.machine.mlc import loaded_point

    on = loaded_point(load_machine("skx-2s"), 0, 0, 0)
    assert 200 <= on["latency_ns"] <= 300
    assert on["bandwidth_gbs"] == pytest.approx(115, rel=0.10)
    p = tmp_path / "nopf.toml"
    p.write_text('base = "skx-2s"\nname = "skx-nopf"\n[prefetch]\nenable = false\n')
    off = loaded_point(load_machine(str(p)), 0, 0, 0)
    assert off["latency_ns"] < 0.75 * on["latency_ns"]


@pytest.mark.parametrize("streams", [1, 5, 32, 33])
def test_stream_table_search_is_an_ordered_scan(tmp_path, streams):
    """The tracked page, else the first of the least recently used streams (equal stamps
    included), exactly as a scan in stream order that stops at the page finds them."""
    m = machine(tmp_path, streams=streams)
    tab = m.S.pf_tab
    rng = np.random.default_rng(streams)
    for trial in range(300):
        cpu = int(rng.integers(0, 4))
        tab[cpu, layout.PF_PAGE, :streams] = rng.integers(0, 2 * streams, streams)
        tab[cpu, layout.PF_STAMP, :streams] = rng.integers(0, 4, streams)    # many ties
        tab[cpu, layout.PF_DIR, :streams] = 0          # no stream trained: nothing prefetched
        tab[cpu, layout.PF_CONF, :streams] = 0
        tab[cpu, layout.PF_LAST, :streams] = 63
        page, off = int(rng.integers(0, 2 * streams)), int(rng.integers(0, 63))
        ctr = 100 + trial
        m.S.ctr[0] = ctr
        want = tab.copy()
        pages = list(want[cpu, layout.PF_PAGE, :streams])
        stamps = list(want[cpu, layout.PF_STAMP, :streams])
        if page in pages:
            e = pages.index(page)
            want[cpu, layout.PF_DIR, e] = -1           # off < 63: a step down
            want[cpu, layout.PF_CONF, e] = 1
            want[cpu, layout.PF_FRONT, e] = off
        else:
            e = stamps.index(min(stamps))
            want[cpu, layout.PF_PAGE, e] = page
            want[cpu, layout.PF_FRONT, e] = off
        want[cpu, layout.PF_LAST, e] = off
        want[cpu, layout.PF_STAMP, e] = ctr
        H.stream_train(m.S, cpu, 0, page * 64 + off, T)
        np.testing.assert_array_equal(tab, want, err_msg=f"trial {trial}")
