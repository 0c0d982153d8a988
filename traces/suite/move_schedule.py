#!/usr/bin/env python3
"""Write a thread-move schedule for a recorded workload (docs/study.md, "Ten programs moved").

    traces/suite/move_schedule.py NAME TRACE OUT.toml [--machine skx-2s] [--share 0.9]

Runs TRACE once without migration (policy none, its threads on CPUs 0..n-1, socket 0 of the
machine), finds when ``--share`` of the pages it will ever touch have been first touched (the
placement timeline, 500 us windows), and writes OUT.toml: process 1 named NAME, the trace's
threads on CPUs 0..n-1, and a move_thread event for each at the first whole millisecond after
that time, to the same CPU numbers on the next socket. Prints one JSON line: the trace's
thread ids, that time, the run's length and pages, the move time, the baseline's mean latency.
The bundled traces/suite/schedules/*-small-move.toml were written by it from the traces of
``record.py NAME --scale small``. A bad argument or trace is one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def schedule_text(name: str, tids: list[int], at_ms: int, to_cpu0: int, how: str) -> str:
    n = len(tids)
    who = ("its one thread starts on CPU 0 (socket 0)" if n == 1 else
           f"its {n} threads start on CPUs 0-{n - 1} (socket 0)")
    dest = (f"it moves to CPU {to_cpu0} (socket 1)" if n == 1 else
            f"all move to CPUs {to_cpu0}-{to_cpu0 + n - 1} (socket 1)")
    lines = [f"# {name} moves to the other socket (traces/suite/suites/moves.toml, docs/study.md",
             f"# \"Ten programs moved\"): {who}; at {at_ms} ms,",
             f"# {how}, {dest}.",
             "# Written by traces/suite/move_schedule.py. NUMA balancing's times: Linux's (or the run",
             "# parameter time_compression).",
             "", "[[process]]", "pid = 1", f'name = "{name}"']
    for i, t in enumerate(tids):
        lines += ["", "[[thread]]", f"tid = {t}", "pid = 1", f"cpu = {i}"]
    for i, t in enumerate(tids):
        lines += ["", "[[event]]", f'at = "{at_ms}ms"', 'action = "move_thread"', f"tid = {t}",
                  f"cpu = {to_cpu0 + i}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--machine", default="skx-2s")
    ap.add_argument("--share", type=float, default=0.9, help="share of the pages touched before the move (0.9)")
    a = ap.parse_args(argv)
    from hwemu.errors import HwemuError
    from hwemu.machine.config import load_machine
    from hwemu.sim.experiment import run_cell
    from hwemu.traces.info import trace_info

    try:
        if not 0 < a.share <= 1:
            raise HwemuError(f"--share {a.share}: must be in (0, 1]")
        cfg = load_machine(a.machine)
        if cfg.sockets < 2:
            raise HwemuError(f"--machine {a.machine}: one socket; a move needs two")
        tids = [int(t) for t in trace_info(a.trace)["tids"]]
        per_socket = cfg.cores_per_socket
        if len(tids) > per_socket:
            raise HwemuError(f"{a.trace}: {len(tids)} threads, more than a socket's {per_socket} CPUs")
        r = run_cell(a.machine, a.trace, "none", params={"window": "500us"})
        pages = r.placement.groupby("time_ns")["pages"].sum()
        final = int(pages.max())
        t = float(pages[pages >= a.share * final].index[0])
        end = float(r.summary["sim_time_ns"])
        at_ms = math.floor(t / 1e6) + 1
        how = (f"the first whole millisecond after {a.share:.0%} of its {final:,} pages were first "
               f"touched\n# in its baseline run on {a.machine} ({t / 1e6:.1f} ms of {end / 1e6:.1f} ms)")
        out = Path(a.out)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(schedule_text(a.name, tids, at_ms, per_socket, how))
        tmp.replace(out)
    except HwemuError as e:
        print(f"move_schedule.py: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"move_schedule.py: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 2
    print(json.dumps({"workload": a.name, "tids": tids, "touched_ms": round(t / 1e6, 2),
                      "end_ms": round(end / 1e6, 2), "pages": final, "move_at_ms": at_ms,
                      "mean_ns": r.summary["mean_latency_ns"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
