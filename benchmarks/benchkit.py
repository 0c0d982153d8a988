"""Shared by the benchmarks: synthetic traces made once and kept in a work directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def synth_cached(workdir, name: str, kind: str, *options: str) -> Path:
    """``workdir/name``, made by ``hwemu trace synth KIND OPTIONS...`` if it is not there yet
    (written under another name first, so that an interrupted run leaves no partial trace)."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / name
    if not path.exists():
        tmp = path.with_name("partial-" + path.name)
        subprocess.run([sys.executable, "-m", "hwemu", "trace", "synth", kind, *options,
                        "--out", str(tmp)], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        tmp.rename(path)
    return path
