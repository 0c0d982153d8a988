"""One line on stderr when hwemu's numba kernels compile, none when nothing compiles."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import numba
import hwemu.jitcache  # installs the notice
def f(x):
    return x + 1
def g(x):
    return x * 2
f.__module__ = "hwemu.notice_probe"
g.__module__ = "hwemu.notice_probe"
numba.njit(f)(1)
numba.njit(g)(1)        # a second compilation in the same process: no second line
def h(x):
    return x - 1
numba.njit(h)(1)        # not hwemu's: no line
"""


def _run(code, **env):
    e = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    e.pop("HWEMU_NO_COMPILE_NOTICE", None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                          timeout=300)


def test_one_line_when_kernels_compile():
    r = _run(PROBE)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwemu: compiling the numba kernels")


def test_no_line_without_compilation():
    r = _run("import hwemu.jitcache, hwemu.machine.config; print('ok')")
    assert r.returncode == 0 and r.stdout.strip() == "ok" and r.stderr == ""
