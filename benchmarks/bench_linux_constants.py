#!/usr/bin/env python3
"""1 GiB under autonuma with Linux's own NUMA-balancing time constants (scan delay 1 s, period
1-60 s, 256 MiB per scan): host time, scan passes, hinting faults and migrations.

    python benchmarks/bench_linux_constants.py [--records 48M] [--machine skx-2s]
        [--cpus 0-3,24-27] [--workdir DIR] [--json]

The trace is ``hwemu trace synth random --records N --footprint 1GiB --threads 8 --insts 20000
--seed 1`` (each record stands for 20,000 instructions, so that 48M records simulate about
29 s), cached in --workdir. It is replayed by ``hwemu run --machine M --cpus C --policy
autonuma --json`` in a subprocess, after a short warm-up run that loads (or compiles) the
kernels. Reported: wall time, the subprocess's CPU time (user + system) and peak RSS, the
simulated time, full scan passes (NUMA PTE updates / pages of the footprint), hinting faults
and pages migrated. The issue's target: at least three full passes in 10 minutes on one core.
Host time varies with the host: compare before/after on the same machine, back to back.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import time

from benchkit import ROOT, hwemu, synth_cached
FOOTPRINT_PAGES = (1 << 30) // 4096


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default="48M", help="trace records (k/M suffixes)")
    ap.add_argument("--machine", default="skx-2s")
    ap.add_argument("--cpus", default="0-3,24-27", help="CPUs of the 8 threads")
    ap.add_argument("--workdir", default="/tmp/hwemu-bench-linux-constants")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    trace = synth_cached(args.workdir, f"random-{args.records}-1GiB-t8-i20000.parquet",
                         "random", "--records", args.records, "--footprint", "1GiB",
                         "--threads", "8", "--insts", "20000", "--seed", "1")
    # load or compile the kernels of the OS-model path before timing
    subprocess.run(hwemu("run", "--machine", args.machine, str(ROOT / "traces" / "threads.parquet"),
                         "--policy", "autonuma"), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd=ROOT)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(hwemu("run", "--machine", args.machine, "--cpus", args.cpus,
                               "--policy", "autonuma", str(trace), "--json"),
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = json.loads(out)
    vm = r["vmstat"]
    res = {
        "records": args.records, "machine": args.machine, "cpus": args.cpus,
        "wall_s": round(wall, 1),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        # ru_maxrss of children: the largest child's peak (KiB on Linux)
        "peak_rss_mib": round(after.ru_maxrss / 1024),
        "sim_time_s": round(r["sim_time_ns"] / 1e9, 2),
        "scan_passes": round(vm["numa_pte_updates"] / FOOTPRINT_PAGES, 2),
        "hinting_faults": vm["numa_hint_faults"],
        "pages_migrated": r["pages_migrated"],
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{args.records} records, 1 GiB, 8 threads on CPUs {args.cpus} of {args.machine}, "
          f"autonuma with Linux's time constants")
    print(f"  host: {res['wall_s']} s wall, {res['cpu_s']} s CPU, "
          f"peak RSS {res['peak_rss_mib']} MiB")
    print(f"  simulated {res['sim_time_s']} s: {res['scan_passes']} full scan passes, "
          f"{res['hinting_faults']:,} hinting faults, {res['pages_migrated']:,} pages migrated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
