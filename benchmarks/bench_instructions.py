#!/usr/bin/env python3
"""Host instructions per access of the timing replay, per compiled function, counted by
Valgrind (callgrind): a measure of the replay's own work that, unlike its speed, does not vary
with the host's load.

    python benchmarks/bench_instructions.py [--kind chase] [--footprint 8MiB] [--short 200k]
        [--long 1M] [--machine skx-2s] [--cpu haswell] [--workdir DIR] [--top 12] [--json]

A short and a long trace of the same footprint (``hwemu trace synth KIND``, seed 1, one thread)
are each replayed once in-process from a fresh machine under ``valgrind --tool=callgrind``, as
``hwemu run`` replays them (first touches included), after a short warm-up replay. Every
instruction Valgrind counts is attributed to the compiled function (numba) whose code holds
its address; the report is the MARGINAL count, ``(I_long - I_short) / (N_long - N_short)``
instructions per access, so start-up, the interpreter and the first touches cancel, as in
``bench_miss_path.py``.

The kernels are compiled for a fixed CPU (``--cpu``, default ``haswell`` with AVX2), in a
kernel cache of their own under ``--workdir``: Valgrind 3.19 does not run AVX-512 code, and the
counts should not depend on the host. They are close to, not the same as, the host's own
build. Counts are deterministic: two versions of hwemu compare exactly, where timings on a
shared host differ by 5-10% from run to run (docs/performance.md, "Counting instructions").
Each replay under Valgrind is about 50 times slower than native (a 1M-record LLC-resident
chase: about 2 minutes).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import ROOT, parse_size, synth_cached  # noqa: E402

# CPU features of the default target (Haswell: AVX2, no AVX-512), spelled out because numba
# keys its kernel cache on them and would otherwise use the host's
CPUS = {"haswell": "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fxsr,+lzcnt,"
                   "+mmx,+movbe,+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave"}
WARM = 2000            # records replayed before the counted replay (loads the kernels)


class Failed(Exception):
    pass


# -- the replay, in the process Valgrind runs -----------------------------------------------

def child(trace: str, machine: str, mapout: str) -> None:
    """Replay ``trace`` once after a warm-up, then write the compiled functions' addresses."""
    from numba.core.registry import cpu_target

    from hwemu.machine.config import load_machine
    from hwemu.machine.replay import FirstTouch, run_chunks
    from hwemu.machine.system import Machine
    from hwemu.traces.format import TraceReader

    cfg = load_machine(machine)
    chunk = TraceReader(trace).read_all()
    m = Machine(cfg)
    run_chunks(m, [chunk.slice(0, WARM)], FirstTouch(m))
    m = Machine(cfg)
    run_chunks(m, [chunk], FirstTouch(m))
    # numba's JIT engine knows every symbol it has loaded (a private attribute: this is a
    # measuring tool, not part of hwemu)
    engine = cpu_target.target_context.codegen()._engine
    rows = []
    for name in list(engine._defined_symbols):
        try:
            addr = engine.get_function_address(name)
        except Exception:           # not a function
            continue
        if addr:
            rows.append((addr, name))
    with open(mapout, "w") as fh:
        for addr, name in sorted(set(rows)):
            fh.write(f"{addr:x} {name}\n")


# -- counting -------------------------------------------------------------------------------

def short_name(symbol: str) -> str | None:
    """``hierarchy.access_below_l1`` for numba's mangled name of a compiled hwemu function;
    None for anything else (wrappers, constants, other packages)."""
    if not symbol.startswith("_ZN") or symbol.startswith(("_ZN7cpython", "_ZN08NumbaEnv")):
        return None
    parts, i = [], 3
    while i < len(symbol) and symbol[i].isdigit():
        j = i
        while symbol[j].isdigit():
            j += 1
        n = int(symbol[i:j])
        parts.append(symbol[j:j + n])
        i = j + n
    if len(parts) < 2 or parts[0] != "hwemu":
        return None
    return ".".join(parts[2:] if parts[1] in ("machine", "cachesim") else parts[1:])


