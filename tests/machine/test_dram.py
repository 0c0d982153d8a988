"""Memory controller between mock neighbours: exact DDR timing and queueing."""

import re

import numpy as np
import pytest

from hwemu.machine import layout
from hwemu.machine import dram as D

from machine_testkit import NS

T = 1000 * NS          # a start time well past the refresh at t=0


@pytest.fixture
def mc(tiny):
    p = D.dram_params(tiny.nodes)
    st = D.dram_state(p)

    def access(line, t, write=False, node=0):
        return D.dram_access(p, node, line, t, write, *st)
    access.p, access.st = p, st
    return access


def cnt(mc, node=0):
    return dict(zip(layout.DC_NAMES, mc.st[-1][node].tolist()))


def test_row_empty_then_hit_then_conflict(mc):
    # line 0..15 share one row (1 KiB row, 1 channel); tRCD 12, tCL 8, tBURST 4
    assert mc(0, T) == T + (12 + 8 + 4) * NS
    # row hit: tCL + tBURST after the bank is ready again
    t2 = T + 100 * NS
    assert mc(1, t2) == t2 + (8 + 4) * NS
    # the other row of the same bank: find a line mapping to same bank, different row
    p = mc.p
    ch, rk, bk, row = D.map_line(p, 0, 0)
    other = next(l for l in range(16, 4096, 16) if D.map_line(p, 0, l)[2] == bk
                 and D.map_line(p, 0, l)[3] != row)
    t3 = T + 200 * NS
    assert mc(other, t3) == t3 + (16 + 12 + 8 + 4) * NS      # tRP + tRCD + tCL + tBURST
    c = cnt(mc)
    assert (c["row_empty"], c["row_hits"], c["row_conflicts"], c["reads"]) == (1, 1, 1, 3)


def test_conflict_waits_for_tras(mc):
    p = mc.p
    bk, row = D.map_line(p, 0, 0)[2], D.map_line(p, 0, 0)[3]
    other = next(l for l in range(16, 4096, 16) if D.map_line(p, 0, l)[2] == bk
                 and D.map_line(p, 0, l)[3] != row)
    mc(0, T)                               # ACT at T
    # a conflicting request right away may precharge only tRAS (28 ns) after the ACT
    t = T + 4 * NS
    assert mc(other, t) == T + (28 + 16 + 12 + 8 + 4) * NS


def test_same_bank_requests_queue_and_bus_is_shared(mc):
    p = mc.p
    d0 = mc(0, T)
    d1 = mc(1, T)                          # same row, arrives while the bank is busy
    assert d1 == d0 + 4 * NS               # next burst right after (row hit, bus slot)
    # a different bank at the same time: data needs a free bus slot
    bk0 = D.map_line(p, 0, 0)[2]
    l2 = next(l for l in range(16, 4096, 16) if D.map_line(p, 0, l)[2] != bk0)
    d2 = mc(l2, T)
    # its data could start at T+20 but the slots at T+20 and T+24 are taken: it gets T+28
    assert d2 == T + 32 * NS
    assert cnt(mc)["bank_wait"] > 0


def test_latency_rises_with_load_because_requests_queue(mc):
    # 64 simultaneous reads of one row: each waits for the bus slot of the previous
    done = [mc(l % 16, T) for l in range(64)]
    lat = [d - T for d in done]
    assert lat[0] == 24 * NS
    assert lat == sorted(lat) and lat[-1] == lat[0] + 63 * 4 * NS


def test_write_then_conflict_waits_for_write_recovery(mc):
    p = mc.p
    bk, row = D.map_line(p, 0, 0)[2], D.map_line(p, 0, 0)[3]
    other = next(l for l in range(16, 4096, 16) if D.map_line(p, 0, l)[2] == bk
                 and D.map_line(p, 0, l)[3] != row)
    wend = mc(0, T, write=True)
    assert wend == T + (12 + 8 + 4) * NS   # tRCD + tCWL + tBURST
    t = T + 100 * NS
    assert mc(other, t) == t + (16 + 12 + 8 + 4) * NS
    assert cnt(mc)["writes"] == 1


