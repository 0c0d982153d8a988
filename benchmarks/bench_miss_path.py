#!/usr/bin/env python3
"""Speed of the timing replay on the L1-miss path and the cost of leaving and re-entering the
compiled loop (a "crossing"), single thread, one machine (default skx-2s).

    python benchmarks/bench_miss_path.py [--machine skx-2s] [--kinds chase,random]
        [--footprints 16KiB,256KiB,8MiB,64MiB] [--short 100k] [--long 1M] [--repeat 1]
        [--crossings 2000] [--workdir DIR] [--json]

Traces come from hwemu's own generator (``hwemu trace synth KIND --footprint F --records N``),
cached in --workdir. For every kind and footprint a short and a long trace (same footprint,
same seed) are replayed in-process from a fresh machine, as ``hwemu run`` does (first-touch
faults handled in Python); the reported rate is the MARGINAL one,
``(N_long - N_short) / (t_long - t_short)`` accesses/s, so page faults, cold caches and start-up
cancel. Compilation is excluded (a warm-up replay compiles or loads the cached kernels).

Crossings (an L1-resident trace, one instruction per record, whose pages are already mapped):

- ``event``: the same records replayed once in one call, then with a stop time every
  ``len/crossings`` records' worth of simulated time, so the loop returns to Python and is
  re-entered that many times; cost = extra time / extra returns;
- ``chunk``: the records fed as many 64-record chunks (``run_chunks``) instead of one;
  cost per chunk (includes loading the chunk);
- ``fault``: one record on each of 16,384 fresh 4 KiB pages (every record faults), minus the
  same records on a fresh machine whose pages were mapped beforehand, per fault (return,
  Python first-touch handler, page-table update, re-entry).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchkit import parse_size, synth_cached


def synth(workdir: Path, kind: str, footprint: str, records: int, extra=()) -> Path:
    name = f"{kind}_{footprint}_{records}{'_' + '_'.join(extra) if extra else ''}.parquet"
    return synth_cached(workdir, name.replace("/", ""), kind, "--footprint", footprint,
                        "--records", str(records), "--seed", "1", *extra)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--machine", default="skx-2s")
    ap.add_argument("--kinds", default="chase,random")
    ap.add_argument("--footprints", default="16KiB,256KiB,8MiB,64MiB")
    ap.add_argument("--short", default="100k")
    ap.add_argument("--long", default="1M")
    ap.add_argument("--repeat", type=int, default=1, help="best of N timings per trace")
    ap.add_argument("--crossings", type=int, default=2000)
    ap.add_argument("--no-crossings", action="store_true")
    ap.add_argument("--workdir", default=None, help="where generated traces are kept")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with the process's CPU time instead of wall time (steadier on a "
                         "machine shared with other work)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter  # noqa: F841

    from hwemu.machine.config import load_machine
    from hwemu.machine.replay import FirstTouch, run_chunks
    from hwemu.machine.system import Machine
    from hwemu.traces.format import TraceReader

    workdir = Path(args.workdir or Path(tempfile.gettempdir()) / "hwemu-bench-miss")
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = load_machine(args.machine)
    n_short, n_long = parse_size(args.short), parse_size(args.long)

    def replay_time(chunk) -> tuple[float, Machine]:
        best, mm = None, None
        for _ in range(args.repeat):
            m = Machine(cfg)
            ft = FirstTouch(m)
            t = clock()
            run_chunks(m, [chunk], ft)
            dt = clock() - t
            if best is None or dt < best:
                best, mm = dt, m
        return best, mm

    # warm-up: compile or load the kernels
    t = clock()
    warm = TraceReader(synth(workdir, "random", "64KiB", 2000)).read_all()
    m = Machine(cfg)
    run_chunks(m, [warm], FirstTouch(m))
    t_warm = clock() - t

    rows = []
    for kind in args.kinds.split(","):
        for fp in args.footprints.split(","):
            cs = TraceReader(synth(workdir, kind, fp, n_short)).read_all()
            cl = TraceReader(synth(workdir, kind, fp, n_long)).read_all()
            ts, _ = replay_time(cs)
            tl, m = replay_time(cl)
            marg = (len(cl) - len(cs)) / (tl - ts) if tl > ts else float("inf")
            served = {k: int(v) for k, v in zip(
                ("l1", "l2", "llc", "remote_cache", "local_dram", "remote_dram", "cxl"),
                m.S.served.sum(axis=0))}
            rows.append({"kind": kind, "footprint": fp, "short": len(cs), "long": len(cl),
                         "t_short_s": round(ts, 4), "t_long_s": round(tl, 4),
                         "marginal_maccs": round(marg / 1e6, 3),
                         "overall_long_maccs": round(len(cl) / tl / 1e6, 3),
                         "faults": int(m.S.faults.sum()), "served_long": served})
            if not args.json:
                print(f"  {kind:7s} {fp:>7s}: {marg / 1e6:8.3f} M/s marginal "
                      f"({len(cl) / tl / 1e6:.3f} M/s overall, long {tl:.2f} s)", flush=True)

    cross = {}
    if not args.no_crossings:
        # one instruction per record, so that the thread's clock advances on L1 hits
        chunk = TraceReader(synth(workdir, "chase", "16KiB", 200_000, ("--insts", "1"))).read_all()
        n = len(chunk)
        m = Machine(cfg)
        run_chunks(m, [chunk], FirstTouch(m))          # map the pages, warm the caches

        def one_pass(step):
            """Replay the chunk once; with ``step`` > 0 stop every ``step`` ps of thread time."""
            m.load_chunk(chunk)
            nstop = 0
            nxt = (m.sim_time_ps() + step) if step else None
            t = clock()
            while True:
                s = m.run(nxt)
                if s.reason == "chunk-done":
                    break
                assert s.reason == "event", s
                nstop += 1
                nxt += step
            return clock() - t, nstop

        c0 = m.sim_time_ps()
        t1, _ = one_pass(0)
        span = m.sim_time_ps() - c0
        t1 = min(t1, one_pass(0)[0])
        step = max(1, span // args.crossings)
        best = None
        for _ in range(2):
            te, ne = one_pass(step)
            c = (te - t1) / max(ne, 1)
            best = c if best is None else min(best, c)
        cross["event_us"] = round(best * 1e6, 2)
        cross["event_stops"] = ne

        # many small chunks vs one
        parts = [chunk.slice(i, min(i + 64, n)) for i in range(0, n, 64)]
        t = clock()
        run_chunks(m, parts, FirstTouch(m))
        tc = clock() - t
        cross["chunk64_us"] = round((tc - t1) / len(parts) * 1e6, 2)
        cross["chunks"] = len(parts)

        # the page-fault path: one record per fresh page, against the same records on a fresh
        # machine whose pages were mapped beforehand (same placement, same cold caches)
        from hwemu.machine.system import Stop

        pages = TraceReader(synth(workdir, "strided", "64MiB", 16384, ("--stride", "4096")))
        pc = pages.read_all()
        best = None
        for _ in range(2):
            m = Machine(cfg)
            t = clock()
            run_chunks(m, [pc], FirstTouch(m))
            tf = clock() - t
            nf = int(m.S.faults.sum())
            m = Machine(cfg)
            ft = FirstTouch(m)
            for va in np.unique(pc.addr.astype(np.int64) & ~0xFFF).tolist():
                ft(Stop("fault", thread=0, vaddr=va, fault="not_present"))
            t = clock()
            run_chunks(m, [pc], ft)
            t2 = clock() - t
            c = (tf - t2) / max(nf, 1)
            best = c if best is None else min(best, c)
        cross["fault_us"] = round(best * 1e6, 2)
        cross["faults"] = nf

    result = {"machine": cfg.name, "clock": "cpu" if args.cpu_time else "wall",
              "warmup_s": round(t_warm, 2), "rows": rows,
              "crossing": cross}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"\nmachine {cfg.name}, single thread; warm-up (compile/load kernels) {t_warm:.1f} s")
    print(f"marginal M accesses/s between {n_short:,} and {n_long:,} records:")
    fps = args.footprints.split(",")
    print(f"{'kind':8s}" + "".join(f"{fp:>10s}" for fp in fps))
    for kind in args.kinds.split(","):
        vals = {r["footprint"]: r["marginal_maccs"] for r in rows if r["kind"] == kind}
        print(f"{kind:8s}" + "".join(f"{vals[fp]:10.3f}" for fp in fps))
    if cross:
        print(f"crossing (leave + re-enter the loop at a stop time): {cross['event_us']} us "
              f"({cross['event_stops']} stops)")
        print(f"64-record chunks: {cross['chunk64_us']} us per chunk ({cross['chunks']} chunks)")
        print(f"page fault (return, first-touch handler, re-entry): {cross['fault_us']} us per "
              f"fault ({cross['faults']} faults)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
