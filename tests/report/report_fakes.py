"""Mock neighbours for report tests: runners that return cell results built from their inputs.

The numbers are a deterministic function of (machine, trace, policy, seed, params), shaped like
hwemu.sim.experiment.run_cell's CellResult, so tables, figures and files can be checked exactly.
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# mean latency per policy on the fake machine (ns), and pages/time migrated
POLICY_MEAN = {"none": 120.0, "manual": 100.0, "autonuma": 96.0, "tpp": 110.0,
               "hotness": 90.0, "nomad": 125.0, "oracle": 80.0}
STEPS = ("isolate", "unmap", "tlb_flush", "copy", "remap")


@dataclass
class FakeResult:
    summary: dict
    stats: pd.DataFrame
    timeline: pd.DataFrame
    placement: pd.DataFrame
    migrations: pd.DataFrame
    steps: pd.DataFrame


def make_result(machine, trace, policy, seed=0, params=None) -> FakeResult:
    mean = POLICY_MEAN[policy] + (params or {}).get("bias", 0) + seed * 0.5
    accesses = 1_000_000
    migrating = policy not in ("none",)
    pages = 0 if not migrating else 200 + 10 * seed
    mig_time = 0.0 if not migrating else 5_000.0 * pages
    sim_time = 2_000_000.0 * mean / 120.0 + mig_time / 10
    h = zlib.crc32(f"{machine}|{trace}|{policy}|{seed}".encode())
    rng = np.random.default_rng(h)
    t = np.arange(0, 10, dtype=np.int64) * 200_000
    lat = mean + rng.normal(0, 2.0, size=len(t))
    if migrating:
        lat[:3] = POLICY_MEAN["none"]
    timeline = pd.DataFrame({"time_ns": t, "accesses": np.full(len(t), accesses // len(t)),
                             "mean_latency_ns": lat})
    remote = np.linspace(400, 400 - pages, len(t)).round().astype(np.int64)
    placement = pd.DataFrame({"time_ns": np.repeat(t, 2), "node": np.tile([0, 1], len(t)),
                              "pages": np.ravel(np.column_stack([1000 - remote, remote]))})
    if migrating:
        migrations = pd.DataFrame({"time_ns": [400_000, 600_000], "pages": [pages // 2] * 2,
                                   "bytes": [pages // 2 * 4096] * 2,
                                   "duration_ns": [mig_time / 2] * 2,
                                   "kind": ["move_pages", policy]})
        shares = np.array([0.05, 0.15, 0.3, 0.4, 0.1])
        steps = pd.DataFrame({"step": list(STEPS), "time_ns": mig_time * shares,
                              "count": [pages] * len(STEPS)})
    else:
        migrations = pd.DataFrame({"time_ns": pd.Series([], dtype="int64"),
                                   "pages": pd.Series([], dtype="int64"),
                                   "bytes": pd.Series([], dtype="int64"),
                                   "duration_ns": pd.Series([], dtype="float64"),
                                   "kind": pd.Series([], dtype="object")})
        steps = pd.DataFrame({"step": pd.Series([], dtype="object"),
                              "time_ns": pd.Series([], dtype="float64"),
                              "count": pd.Series([], dtype="int64")})
    local = 0.6 if policy == "none" else 0.8
    summary = {"machine": machine, "trace": trace, "policy": policy, "seed": seed,
               "accesses": accesses, "mean_latency_ns": mean, "p50_latency_ns": mean - 10,
               "p95_latency_ns": mean * 2, "p99_latency_ns": mean * 3,
               "local_share": local, "remote_share": 1 - local, "cxl_share": 0.0,
               "pages_migrated": pages, "pages_failed": 1 if migrating else 0,
               "migration_time_ns": mig_time, "interconnect_bytes": 64 * accesses * (1 - local),
               "sim_time_ns": sim_time}
    stats = pd.DataFrame({"component": ["node0.mc", "node1.mc", "os.migrate"],
                          "stat": ["reads", "reads", "pages"],
                          "value": [accesses * local, accesses * (1 - local), pages],
                          "unit": ["count", "count", "pages"]})
    return FakeResult(summary, stats, timeline, placement, migrations, steps)


def fake_runner(machine, trace, policy, schedule=None, seed=0, params=None):
    return make_result(machine, trace, policy, seed, params)


class CountingRunner:
    """A fake runner that leaves one marker file per call in ``marker_dir`` (named by cell and
    process id) and optionally sleeps, so tests can count runs and find a busy worker."""

    def __init__(self, marker_dir, delay_s: float = 0.0):
        self.marker_dir = str(marker_dir)
        self.delay_s = delay_s

    def __call__(self, machine, trace, policy, schedule=None, seed=0, params=None):
        name = f"{Path(trace).stem}-{machine}-{policy}-{seed}-{sorted((params or {}).items())}"
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        marker = Path(self.marker_dir) / f"{safe}.{os.getpid()}.{time.monotonic_ns()}"
        marker.write_text(str(os.getpid()))
        if self.delay_s:
            time.sleep(self.delay_s)
        return make_result(machine, trace, policy, seed, params)


def markers(marker_dir) -> list[str]:
    return sorted(p.name for p in Path(marker_dir).iterdir())


class FailingRunner(CountingRunner):
    """Like CountingRunner, but the cells of ``fail_policy`` raise the user error a real
    runner raises for a bad input."""

    def __init__(self, marker_dir, fail_policy: str):
        super().__init__(marker_dir)
        self.fail_policy = fail_policy

    def __call__(self, machine, trace, policy, schedule=None, seed=0, params=None):
        from hwemu.errors import HwemuError

        if policy == self.fail_policy:
            raise HwemuError(f"{trace}: no such file")
        return super().__call__(machine, trace, policy, schedule, seed, params)


# -- a small workload for the real runner ----------------------------------------------------
def _demo_machine() -> str:
    from hwemu.sim.experiment import DEMO_DIR

    return str(DEMO_DIR / "skx-2s-demo.toml")


MACHINE = _demo_machine()

SCHEDULE = """\
[numa_balancing]
scan_delay = "20us"
scan_period_min = "20us"
scan_period_max = "1ms"
scan_size = "1MiB"

[[process]]
pid = 1
name = "e2e"

[[thread]]
tid = 0
pid = 1
cpu = 0

[[event]]
at = "30us"
action = "move_thread"
tid = 0
cpu = 24
"""


def write_move_workload(d: Path) -> Path:
    """A 20,000-access single-thread trace (move.parquet) on the demo machine and its schedule
    (move.toml: the thread moves to socket 1 at 30 us) in ``d``, for the real runner."""
    from hwemu.traces.format import TraceChunk, write_trace

    rng = np.random.default_rng(1)
    base, size, n = 0x10_0000_0000, 256 * 1024, 20_000
    init = np.arange(base, base + size, 4096, dtype=np.uint64)        # first touch, socket 0
    off = (rng.integers(0, size // 8, n) * 8).astype(np.uint64)
    addr = np.concatenate([init, base + off])
    kind = np.concatenate([np.full(len(init), 2, np.uint8),
                           np.where(rng.random(n) < 0.3, 2, 1).astype(np.uint8)])
    chunk = TraceChunk.from_arrays(kind, addr, np.full(len(addr), 8, np.uint16),
                                   np.zeros(len(addr), np.uint16),
                                   np.full(len(addr), 100, np.uint32))
    write_trace(d / "move.parquet", chunk, "synthetic", "report e2e")
    (d / "move.toml").write_text(SCHEDULE)
    return d
