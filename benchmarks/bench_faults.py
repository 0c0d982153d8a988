#!/usr/bin/env python3
"""Host time per page fault (first touch), machine-only and with the OS model.

    python benchmarks/bench_faults.py [--machine skx-2s] [--records 2M] [--threads 1,4]
        [--small 1MiB] [--big 128MiB] [--modes machine,first-touch,autonuma] [--cpus LIST]
        [--workdir DIR] [--json]

Traces come from ``hwemu trace synth random`` (same records and seed; a small and a big
footprint), cached in --workdir. Each is replayed by ``hwemu run`` in a subprocess:

- ``machine``: no OS model (the machine's own first-touch handler);
- ``first-touch``: the OS model with ``--policy first-touch``;
- ``autonuma``: ``--policy autonuma --param scan_delay=100us --param scan_period_min=100us
  --param scan_size=64MiB`` (NUMA hinting faults on top of first touches).

``--cpus`` places the threads (``hwemu run --cpus``; default CPU i for thread i, all on
socket 0): ``--threads 8 --cpus 0-3,24-27 --records 200k --modes autonuma`` is the case that
hurts most, threads on both sockets sharing every page, where nearly every access takes a
hinting fault and a third of them migrate a page.

Reported per (threads, mode): host seconds of both runs, faults of both runs (all kinds),
host us per extra fault = ``(t_big - t_small) / (faults_big - faults_small)`` (start-up, the
same number of accesses and compilation cancel) and accesses/s of the big run. Numbers are
host time on whatever machine runs this: compare before/after on the same one.

Also reported (``--clears N``, default 20000; 0 skips it), in-process: the host time of the
OS model's page clear alone, the largest part of a first touch with the OS model: ``N``
clears of distinct 4 KiB frames of node 0, each a copy of 64 lines from the node's zero page
through coherence, links and the memory controllers (``Machine.copy_lines``, the copy window
the kernel uses), one after another on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchkit import hwemu, synth_cached

MODES = {
    "machine": [],
    "first-touch": ["--policy", "first-touch"],
    "autonuma": ["--policy", "autonuma", "--param", "scan_delay=100us",
                 "--param", "scan_period_min=100us", "--param", "scan_size=64MiB"],
}


def trace(workdir: Path, records: str, footprint: str, threads: int) -> Path:
    return synth_cached(workdir, f"random-{records}-{footprint}-t{threads}.parquet", "random",
                        "--records", records, "--footprint", footprint,
                        "--threads", str(threads))


def run(machine: str, path: Path, mode: str, cpus: str | None = None) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    where = ["--cpus", cpus] if cpus else []
    out = subprocess.run(hwemu("run", "--machine", machine, *where, str(path), *MODES[mode],
                               "--json"),
                         check=True, capture_output=True, text=True).stdout
    dt = time.perf_counter() - t0
    r = json.loads(out)
    faults = sum(int(v) for v in r.get("faults", {}).values())
    return dt, faults, int(r["accesses"])


def page_clears(machine: str, n: int) -> float:
    """Host us per page clear (see the module docstring)."""
    import numpy as np

    from hwemu.machine.system import Machine

    m = Machine(machine)
    window = m.config.lfb + m.config.os.copy_prefetch_lines
    src = m.phys_addr(0, 0)
    frames = np.random.default_rng(1).choice(np.arange(1, m.node_frames(0)), n + 1,
                                             replace=False)
    t = m.copy_lines(0, src, m.phys_addr(0, int(frames[0])), 4096, 0, window)   # compiles
    t0 = time.perf_counter()
    for f in frames[1:].tolist():
        t = m.copy_lines(0, src, m.phys_addr(0, f), 4096, t, window)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--machine", default="skx-2s")
    ap.add_argument("--records", default="2M")
    ap.add_argument("--threads", default="1,4")
    ap.add_argument("--small", default="1MiB")
    ap.add_argument("--big", default="128MiB")
    ap.add_argument("--modes", default="machine,first-touch,autonuma")
    ap.add_argument("--cpus", help="CPUs of the threads (hwemu run --cpus), e.g. 0-3,24-27")
    ap.add_argument("--workdir", default="/tmp/hwemu-bench-faults")
    ap.add_argument("--clears", type=int, default=20000,
                    help="page clears timed in-process (0: none)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    wd = Path(a.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    # warm-up: compile (or load) the numba kernels once, outside the timings
    w = trace(wd, "10k", a.small, 1)
    run(a.machine, w, "first-touch")
    rows = []
    for th in [int(x) for x in a.threads.split(",")]:
        small = trace(wd, a.records, a.small, th)
        big = trace(wd, a.records, a.big, th)
        for mode in a.modes.split(","):
            ts, fs, _ = run(a.machine, small, mode, a.cpus)
            tb, fb, acc = run(a.machine, big, mode, a.cpus)
            per = (tb - ts) / (fb - fs) * 1e6 if fb > fs else float("nan")
            row = {"threads": th, "mode": mode, "records": a.records, "t_small_s": round(ts, 3),
                   "t_big_s": round(tb, 3), "faults_small": fs, "faults_big": fb,
                   "us_per_extra_fault": round(per, 2), "accesses_per_s_big": round(acc / tb)}
            rows.append(row)
            if not a.json:
                print(f"threads={th} {mode:12s} small {ts:7.2f}s {fs:7d} faults  big {tb:7.2f}s "
                      f"{fb:7d} faults  {per:9.2f} us/extra fault  {acc / tb:12,.0f} acc/s",
                      flush=True)
    clear_us = round(page_clears(a.machine, a.clears), 2) if a.clears > 0 else None
    if clear_us is not None and not a.json:
        print(f"page clear (64 lines from the zero page, in-process): {clear_us:.2f} us each")
    if a.json:
        print(json.dumps({"machine": a.machine, "rows": rows, "page_clear_us": clear_us},
                         indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
