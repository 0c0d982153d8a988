"""The co-simulation's fast fault path (CoSim fast_faults, HWEMU_FAST_FAULTS=0 disables it)
gives exactly the results of the general one: same frames, page tables, counters, costs and
timing."""

from __future__ import annotations

import pytest

from hwemu.sim.cosim import CoSim

from integ_kit import DEMO_MACHINE, MOVE, assert_same_run as _same, make_schedule, make_trace


def _both(trace, **kw):
    out = []
    for fast in (True, False):
        # the Python path of every fault (not the replay loop's, test_loop_faults.py)
        sim = CoSim(DEMO_MACHINE, trace, fast_faults=fast, loop_faults=False, **kw)
        out.append((sim, sim.run()))
    return out


@pytest.fixture(scope="module")
def one_thread(tmp_path_factory):
    return make_trace(tmp_path_factory.mktemp("ff") / "t1.parquet", threads=1, pages=300,
                      accesses=3000, insts=0)


def test_first_touch_one_thread_identical(one_thread):
    a, b = _both(one_thread)
    _same(a, b)
    assert a[0].fast_fault_count > 250          # the fast path served nearly every fault
    assert b[0].fast_fault_count == 0
    assert a[1].summary["faults_handled"]["not_present"] == 300


def test_two_threads_autonuma_identical(small_trace):
    a, b = _both(small_trace, migration="autonuma",
                 params={"scan_delay": "20us", "scan_period_min": "20us"})
    _same(a, b)


def test_schedule_with_moves_identical(small_trace, tmp_path):
    sched = make_schedule(tmp_path / "s.toml", events=MOVE)
    a, b = _both(small_trace, schedule=sched, window_ps=20_000_000)
    _same(a, b)


def test_env_switch(one_thread, monkeypatch):
    monkeypatch.setenv("HWEMU_FAST_FAULTS", "0")
    assert CoSim(DEMO_MACHINE, one_thread).fast_faults is False
    monkeypatch.delenv("HWEMU_FAST_FAULTS")
    assert CoSim(DEMO_MACHINE, one_thread).fast_faults is True
