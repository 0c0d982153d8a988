"""The study suite's driver (traces/suite/record.py) at the tiny scale: one of the suite's own C
programs and one Debian program (coreutils sort, always installed) built, run, recorded and
checked; the C programs' results do not depend on the number of threads; bad arguments and a
failed check (one line, exit status 2, nothing left behind)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hwemu.traces.info import trace_info

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "traces" / "suite"
HWEMU = Path(sys.executable).with_name("hwemu")

pytestmark = [
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed"),
]


def _driver(tool_cache, *args):
    env = dict(os.environ, HWEMU=str(HWEMU), HWEMU_CACHE=str(tool_cache))
    return subprocess.run([sys.executable, str(SUITE / "record.py"), *map(str, args)],
                          capture_output=True, text=True, env=env)


def test_record_bfs_and_sort_tiny(tmp_path, tool_cache):
    p = _driver(tool_cache, "bfs", "sort", "--scale", "tiny", "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["workload"] for r in rows] == ["bfs", "sort"]
    for r in rows:
        trace = tmp_path / f"{r['workload']}-tiny.parquet"
        assert Path(r["trace"]) == trace
        info = trace_info(trace)
        assert info["records"] == r["records"] > 100_000
        assert info["records_by_kind"]["I"] == 0 and info["extra"]["data_only"] is True
        assert info["extra"]["exit_status"] == 0
        assert r["footprint_mib"] == round(info["data_pages_4k"] * 4096 / (1 << 20), 1)
        assert r["records_per_s"] > 0 and r["native_s"] > 0 and r["slowdown"] > 1
        assert r["bytes_per_record"] == round(info["bytes_on_disk"] / info["records"], 3)
        assert json.loads((tmp_path / f"{r['workload']}-tiny.json").read_text()) == r
    bfs, srt = rows
    assert bfs["threads"] == 5                     # main + 4 workers
    assert bfs["program"] == "graph -t 4 -s 1 bfs 12 16 2"
    assert srt["program"].startswith("sort --parallel=4 ")
    # nothing else left behind: no work directories, no temporary files
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "bfs-tiny.json", "bfs-tiny.parquet", "sort-tiny.json", "sort-tiny.parquet"]


@pytest.mark.parametrize("argv", [
    ["graph", "bfs", "11", "8"],
    ["graph", "pagerank", "11", "8"],
    ["hashjoin", "5000", "20000"],
    ["kvstore", "5000", "30000"],
])
def test_results_do_not_depend_on_threads(tmp_path, argv):
    prog, args = argv[0], argv[1:]
    exe = tmp_path / prog
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(exe), str(SUITE / "src" / f"{prog}.c"), "-lm"],
                   check=True)
    outs = {subprocess.run([str(exe), "-t", t, "-s", "7", *args], capture_output=True, text=True,
                           check=True).stdout for t in ("1", "3", "4")}
    assert len(outs) == 1 and outs.pop().strip()
    other_seed = subprocess.run([str(exe), "-s", "8", *args], capture_output=True, text=True, check=True).stdout
    assert other_seed.strip()


def test_bad_arguments(tmp_path, tool_cache):
    p = _driver(tool_cache, "nosuch", "--out", tmp_path / "o")
    assert p.returncode == 2
    assert p.stderr.startswith("record.py: error: unknown workload 'nosuch'") and p.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())

    exe = tmp_path / "gups"
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(exe), str(SUITE / "src" / "gups.c"), "-lm"], check=True)
    q = subprocess.run([str(exe), "40", "10"], capture_output=True, text=True)
    assert q.returncode == 2
    assert q.stderr == f"{exe}: error: LOG2_WORDS must be an integer in 10..36, got '40'\n"


def test_a_failed_check_leaves_no_trace(tmp_path, tool_cache, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("suite_record", SUITE / "record.py")
    record = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "suite_record", record)     # dataclasses look the module up
    spec.loader.exec_module(record)
    monkeypatch.setenv("HWEMU", str(HWEMU))
    monkeypatch.setenv("HWEMU_CACHE", str(tool_cache))
    monkeypatch.setitem(record.WORKLOADS["gups"].scales["tiny"], "mib", (100, 200))
    assert record.main(["gups", "--scale", "tiny", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"record\.py: error: gups: [0-9.]+ MiB of data pages, expected 100\.\.200 MiB "
                        r"at scale tiny\n", err), err
    assert list(tmp_path.iterdir()) == []


def test_a_variant_with_its_own_parameters_and_name(tmp_path, tool_cache):
    """--param overrides the scale's parameters (the size bounds are then not checked) and
    --name names the files; the JSON row records both."""
    p = _driver(tool_cache, "gups", "--scale", "tiny", "--seed", "3", "--param", "hot_percent=25",
                "--param", "log2_words=21", "--name", "gups-hot25", "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    row = json.loads(p.stdout)
    assert row["program"] == "gups -t 4 -s 3 21 300000 25"
    assert (row["seed"], row["params"]) == (3, {"hot_percent": 25, "log2_words": 21})
    assert 16 <= row["footprint_mib"] <= 17          # 2^21 words: past tiny's bound of 8 MiB
    assert sorted(f.name for f in tmp_path.iterdir()) == ["gups-hot25-tiny.json",
                                                          "gups-hot25-tiny.parquet"]
    assert json.loads((tmp_path / "gups-hot25-tiny.json").read_text()) == row


@pytest.mark.parametrize("args, message", [
    (["--param", "hot_percent=x"], "--param hot_percent=x: expected an integer"),
    (["--param", "hot=1"], "--param hot: not a parameter of gups (its parameters: hot_percent, "
                           "hot_update_percent, log2_words, updates)"),
    (["--param", "records_min=1"], "--param records_min: not a parameter of gups"),
    (["--param", "updates"], "--param 'updates': expected KEY=VALUE"),
    (["--param", "updates=-3"], "--param updates=-3: must not be negative"),
    (["--name", "a/b"], "--name 'a/b': use letters, digits"),
    (["bfs", "--name", "x"], "--param and --name need exactly one workload"),
])
def test_bad_variant_arguments(tmp_path, tool_cache, args, message):
    p = _driver(tool_cache, "gups", *args, "--scale", "tiny", "--out", tmp_path / "o")
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith(f"record.py: error: {message}") and p.stderr.count("\n") == 1, p.stderr
    assert not (tmp_path / "o").exists()