def test_refresh_blocks_and_closes_rows(tiny):
    from hwemu.machine.config import load_machine_text
    from machine_testkit import TINY

    cfg = load_machine_text(TINY.read_text().replace('tREFI = "1s"', 'tREFI = "10us"')
                            .replace('tRFC = "1ns"', 'tRFC = "500ns"'), "t.toml")
    p = D.dram_params(cfg.nodes)
    st = D.dram_state(p)
    # rank 0 channel 0 refreshes at k * 10 us for 500 ns
    t = 10_000 * NS + 100 * NS
    assert D.dram_access(p, 0, 0, t, False, *st) == 10_500 * NS + 24 * NS
    # open the row, then cross the next refresh: the row is closed again (row empty)
    D.dram_access(p, 0, 1, 11_000 * NS, False, *st)
    before = st[-1][0, layout.DC_ROW_EMPTY]
    D.dram_access(p, 0, 2, 21_000 * NS, False, *st)
    assert st[-1][0, layout.DC_ROW_EMPTY] == before + 1


def test_close_page_policy(tiny):
    from hwemu.machine.config import load_machine_text
    from machine_testkit import TINY

    cfg = load_machine_text(TINY.read_text().replace('mc_latency = "10ns"',
                                                     'mc_latency = "10ns"\npage_policy = "close"'), "t.toml")
    p = D.dram_params(cfg.nodes)
    st = D.dram_state(p)
    assert D.dram_access(p, 0, 0, T, False, *st) == T + 24 * NS
    # same row later: the bank was precharged, so ACT again (row empty), no tRP
    t = T + 200 * NS
    assert D.dram_access(p, 0, 1, t, False, *st) == t + 24 * NS
    assert st[-1][0, layout.DC_ROW_HIT] == 0 and st[-1][0, layout.DC_ROW_EMPTY] == 2


