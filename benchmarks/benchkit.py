"""Shared by the benchmarks: the command line of ``hwemu`` in this interpreter, and synthetic
traces made once and kept in a work directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def hwemu(*args: str) -> list[str]:
    """The command line running ``hwemu ARGS...`` with this interpreter (the same install the
    benchmark imports)."""
    return [sys.executable, "-c", "import sys; from hwemu.cli import main; sys.exit(main())",
            *args]


def synth_cached(workdir, name: str, kind: str, *options: str) -> Path:
    """``workdir/name``, made by ``hwemu trace synth KIND OPTIONS...`` if it is not there yet
    (written under another name first, so that an interrupted run leaves no partial trace)."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / name
    if not path.exists():
        tmp = path.with_name("partial-" + path.name)
        subprocess.run(hwemu("trace", "synth", kind, *options, "--out", str(tmp)), check=True,
                       stdout=subprocess.DEVNULL, cwd=ROOT)
        tmp.rename(path)
    return path


def parse_size(s: str) -> int:
    """A size or a count as the benchmarks take them: ``64MiB`` (binary units), ``100k``, ``1M``
    (decimal), or a plain integer."""
    s = s.strip()
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "k": 1000, "M": 10**6, "G": 10**9}
    for u, m in units.items():
        if s.endswith(u):
            return int(float(s[: -len(u)]) * m)
    return int(s)
