"""Remote trackers (``[uncore] remote_trackers``): the reads a core may have outstanding at a
remote home node, with exact latencies on the tiny machine (tests/machine/tiny.toml: 1 GHz,
LLC 30 ns, one 8 GB/s link between the two sockets' nodes)."""

import numpy as np
import pytest

from hwemu.errors import HwemuError
from hwemu.machine import layout
from hwemu.machine import hierarchy as H
from hwemu.machine.config import load_machine
from hwemu.machine.system import Machine
from hwemu.traces.format import TraceChunk

from machine_testkit import NS, TINY

T = 1_000_000 * NS


def machine(tmp_path, trackers, prefetch=False, threads=1, cpus=None, lfb=4):
    p = tmp_path / f"rt{trackers}.toml"
    p.write_text(f'base = "{TINY}"\nname = "tiny-rt"\n[core]\nlfb = {lfb}\nsuperqueue = 16\n'
                 f'[uncore]\nremote_trackers = {trackers}\n'
                 f'[prefetch]\nenable = {"true" if prefetch else "false"}\n')
    return Machine(load_machine(str(p)), threads=threads, cpus=cpus or list(range(threads)))


def pa(m, line, node):
    return int(m.S.node_base[node]) + line * 64


def acc(m, cpu, line, node, t):
    d, w = H.access(m.S, cpu, node, pa(m, line, node), False, False, t)
    return d - t, layout.W_NAMES[w]


def test_default_is_unbounded_and_limits_checked(tmp_path):
    assert load_machine(str(TINY)).remote_trackers == 0
    assert load_machine("skx-2s").remote_trackers == 6
    assert load_machine("epyc-2s").remote_trackers == 0
    cxl = load_machine("skx-2s-cxl")
    assert [n.remote_trackers for n in cxl.nodes] == [6, 6, 0]
    p = tmp_path / "bad.toml"
    p.write_text(f'base = "{TINY}"\n[uncore]\nremote_trackers = 65\n')
    with pytest.raises(HwemuError, match=r"\[uncore\] remote_trackers: at most 64"):
        load_machine(str(p))
    p.write_text(f'base = "{TINY}"\n[uncore]\nremote_trackers = -1\n')
    with pytest.raises(HwemuError, match=r"\[uncore\] remote_trackers: must be at least 0"):
        load_machine(str(p))


def test_third_remote_read_waits_for_a_tracker(tmp_path):
    # three reads of node 1 issued together by one core; the unbounded machine overlaps them
    free = machine(tmp_path, 0)
    lat0 = [acc(free, 0, ln * 64, 1, T) for ln in range(3)]
    assert all(w == "remote_dram" for _, w in lat0)
    bound = machine(tmp_path, 2)
    lat2 = [acc(bound, 0, ln * 64, 1, T) for ln in range(3)]
    # the first two hold the two trackers and see exactly the unbounded latencies
    assert lat2[:2] == lat0[:2]
    # the third finds both trackers busy after its LLC lookup (30 ns) and leaves for the home
    # when the first completes: exactly as on an unbounded machine where it is issued 30 ns
    # before the first completes
    ref = machine(tmp_path, 0)
    acc(ref, 0, 0, 1, T)
    acc(ref, 0, 64, 1, T)
    t3 = T + lat0[0][0] - 30 * NS
    l3 = acc(ref, 0, 128, 1, t3)[0]
    assert lat2[2] == (t3 + l3 - T, "remote_dram")
    assert lat2[2][0] > lat0[0][0] + 100 * NS
    assert int(bound.S.ccnt[0, layout.K_RT_WAIT]) == 1
    # other cores have their own trackers; local reads need none
    assert acc(bound, 1, 5 * 64, 1, T)[0] < lat2[2][0]
    assert acc(bound, 0, 7 * 64, 0, T) == acc(free, 0, 7 * 64, 0, T)


def test_prefetch_without_a_tracker_is_dropped(tmp_path):
    m = machine(tmp_path, 1, prefetch=True)
    for i in range(4):
        acc(m, 0, i, 1, T + i * NS)
    assert int(m.S.ccnt[0, layout.K_PF_DROP]) > 0
    assert int(m.S.ccnt[0, layout.K_PF_ISSUED]) == 0


