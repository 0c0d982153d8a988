#!/usr/bin/env python3
"""Loaded-latency curves with mixed reads and writes (``hwemu mlc --read-write``) beside the
published measured curves; the figures and tables of docs/validation.md ("Loaded latency with
writes").

    python benchmarks/mlc_mixed.py [OUT_DIR]     (default docs/img; ~2 minutes)

Published curves (measured, not by this project):

[MESS] Esmaili-Dokht et al., "A Mess of Memory System Benchmarking, Simulation and Application
Profiling", MICRO 2024. Local curves: the processed measurements of the Mess benchmark on
MareNostrum 4 (2x Xeon Platinum 8160, 6x DDR4-2666 per socket), file
CPU/Actual-hardware/x86/Intel-Skylake-Xeon-Platinum-8160/measuring/output/bandwidth-latency.csv
of github.com/bsc-mem/Mess-benchmark (columns rd_percentage, pause, bandwidth_mean in GB/s,
latency_mean in core cycles at the 2.1 GHz of its config/mn4_DDR4-2666.toml). Every stream
of the benchmark ("pause" between accesses) gives one point; below, the means for 100%, 66%
and 50% reads of the memory traffic (MLC's R, W2 and W5 are 100%, 67% and 50%), latency
converted to ns. Remote curves: the Skylake-numa-ddr4 curves the Mess simulator ships as
inputs (github.com/bsc-mem/Mess-simulator, Integrated/ZSim+Standalone/memory_curve/
Skylake-numa-ddr4/bwlat_98.txt and bwlat_52.txt: MB/s and latency; the files do not state
the unit of latency and the simulator's README says curves are stored in cycles, but the
unloaded value, 133, is the platform's remote latency in ns and 133 cycles, 63 ns, would be
less than its local latency, so they are read as ns). Its 66%-read file holds no usable points.

Bandwidth is reads + writes at the memory (Mess counts CAS commands; hwemu mlc counts the
controller's reads and writes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

CPU_GHZ = 2.1
# hwemu mlc's default delays plus 40, 60, 70 and 80 cycles, where the mixed curves have
# their knee
DELAYS = (0, 2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 100, 200, 400, 1000, 3000, 9000)
# (pause, GB/s, latency in cycles) from bandwidth-latency.csv [MESS], means, rounded
MESS_LOCAL = {
    "R": [(0, 115.93, 506.47), (5, 113.19, 504.27), (10, 113.50, 500.12), (15, 116.42, 494.38),
          (20, 117.08, 469.86), (25, 115.51, 471.57), (30, 115.72, 414.16), (35, 117.20, 415.09),
          (40, 116.78, 409.18), (45, 116.91, 402.38), (50, 114.78, 388.67), (55, 114.35, 384.96),
          (60, 115.99, 376.87), (65, 114.28, 335.23), (70, 110.60, 326.84), (80, 104.91, 294.33),
          (90, 109.87, 307.62), (100, 96.83, 263.48), (120, 85.37, 259.26), (140, 79.12, 251.40),
          (160, 75.43, 235.73), (180, 70.11, 231.84), (200, 63.42, 237.71), (220, 59.22, 235.13),
          (260, 53.11, 219.22), (300, 47.36, 216.47), (340, 41.95, 223.60), (380, 38.40, 222.06),
          (450, 33.07, 209.07), (550, 27.68, 205.38), (600, 25.70, 214.29), (700, 22.27, 211.73),
          (800, 19.78, 199.93), (900, 17.64, 198.37), (1000, 15.93, 207.09), (1500, 10.86, 204.28),
          (2000, 8.28, 192.46), (3000, 5.52, 191.43), (5000, 3.32, 200.25), (40000, 0.47, 199.02),
          (100000, 0.22, 189.72), (500000, 0.07, 188.87), (1000000, 0.05, 197.74)],
    "W2": [(0, 101.67, 613.49), (5, 104.40, 621.96), (10, 104.36, 667.03), (15, 102.38, 685.83),
           (20, 102.45, 697.63), (25, 104.67, 696.28), (30, 105.11, 687.04), (35, 102.88, 680.97),
           (40, 102.95, 685.37), (45, 104.93, 680.26), (50, 105.09, 681.58), (55, 102.83, 680.70),
           (60, 102.79, 681.24), (65, 104.99, 636.24), (70, 105.21, 633.04), (80, 102.98, 662.63),
           (90, 102.66, 618.40), (100, 104.71, 590.76), (120, 104.36, 560.58), (140, 101.40, 526.37),
           (160, 100.29, 480.29), (180, 100.72, 424.30), (200, 97.70, 371.11), (220, 92.26, 336.63),
           (260, 83.74, 275.11), (300, 75.91, 237.13), (340, 68.28, 227.43), (380, 62.05, 231.27),
           (450, 53.25, 224.74), (550, 44.41, 209.05), (600, 41.12, 207.50), (700, 35.44, 214.42),
           (800, 31.44, 212.93), (900, 28.18, 201.91), (1000, 25.55, 200.73), (1500, 17.28, 207.09),
           (2000, 13.09, 205.37), (3000, 8.80, 194.03), (5000, 5.28, 192.13), (40000, 0.72, 199.52),
           (100000, 0.32, 198.89), (500000, 0.09, 188.95), (1000000, 0.05, 188.25)],
    "W5": [(0, 101.24, 696.22), (5, 102.81, 711.99), (10, 101.70, 764.99), (15, 103.40, 793.23),
           (20, 102.10, 805.96), (25, 103.08, 818.84), (30, 102.13, 818.23), (35, 103.59, 812.17),
           (40, 101.95, 815.36), (45, 103.30, 814.71), (50, 102.26, 815.98), (55, 103.65, 809.53),
           (60, 102.06, 802.83), (65, 102.02, 787.60), (70, 101.99, 788.73), (80, 102.82, 794.98),
           (90, 101.80, 769.54), (100, 103.29, 754.49), (120, 101.99, 729.55), (140, 103.75, 684.74),
           (160, 101.56, 616.73), (180, 101.78, 528.68), (200, 97.50, 456.80), (220, 94.74, 366.48),
           (260, 84.16, 297.65), (300, 75.48, 256.81), (340, 67.71, 239.62), (380, 61.36, 222.00),
           (450, 52.78, 224.75), (550, 43.94, 218.79), (600, 40.73, 207.75), (700, 35.26, 205.05),
           (800, 31.22, 212.34), (900, 27.94, 201.72), (1000, 25.30, 201.06), (1500, 17.19, 207.02),
           (2000, 12.96, 204.74), (3000, 8.70, 193.80), (5000, 5.21, 191.94), (40000, 0.71, 199.59),
           (100000, 0.31, 198.64), (500000, 0.08, 188.61), (1000000, 0.05, 188.16)],
}
# (MB/s, latency as ns) from Skylake-numa-ddr4/bwlat_98.txt and bwlat_52.txt [MESS], in file
# order (highest load first), rounded
MESS_REMOTE = {
    "R": [(35092.5, 564.0), (35059.1, 561.7), (35102.5, 544.7), (35137.1, 523.6), (35134.8, 488.9),
          (35183.8, 488.1), (35186.6, 447.3), (35113.7, 447.4), (35146.9, 447.7), (35155.8, 445.1),
          (35144.5, 443.1), (35103.4, 444.1), (35189.3, 440.8), (35100.4, 394.1), (35106.4, 393.2),
          (35104.8, 437.0), (35149.5, 386.0), (35181.0, 378.6), (35160.8, 375.0), (35138.4, 369.2),
          (35079.3, 364.7), (35078.0, 358.5), (35114.1, 352.7), (35138.2, 346.4), (35065.5, 333.0),
          (34976.5, 318.4), (35007.1, 302.4), (34851.9, 283.7), (34014.8, 228.3), (29626.6, 175.9),
          (27566.8, 167.4), (24059.2, 157.2), (21440.5, 151.8), (19344.0, 148.0), (17508.4, 145.3),
          (11923.6, 141.0), (9034.6, 138.9), (6070.9, 137.0), (3631.5, 135.7), (480.2, 134.8),
          (201.7, 134.2), (47.7, 133.6), (27.3, 132.6)],
    "W5": [(51940.2, 616.2), (51669.1, 615.2), (51836.7, 629.2), (51707.4, 638.5), (51415.2, 655.4),
           (51944.0, 656.1), (51239.9, 660.9), (51133.3, 662.2), (50704.5, 665.9), (51378.4, 664.7),
           (51240.1, 666.2), (51013.9, 666.9), (50988.6, 671.7), (50999.5, 670.0), (51036.5, 671.7),
           (50484.9, 686.1), (50907.6, 672.4), (50423.6, 674.6), (50754.8, 674.0), (50575.1, 675.3),
           (50712.3, 672.9), (50279.1, 673.6), (50618.5, 670.3), (50739.9, 667.4), (50694.7, 656.9),
           (50541.0, 643.2), (50792.8, 621.9), (50669.3, 593.1), (52006.4, 511.3), (53024.3, 242.2),
           (49888.0, 206.2), (44280.8, 176.8), (39586.7, 166.1), (35773.6, 159.3), (32526.4, 154.8),
           (22440.5, 142.7), (17083.4, 138.5), (11505.8, 136.4), (6967.5, 135.5), (899.9, 134.4),
           (374.1, 133.5), (82.6, 133.3), (43.7, 132.2)],
}


def measured(where: str, mode: str) -> list[tuple[float, float]] | None:
    """The published curve as (GB/s, ns), from the lowest load to the highest."""
    if where == "local":
        pts = MESS_LOCAL.get(mode)
        return None if pts is None else [(b, c / CPU_GHZ) for _, b, c in sorted(pts, reverse=True)]
    pts = MESS_REMOTE.get(mode)
    return None if pts is None else [(b / 1000, ns) for b, ns in reversed(pts)]


def rising(curve):
    """The part of a measured curve from idle up to its highest bandwidth, bandwidth made
    non-decreasing (the saturated tail, where latency grows at constant bandwidth, is left out
    of interpolation)."""
    top = max(range(len(curve)), key=lambda i: curve[i][0])
    b, lat = [], []
    for x, y in curve[:top + 1]:
        if b and x <= b[-1]:
            continue
        b.append(x)
        lat.append(y)
    return np.array(b), np.array(lat)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs/img")
    out.mkdir(parents=True, exist_ok=True)
    from hwemu.machine.config import load_machine
    from hwemu.machine.mlc import loaded_latency
    from hwemu.machine.plots import plot_loaded

    cfg = load_machine("skx-2s")
    for where, mem in (("local", 0), ("remote", 1)):
        curves, pub = {}, {}
        for mode in ("R", "W2", "W5"):
            pts = loaded_latency(cfg, 0, mem, read_write=mode, delays=DELAYS)
            curves[f"model {mode}"] = pts
            ref = measured(where, mode)
            if ref:
                pub[f"measured {mode} [MESS]"] = ref
            sat = max(p["bandwidth_gbs"] for p in pts)
            print(f"\n#### skx-2s {where} (node 0 -> node {mem}), {mode}: model saturation "
                  f"{sat:.1f} GB/s" + (f", measured {max(b for b, _ in ref):.1f} GB/s" if ref else ""))
            print("\n| delay (cycles) | GB/s (reads + writes) | reads | writes | latency (ns) | "
                  "% of saturation | measured ns at this GB/s | difference |")
            print("|---|---|---|---|---|---|---|---|")
            rb, rl = rising(ref) if ref else (None, None)
            for p in pts:
                bw = p["bandwidth_gbs"]
                cell = diff = ""
                if ref is not None and rb[0] <= bw <= rb[-1]:
                    m = float(np.interp(bw, rb, rl))
                    cell = f"{m:.1f}"
                    diff = f"{(p['latency_ns'] / m - 1) * 100:+.0f}%"
                print(f"| {p['delay_cycles']} | {bw:.1f} | {p['read_gbs']:.1f} | {p['write_gbs']:.1f} "
                      f"| {p['latency_ns']:.1f} | {bw / sat * 100:.0f}% | {cell} | {diff} |")
        plot_loaded(out / f"loaded-rw-skx-2s-{where}.png", curves,
                    title=f"skx-2s {where} (node 0 -> node {mem}): model (o) and measured (x)",
                    xlabel="bandwidth, reads + writes (GB/s)", measured=pub)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
