"""Calibration cases of the migration model and the model's own speed (run by hand).

    python benchmarks/bench_migrate.py [--pages 16384]

Prints, for each case of docs/migration.md "Calibration", the modelled throughput, time per
page and copy share next to the published figure, and how many simulated page migrations the
model performs per wall-clock second.
"""

from __future__ import annotations

import argparse
import time

from hwemu.sim.bench_migrate import run_bench

CASES = [
    # (label, page size, pages divisor, copy, threads, batch, published)
    ("4KiB, 1 thread", 4096, 1, "cpu", 1, True, "~1.2 us/page, 3.3-3.5 GB/s, copy ~1/4"),
    ("4KiB, 2 threads, batched flush", 4096, 1, "cpu", 2, True, "IPIs -99%"),
    ("4KiB, 2 threads, per-page flush", 4096, 1, "cpu", 2, False, "~4x slower than batched"),
    ("4KiB, DMA copy", 4096, 1, "dma", 1, True, "DMA: little or no gain"),
    ("2MiB, 1 thread", 2 << 20, 512, "cpu", 1, True, "~190 us/page, ~11 GB/s"),
    ("2MiB, DMA copy", 2 << 20, 512, "dma", 1, True, "several times faster"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=16384, help="4 KiB pages per case (default 16384)")
    args = ap.parse_args()
    print(f"{'case':34s} {'GB/s':>7s} {'us/page':>9s} {'copy':>6s} {'IPIs':>7s} "
          f"{'wall s':>7s} {'pages/s':>9s}  published")
    for label, size, div, copy, threads, batch, published in CASES:
        n = max(1, args.pages // div)
        t0 = time.perf_counter()
        r = run_bench(n, size, copy, threads=threads, tlb_batch=batch)
        wall = time.perf_counter() - t0
        print(f"{label:34s} {r['gbps']:7.2f} {r['us_per_page']:9.3f} {r['copy_fraction']:6.2f} "
              f"{r['tlb_ipis']:7d} {wall:7.2f} {n / wall:9.0f}  {published}")


if __name__ == "__main__":
    main()
