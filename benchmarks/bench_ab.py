"""Back-to-back replay timing of two versions of hwemu: a git revision against the working tree.

    python benchmarks/bench_ab.py --base REV [--kind chase] [--footprints 8MiB,64MiB]
        [--records 1M] [--machine skx-2s] [--rounds 4] [--repeat 5] [--workdir DIR] [--json]

On a shared host the speed drifts by more than the effect of most changes, so two versions are
only compared back to back: for each footprint the script alternates the base revision and the
working tree ``--rounds`` times. Each turn is a fresh process that replays the trace
``--repeat`` times from a fresh machine (as ``hwemu run`` does, first touches included) and
reports its smallest CPU time. Each version keeps its own ``NUMBA_CACHE_DIR`` and is warmed up
(compiled) before the rounds. Reported per footprint: both versions' times, their medians, and
the working tree's median relative to the base's.

The base revision is checked out in ``--workdir`` with ``git worktree`` (removed at the end);
traces are ``hwemu trace synth KIND --footprint F --records N`` (seed 1), kept in --workdir.
A difference smaller than the spread of either version's times is noise (docs/performance.md,
"Method").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchkit import ROOT, synth_cached

# one turn: the smallest CPU time of REPEAT replays of TRACE on MACHINE, from a fresh machine
_TURN = """
import sys, time
from hwemu.machine.config import load_machine
from hwemu.machine.replay import FirstTouch, run_chunks
from hwemu.machine.system import Machine
from hwemu.traces.format import TraceReader
trace, machine, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = load_machine(machine)
chunk = TraceReader(trace).read_all()
best = None
for _ in range(repeat):
    m = Machine(cfg)
    t = time.process_time()
    run_chunks(m, [chunk], FirstTouch(m))
    dt = time.process_time() - t
    best = dt if best is None or dt < best else best
print(best)
"""


class Failed(Exception):
    pass


def _last_line(r: subprocess.CompletedProcess) -> str:
    """The last line ``r`` wrote to stderr (what went wrong), else its exit status."""
    err = r.stderr.strip()
    return err.splitlines()[-1] if err else f"exit {r.returncode}"


def _git(*args: str) -> str:
    r = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise Failed(f"git {' '.join(args)}: {_last_line(r)}")
    return r.stdout.strip()


def _turn(root: Path, cache: Path, trace: Path, machine: str, repeat: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(root), NUMBA_CACHE_DIR=str(cache))
    r = subprocess.run([sys.executable, "-c", _TURN, str(trace), machine, str(repeat)],
                       capture_output=True, text=True, env=env, cwd=str(root))
    if r.returncode != 0:
        raise Failed(f"replay under {root}: {_last_line(r)}")
    return float(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision to compare the working tree with")
    ap.add_argument("--kind", default="chase", help="hwemu trace synth kind (default chase)")
    ap.add_argument("--footprints", default="8MiB,64MiB")
    ap.add_argument("--records", default="1M")
    ap.add_argument("--machine", default="skx-2s")
    ap.add_argument("--rounds", type=int, default=4, help="alternations per footprint")
    ap.add_argument("--repeat", type=int, default=5, help="replays per turn (smallest kept)")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "hwemu-bench-ab"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.rounds < 1 or args.repeat < 1:
        print("bench_ab.py: --rounds and --repeat must be at least 1", file=sys.stderr)
        return 2
    work = Path(args.workdir)
    base_root = work / "base"
    try:
        rev = _git("rev-parse", "--verify", "--quiet", args.base + "^{commit}")
    except Failed:
        print(f"bench_ab.py: --base {args.base}: not a revision of {ROOT}", file=sys.stderr)
        return 2
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        if base_root.exists():
            _git("worktree", "remove", "--force", str(base_root))
        _git("worktree", "add", "--detach", str(base_root), rev)
        sides = {"base": (base_root, work / "nbc-base"), "tree": (ROOT, work / "nbc-tree")}
        warm = synth_cached(work, "warm-64KiB-2k.parquet", "random", "--footprint", "64KiB",
                            "--records", "2000", "--seed", "1")
        for root, cache in sides.values():              # compile (or load) the kernels
            _turn(root, cache, warm, args.machine, 1)
        for fp in args.footprints.split(","):
            trace = synth_cached(work, f"{args.kind}-{fp}-{args.records}.parquet", args.kind,
                                 "--footprint", fp, "--records", args.records, "--seed", "1")
            times = {"base": [], "tree": []}
            for _ in range(args.rounds):
                for name, (root, cache) in sides.items():
                    times[name].append(_turn(root, cache, trace, args.machine, args.repeat))
            mb, mt = statistics.median(times["base"]), statistics.median(times["tree"])
            row = {"kind": args.kind, "footprint": fp, "records": args.records,
                   "base": rev[:12], "base_s": times["base"], "tree_s": times["tree"],
                   "base_median_s": round(mb, 4), "tree_median_s": round(mt, 4),
                   "tree_vs_base": round(mt / mb - 1, 4)}
            rows.append(row)
            if not args.json:
                print(f"{args.kind} {fp} ({args.records} records, {args.machine}):\n"
                      f"  base {rev[:12]}: {' '.join(f'{t:.3f}' for t in sorted(times['base']))}"
                      f"  median {mb:.3f} s\n"
                      f"  working tree:  {' '.join(f'{t:.3f}' for t in sorted(times['tree']))}"
                      f"  median {mt:.3f} s  ({100 * (mt / mb - 1):+.1f}%)", flush=True)
    except Failed as e:
        print(f"bench_ab.py: {e}", file=sys.stderr)
        return 1
    finally:
        if base_root.exists():
            try:
                _git("worktree", "remove", "--force", str(base_root))
            except Failed:
                pass
    if args.json:
        print(json.dumps({"machine": args.machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
