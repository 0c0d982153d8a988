"""Reference runs for the cachesim acceptance tests: cachegrind itself, and the trace of the
same program (the project's recorder when available, else Valgrind's lackey tool)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from hwemu.cachesim.sim import EVENTS
from hwemu.traces.format import TraceChunk

VALGRIND = shutil.which("valgrind")

# A fixed, small environment so both runs see exactly the same process image.
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C", "LC_ALL": "C", "HOME": "/tmp", "TERM": "dumb"}


def cachegrind_counts(argv, cwd, I1, D1, LL, env=CLEAN_ENV, tmp: Path | None = None) -> dict:
    """Run ``argv`` under cachegrind with the given geometry; the nine summary counters."""
    out = Path(tmp or cwd) / "cachegrind.out.ref"
    cmd = [VALGRIND, "--tool=cachegrind", "--cache-sim=yes", "--branch-sim=no",
           f"--I1={I1}", f"--D1={D1}", f"--LL={LL}", f"--cachegrind-out-file={out}",
           "--log-file=/dev/null", *argv]
    subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   check=True)
    return parse_cachegrind_out(out)


def parse_cachegrind_out(path) -> dict:
    events = summary = None
    for line in Path(path).read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            summary = [int(x) for x in line.split()[1:]]
    assert events is not None and summary is not None, f"{path}: no events/summary line"
    d = dict(zip(events, summary))
    return {e: d[e] for e in EVENTS}


_LACKEY_RE = re.compile(rb"^(I | L| S| M) +([0-9a-fA-F]+),([0-9]+)$", re.M)
_KIND = {b"I ": 0, b" L": 1, b" S": 2, b" M": 3}


def parse_lackey(text: bytes) -> TraceChunk:
    """The records of a ``valgrind --tool=lackey --trace-mem=yes`` log (no thread ids)."""
    found = _LACKEY_RE.findall(text)
    kind = np.fromiter((_KIND[k] for k, _, _ in found), np.uint8, len(found))
    addr = np.fromiter((int(a, 16) for _, a, _ in found), np.uint64, len(found))
    size = np.fromiter((int(s) for _, _, s in found), np.uint16, len(found))
    return TraceChunk.from_arrays(kind, addr, size)


def lackey_trace(argv, cwd, env=CLEAN_ENV, tmp: Path | None = None) -> TraceChunk:
    log = Path(tmp or cwd) / "lackey.log"
    cmd = [VALGRIND, "--tool=lackey", "--trace-mem=yes", f"--log-file={log}", *argv]
    subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   check=True)
    return parse_lackey(log.read_bytes())


def project_recorder():
    """``hwemu.traces.record.record_trace`` if the project's recorder is present, else None."""
    try:
        from hwemu.traces.record import record_trace  # type: ignore
    except ImportError:
        return None
    return record_trace


def record_with_project(argv, out, cwd, env=CLEAN_ENV, tool="hwtrace"):
    """Record ``argv`` with ``hwemu trace record`` into ``out``, run with the same cwd, env,
    stdin and stdout as the cachegrind reference run."""
    cmd = [sys.executable, "-m", "hwemu", "trace", "record", "--tool", tool, "--out", str(out),
           "--", *argv]
    subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   check=True)
