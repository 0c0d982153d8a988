"""Import speed: lackey lines per second through ``hwemu trace import`` (run by hand).

    python benchmarks/bench_import.py [--lines 10000000] [--input FILE]

Without --input it writes a lackey-format text file of --lines lines into a temporary
directory (instruction fetches and loads/stores/modifies in the proportions of a real lackey
trace of /bin/ls: about 73% I, 17% L, 8% S, 2% M, with realistic address widths), then times:

  parse    the compiled lackey parser alone over the file's blocks (no output)
  import   the full import_trace() path: read, parse, write zstd Parquet (atomic)

and prints lines/s for each, on one core. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np


def make_lackey(path: str, lines: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(4, size=lines, p=[0.73, 0.17, 0.08, 0.02])
    iaddr = 0x4000000 + (np.cumsum(rng.integers(1, 8, lines)) & 0xFFFFF)
    daddr = 0x1FFEFFF000 + rng.integers(0, 1 << 20, lines) * 8
    isz = rng.integers(1, 16, lines)
    with open(path, "w") as f:
        f.write("==123== Lackey, an example Valgrind tool\n")
        step = 1 << 20
        for s in range(0, lines, step):
            out = []
            for k, ia, da, sz in zip(kinds[s:s + step].tolist(), iaddr[s:s + step].tolist(),
                                     daddr[s:s + step].tolist(), isz[s:s + step].tolist()):
                if k == 0:
                    out.append(f"I  {ia:08x},{sz}\n")
                else:
                    out.append(f" {'LSM'[k - 1]} {da:010x},8\n")
            f.write("".join(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--input", help="existing lackey text file to import instead")
    args = ap.parse_args()

    from hwemu.traces._kernels import parse_lackey
    from hwemu.traces.importers import LineBlocks, import_trace

    with tempfile.TemporaryDirectory(prefix="hwemu-bench-") as tmp:
        src = args.input
        if src is None:
            src = os.path.join(tmp, "bench.lackey")
            t = time.perf_counter()
            make_lackey(src, args.lines)
            print(f"generated {args.lines:,} lines ({os.path.getsize(src) / 1e6:.0f} MB) "
                  f"in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        with open(src, "rb") as fh:
            n_lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))
        # warm up the compiled kernels (numba cache) outside the timings
        warm = os.path.join(tmp, "warm.lackey")
        with open(warm, "w") as f:
            f.write("I  04000ad0,3\n L 1ffefffd78,8\n")
        import_trace("lackey", warm, os.path.join(tmp, "warm.trace"))

        t = time.perf_counter()
        with open(src, "rb") as fh:
            for buf in LineBlocks(fh, src):
                cap = buf.shape[0] // 6 + 2
                parse_lackey(buf, np.empty(cap, np.uint8), np.empty(cap, np.uint64), np.empty(cap, np.uint16))
        parse_s = time.perf_counter() - t

        t = time.perf_counter()
        meta = import_trace("lackey", src, os.path.join(tmp, "bench.trace"))
        import_s = time.perf_counter() - t
        out_mb = os.path.getsize(os.path.join(tmp, "bench.trace")) / 1e6

    print(f"lines            {n_lines:,}")
    print(f"records          {meta.records:,}")
    print(f"parse only       {n_lines / parse_s / 1e6:.1f} M lines/s ({parse_s:.2f} s)")
    print(f"full import      {n_lines / import_s / 1e6:.1f} M lines/s ({import_s:.2f} s, "
          f"output {out_mb:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
