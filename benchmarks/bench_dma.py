"""Speed of the DMA cycle model and of the RTL simulation (run by hand, not by the tests).

    python benchmarks/bench_dma.py            # model only
    python benchmarks/bench_dma.py --rtl      # also time an Icarus+cocotb calibration run
"""

from __future__ import annotations

import argparse
import time

from hwemu.dma import model
from hwemu.dma.model import DmaParams, copy_cycles


def bench_model() -> None:
    print("model: uncached copy_cycles() evaluations")
    for dw in (64, 128, 256):
        p = DmaParams(data_width=dw, burst_len=16, max_outstanding=4)
        for pages, label in ((1, "4 KiB"), (512, "2 MiB"), (4096, "16 MiB")):
            n = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 0.3:
                model._cycles.cache_clear()
                copy_cycles(pages, p, 90)
                n += 1
            dt = (time.perf_counter() - t0) / n
            print(f"  DATA_WIDTH={dw:<3} {label:>6}: {dt * 1e3:8.3f} ms/call")
    p = DmaParams()
    copy_cycles(512, p, 90)
    t0 = time.perf_counter()
    for _ in range(100_000):
        copy_cycles(512, p, 90)
    print(f"  cached 2 MiB call: {(time.perf_counter() - t0) / 100_000 * 1e6:.2f} us")


def bench_rtl() -> None:
    from hwemu.dma.calibrate import calibrate

    t0 = time.perf_counter()
    pts = calibrate(data_widths=(64,), outstanding=(4,), latencies=(1, 20, 60, 150),
                    pages=(8,))
    dt = time.perf_counter() - t0
    cycles = sum(p["rtl_cycles"] for p in pts)
    print(f"rtl: {cycles} simulated cycles in {dt:.2f} s (incl. build) = "
          f"{cycles / dt:,.0f} cycles/s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtl", action="store_true", help="also time the RTL simulation")
    a = ap.parse_args()
    bench_model()
    if a.rtl:
        bench_rtl()