def stream(m, threads, n, node):
    """Each thread reads ``n`` random lines of its own 2 MiB page on ``node``."""
    rng = np.random.default_rng(1)
    tid, addr = [], []
    for th in range(threads):
        base = 0x40000000 + th * (1 << 21)
        m.map_page(0, base, node, th * 512, huge=True)
        lines = rng.permutation(1 << 15)[:n]
        tid.append(np.full(n, th, np.uint16))
        addr.append(base + lines.astype(np.int64) * 64)
    # interleave the threads' records
    tid = np.stack(tid, 1).ravel()
    addr = np.stack(addr, 1).ravel().astype(np.uint64)
    k = len(addr)
    m.load_chunk(TraceChunk.from_arrays(np.ones(k, np.uint8), addr, np.full(k, 8, np.uint16),
                                        tid=tid, insts=np.ones(k, np.uint32)))
    assert m.run().reason == "chunk-done"


def test_replay_keeps_requests_in_flight_within_the_trackers(tmp_path):
    n = 400
    idle = acc(machine(tmp_path, 0), 0, 3 * 64, 1, T)[0]
    # one tracker, 4 fill buffers: the core has one remote read in flight at a time, so the
    # reads complete one after the other: the run takes at least n idle reads back to back
    one = machine(tmp_path, 1)
    stream(one, 1, n, 1)
    assert one.thread_clock(0) >= n * idle * 0.9
    assert int(one.S.ccnt[0, layout.K_RT_WAIT]) >= n - 5
    four = machine(tmp_path, 0)
    stream(four, 1, n, 1)
    assert four.thread_clock(0) < one.thread_clock(0) / 2       # 4 in flight unbounded
    # accesses the trackers made wait still count the wait as latency: mean ~ 2 idle reads
    mean_one = one.S.th_lat_sum[0] / n
    assert 1.5 * idle < mean_one < 2.5 * idle


def test_trackers_bound_the_queueing_delay_on_the_link(tmp_path):
    # a dependent probe on cpu 0 and a streamer with 16 fill buffers on cpu 1 read random
    # lines of node 1 (one channel of two banks, so row conflicts make its DRAM the
    # bottleneck, the 8 GB/s link close behind). The probe's read queues behind the reads the
    # streamer has in flight: up to 16 unbounded, at most 2 with two trackers (Little's law).
    n = 300
    lat = {}
    for k in (0, 2):
        m = machine(tmp_path, k, threads=2, lfb=16)
        m.set_dependent(0)
        stream(m, 2, n, 1)
        lat[k] = m.S.th_lat_sum[0] / n
    idle = acc(machine(tmp_path, 0), 0, 3 * 64, 1, T)[0]
    line = (64 + 8) / 8 * NS
    assert lat[0] > idle + 3 * line                       # measured: 177.0 ns (idle 145)
    assert lat[2] < idle + 3 * line                       # measured: 163.3 ns
    assert lat[0] - idle > 1.5 * (lat[2] - idle)


def test_a_node_overrides_the_trackers_it_preallocates(tmp_path):
    p = tmp_path / "node.toml"
    p.write_text(f'base = "{TINY}"\nname = "tiny-node"\n[uncore]\nremote_trackers = 1\n'
                 '[[node]]\nsocket = 0\nsize = "1GiB"\n'
                 '[[node]]\nsocket = 1\nsize = "1GiB"\nremote_trackers = 0\n')
    cfg = load_machine(str(p))
    assert [n.remote_trackers for n in cfg.nodes] == [1, 0]
    m = Machine(cfg, threads=1)
    # node 1 does not bound the reads of socket 0's cores
    a = [acc(m, 0, ln * 64, 1, T)[0] for ln in range(3)]
    b = [acc(machine(tmp_path, 0), 0, ln * 64, 1, T)[0] for ln in range(1)]
    assert a[0] == b[0] and a[2] < 2 * a[0]
    assert int(m.S.ccnt[0, layout.K_RT_WAIT]) == 0