def test_mapping_spreads_channels_and_is_a_bijection():
    from hwemu.machine.config import load_machine

    skx = load_machine("skx-2s")
    p = D.dram_params(skx.nodes)
    seen = set()
    chans = np.zeros(6, int)
    for line in range(6 * 4 * 4096):
        loc = D.map_line(p, 0, line)
        chans[loc[0]] += 1
        # the column within the row is line-determined; (ch, rank, bank, row, col) unique
        ch, rk, bk, row = loc
        il = 4
        lc = (line // il // 6) * il + line % il
        seen.add((ch, rk, bk, row, lc % 128))
    assert len(seen) == 6 * 4 * 4096
    assert chans.min() == chans.max()      # interleave chunks spread evenly


def test_peak_bandwidth_of_preset():
    from hwemu.machine.config import load_machine

    assert load_machine("skx-2s").nodes[0].dram.peak_bandwidth_bps == pytest.approx(128e9)


# ---------------------------------------------------------------------------------------------
# bank groups, ACT windows, write queue and first-ready scheduling (tiny DRAM with extra keys)


def variant(extra: str, **subs):
    """The tiny machine's DRAM with extra [dram] keys; returns (access, counters)."""
    from hwemu.machine.config import load_machine_text
    from machine_testkit import TINY

    text = TINY.read_text().replace('mc_latency = "10ns"', 'mc_latency = "10ns"\n' + extra)
    for k, v in subs.items():
        if f"\n{k} = " in text:
            text = text.replace(f"\n{k} = ", f"\n{k} = {v}\n#", 1)
        else:
            text = text.replace('mc_latency = "10ns"', f'mc_latency = "10ns"\n{k} = {v}', 1)
    cfg = load_machine_text(text, "t.toml")
    p = D.dram_params(cfg.nodes)
    st = D.dram_state(p)

    def access(line, t, write=False):
        return D.dram_access(p, 0, line, t, write, *st)
    access.p = p
    access.cnt = lambda: dict(zip(layout.DC_NAMES, st[-1][0].tolist()))
    return access


def first_line_of_bank(p, bank, start=0):
    """A line whose row is the first row (from ``start``) of ``bank`` (1 channel, 1 rank)."""
    rl = int(p[0, layout.DP_ROW_LINES])
    return next(l for l in range(start, 1 << 16, rl) if D.map_line(p, 0, l)[2] == bank)


def test_tccd_l_same_bank_group_vs_tccd_s_across_groups():
    # 4 banks in 2 groups (bank b in group b % 2); tCCD_L 8 ns = 2 bursts, tCCD_S = tBURST 4 ns
    mc = variant('tCCD_L = "8ns"', banks=4, bank_groups=2)
    a, b, c = (first_line_of_bank(mc.p, k) for k in (0, 2, 1))   # a, b group 0; c group 1
    for line in (a, b, c):
        mc(line, T)                                # open the three rows
    t = T + 500 * NS
    assert mc(a, t) == t + (8 + 4) * NS            # row hit: tCL + tBURST
    # same bank group: the next column command 8 ns later (the slot 4 ns later is too close)
    assert mc(b, t) == t + (8 + 8 + 4) * NS
    t2 = T + 1000 * NS
    assert mc(a, t2) == t2 + (8 + 4) * NS
    # other bank group: only tCCD_S = one burst slot later
    assert mc(c, t2) == t2 + (4 + 8 + 4) * NS


def test_trrd_l_and_trrd_s_space_activates():
    mc = variant('tRRD_S = "2ns"\ntRRD_L = "6ns"', banks=4, bank_groups=2)
    a, b, c = (first_line_of_bank(mc.p, k) for k in (0, 2, 1))
    assert mc(a, T) == T + (12 + 8 + 4) * NS       # ACT at T, data T+20..24
    # same group: ACT at T+6 (tRRD_L), column T+18, data from T+26 -> burst slot T+28..32
    assert mc(b, T) == T + 32 * NS
    mc2 = variant('tRRD_S = "2ns"\ntRRD_L = "6ns"', banks=4, bank_groups=2)
    mc2(a, T)
    # other group: ACT at T+2 (tRRD_S), data from T+22 -> slot T+24
    assert mc2(c, T) == T + 28 * NS


def test_tfaw_allows_four_activates_per_window():
    extra = 'tRRD_S = "2ns"\ntRRD_L = "2ns"\ntFAW = "20ns"'
    mc = variant(extra, banks=8, bank_groups=4)
    lines = [first_line_of_bank(mc.p, k) for k in range(5)]
    done = [mc(l, T) - T for l in lines]
    # ACTs at T, T+2, T+4, T+6; the fifth waits for the window: T+20. Data needs tRCD + tCL
    # and a free burst slot: T+20, 24, 28, 32 for the first four, T+40 for the fifth.
    assert done == [24 * NS, 28 * NS, 32 * NS, 36 * NS, 44 * NS]
    assert mc.cnt()["row_empty"] == 5
    # without tFAW the fifth ACT is at T+8 and its data takes the next free slot, T+36
    mc0 = variant('tRRD_S = "2ns"\ntRRD_L = "2ns"', banks=8, bank_groups=4)
    assert [mc0(l, T) - T for l in lines][-1] == 40 * NS


@pytest.mark.parametrize("timing", ['tRRD_S = "2ns"\ntRRD_L = "6ns"\ntFAW = "20ns"',
                                    'tRRD_S = "3ns"\ntRRD_L = "5ns"',
                                    'tFAW = "21ns"'])
def test_act_time_early_return_equals_the_search(timing):
    # _act_time returns te at once when no recorded ACT is within the widest spacing before
    # it; on random histories (out of time order, some close to te, some far) and bank groups
    # that answer is the full search's
    mc = variant(timing, banks=8, bank_groups=4)
    p = mc.p
    rng = np.random.default_rng(7)
    xr = int(p[0, layout.DP_X_RANK])
    x = np.zeros(xr + D.XR, np.int64)
    early = 0
    for _ in range(4000):
        te = int(rng.integers(100 * NS, 200 * NS))
        # ACTs from `lo` to `lo + width` before te (negative: after it)
        lo = int(rng.choice([-5 * NS, 0, 4 * NS, 10 * NS, 15 * NS]))
        width = int(rng.choice([3 * NS, 10 * NS, 25 * NS, 60 * NS]))
        x[xr:xr + D.NACT] = te - lo - rng.integers(0, width, D.NACT)
        x[xr + D.NACT:xr + 2 * D.NACT] = rng.integers(0, 4, D.NACT)
        bg = int(rng.integers(0, 4))
        got = D._act_time(p, 0, x, xr, bg, te)
        assert got == D._act_search(p, 0, x, xr, bg, te)
        early += got == te
    assert 0 < early < 4000        # both outcomes were exercised


def test_write_queue_drains_between_watermarks_and_blocks_reads():
    # 4-entry queue: drain at 3 queued writes, down to 1; write-to-read turnaround 6 ns
    mc = variant('write_queue = 4\nwrite_high = 0.75\nwrite_low = 0.25\ntWTR_S = "6ns"\n'
                 'tWTR_L = "6ns"')
    assert mc(0, T) == T + 24 * NS                 # a read: ACT T, column T+12, data T+20..24
    # writes are posted (complete when accepted)
    t = T + 1 * NS
    assert mc(1, t, write=True) == t
    assert mc(2, t, write=True) == t
    # the third reaches the high watermark: a drain is due from t, booked when the first read
    # stamped at or after t arrives
    assert mc(3, t, write=True) == t
    c = mc.cnt()
    assert (c["writes"], c["writes_drained"], c["row_hits"]) == (3, 0, 0)
    # a read of a still-queued line is forwarded from the queue
    assert mc(3, T + 2 * NS) == T + 2 * NS
    # the next read starts the drain: lines 1 and 2 (row hits), from t: bank free at T+16 ->
    # write data T+24..28 (tCWL 8), then T+28..32; line 3 stays (low watermark). The read of
    # the open row waits for the drain: column >= last write data end (T+32) + tWTR (6) =
    # T+38; data from T+46 -> burst slot T+48..52
    assert mc(4, T + 2 * NS) == T + 52 * NS
    c = mc.cnt()
    assert (c["writes_drained"], c["row_hits"]) == (2, 3)
    # much later, a write to an idle channel is still only queued ...
    t = T + 500 * NS
    assert mc(5, t, write=True) == t
    assert mc.cnt()["writes_idle"] == 0
    # ... until a read finds the gap before it: lines 3 and 5 take T+508..512 and T+512..516,
    # and the read of the open row goes at once (column T+600, data T+608..612)
    assert mc(6, T + 600 * NS) == T + 612 * NS
    c = mc.cnt()
    assert (c["reads"], c["writes"], c["write_forwards"], c["writes_idle"]) == (4, 4, 1, 2)


def test_drain_waits_for_reads_stamped_before_it():
    # a write stamped ahead of the reads (the completion of the fill that evicted its line)
    # reaches the high watermark; a read stamped before it, seen afterwards, is served first
    mc = variant('write_queue = 4\nwrite_high = 0.75\nwrite_low = 0.25')
    t = T + 200 * NS
    for line in (1, 2, 3):
        assert mc(line, t, write=True) == t
    assert mc(0, T) == T + 24 * NS                 # as on an empty channel: ACT T, data T+20
    assert mc.cnt()["writes_drained"] == 0
    # a read stamped after the drain's start books the drain first
    mc(4, t + 1 * NS)
    assert mc.cnt()["writes_drained"] == 2


def test_idle_gap_takes_only_the_writes_that_fit():
    mc = variant('write_queue = 8\nwrite_high = 1.0\nwrite_low = 0.5\ntWTR_S = "2ns"\n'
                 'tWTR_L = "2ns"')
    assert mc(0, T) == T + 24 * NS
    t = T + 30 * NS
    for line in (1, 2, 3, 4, 5):
        assert mc(line, t, write=True) == t
    # the next read at T+48 finds the channel idle since the writes arrived (T+30): 18 ns,
    # less tCWL (8) and tWTR (2), is room for the bursts (4 ns) of two writes; three stay
    mc(6, T + 48 * NS)
    assert mc.cnt()["writes_idle"] == 2
    # a read long after takes the other three
    mc(7, T + 400 * NS)
    assert mc.cnt()["writes_idle"] == 5


def test_row_hit_is_served_before_a_booked_row_switch():
    p = variant("").p
    bk, row = D.map_line(p, 0, 0)[2], D.map_line(p, 0, 0)[3]
    other = next(l for l in range(16, 4096, 16) if D.map_line(p, 0, l)[2] == bk
                 and D.map_line(p, 0, l)[3] != row)
    results = {}
    for sched in ("frfcfs", "fcfs"):
        mc = variant(f'scheduler = "{sched}"')
        assert mc(0, T) == T + 24 * NS             # opens row 0 (ACT at T)
        # a conflict arrives: PRE at T+28 (tRAS), ACT T+44, column T+56, data T+64..68
        assert mc(other, T + 1 * NS) == T + 68 * NS
        # then a hit to row 0
        results[sched] = mc(1, T + 2 * NS) - T
        results[sched + "_first"] = mc.cnt()["row_hits_first"]
    # first ready: the hit uses the open row before the PRE: column at T+16 (bank free),
    # data T+24..28, and the booked switch keeps its times
    assert results["frfcfs"] == 28 * NS and results["frfcfs_first"] == 1
    # strictly in order: after the switch (column T+56, bank free T+60) row 0 must be reopened:
    # PRE at T+72 (tRAS after the ACT at T+44), ACT T+88, column T+100, data T+108..112
    assert results["fcfs"] == 112 * NS and results["fcfs_first"] == 0


@pytest.mark.parametrize("extra, msg", [
    ("bank_groups = 3", "2 banks do not divide into 3 bank groups"),
    ("write_queue = 8\nwrite_low = 0.9", "write_low: must be in [0, write_high)"),
    ("write_high = 1.5", "write_high: must be in (0, 1]"),
    ('scheduler = "random"', "'random' is not one of frfcfs, fcfs"),
    ("write_queue = -1", "write_queue: must be at least 0"),
    ('tCMD = "2ns"', "tCMD: the command bus takes one command per tCK, a quarter of tBURST (1ns), got 2ns"),
])
def test_bad_controller_keys_are_named(extra, msg):
    from hwemu.errors import HwemuError

    with pytest.raises(HwemuError, match=re.escape(msg)):
        variant(extra)


def test_presets_use_ddr4_bank_groups_and_a_write_queue():
    from hwemu.machine.config import load_machine

    d = load_machine("skx-2s").nodes[0].dram
    assert (d.bank_groups, d.tCCD_L_ps, d.tFAW_ps, d.write_queue, d.write_high, d.write_low) == \
        (4, 5250, 21000, 32, 0.8, 0.2)
    assert D.write_watermarks(d) == (26, 6)            # entries


def test_rank_switch_leaves_trtrs_idle_on_the_bus():
    # 2 ranks of 2 banks; a burst of the other rank keeps tRTRS (2 ns = 2 bus units of 1 ns)
    # away from the previous one; a burst of the same rank follows directly
    mc = variant('tRTRS = "2ns"', ranks=2)
    p = mc.p
    loc = {}
    for l in range(0, 4096, 16):
        loc.setdefault(D.map_line(p, 0, l)[1:3], l)
    r0b0, r0b1, r1b0 = loc[(0, 0)], loc[(0, 1)], loc[(1, 0)]
    assert mc(r0b0, T) == T + 24 * NS               # data T+20..24
    assert mc(r1b0, T) == T + (24 + 2 + 4) * NS     # other rank: T+26..30
    mc2 = variant('tRTRS = "2ns"', ranks=2)
    mc2(r0b0, T)
    assert mc2(r0b1, T) == T + 28 * NS              # same rank: T+24..28


@pytest.mark.parametrize("preset, extra", [("skx-2s", ""), ("skx-2s", 'tRTRS = "0ns"'),
                                           ("epyc-2s", 'scheduler = "fcfs"\nwrite_queue = 0')])
def test_random_traffic_never_double_books_the_bus(preset, extra):
    """Random reads and writes, arriving in time order at 60 GB/s: every burst gets its own
    bus time (no unit of the calendar is booked twice), no request finishes before its unloaded
    latency, and the counters add up."""
    from hwemu.machine.config import load_machine_text

    cfg = load_machine_text(f'base = "{preset}"\n[dram]\n{extra}\n', "r.toml")
    p = D.dram_params(cfg.nodes)
    st = D.dram_state(p)
    rng = np.random.default_rng(7)
    n = 4000
    t = 1_000_000 + np.cumsum(rng.exponential(1067, n)).astype(np.int64)   # 60 GB/s
    lines = np.where(rng.random(n) < 0.5, rng.integers(0, 1 << 22, n), np.arange(n))
    writes = rng.random(n) < 0.3
    d = cfg.nodes[0].dram
    for i in range(n):
        done = D.dram_access(p, 0, int(lines[i]), int(t[i]), bool(writes[i]), *st)
        if writes[i]:
            assert done >= t[i]
        else:
            assert done == t[i] or done >= t[i] + d.tCL_ps + d.tBURST_ps   # forwarded or DRAM
    c = dict(zip(layout.DC_NAMES, st[-1][0].tolist()))
    queued = D.queued_writes(p, st[-2], 0)
    served = c["reads"] - c["write_forwards"] + c["writes"] - queued
    assert c["row_hits"] + c["row_empty"] + c["row_conflicts"] == served
    bus = st[5][:d.channels]
    booked = int(((bus >= 0) & (bus % D.BUS_CMD > 0)).sum())     # data bursts, not commands
    assert booked == served * int(p[0, layout.DP_BLEN])


@pytest.mark.parametrize("rpre, done", [("0ns", 28), ("1ns", 29), ("2ns", 30)])
def test_read_to_write_bubble_on_the_data_bus(rpre, done):
    # no write queue: a write is scheduled on arrival. A read opens the row: ACT T, column
    # T+12, data T+20..24; a write to the same row: column at T+16 (bank free), data from
    # T+24 (tCWL 8), after the read burst plus tRPRE (+ tRTRS, 0 here); 1 ns calendar units
    mc = variant(f'tRPRE = "{rpre}"')
    assert mc(0, T) == T + 24 * NS
    assert mc(1, T, write=True) == T + done * NS


@pytest.mark.parametrize("tcmd, done", [("0ns", 124), ("1ns", 125)])
def test_command_bus_takes_one_command_per_slot(tcmd, done):
    # 1 ns bus units (tRPRE); row 0 of bank 0 open from T
    mc = variant(f'tRPRE = "1ns"\ntCMD = "{tcmd}"')
    p = mc.p
    bk0 = D.map_line(p, 0, 0)[2]
    other = next(l for l in range(16, 4096, 16) if D.map_line(p, 0, l)[2] != bk0)
    assert mc(0, T) == T + 24 * NS
    t = T + 100 * NS
    # a row hit: column command at t, data t+8..12
    assert mc(1, t) == t + 12 * NS
    # a closed bank at the same time: its ACT wants t, the column command's slot; with a
    # command bus it goes one slot later: ACT t+1, column t+13, data t+21..25
    assert mc(other, t) == T + done * NS
