"""compare and sweep through the real runner (hwemu.sim.experiment.run_cell), kept small: a
20,000-access single-thread trace on the demo machine, its thread moved to socket 1 at 30 us
(report_fakes.write_move_workload)."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from report_fakes import MACHINE, write_move_workload

from hwemu.report.cells import load_cell
from hwemu.report.compare import compare
from hwemu.report.sweep import run_sweep


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    return write_move_workload(tmp_path_factory.mktemp("e2e"))


def test_compare_real_runner_is_deterministic(workload, tmp_path):
    # the second run's cells run in two worker processes: the same files come out
    args = dict(machines=[MACHINE], traces=[str(workload / "move.parquet")],
                policies=["manual"], schedule=str(workload / "move.toml"), seed=0,
                command="hwemu compare ...")
    df = compare(out=tmp_path / "a", **args)
    compare(out=tmp_path / "b", workers=2, **args)
    assert list(df["policy"]) == ["none", "manual"]
    none, manual = df.iloc[0], df.iloc[1]
    assert none["pages_migrated"] == 0 and manual["pages_migrated"] > 0
    # after the move, manual's migrate_pages brings the pages to the thread's new node
    assert manual["local_share"] > none["local_share"]
    assert manual["latency_reduction_pct"] == pytest.approx(
        100 * (none["mean_latency_ns"] - manual["mean_latency_ns"]) / none["mean_latency_ns"])
    saved = none["mean_latency_ns"] - manual["mean_latency_ns"]
    if saved > 0:
        assert manual["break_even_ns"] == pytest.approx(
            manual["migration_time_ns"] / (saved * manual["accesses"] / manual["sim_time_ns"]))
    else:
        assert np.isnan(manual["break_even_ns"])
    assert manual["speedup"] == pytest.approx(none["sim_time_ns"] / manual["sim_time_ns"])
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    # results.*, report.html; 4 figures; stats; cells; the machine dumped
    assert len(files) == 3 + 4 + 2 + 2 + 1
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    cell = load_cell(tmp_path / "a" / "cells" / f"{manual['cell']}.zip")
    assert len(cell.migrations) > 0 and len(cell.steps) > 0 and len(cell.timeline) > 0


def test_compare_cli_json(workload, tmp_path):
    r = subprocess.run([sys.executable, "-m", "hwemu", "compare", "--machine", MACHINE,
                        "--trace", str(workload / "move.parquet"), "--schedule",
                        str(workload / "move.toml"), "--policy", "manual", "--json", "--quiet",
                        "--out", "cli-out"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    rows = json.loads(r.stdout)["rows"]
    assert [row["policy"] for row in rows] == ["none", "manual"]
    assert rows[0]["latency_reduction_pct"] == 0.0 and rows[0]["break_even_ns"] is None
    for key in ("mean_latency_ns", "p50_latency_ns", "p99_latency_ns", "local_share",
                "remote_share", "cxl_share", "pages_migrated", "pages_failed",
                "migration_time_ns", "interconnect_bytes", "sim_time_ns", "speedup",
                "break_even_ns", "trace", "machine", "cell"):
        assert key in rows[1]
    # the provenance names the command as typed, and the machine file dumped beside it
    cell = zipfile.ZipFile(tmp_path / "cli-out" / "cells" / f"{rows[1]['cell']}.zip")
    prov = json.loads(cell.read("cell.json"))["provenance"]
    assert prov["command"].startswith("hwemu compare --machine ")
    assert prov["command"].endswith(" --json --quiet --out cli-out")
    assert prov["machine_file"] == "machines/skx-2s-demo.toml"
    assert (tmp_path / "cli-out" / prov["machine_file"]).is_file()


def test_compare_cli_bad_trace_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hwemu", "compare", "--trace",
                        str(tmp_path / "missing.parquet"), "--policy", "tpp",
                        "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "missing.parquet" in r.stderr
    assert r.stderr.count("\n") == 1
    assert not (tmp_path / "out" / "results.csv").exists()


def test_sweep_real_runner_with_run_params(workload, tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f"""\
machines = ["{MACHINE}"]
traces = ["{workload / 'move.parquet'}"]
policies = ["manual"]
schedule = "{workload / 'move.toml'}"
[params]
window = ["20us", "100us"]
""")
    res = run_sweep(sweep, tmp_path / "out", workers=2)
    assert (res.cells, res.ran) == (4, 4)
    df = res.table
    assert sorted(df["param.window"]) == ["100us", "100us", "20us", "20us"]
    # the baseline of each cell is the none cell with the same window
    for w in ("20us", "100us"):
        g = df[df["param.window"] == w].set_index("policy")
        assert g.loc["none", "latency_reduction_pct"] == 0.0
        assert g.loc["manual", "pages_migrated"] > 0
    n_windows = {}
    for w in ("20us", "100us"):
        cell_id = df[(df["param.window"] == w) & (df.policy == "none")]["cell"].iloc[0]
        n_windows[w] = len(load_cell(tmp_path / "out" / "cells" / f"{cell_id}.zip").timeline)
    assert n_windows["20us"] > n_windows["100us"]
    again = run_sweep(sweep, tmp_path / "out", workers=2)
    assert (again.ran, again.skipped) == (0, 4)
    pd.testing.assert_frame_equal(again.table, df)
