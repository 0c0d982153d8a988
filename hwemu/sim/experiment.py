"""Experiments: one *cell* = one trace on one machine under one policy (and schedule, seed).

:func:`run_cell` runs a cell through the co-simulation (hwemu.sim.cosim) and returns a
:class:`CellResult`: flat summary numbers plus the long-form frames the reports are made of.
:func:`demo_cells` lists the bundled demo (traces/demo/) that ``hwemu compare`` runs with no
arguments. See docs/experiments.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hwemu.errors import HwemuError

#: Keys of CellResult.summary (the report layer codes against these names).
SUMMARY_KEYS = (
    "machine", "trace", "policy", "seed", "accesses", "mean_latency_ns", "p50_latency_ns",
    "p95_latency_ns", "p99_latency_ns", "local_share", "remote_share", "cxl_share",
    "pages_migrated", "pages_failed", "migration_time_ns", "interconnect_bytes", "sim_time_ns",
)

#: Parameters run_cell itself takes (the others go to the policies).
RUN_PARAMS = {"window": "timeline window (time, default 10us)",
              "copy": "page copy of migrations: cpu (default) or dma (the machine's [dma] engines)",
              "time_compression": "divide Linux's NUMA-balancing times by this factor (>= 1; "
                                  "replaces the times of the schedule's [numa_balancing] table)"}


def parse_run_param(name: str, value, where: str):
    """The value of run parameter ``name`` (one of RUN_PARAMS), parsed and checked; a
    HwemuError naming ``where`` if it is not acceptable. ``window``: a positive time in ps;
    ``copy``: cpu or dma; ``time_compression``: a float >= 1."""
    import math

    from hwemu.units import parse_time_ps

    if name == "time_compression":
        try:
            factor = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            factor = math.nan
        if not (math.isfinite(factor) and factor >= 1):
            raise HwemuError(f"{where}: {value!r} is not a time compression (a number >= 1)")
        return factor
    if name == "copy":
        if value not in ("cpu", "dma"):
            raise HwemuError(f"{where}: {value!r} is not a copy mode (use cpu or dma)")
        return value
    if name != "window":
        raise HwemuError(f"{where}: not a parameter of the run ({', '.join(sorted(RUN_PARAMS))})")
    window_ps = value if isinstance(value, int) and not isinstance(value, bool) \
        else parse_time_ps(value if isinstance(value, (float, bool)) else str(value), where)
    if window_ps <= 0:
        raise HwemuError(f"{where}: must be positive, got {value!r}")
    return window_ps


def pop_run_param(params: dict, name: str, default, where: str):
    """Remove run parameter ``name`` from ``params`` and return its parsed value
    (:func:`parse_run_param`, errors naming ``where`` + the name), or ``default`` when absent."""
    if name not in params:
        return default
    return parse_run_param(name, params.pop(name), f"{where}{name}")


DEMO_DIR = Path(__file__).resolve().parents[2] / "traces" / "demo"


@dataclass
class CellResult:
    summary: dict           # flat JSON-able numbers for the cell (SUMMARY_KEYS and more)
    stats: pd.DataFrame     # long-form (component, stat, value, unit): every number of the run
    timeline: pd.DataFrame  # time_ns, accesses, mean_latency_ns (one row per time window)
    placement: pd.DataFrame  # time_ns, node, pages, in_flight, frames (hwemu/sim/residency.py)
    migrations: pd.DataFrame  # time_ns, pages, bytes, duration_ns, kind, latency_before_ns, latency_after_ns
    steps: pd.DataFrame     # step, time_ns, count (protocol time per step)
    numa_maps: list = None  # /proc/<pid>/numa_maps snapshots (after each syscall, at the end)


def _flat(summary: dict) -> dict:
    """Keep the JSON-able scalars; nested dicts become ``key.sub`` entries."""
    out = {}
    for k, v in summary.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                if isinstance(v2, (int, float, str, bool)):
                    out[f"{k}.{k2}"] = v2
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
    return out


def run_cell(machine, trace, policy, schedule=None, seed: int = 0, params: dict | None = None,
             progress=False) -> CellResult:
    """Run ``trace`` on ``machine`` (preset name or TOML path) with ``policy`` (a registered
    name, or ``placement+migration`` such as ``interleave+autonuma``), the optional
    ``schedule`` file, ``seed`` and ``params`` (policy parameters, plus ``window``: the
    timeline window). Deterministic: the same arguments give identical numbers. ``progress``:
    True for a progress bar on stderr, or a callable ``report(records_done, records_total,
    sim_time_ps)`` called as the replay goes (``hwemu sweep`` sends it to its client)."""
    from hwemu.sim.cosim import CoSim
    from hwemu.policies.registry import parse_policy_spec
    params = dict(params or {})
    copy = pop_run_param(params, "copy", "cpu", "params.")
    compression = pop_run_param(params, "time_compression", None, "params.")
    window_ps = pop_run_param(params, "window", None, "params.")
    if not Path(str(trace)).is_file():
        raise HwemuError(f"{trace}: no such trace file")
    placement, migration = parse_policy_spec(str(policy), params)
    sim = CoSim(machine, trace, schedule=schedule, placement=placement, migration=migration,
                seed=int(seed), params=params, window_ps=window_ps, progress=progress,
                copy=copy, time_compression=compression)
    res = sim.run()
    s = dict(res.summary)
    summary = {"machine": s["machine"], "trace": str(trace), "policy": str(policy),
               "seed": int(seed)}
    for key in SUMMARY_KEYS[4:]:
        summary[key] = s[key]
    summary["schedule"] = None if schedule is None else str(schedule)
    for k, v in _flat(s).items():
        summary.setdefault(k, v)
    return CellResult(summary, res.stats.to_frame(), res.timeline, res.placement,
                      res.migrations, res.steps, res.numa_maps)


def _registered(names):
    from hwemu.policies.registry import list_policies

    have = {p["name"] for p in list_policies()}
    return [n for n in names if n in have]


def demo_cells() -> list[dict]:
    """The bundled demo, one dict per cell: ``machine``, ``trace``, ``schedule``, ``policy``
    (absolute paths). Three workloads (traces/demo/README.md): the classic migration case on
    skx-2s-demo (threads moved to the other socket), a tiering case on skx-2s-cxl-demo (hot
    pages first touched on the CXL node), and the recorded real program traces/threads.parquet
    on skx-2s (its workers moved to the other socket)."""
    from hwemu.machine.config import PRESET_DIR

    d = DEMO_DIR
    pairs = [
        (str(d / "skx-2s-demo.toml"), str(d / "numa_move.parquet"), str(d / "numa_move.toml"),
         _registered(("none", "manual", "manual-dma", "autonuma", "tpp", "hotness", "nomad",
                      "oracle"))),
        (str(d / "skx-2s-cxl-demo.toml"), str(d / "tiering.parquet"), str(d / "tiering.toml"),
         _registered(("none", "autonuma", "tpp", "hotness", "nomad", "oracle"))),
        # a recorded real program (traces/README.md): its workers move to socket 1 too, but
        # their data is cache-resident, so migration has nothing to win there
        (str(PRESET_DIR / "skx-2s.toml"),
         str(d.parent / "threads.parquet"), str(d / "threads.toml"),
         _registered(("none", "manual", "autonuma", "oracle"))),
    ]
    out = []
    for machine, trace, schedule, policies in pairs:
        for p in policies:
            out.append({"machine": machine, "trace": trace, "schedule": schedule, "policy": p})
    return out
