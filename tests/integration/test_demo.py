"""Acceptance on the bundled demo (traces/demo): the classic migration case.

Each cell takes several seconds; the three baseline policies run once per session."""

from __future__ import annotations

import pytest

from hwemu.sim.experiment import DEMO_DIR, run_cell
from hwemu.policies.registry import list_policies

MACHINE = str(DEMO_DIR / "skx-2s-demo.toml")
TRACE = str(DEMO_DIR / "numa_move.parquet")
SCHED = str(DEMO_DIR / "numa_move.toml")


@pytest.fixture(scope="module")
def cells():
    return {p: run_cell(MACHINE, TRACE, p, schedule=SCHED) for p in ("none", "manual", "autonuma")}


def test_manual_and_autonuma_cut_latency_by_a_fifth(cells):
    base = cells["none"].summary
    assert base["pages_migrated"] == 0 and base["remote_share"] > 0.9
    for p in ("manual", "autonuma"):
        s = cells[p].summary
        assert s["mean_latency_ns"] <= 0.8 * base["mean_latency_ns"], (p, s["mean_latency_ns"])
        assert s["local_share"] > 0.85
        # ... and their costs are visible
        assert s["pages_migrated"] == 768 and s["migration_time_ns"] > 500_000
        assert s["bytes_copied"] == 768 * 4096 and s["os_cpu_time_ns"] > base["os_cpu_time_ns"]
        assert len(cells[p].steps) > 10 and (cells[p].steps.time_ns > 0).all()
        assert len(cells[p].migrations) >= 1
    # autonuma pays with hinting faults and one shootdown per page; manual with lock waits
    assert cells["autonuma"].summary["faults_handled.numa_hint"] > 768
    assert cells["autonuma"].summary["tlb_shootdowns"] >= 768
    assert cells["manual"].summary["fault_lock_wait_ns"] > 0


def test_oracle_bounds_the_numa_move_demo(cells):
    """The threads move at 500 us: the oracle re-places their pages then, for free (a bound
    for migration policies, not only for placement)."""
    o = run_cell(MACHINE, TRACE, "oracle", schedule=SCHED).summary
    assert o["local_share"] > 0.95 and o["pages_migrated"] == 0
    for p, c in cells.items():
        assert o["mean_latency_ns"] <= c.summary["mean_latency_ns"], p
        assert o["sim_time_ns"] <= c.summary["sim_time_ns"], p


def test_oracle_bounds_the_tiering_demo():
    """On the tiering demo (threads never move) the oracle is one static placement computed
    from the whole trace; no policy beats it."""
    if "oracle" not in {p["name"] for p in list_policies()}:
        pytest.skip("oracle policy not available")
    m, t, s = (str(DEMO_DIR / "skx-2s-cxl-demo.toml"), str(DEMO_DIR / "tiering.parquet"),
               str(DEMO_DIR / "tiering.toml"))
    oracle = run_cell(m, t, "oracle", schedule=s).summary
    assert oracle["cxl_share"] < 0.2
    for p in ("none", "autonuma"):
        other = run_cell(m, t, p, schedule=s).summary
        assert oracle["mean_latency_ns"] <= other["mean_latency_ns"], p
        assert oracle["sim_time_ns"] <= other["sim_time_ns"], p


def test_time_compression_sets_every_policys_clock(cells):
    """time_compression=5000 gives the demo schedule's own times (1 s -> 200 us), so the same
    result; at 500 the first scan (2 ms) comes later and the pages follow the threads later; at
    Linux's own timing (1) the run ends long before the first scan, 1 s after the start."""
    same = run_cell(MACHINE, TRACE, "autonuma", schedule=SCHED,
                    params={"time_compression": 5000}).summary
    ref = cells["autonuma"].summary
    assert same["time_compression"] == 5000.0
    assert {k: same[f"numa_balancing.{k}"] for k in (
        "scan_delay_ns", "scan_period_min_ns", "scan_period_max_ns", "scan_size_bytes")} == {
        "scan_delay_ns": 200_000.0, "scan_period_min_ns": 200_000.0,
        "scan_period_max_ns": 12_000_000.0, "scan_size_bytes": 1 << 20}
    for key in ("mean_latency_ns", "pages_migrated", "sim_time_ns", "faults_handled.numa_hint"):
        assert same[key] == ref[key], key
    slower = run_cell(MACHINE, TRACE, "autonuma", schedule=SCHED,
                      params={"time_compression": 500}).summary
    assert 0 < slower["pages_migrated"] <= ref["pages_migrated"]
    assert slower["mean_latency_ns"] > ref["mean_latency_ns"]     # the pages follow later
    linux = run_cell(MACHINE, TRACE, "tpp", schedule=SCHED,
                     params={"time_compression": 1}).summary
    assert linux["pages_migrated"] == 0 and linux["faults_handled.numa_hint"] == 0
    assert linux["mean_latency_ns"] == cells["none"].summary["mean_latency_ns"]
