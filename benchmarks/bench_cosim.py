"""Speed of the co-simulation (run by hand): wall time and replayed records per second of
every demo cell (hwemu.sim.experiment.demo_cells), and of the whole demo.

    python benchmarks/bench_cosim.py [--policy NAME ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hwemu.sim.experiment import demo_cells, run_cell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", action="append", help="only these policies")
    a = ap.parse_args()
    total = 0.0
    for c in demo_cells():
        if a.policy and c["policy"] not in a.policy:
            continue
        t = time.perf_counter()
        r = run_cell(c["machine"], c["trace"], c["policy"], schedule=c["schedule"])
        dt = time.perf_counter() - t
        total += dt
        s = r.summary
        print(f"{Path(c['trace']).stem:10s} {c['policy']:9s} {dt:6.1f} s  "
              f"{s['accesses'] / dt / 1e3:7.1f} k records/s  "
              f"mean {s['mean_latency_ns']:7.2f} ns  sim {s['sim_time_ns'] / 1e6:.2f} ms")
    print(f"total {total:.1f} s")


if __name__ == "__main__":
    main()
