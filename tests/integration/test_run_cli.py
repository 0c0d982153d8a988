"""`hwemu run --schedule` / `--policy` and the experiment runner."""

from __future__ import annotations

import json

import pandas as pd

from hwemu.cli import main
from hwemu.sim.experiment import SUMMARY_KEYS, CellResult, demo_cells, run_cell

from integ_kit import DEMO_MACHINE, MOVE, make_schedule


OLD_KEYS = ("machine", "threads", "accesses", "mean_latency_ns", "p50_latency_ns",
            "p95_latency_ns", "p99_latency_ns", "served", "node_bandwidth_gbs",
            "link_bandwidth_gbs", "faults", "sim_time_ns")
NEW_KEYS = ("pages_attempted", "pages_migrated", "pages_failed", "pages_failed_by_reason",
            "migration_passes", "step_time_ns", "tlb_shootdowns", "bytes_copied",
            "migrations", "numa_maps", "local_share", "remote_share", "cxl_share",
            "interconnect_bytes", "migration_time_ns", "faults_handled", "fault_lock_wait_ns")


def test_run_schedule_json(small_trace, tmp_path, capsys):
    sched = make_schedule(tmp_path / "s.toml", events=MOVE)
    assert main(["run", "-m", DEMO_MACHINE, small_trace, "--schedule", sched,
                 "--policy", "manual", "--param", "delay=50us", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    for k in OLD_KEYS + NEW_KEYS:
        assert k in r, k
    assert r["pages_migrated"] == 128 and r["policy"] == "manual"
    mig = r["migrations"][0]
    assert mig["kind"] == "migrate_pages" and mig["time_ns"] == 250_000
    assert mig["latency_after_ns"] < mig["latency_before_ns"]
    assert r["numa_maps"][-1]["when"] == "end" and "N1=64" in r["numa_maps"][-1]["text"]
    # text output
    assert main(["run", "-m", DEMO_MACHINE, small_trace, "--schedule", sched,
                 "--policy", "manual"]) == 0
    out = capsys.readouterr().out
    assert "migration: 128 pages attempted, 128 migrated" in out and "numa_maps" in out


def test_run_without_schedule_is_unchanged(small_trace, capsys):
    assert main(["run", "-m", DEMO_MACHINE, small_trace, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r) == set(OLD_KEYS)


def test_run_errors(small_trace, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[thread]]\ntid = 0\npid = 7\ncpu = 0\n")
    assert main(["run", "-m", DEMO_MACHINE, small_trace, "--schedule", str(bad)]) == 2
    assert "bad.toml" in capsys.readouterr().err
    assert main(["run", "-m", DEMO_MACHINE, small_trace, "--policy", "nosuch"]) == 2
    assert "unknown policy" in capsys.readouterr().err
    assert main(["run", "-m", DEMO_MACHINE, small_trace, "--policy", "manual",
                 "--param", "delay=soon"]) == 2
    assert "delay" in capsys.readouterr().err
    assert main(["run", "-m", DEMO_MACHINE, small_trace, "--policy", "manual",
                 "--param", "nosuch=1"]) == 2
    assert main(["run", "-m", DEMO_MACHINE, small_trace, "--policy", "manual",
                 "--param", "delay"]) == 2


def test_run_cell_contract(small_trace, tmp_path):
    sched = make_schedule(tmp_path / "s.toml", events=MOVE)
    r = run_cell(DEMO_MACHINE, small_trace, "manual", schedule=sched, seed=3,
                 params={"window": "20us"})
    assert isinstance(r, CellResult)
    for k in SUMMARY_KEYS:
        assert k in r.summary, k
    json.dumps(r.summary)
    assert r.summary["policy"] == "manual" and r.summary["seed"] == 3
    assert list(r.stats.columns) == ["component", "stat", "value", "unit"]
    assert list(r.timeline.columns)[:3] == ["time_ns", "accesses", "mean_latency_ns"]
    assert (r.timeline.time_ns.diff().dropna() <= 20_000 + 1e-6).all()
    assert list(r.placement.columns) == ["time_ns", "node", "pages", "in_flight", "frames"]
    assert list(r.migrations.columns)[:5] == ["time_ns", "pages", "bytes", "duration_ns", "kind"]
    assert list(r.steps.columns) == ["step", "time_ns", "count"]
    last = r.placement[r.placement.time_ns == r.placement.time_ns.max()]
    assert last.set_index("node").pages[1] >= 128
    # each page once: resident + in flight never exceeds the frames in use (which count a
    # page under migration on both nodes), and manual's migrate_pages left nothing in flight
    tot = r.placement.groupby("time_ns")[["pages", "in_flight", "frames"]].sum()
    assert (tot.pages + tot.in_flight <= tot.frames).all()
    assert last.in_flight.sum() == 0
    assert r.summary["accesses"] == int(r.timeline.accesses.sum())
    again = run_cell(DEMO_MACHINE, small_trace, "manual", schedule=sched, seed=3,
                     params={"window": "20us"})
    assert again.summary == r.summary
    pd.testing.assert_frame_equal(again.stats, r.stats)


def test_demo_cells_exist():
    cells = demo_cells()
    assert {c["policy"] for c in cells} >= {"none", "manual", "autonuma"}
    for c in cells:
        for k in ("machine", "trace", "schedule"):
            assert __import__("os").path.isfile(c[k]), c[k]


def test_the_command_ends_its_process_the_same(small_trace, tmp_path, capsys):
    """`python -m hwemu run` (hwemu.cli.console: the run's collector thresholds kept to the
    process's end, what it leaves frozen) prints what main() prints in-process, and main()
    in-process leaves the interpreter's thresholds as they were."""
    import gc
    import subprocess
    import sys

    argv = ["run", "-m", DEMO_MACHINE, small_trace, "--policy", "autonuma", "--json"]
    before = gc.get_threshold()
    assert main(argv) == 0
    assert gc.get_threshold() == before
    here = capsys.readouterr().out
    probe = ("import gc, sys; from hwemu.cli import console; from hwemu.sim import cosim; "
             "sys.argv = ['hwemu'] + sys.argv[1:]; s = console(); "
             "print(gc.get_threshold() == cosim.RUN_GC_THRESHOLDS, gc.get_freeze_count() > 0, "
             "file=sys.stderr); sys.exit(s)")
    p = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stdout == here
    assert p.stderr.strip().splitlines()[-1] == "True True"
