"""hwemu sweep: the TOML file, resume, and a worker killed in the middle of a cell."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from report_fakes import CountingRunner, fake_runner, markers

from hwemu.errors import HwemuError
from hwemu.report.sweep import load_sweep, run_sweep

SWEEP = """\
machines = ["skx-2s"]
traces = ["t/matmul.parquet"]
policies = ["autonuma", "tpp"]
seeds = [0, 1]
[params]
bias = [0, 5]
"""


def write(tmp_path, text, name="sweep.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_parse_and_cells(tmp_path):
    spec = load_sweep(write(tmp_path, SWEEP), check=False)
    cells = spec.cells()
    # (none + 2 policies) x 2 seeds x 2 bias values
    assert len(cells) == 12
    assert {c.policy for c in cells} == {"none", "autonuma", "tpp"}
    assert {c.params for c in cells} == {(("bias", 0),), (("bias", 5),)}
    assert spec.base_dir == str(tmp_path.resolve())


def test_policy_params_are_crossed_with_their_policy_only(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"")
    spec = load_sweep(write(tmp_path, """\
machines = ["skx-2s"]
traces = ["a.parquet"]
policies = ["autonuma", "tpp"]
[params]
window = ["1us", "2us"]
[params.tpp]
hot_threshold = ["1ms", "10ms", "1s"]
"""))
    cells = spec.cells()
    by_policy = {}
    for c in cells:
        by_policy.setdefault(c.policy, []).append(dict(c.params))
    # none and autonuma: one cell per shared value; tpp: shared x own
    assert sorted(d["window"] for d in by_policy["none"]) == ["1us", "2us"]
    assert len(by_policy["autonuma"]) == 2 and len(by_policy["tpp"]) == 6
    assert all(set(d) == {"window"} for d in by_policy["none"] + by_policy["autonuma"])


@pytest.mark.parametrize("text, key", [
    ('traces = ["a"]\npolicies = ["tpp"]\n', "'machines' is missing"),
    ('machines = []\ntraces = ["a"]\npolicies = ["tpp"]\n', "'machines' must be"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = [1]\n', "'policies' must be"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp"]\nseeds = [-1]\n', "'seeds'"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp"]\nworkers = 3\n', "unknown key 'workers'"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp"]\n[params]\nx = []\n', "'params.x'"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp"]\n[params]\nx = [{a=1}]\n', "'params.x'"),
    ('machines = ["m"]\ntraces = ["a", "a"]\npolicies = ["tpp"]\n', "'traces' lists a name twice"),
    ('machines = ["nope"]\ntraces = ["a"]\npolicies = ["tpp"]\n', "key 'machines': unknown machine 'nope'"),
    ('machines = ["m"]\ntraces = ["a", "b"]\npolicies = ["tpp"]\n', "key 'traces': b: no such trace file"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp"]\nschedule = "s.toml"\n',
     "key 'schedule': s.toml: no such schedule file"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp"]\n[params]\nscan_size = ["1MiB"]\n',
     "key 'params.scan_size': not a parameter of the run"),
    ('machines = ["m"\n', "not valid TOML"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp", "lru"]\n',
     "key 'policies': unknown policy 'lru'"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp"]\n[params.tpp]\nscan_sise = ["1s"]\n',
     "key 'params.tpp.scan_sise': .*unknown parameter 'scan_sise'"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp"]\n[params.tpp]\nscan_size = ["1s"]\n',
     "key 'params.tpp.scan_size': .*unknown size unit"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp"]\n[params.hotness]\nx = [1]\n',
     "'params.hotness'.*not in 'policies'"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp", "none"]\n[params.none]\nx = [1]\n',
     "'params.none'"),
    ('machines = ["m"]\ntraces = ["a"]\npolicies = ["tpp"]\n[params]\nx = [1]\n'
     '[params.tpp]\nx = [2]\n', "'params.tpp.x'"),
])
def test_bad_toml(tmp_path, text, key):
    (tmp_path / "a").write_bytes(b"")
    p = write(tmp_path, text.replace('machines = ["m"]', 'machines = ["skx-2s"]'))
    with pytest.raises(HwemuError, match=key) as exc:
        load_sweep(p)
    assert str(p) in str(exc.value)


def test_bad_toml_cli_exit_2(tmp_path):
    p = write(tmp_path, 'machines = ["m"]\ntraces = ["a"]\npolicies = "tpp"\nretries = -1\n')
    r = subprocess.run([sys.executable, "-m", "hwemu", "sweep", str(p), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "retries" in r.stderr and str(p) in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    r = subprocess.run([sys.executable, "-m", "hwemu", "sweep", str(tmp_path / "nope.toml"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_resume_runs_only_missing_cells(tmp_path):
    sweep = write(tmp_path, SWEEP)
    m = tmp_path / "markers"
    m.mkdir()
    out = tmp_path / "out"
    r1 = run_sweep(sweep, out, workers=2, runner=CountingRunner(m))
    assert (r1.cells, r1.ran, r1.skipped) == (12, 12, 0)
    assert len(markers(m)) == 12
    csv1 = (out / "results.csv").read_bytes()
    html1 = (out / "report.html").read_bytes()

    cells = sorted((out / "cells").glob("*.zip"))
    assert len(cells) == 12
    victim = pd.read_csv(out / "results.csv").query("policy == 'tpp' and seed == 1").iloc[0]
    (out / "cells" / f"{victim['cell']}.zip").unlink()

    r2 = run_sweep(sweep, out, workers=2, runner=CountingRunner(m))
    assert (r2.cells, r2.ran, r2.skipped) == (12, 1, 11)
    new = markers(m)
    assert len(new) == 13                     # exactly one more run of the runner...
    extra = [n for n in new
             if n.startswith(f"matmul-skx-2s-tpp-1-___bias___{victim['param.bias']}__.")]
    assert len(extra) == 2                    # ...and it was the deleted cell
    assert (out / "results.csv").read_bytes() == csv1
    assert (out / "report.html").read_bytes() == html1


def test_worker_killed_mid_cell(tmp_path):
    sweep = write(tmp_path, 'machines = ["skx-2s"]\ntraces = ["t/sort.parquet"]\n'
                            'policies = ["tpp"]\nseeds = [0, 1]\n')
    m = tmp_path / "markers"
    m.mkdir()
    killed = {}

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = markers(m)
            if found:
                name = found[0]
                # the pid from the marker's name: the file may not hold it yet (written
                # after it is created)
                pid = int(name.split(".")[1])
                time.sleep(0.3)               # well inside the runner's 3 s sleep
                os.kill(pid, signal.SIGKILL)
                killed["name"], killed["pid"] = name, pid
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    res = run_sweep(sweep, tmp_path / "out", workers=2, runner=CountingRunner(m, delay_s=3.0))
    t.join(timeout=5)
    assert "pid" in killed, "no cell started"
    assert (res.cells, res.ran) == (4, 4)
    assert len(list((tmp_path / "out" / "cells").glob("*.zip"))) == 4
    assert len(pd.read_csv(tmp_path / "out" / "results.csv")) == 4
    runs = markers(m)
    cell_of = killed["name"].split(".")[0]
    again = [n for n in runs if n.split(".")[0] == cell_of]
    assert len(again) == 2                    # the killed cell ran a second time
    assert any(int(n.split(".")[1]) != killed["pid"] for n in again)
    assert len(runs) == 5                     # 4 cells + 1 re-run; nothing else lost


def test_existing_scheduler(tmp_path):
    import logging

    from distributed import LocalCluster

    sweep = write(tmp_path, 'machines = ["m"]\ntraces = ["a.parquet"]\npolicies = ["tpp"]\n')
    m = tmp_path / "markers"
    m.mkdir()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        res = run_sweep(sweep, tmp_path / "out", scheduler=cluster.scheduler_address,
                        runner=CountingRunner(m))
        assert (res.cells, res.ran) == (2, 2)
        assert len(cluster.scheduler.workers) == 1      # the cluster outlives the sweep
    assert len(markers(m)) == 2


def test_unreachable_scheduler(tmp_path):
    sweep = write(tmp_path, 'machines = ["m"]\ntraces = ["a.parquet"]\npolicies = ["tpp"]\n')
    with pytest.raises(HwemuError, match="--scheduler tcp://127.0.0.1:9: cannot connect"):
        run_sweep(sweep, tmp_path / "out", scheduler="tcp://127.0.0.1:9", connect_timeout="2s",
                  runner=fake_runner)


def test_docs_example_is_valid(tmp_path):
    """The sweep file in docs/sweep.md loads (inputs checked) and has the cells it claims."""
    import re

    repo = Path(__file__).resolve().parents[2]
    doc = (repo / "docs" / "sweep.md").read_text()
    text = re.search(r"```toml\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "traces").mkdir()
    for name in ("matmul", "sort"):
        (tmp_path / "traces" / f"{name}.parquet").write_bytes(b"")
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "sched.toml").write_text("")
    spec = load_sweep(write(tmp_path / "exp", text))
    assert len(spec.cells()) == 128


def test_running_cells_report_their_progress(tmp_path):
    """A real cell's worker sends its progress (records, simulated time) to the sweep, which
    prints it while the cell runs (one line per report period without a terminal)."""
    repo = Path(__file__).resolve().parents[2]
    sweep = write(tmp_path, f'machines = ["skx-2s"]\ntraces = ["{repo}/traces/sort.parquet"]\n'
                            'policies = ["autonuma"]\n')
    env = dict(os.environ, HWEMU_PROGRESS_PERIOD="0.05")
    r = subprocess.run([sys.executable, "-m", "hwemu", "sweep", str(sweep), "--out",
                        str(tmp_path / "out"), "--workers", "1"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    running = [ln for ln in r.stderr.splitlines() if ": running sort on skx-2s, " in ln]
    assert running, r.stderr
    assert all(ln.startswith("hwemu: sweep: running sort on skx-2s, ") and
               "% of its records, " in ln and " simulated; elapsed " in ln for ln in running)
    pct = [int(ln.split(": ")[3].split("%")[0]) for ln in running]
    assert all(0 <= p <= 100 for p in pct)
    # quiet: no progress at all
    r = subprocess.run([sys.executable, "-m", "hwemu", "sweep", str(sweep), "--out",
                        str(tmp_path / "out2"), "--workers", "1", "--quiet"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "running" not in r.stderr, r.stderr


def test_cell_progress_formats():
    from hwemu.report.compare import LineProgress
    from hwemu.report.sweep import _CellWatch
    import io

    buf = io.StringIO()
    bar = LineProgress(3, "suite x", file=buf)
    w = _CellWatch(bar, {"abc": "gups on m, tpp"})
    w.every = 0.0
    w.event((0.0, {"cell": "abc", "done": 50, "total": 200, "sim_ps": 1_500_000_000_000}))
    w.event((0.0, {"cell": "zzz", "done": 1, "total": 2, "sim_ps": 0}))      # not this sweep's
    w.finished("abc")
    w.event((0.0, {"cell": "abc", "done": 60, "total": 200, "sim_ps": 0}))   # after it finished
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("hwemu: suite x: running gups on m, tpp: 25% of its records, "
                               "1.5 s simulated; elapsed ")