def attribute(callgrind_out: Path, symbol_map: Path) -> collections.Counter:
    """Instructions (Ir) per compiled function in a callgrind profile written with
    ``--dump-instr=yes``, the code of every function running from its address to the next."""
    starts, names = [], []
    for line in symbol_map.read_text().splitlines():
        a, name = line.split(None, 1)
        starts.append(int(a, 16))
        names.append(short_name(name))
    counts = collections.Counter()
    addr, skip = 0, False
    with open(callgrind_out) as fh:
        for line in fh:
            c = line[:1]
            if line.startswith("calls="):
                skip = True            # the next cost line is the call's inclusive cost
                continue
            if not (c.isdigit() or c in "+-*"):
                continue
            fields = line.split()
            pos = fields[0]
            if pos.startswith("0x"):
                addr = int(pos, 16)
            elif pos[0] in "+-":
                addr += int(pos, 0)     # relative positions are decimal unless 0x
            elif pos != "*":
                addr = int(pos)
            if skip:
                skip = False
                continue
            i = bisect.bisect_right(starts, addr) - 1
            if i >= 0 and names[i] is not None and len(fields) > 2:
                counts[names[i]] += int(fields[2])
    return counts


def count(trace: Path, args, cache: Path, tmp: Path, tag: str) -> collections.Counter:
    env = dict(os.environ, NUMBA_CPU_NAME=args.cpu, NUMBA_CPU_FEATURES=args.features,
               NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    me = str(Path(__file__).resolve())
    mapout, out = tmp / f"{tag}.map", tmp / f"{tag}.callgrind"
    # compile natively first (under Valgrind it would take an hour), into the same cache
    r = subprocess.run([sys.executable, me, "--child", str(trace), args.machine, str(mapout)],
                       env=env, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise Failed(f"replay of {trace}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    r = subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=yes",
                        f"--callgrind-out-file={out}", sys.executable, me, "--child",
                        str(trace), args.machine, str(mapout)],
                       env=env, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0 or not out.exists():
        raise Failed(f"valgrind on {trace}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return attribute(out, mapout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", default="chase", help="hwemu trace synth kind (default chase)")
    ap.add_argument("--footprint", default="8MiB", help="working set (default 8MiB)")
    ap.add_argument("--short", type=parse_size, default=200_000, help="default 200k")
    ap.add_argument("--long", type=parse_size, default=1_000_000, help="default 1M")
    ap.add_argument("--machine", default="skx-2s")
    ap.add_argument("--cpu", default="haswell", choices=sorted(CPUS),
                    help="CPU the kernels are compiled for (default haswell)")
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "hwemu-bench-instructions",
                    help="traces and the kernel cache (kept between runs)")
    ap.add_argument("--top", type=int, default=12, help="functions listed (default 12)")
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    args.features = CPUS[args.cpu]
    if shutil.which("valgrind") is None:
        print("bench_instructions.py: valgrind not found (apt-get install valgrind)",
              file=sys.stderr)
        return 2
    if args.long <= args.short:
        print("bench_instructions.py: --long must be more records than --short", file=sys.stderr)
        return 2
    work = args.workdir
    try:
        traces = [synth_cached(work, f"{args.kind}-{args.footprint}-{n}.parquet", args.kind,
                               "--footprint", args.footprint, "--records", str(n),
                               "--threads", "1", "--seed", "1")
                  for n in (args.short, args.long)]
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            short, long = (count(t, args, work / f"numba-cache-{args.cpu}", Path(tmp), tag)
                           for t, tag in zip(traces, ("short", "long")))
    except (Failed, subprocess.CalledProcessError) as e:
        print(f"bench_instructions.py: {e}", file=sys.stderr)
        return 2
    n = args.long - args.short
    per = {f: (long[f] - short.get(f, 0)) / n for f in long}
    total = sum(per.values())
    if args.json:
        print(json.dumps({"kind": args.kind, "footprint": args.footprint, "machine": args.machine,
                          "cpu": args.cpu, "short": args.short, "long": args.long,
                          "instructions_per_access": round(total, 1),
                          "functions": {f: round(v, 1) for f, v in
                                        sorted(per.items(), key=lambda kv: -kv[1])}}, indent=1))
        return 0
    print(f"{args.kind} {args.footprint}, {args.machine}, kernels for {args.cpu}: marginal "
          f"instructions per access between {args.short:,} and {args.long:,} records")
    for f, v in sorted(per.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {v:8.1f}  {100 * v / total:5.1f}%  {f}")
    print(f"  {total:8.1f}  100.0%  all compiled code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
