#!/usr/bin/env python3
"""Replay speed of the timing model: accesses per second of a full timing replay of a
single-threaded real-program trace on skx-2s (one core, after compilation).

    python benchmarks/bench_replay.py [TRACE] [--machine skx-2s] [--repeat 3]

Compilation is excluded (a first, short replay compiles or loads the cached kernels). The
trace is decoded before timing; the timed part is the replay loop plus first-touch fault
handling in Python, exactly what ``hwemu run`` does per chunk. Prints the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="?", default=str(ROOT / "traces" / "matmul.parquet"))
    ap.add_argument("--machine", default="skx-2s")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from hwemu.machine.config import load_machine
    from hwemu.machine.replay import FirstTouch, run_chunks
    from hwemu.machine.system import Machine
    from hwemu.traces.format import TraceReader

    cfg = load_machine(args.machine)
    reader = TraceReader(args.trace)
    if reader.meta.threads != 1:
        print(f"note: {args.trace} has {reader.meta.threads} threads")
    t = time.perf_counter()
    chunk = reader.read_all()
    t_read = time.perf_counter() - t
    n = len(chunk)

    # compile / load cached kernels
    m = Machine(cfg, threads=reader.meta.threads)
    t = time.perf_counter()
    run_chunks(m, [chunk.slice(0, 1000)], FirstTouch(m))
    t_compile = time.perf_counter() - t

    best = None
    for _ in range(args.repeat):
        m = Machine(cfg, threads=reader.meta.threads)
        ft = FirstTouch(m)
        t = time.perf_counter()
        run_chunks(m, [chunk], ft)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    faults = int(m.S.faults.sum())
    print(f"trace: {args.trace} ({n:,} accesses, {faults} page faults)")
    print(f"machine: {cfg.name}")
    print(f"decode: {t_read:.3f} s   compile/load kernels: {t_compile:.2f} s")
    print(f"replay: {best:.3f} s  ->  {n / best / 1e6:.2f} M accesses/s (best of {args.repeat})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
