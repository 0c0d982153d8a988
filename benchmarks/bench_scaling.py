#!/usr/bin/env python3
"""Replay speed and peak memory as the footprint grows, machine-only and with the OS model.

    python benchmarks/bench_scaling.py [--machine skx-2s] [--footprints 1MiB,128MiB,1GiB,4GiB]
        [--records 20M] [--threads 8] [--modes machine,autonuma] [--workdir DIR] [--json]

Traces come from ``hwemu trace synth random`` (GUPS-like read-modify-writes spread uniformly
over the footprint, ``--threads`` threads, same seed), cached in --workdir. Each is replayed by
``hwemu run`` in a subprocess, one at a time:

- ``machine``: no OS model (first touch served in the replay loop);
- ``first-touch``: the OS model with ``--policy first-touch``;
- ``autonuma``: the OS model with ``--policy autonuma --param scan_delay=100us --param
  scan_period_min=100us --param scan_size=64MiB`` (the modes of benchmarks/bench_faults.py).

Reported per (footprint, mode): wall and CPU seconds (user + system of the child), accesses/s
of wall and of CPU time, faults by kind, and the child's peak resident set size (``ru_maxrss``).
``--records`` may be a comma list: the same footprint at several trace lengths shows whether
memory grows with the trace (it should not) or with the footprint. Host time on whatever
machine runs this.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# the modes, the child command and the cached traces are bench_faults.py's
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_faults import MODES, hwemu, trace  # noqa: E402


def run(machine: str, path: Path, mode: str) -> dict:
    """One replay in a child process: wall, CPU and peak RSS of that child alone."""
    import tempfile

    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(hwemu("run", "--machine", machine, str(path), *MODES[mode],
                                      "--json"), stdout=fo, stderr=fe, text=True)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if proc.returncode != 0:
        raise SystemExit(f"hwemu run {path} ({mode}) failed: {err.strip().splitlines()[-1:]}")
    r = json.loads(out)
    cpu = ru.ru_utime + ru.ru_stime
    acc = int(r["accesses"])
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "accesses": acc,
            "maccs_wall": round(acc / wall / 1e6, 3), "maccs_cpu": round(acc / cpu / 1e6, 3),
            "faults": r.get("faults", {}), "peak_rss_mib": round(ru.ru_maxrss / 1024),
            "sim_time_ms": round(r["sim_time_ns"] / 1e6, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--machine", default="skx-2s")
    ap.add_argument("--footprints", default="1MiB,128MiB,1GiB,4GiB")
    ap.add_argument("--records", default="20M", help="trace length(s), comma separated")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--modes", default="machine,autonuma")
    ap.add_argument("--workdir", default="/tmp/hwemu-bench-scaling")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    for m in a.modes.split(","):
        if m not in MODES:
            ap.error(f"--modes: unknown mode {m!r} (choose from {', '.join(MODES)})")
    wd = Path(a.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    rows = []
    for fp in a.footprints.split(","):
        for records in a.records.split(","):
            path = trace(wd, records, fp, a.threads)
            for mode in a.modes.split(","):
                row = {"footprint": fp, "records": records, "threads": a.threads, "mode": mode,
                       **run(a.machine, path, mode)}
                rows.append(row)
                if not a.json:
                    f = row["faults"]
                    print(f"{fp:>7s} {records:>5s} {mode:11s} wall {row['wall_s']:8.1f}s "
                          f"cpu {row['cpu_s']:8.1f}s  {row['maccs_cpu']:6.3f} M acc/cpu-s  "
                          f"rss {row['peak_rss_mib']:6d} MiB  faults "
                          f"{f.get('not_present', 0)}+{f.get('numa_hint', 0)} hint  "
                          f"sim {row['sim_time_ms']:.1f} ms", flush=True)
    if a.json:
        print(json.dumps({"machine": a.machine, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
