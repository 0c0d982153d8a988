"""hwemu compare --suite: the bundled tiny suite end to end through the CLI (real recordings with
Valgrind, a real Dask LocalCluster of 2 workers), resumed without re-running a cell; bad suite
files and options (one line, exit status 2, nothing left behind)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hwemu.errors import HwemuError
from hwemu.report import suite as suite_mod
from hwemu.report.suite import load_suite

HWEMU = Path(sys.executable).with_name("hwemu")


def _hwemu(*args, env=None, cwd=None):
    return subprocess.run([str(HWEMU), *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), cwd=cwd)


def _one_line_error(r, *words):
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("hwemu: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_tiny_suite_records_runs_and_resumes(tmp_path):
    traces, out = tmp_path / "traces", tmp_path / "out"
    env = {"HWEMU_CACHE": str(tmp_path / "cache")}
    r = _hwemu("compare", "--suite", "tiny", "--traces", traces, "--out", out, "--workers", 2,
               env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert [ln for ln in lines if "recording" in ln] == [
        f"hwemu: suite tiny: recording bfs at scale tiny (1 of 2) into {traces / 'bfs-tiny.parquet'} ...",
        f"hwemu: suite tiny: recording sort at scale tiny (2 of 2) into {traces / 'sort-tiny.parquet'} ..."]
    assert sorted(p.name for p in traces.iterdir()) == [
        "bfs-tiny.json", "bfs-tiny.parquet", "sort-tiny.json", "sort-tiny.parquet"]
    assert "4 cells: 4 run, 0 already done" in r.stdout

    df = pd.read_csv(out / "results.csv")
    assert sorted(zip(df["trace"], df["machine"], df["policy"], df["seed"])) == [
        ("bfs-tiny", "skx-2s", "autonuma", 0), ("bfs-tiny", "skx-2s", "none", 0),
        ("sort-tiny", "skx-2s", "autonuma", 0), ("sort-tiny", "skx-2s", "none", 0)]
    assert (df["accesses"] > 100_000).all() and (df["mean_latency_ns"] > 0).all()
    cells = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.zip")}
    assert sorted(n.removesuffix(".zip") for n in cells) == sorted(df["cell"])
    csv1 = (out / "results.csv").read_bytes()
    trace_mtimes = {p.name: p.stat().st_mtime_ns for p in traces.iterdir()}

    # the same command again (--json): nothing recorded, no cell run, the same results
    r2 = _hwemu("compare", "--suite", "tiny", "--traces", traces, "--out", out, "--workers", 2,
                "--json", env=env)
    assert r2.returncode == 0, r2.stderr
    res = json.loads(r2.stdout)
    assert (res["suite"], res["recorded"], res["cells"], res["ran"], res["skipped"]) == (
        "tiny", [], 4, 0, 4)
    assert "recording" not in r2.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.zip")} == cells
    assert {p.name: p.stat().st_mtime_ns for p in traces.iterdir()} == trace_mtimes
    assert (out / "results.csv").read_bytes() == csv1
    assert [(row["trace"], row["policy"]) for row in res["rows"]] == list(zip(df["trace"],
                                                                              df["policy"]))


def _suite(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = 'workloads = ["bfs", "sort"]\nscale = "tiny"\nmachines = ["skx-2s"]\npolicies = ["autonuma"]\n'
VARIANT_G = GOOD.replace('"sort"', '"g"') + "[variants.g]\nworkload = 'gups'\n"     # a variant g of gups


@pytest.mark.parametrize("text, key", [
    (GOOD + "traces = ['a.parquet']\n", "unknown key 'traces'"),
    (GOOD.replace('workloads = ["bfs", "sort"]\n', ""), "key 'workloads' is missing"),
    (GOOD.replace('"sort"', '"mergesort"'), "key 'workloads': unknown workload 'mergesort'"),
    (GOOD.replace('"sort"', '"bfs"'), "key 'workloads' lists a name twice"),
    (GOOD.replace('"tiny"', '"huge"'), "key 'scale' must be one of tiny, small, full"),
    (GOOD.replace('scale = "tiny"\n', ""), "key 'scale' is missing"),
    (GOOD.replace('["skx-2s"]', '["skx-9s"]'), "key 'machines': unknown machine 'skx-9s'"),
    (GOOD.replace('machines = ["skx-2s"]\n', ""), "key 'machines' is missing"),
    (GOOD.replace('"autonuma"', '"lru"'), "key 'policies': unknown policy 'lru'"),
    (GOOD + "seeds = [-1]\n", "key 'seeds'"),
    (GOOD + "[params]\nscan_size = ['1MiB']\n", "key 'params.scan_size': not a parameter of the run"),
    (GOOD + "[params.autonuma]\nscan_sise = ['1ms']\n", "key 'params.autonuma.scan_sise'"),
    (GOOD + "schedule = 'x.toml'\n", "key 'schedule' must be a table"),
    (GOOD + "[schedule]\ngups = 'x.toml'\n", "key 'schedule.gups': 'gups' is not in 'workloads'"),
    (GOOD + "[schedule]\nbfs = 'x.toml'\n", "key 'schedule.bfs': x.toml: no such schedule file"),
    (GOOD + "scale = 'tiny'\n", "not valid TOML"),
    (GOOD + "variants = 1\n", "key 'variants' must be a table of tables"),
    (GOOD + "[variants.g]\nworkload = 'gups'\n", "key 'variants.g': 'g' is not in 'workloads'"),
    (GOOD.replace('"sort"', '"g"') + "[variants.g]\nworkload = 'gupps'\n",
     "key 'variants.g.workload': expected one of bfs, "),
    (VARIANT_G + "seed = -1\n",
     "key 'variants.g.seed' must be a non-negative integer"),
    (VARIANT_G + "sed = 1\n",
     "unknown key 'variants.g.sed'"),
    (VARIANT_G + "params = {a = 1.5}\n",
     "key 'variants.g.params.a' must be an integer or a string"),
    (GOOD + "[variants.sort]\nworkload = 'gups'\n", "key 'variants.sort': 'sort' is a recorder"),
    (VARIANT_G + "params = {hot = 5}\n",
     "key 'variants.g.params': hot: not a parameter of gups"),
    (VARIANT_G + "params = {updates = 'x'}\n",
     "key 'variants.g.params': updates=x: expected an integer"),
    (GOOD.replace('"sort"', '"g/h"') + "[variants.'g/h']\nworkload = 'gups'\n",
     "key 'variants.g/h': a variant name uses letters"),
])
def test_bad_suite_file(tmp_path, text, key):
    p = _suite(tmp_path, text)
    with pytest.raises(HwemuError, match=key) as exc:
        load_suite(str(p), tmp_path / "traces")
    assert str(exc.value).startswith(f"{p}: ")
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "traces").exists()


def test_bad_suite_file_cli_exit_2(tmp_path):
    p = _suite(tmp_path, GOOD.replace('"sort"', '"mergesort"'))
    r = _hwemu("compare", "--suite", p, "--traces", tmp_path / "t", "--out", tmp_path / "o")
    _one_line_error(r, str(p), "key 'workloads'", "mergesort")
    assert not (tmp_path / "t").exists() and not (tmp_path / "o").exists()
    _one_line_error(_hwemu("compare", "--suite", "nosuch"), "--suite nosuch: unknown suite",
                    "tiny", "study")
    _one_line_error(_hwemu("compare", "--suite", tmp_path / "none.toml"), "no such suite file")


def test_options_that_do_not_go_with_suite(tmp_path):
    _one_line_error(_hwemu("compare", "--suite", "tiny", "--trace", "traces/sort.parquet"),
                    "--suite and --trace")
    _one_line_error(_hwemu("compare", "--suite", "tiny", "--policy", "tpp"), "--suite and --policy")
    _one_line_error(_hwemu("compare", "--traces", "dir"), "--traces goes with --suite")
    r = _hwemu("compare", "--suite", "tiny", "--workers", "2", "--scheduler", "tcp://h:1")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr


def test_a_failed_recording_is_one_line(tmp_path):
    p = _suite(tmp_path, GOOD)
    r = _hwemu("compare", "--suite", p, "--traces", tmp_path / "t", "--out", tmp_path / "o",
               "--quiet", env={"HWEMU": str(tmp_path / "no-hwemu")})
    _one_line_error(r, "suite s: recording bfs failed:", "is not an executable file")
    assert not list((tmp_path / "t").glob("*.parquet")) and not (tmp_path / "o").exists()


def test_recorder_not_found(tmp_path, monkeypatch):
    monkeypatch.setattr(suite_mod, "RECORDER", tmp_path / "traces" / "suite" / "record.py")
    with pytest.raises(HwemuError, match=r"record\.py: not found; --suite needs the source checkout"):
        load_suite(str(_suite(tmp_path, GOOD)))


def test_per_workload_schedule_and_bundled_suites(tmp_path):
    (tmp_path / "bfs-sched.toml").write_text("")
    s = load_suite(str(_suite(tmp_path, GOOD + "[schedule]\nbfs = 'bfs-sched.toml'\n")),
                   tmp_path / "traces")
    by_trace = {}
    for c in s.sweep.cells():
        by_trace.setdefault(Path(c.trace).name, set()).add(c.schedule)
    assert by_trace == {"bfs-tiny.parquet": {"bfs-sched.toml"}, "sort-tiny.parquet": {None}}
    assert s.trace("bfs") == (tmp_path / "traces" / "bfs-tiny.parquet").resolve()

    assert {"tiny", "study"} <= set(suite_mod.bundled_suites())
    tiny = load_suite("tiny")
    assert (tiny.workloads, tiny.scale) == (("bfs", "sort"), "tiny")
    assert len(tiny.sweep.cells()) == 4
    study = load_suite("study")
    assert study.workloads == suite_mod.known_workloads() and study.scale == "small"
    assert study.sweep.machines == ("skx-2s", "skx-2s-cxl")
    assert len(study.sweep.cells()) == 10 * 2 * 4
    # the study's suites: every file loads with its machines, schedules and parameters checked
    assert {"sensitivity", "tiering", "long"} <= set(suite_mod.bundled_suites())
    sens = load_suite("sensitivity")
    assert len(sens.sweep.cells()) == 2 * (1 + 5)       # the baseline once per workload
    assert {c.schedule.rsplit("/", 1)[-1] for c in sens.sweep.cells()} == {
        "gups-small-move.toml", "bfs-small-move.toml"}
    tiering = load_suite("tiering")
    assert {dict(c.params).get("time_compression") for c in tiering.sweep.cells()} == {None, 100}
    assert len(tiering.sweep.cells()) == 4
    assert len(load_suite("long").sweep.cells()) == 3
    for name in suite_mod.bundled_suites():       # every bundled suite's inputs check out
        load_suite(name)
    moves = load_suite("moves")
    assert len(moves.sweep.cells()) == 8 * 2 and all(c.schedule for c in moves.sweep.cells())
    full = load_suite("tiering-full")
    assert full.variant("gups-cxlhot").record_args() == ["gups", "--seed", "10", "--name",
                                                         "gups-cxlhot"]
    assert len(full.sweep.cells()) == 4


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_a_variant_is_recorded_with_its_seed_and_parameters(tmp_path, monkeypatch):
    """[variants.NAME]: the recorder runs the workload with the variant's seed and parameters
    into NAME-SCALE.parquet; a trace recorded from other inputs is refused (one line)."""
    monkeypatch.setenv("HWEMU_CACHE", str(tmp_path / "cache"))
    text = ('workloads = ["gups-hot25"]\nscale = "tiny"\nmachines = ["skx-2s"]\n'
            'policies = ["none"]\n[variants.gups-hot25]\nworkload = "gups"\nseed = 3\n'
            'params = {hot_percent = 25}\n')
    s = load_suite(str(_suite(tmp_path, text)), tmp_path / "traces")
    assert s.variant("gups-hot25").record_args() == [
        "gups", "--seed", "3", "--name", "gups-hot25", "--param", "hot_percent=25"]
    assert s.variant("bfs").record_args() == ["bfs", "--seed", "1"]
    [row] = suite_mod.record_missing(s, quiet=True)
    assert (row["program"], row["params"]) == ("gups -t 4 -s 3 18 300000 25", {"hot_percent": 25})
    assert s.trace("gups-hot25").name == "gups-hot25-tiny.parquet" and s.trace("gups-hot25").is_file()
    assert suite_mod.record_missing(s, quiet=True) == []          # recorded already

    other = load_suite(str(_suite(tmp_path, text.replace("seed = 3", "seed = 4"), "o.toml")),
                       tmp_path / "traces")
    with pytest.raises(HwemuError, match=r"gups-hot25-tiny\.json: gups-hot25-tiny\.parquet was "
                                         r"recorded with seed 3, but suite o asks for 4; remove"):
        suite_mod.record_missing(other, quiet=True)


def test_docs_example_is_valid(tmp_path):
    """The suite file in docs/study.md loads (inputs checked) and has the cells it implies."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "study.md").read_text()
    text = re.search(r"### Suite files\n\n```toml\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "gups-moves.toml").write_text("")
    s = load_suite(str(_suite(tmp_path, text, "my-suite.toml")), tmp_path / "traces")
    assert (s.name, s.workloads, s.scale) == ("my-suite", ("bfs", "gups", "sort"), "small")
    # 3 workloads x 2 machines x 2 seeds x (none + 2 autonuma + tpp + hotness)
    cells = s.sweep.cells()
    assert len(cells) == 3 * 2 * 2 * 5
    assert {c.schedule for c in cells if "gups" in c.trace} == {"gups-moves.toml"}
    assert {c.schedule for c in cells if "gups" not in c.trace} == {None}


def test_variant_figure_axes_and_file(tmp_path):
    """A suite whose variants of one workload differ in an integer parameter gets a figure
    across them: every policy's mean latency and runtime, the baseline included."""
    text = ('workloads = ["g10", "g20", "g30", "bfs"]\nscale = "tiny"\nmachines = ["skx-2s"]\n'
            'policies = ["hotness"]\n'
            + "".join(f'[variants.g{h}]\nworkload = "gups"\nparams = {{hot_percent = {h}, updates = 5}}\n'
                      for h in (10, 20, 30)))
    s = load_suite(str(_suite(tmp_path, text)), tmp_path / "traces")
    assert suite_mod.variant_axes(s) == {
        ("gups", "hot_percent"): {"g10-tiny": 10, "g20-tiny": 20, "g30-tiny": 30}}
    table = pd.DataFrame([
        {"trace": f"g{h}-tiny", "policy": pol, "mean_latency_ns": 40.0 - h / 10 - (pol == "hotness"),
         "sim_time_ns": 1e6 * h} for h in (10, 20, 30) for pol in ("none", "hotness")]
        + [{"trace": "bfs-tiny", "policy": "none", "mean_latency_ns": 1.0, "sim_time_ns": 1.0}])
    [path] = suite_mod.write_variant_figures(s, table, tmp_path / "out")
    assert path == tmp_path / "out" / "figures" / "variant-gups-hot_percent.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one value only, or no variants: no figure
    one = load_suite(str(_suite(tmp_path, GOOD.replace('"sort"', '"g"')
                                + '[variants.g]\nworkload = "gups"\nparams = {hot_percent = 5}\n',
                                "one.toml")), tmp_path / "traces")
    assert suite_mod.variant_axes(one) == {} and suite_mod.variant_axes(load_suite("tiny")) == {}
    assert suite_mod.write_variant_figures(one, table, tmp_path / "o2") == []


def test_move_schedule_generator(tmp_path):
    """traces/suite/move_schedule.py: a baseline run, then a schedule that loads, with the
    trace's threads on socket 0 and a move of each to socket 1 after the first touches."""
    from hwemu.linux.schedule import load_schedule
    from hwemu.machine.config import load_machine
    from hwemu.machine.system import Machine
    from hwemu.sim.hardware import MachineHardware

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "m.toml"
    p = subprocess.run([sys.executable, str(root / "traces" / "suite" / "move_schedule.py"), "threads",
                        str(root / "traces" / "threads.parquet"), str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    row = json.loads(p.stdout)
    assert row["tids"] == [0, 1, 2, 3, 4] and 0 < row["touched_ms"] < row["move_at_ms"]
    sched = load_schedule(out, MachineHardware(Machine(load_machine("skx-2s"), threads=5)))
    assert [t.cpu for t in sched.threads] == [0, 1, 2, 3, 4]
    assert [(e.action, e.args["cpu"], e.at_ps) for e in sched.events] == [
        ("move_thread", 24 + i, row["move_at_ms"] * 10**9) for i in range(5)]
    bad = subprocess.run([sys.executable, str(root / "traces" / "suite" / "move_schedule.py"), "x",
                          str(tmp_path / "none.parquet"), str(tmp_path / "x.toml")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("move_schedule.py: error: ")
    assert bad.stderr.count("\n") == 1 and not (tmp_path / "x.toml").exists()
