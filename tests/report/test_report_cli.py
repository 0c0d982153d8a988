"""Command-line contracts of hwemu compare / hwemu sweep that need no simulation."""

import subprocess
import sys

import pytest

from report_fakes import FailingRunner, fake_runner, markers

from hwemu.errors import HwemuError
from hwemu.report.compare import compare
from hwemu.report.sweep import run_sweep


def hwemu(*args):
    return subprocess.run([sys.executable, "-m", "hwemu", *args], capture_output=True,
                          text=True, timeout=120)


def test_help_lists_commands_with_examples():
    r = hwemu("--help")
    assert r.returncode == 0 and "compare" in r.stdout and "sweep" in r.stdout
    for cmd in ("compare", "sweep"):
        r = hwemu(cmd, "--help")
        assert r.returncode == 0 and "example" in r.stdout and "--json" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["compare", "--trace", "a.parquet", "--param", "novalue"], "--param 'novalue'"),
    (["compare", "--trace", "a.parquet", "--param", ":k=v"], "--param ':k=v'"),
    (["compare", "--trace", "a.parquet", "--seed", "-1"], "--seed -1"),
    (["sweep", "x.toml"], "--out"),
    (["sweep", "x.toml", "--out", "o", "--workers", "2", "--scheduler", "tcp://x:1"],
     "not allowed with"),
])
def test_usage_errors_exit_2(args, words, tmp_path):
    r = subprocess.run([sys.executable, "-m", "hwemu", *args], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_progress_lines_when_stderr_is_not_a_tty(tmp_path, capsys):
    """Without a terminal (a pipe, nohup, CI) compare prints one line per finished cell with
    elapsed and remaining time; with quiet, nothing."""
    compare(machines=["m"], traces=["a.parquet"], policies=["tpp"], quiet=False,
            runner=fake_runner)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2                                  # none (the baseline) and tpp
    assert lines[0].startswith("hwemu: compare: cell 1/2 done (a, ")
    assert "elapsed 0:00, about" in lines[0] and "left" in lines[0]
    assert lines[1].startswith("hwemu: compare: cell 2/2 done (a, ") and "left" not in lines[1]
    compare(machines=["m"], traces=["a.parquet"], policies=["tpp"], quiet=True,
            runner=fake_runner)
    assert capsys.readouterr().err == ""


def test_sweep_cell_user_error_keeps_finished_cells(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('machines = ["m"]\ntraces = ["a.parquet"]\npolicies = ["tpp", "hotness"]\n')
    m = tmp_path / "markers"
    m.mkdir()
    with pytest.raises(HwemuError, match=r"1 of 3 cells failed.*a.parquet: no such file"):
        run_sweep(sweep, tmp_path / "out", workers=1, runner=FailingRunner(m, "hotness"))
    assert len(list((tmp_path / "out" / "cells").glob("*.zip"))) == 2
    assert len(markers(m)) == 2                 # user errors are not retried
    assert not (tmp_path / "out" / "results.csv").exists()
