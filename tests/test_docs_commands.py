"""The tour works as written: every `hwemu ...` command in a shell block of README.md and
docs/*.md is run, from a copy of the repository's bundled files, and must exit 0.

Synopsis lines (with `[...]`, `A|B` or upper-case placeholders) are usage, not commands. A few
commands are not run here, each for a stated reason; the rest run exactly as written, with
the placeholders of docs/traces.md and docs/sweep.md replaced by files made from the bundled
inputs."""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: command prefix -> why it is not run by this test
NOT_RUN = {
    "hwemu compare  ": "the whole bundled demo (minutes): README set-up command 1 runs it, and "
    "tests/integration/test_demo.py runs its cells",
    "hwemu compare --suite": "records the suite's workloads under Valgrind, then a Dask "
    "cluster: tests/report/test_compare_suite.py runs the tiny suite through the CLI, twice",
    "hwemu dma calibrate": "Icarus over 24 points: tests/dma/test_dma_calibration.py runs the "
    "same calibration (hwemu.dma.calibrate) on fewer points",
    "hwemu sweep sweep.toml --out /shared/sweep-out --scheduler": "needs a Dask scheduler on "
    "another host (tests/report/test_sweep.py runs a scheduler address on this one)",
    "hwemu sweep sweep.toml --out sweep-out --workers 8": "8 worker processes on 2 cores; the "
    "same sweep with 2 workers is run",
    "python benchmarks/mlc_mixed.py": "about two minutes; tests/machine/test_mlc.py "
    "checks the read-write modes it measures",
    "python -m hwemu.machine.validation": "about 2 minutes; tests/machine/test_mlc.py checks "
    "the idle and loaded-latency figures it tabulates",
    "python traces/demo/make_demo.py": "rewrites the bundled demo traces",
    "hwemu trace record --allow-failure --out crash.parquet -- ./crashes": "a hypothetical "
    "crashing program; tests/traces/test_trace_record.py records a failing one",
}

#: placeholder files of the docs, made from bundled inputs
SUBST = {
    "./a.out arg1": "/bin/true",
    "sort -n numbers.txt": "sort -n -S 1M numbers.txt",
}

SYNOPSIS = re.compile(r"\[|\||\b(TRACE|FILE|DIR|SWEEP|ADDRESS|NAME|M|N|T|S,A,L)\b")


def _commands() -> list[tuple[str, str]]:
    out = []
    files = ["README.md"] + sorted(str(Path(p).relative_to(ROOT))
                                   for p in glob.glob(str(ROOT / "docs" / "*.md")))
    for f in files:
        text = (ROOT / f).read_text()
        for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
            if lang not in ("", "sh", "bash"):
                continue
            # join continuation lines
            body = re.sub(r"\\\n\s*", " ", body)
            for line in body.splitlines():
                cmd = line.split("  #")[0].strip()
                if not (cmd.startswith("hwemu ") or cmd.startswith("python ")):
                    continue
                if SYNOPSIS.search(cmd):
                    continue
                out.append((f, cmd))
    return out


COMMANDS = _commands()


def _skip_reason(cmd: str) -> str | None:
    for prefix, why in NOT_RUN.items():
        if (cmd + "  ").startswith(prefix):
            return why
    return None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch copy of what the commands read: traces/, docs/examples/, plus the inputs the
    docs' placeholders name (a lackey log, numbers.txt, a sweep file next to the traces)."""
    w = tmp_path_factory.mktemp("tour")
    shutil.copytree(ROOT / "traces", w / "traces")
    shutil.copytree(ROOT / "docs" / "examples", w / "docs" / "examples")
    (w / "numbers.txt").write_text("\n".join(str((i * 7919) % 1000) for i in range(2000)) + "\n")
    lackey = subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", "/bin/true"],
                            capture_output=True, text=True)
    if lackey.returncode == 0:
        import lzma

        (w / "lackey.log.xz").write_bytes(lzma.compress(lackey.stderr.encode()))
    # docs/sweep.md's sweep.toml, shrunk to the bundled traces it names and one policy
    (w / "sweep.toml").write_text('machines = ["skx-2s"]\ntraces = ["traces/sort.parquet"]\n'
                                  'policies = ["autonuma"]\n')
    return w


@pytest.mark.slow
@pytest.mark.parametrize("where,cmd", COMMANDS, ids=[c for _, c in COMMANDS])
def test_command_runs_as_written(workdir, where, cmd):
    why = _skip_reason(cmd)
    if why:
        pytest.skip(why)
    for a, b in SUBST.items():
        cmd = cmd.replace(a, b)
    argv = shlex.split(cmd)
    if argv[0] == "hwemu":
        argv = [sys.executable, "-m", "hwemu"] + argv[1:]
    elif argv[0] == "python":
        argv = [sys.executable] + argv[1:]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{where}: {cmd}\n{r.stderr[-2000:]}"


def test_the_tour_is_found():
    cmds = [c for f, c in COMMANDS if f == "README.md"]
    assert any(c.startswith("hwemu run --machine skx-2s traces/threads.parquet --schedule")
               for c in cmds)
    assert len(cmds) >= 11
