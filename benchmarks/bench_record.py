"""Recording speed and size: full traces against --data-only (run by hand).

    python benchmarks/bench_record.py [--scenarios matmul,threads,sort,gzip,gzip-1m] [--repeat 3] [--json]

Records each scenario with ``hwemu trace record`` (the hwtrace tool, in this process, so
Python's start-up is not counted; Valgrind's is) twice, in full and with ``--data-only``, and
runs the program natively, all with the same arguments and stdout to /dev/null. Scenarios:

  matmul, threads, sort, gzip   the programs of the bundled traces, as traces/make_traces.sh
                                records them (tiny runs: Valgrind's start-up dominates)
  gzip-1m                       gzip -1 -c on 1 MiB of the same kind of text (words.txt
                                repeated with other numbers), a run long enough to show the
                                steady state

For each scenario and mode it prints records, instructions (I records, or insts plus the
trailing ones), seconds (best of --repeat), records/s, million instructions/s, bytes per record
on disk, and the slowdown (recording time / native time, best of 5 native runs). Nothing is
written into the repository; the traces go to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "traces"
WORDS = TRACES / "inputs" / "words.txt"
SCENARIOS = ("matmul", "threads", "sort", "gzip", "gzip-1m")


def _big_words(path: Path, size: int = 1 << 20, seed: int = 2024) -> None:
    r = random.Random(seed)
    w = [ln.split()[1] for ln in WORDS.read_text().splitlines()]
    out, n = [], 0
    while n < size:
        line = f"{r.randrange(100000)} {r.choice(w)}\n"
        out.append(line)
        n += len(line)
    path.write_text("".join(out)[:size])


def _argv(name: str, build: Path) -> list[str]:
    if name in ("matmul", "threads"):
        exe = build / name
        if not exe.exists():
            flags = ["-pthread"] if name == "threads" else []
            subprocess.run(["gcc", "-O1", "-g", *flags, "-o", str(exe), str(TRACES / "src" / f"{name}.c")],
                           check=True)
        return [str(exe)]
    if name == "sort":
        return ["sort", "-n", "-k1,1", str(WORDS)]
    if name == "gzip":
        return ["gzip", "-1", "-c", str(WORDS)]
    if name == "gzip-1m":
        big = build / "words-1m.txt"
        if not big.exists():
            _big_words(big)
        return ["gzip", "-1", "-c", str(big)]
    raise SystemExit(f"unknown scenario {name!r} (choose from {', '.join(SCENARIOS)})")


def _native(argv: list[str], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - t)
    return best


def _record(argv: list[str], out: Path, data_only: bool, repeat: int) -> tuple[float, object]:
    from hwemu.traces.record import record_trace

    best, meta = float("inf"), None
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    try:
        for _ in range(repeat):
            sys.stdout.flush()
            os.dup2(devnull, 1)            # the program's stdout, as in make_traces.sh
            t = time.perf_counter()
            try:
                meta = record_trace(argv, out, tool="hwtrace", progress=False, data_only=data_only)
            finally:
                el = time.perf_counter() - t
                os.dup2(saved, 1)
            best = min(best, el)
    finally:
        os.close(devnull)
        os.close(saved)
    return best, meta


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)")
    ap.add_argument("--repeat", type=int, default=3, help="recordings per mode; the best is kept (default 3)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("gcc") is None:
        print("bench_record: needs valgrind and gcc", file=sys.stderr)
        return 2

    from hwemu.traces.info import trace_info
    from hwemu.traces.record import build_tool

    build_tool()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwemu-bench-") as tmp:
        tmp = Path(tmp)
        for name in args.scenarios.split(","):
            argv = _argv(name.strip(), tmp)
            native = _native(argv)
            for mode in ("full", "data-only"):
                out = tmp / f"{name}-{mode}.parquet"
                secs, meta = _record(argv, out, mode == "data-only", args.repeat)
                info = trace_info(out)
                rows.append({
                    "scenario": name, "mode": mode, "records": info["records"],
                    "instructions": info["instructions"], "seconds": round(secs, 3),
                    "records_per_s": round(info["records"] / secs),
                    "minst_per_s": round(info["instructions"] / secs / 1e6, 2),
                    "bytes_on_disk": info["bytes_on_disk"],
                    "bytes_per_record": round(info["bytes_on_disk"] / info["records"], 3),
                    "native_seconds": round(native, 4), "slowdown": round(secs / native, 1),
                })
                out.unlink()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    hdr = ("scenario", "mode", "records", "instructions", "s", "records/s", "Minst/s", "B/record",
           "MB on disk", "native s", "slowdown")
    lines = [hdr]
    for r in rows:
        lines.append((r["scenario"], r["mode"], f"{r['records']:,}", f"{r['instructions']:,}",
                      f"{r['seconds']:.2f}", f"{r['records_per_s'] / 1e6:.2f} M", f"{r['minst_per_s']:.1f}",
                      f"{r['bytes_per_record']:.3f}", f"{r['bytes_on_disk'] / 1e6:.2f}",
                      f"{r['native_seconds']:.4f}", f"{r['slowdown']:,.0f}x"))
    w = [max(len(str(x[i])) for x in lines) for i in range(len(hdr))]
    for i, ln in enumerate(lines):
        print("  ".join(str(x).rjust(w[j]) if j > 1 else str(x).ljust(w[j]) for j, x in enumerate(ln)))
        if i == 0:
            print("  ".join("-" * n for n in w))
    return 0


if __name__ == "__main__":
    sys.exit(main())
