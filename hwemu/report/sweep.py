"""``hwemu sweep``: the cross product of machines, traces, policies, seeds and parameters,
run on Dask, one file per finished cell, resumable (docs/sweep.md).

Each cell runs as one Dask task that writes ``DIR/cells/<cell_id>.zip`` atomically as soon as
the cell finishes; the client only collects small status records. A re-run plans the same
cells, finds their files and skips them. A task whose worker dies is rescheduled by the Dask
scheduler (up to ``retries`` times; ``distributed.scheduler.allowed-failures``) and a task that
raises is retried ``retries`` times; errors the user caused (bad trace, unknown policy) are not
retried, and are reported after the other cells have finished.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hwemu.errors import HwemuError
from hwemu.fileio import read_toml
from hwemu.report.cells import CellSpec, cell_path, load_cell, machine_label, save_cell, trace_label
from hwemu.report.provenance import Provenance, python_command, write_machine_files
from hwemu.report.compare import (BASELINE, check_file, check_machine, check_policy,
                                  check_run_params, plan_cells,
                                  LineProgress, prepare_out, progress, run_one, run_params)
from hwemu.units import format_time_ns

_TOP_KEYS = {"machines", "traces", "policies", "seeds", "schedule", "params", "retries"}
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file. Paths inside it are relative to ``base_dir``."""

    path: str
    base_dir: str
    machines: tuple
    traces: tuple
    policies: tuple
    seeds: tuple = (0,)
    schedule: str | None = None
    params: dict = field(default_factory=dict)
    retries: int = DEFAULT_RETRIES
    policy_params: dict = field(default_factory=dict)
    #: (trace, schedule) pairs: a trace's own schedule instead of ``schedule`` (a suite's
    #: per-workload [schedule] table; hwemu.report.suite).
    trace_schedules: tuple = ()

    def cells(self) -> list[CellSpec]:
        own = dict(self.trace_schedules)
        groups = ([(self.traces, self.schedule)] if not own else
                  [((t,), own.get(t, self.schedule)) for t in self.traces])
        specs: set[CellSpec] = set()
        for traces, schedule in groups:
            specs.update(plan_cells(self.machines, traces, self.policies, schedule,
                                    self.seeds, _combinations(self.params),
                                    {pol: _combinations(t)
                                     for pol, t in self.policy_params.items()}))
        return sorted(specs, key=CellSpec.sort_key)


def _str_list(path, data, key, required=True) -> tuple:
    if key not in data:
        if required:
            raise HwemuError(f"{path}: key '{key}' is missing (a list of names)")
        return ()
    v = data[key]
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise HwemuError(f"{path}: key '{key}' must be a non-empty list of strings, "
                         f"got {v!r}")
    if len(set(v)) != len(v):
        raise HwemuError(f"{path}: key '{key}' lists a name twice")
    return tuple(v)


def _param_values(path, key: str, values) -> list:
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise HwemuError(f"{path}: key '{key}' is an empty list")
    for v in values:
        if isinstance(v, (dict, list)) or not isinstance(v, (int, float, str, bool)):
            raise HwemuError(f"{path}: key '{key}': {v!r} is not a number, string or boolean")
    if len({repr(v) for v in values}) != len(values):
        raise HwemuError(f"{path}: key '{key}' lists a value twice")
    return values


def _combinations(table: dict[str, list]) -> list[dict]:
    names = sorted(table)
    return [dict(zip(names, combo)) for combo in itertools.product(*(table[n] for n in names))]


def load_sweep(path: str | os.PathLike, check: bool = True) -> SweepSpec:
    """Parse and validate a sweep TOML file; errors name the file and the key.

    With ``check`` the inputs are checked before anything runs: every machine loads, every
    trace and the schedule exist, every policy name and every value of a policy's own
    parameters is accepted by the policy registry (hwemu.policies), and the shared parameters
    are parameters of the run (hwemu.sim.experiment.RUN_PARAMS)."""
    p = Path(path)
    data = read_toml(p, "sweep TOML file")
    check_keys(p, data, _TOP_KEYS)
    return parse_sweep(data, p, check)


def check_keys(path, data: dict, known, where: str = "") -> None:
    """A one-line error naming ``path`` and the first key of ``data`` (the table ``where``,
    when given) not in ``known``."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise HwemuError(f"{path}: unknown key '{key}' (known: "
                         f"{', '.join(sorted(known))})")


def parse_sweep(data: dict, p: Path, check: bool = True, check_traces: bool = True,
                trace_schedules: tuple = ()) -> SweepSpec:
    """Validate the keys of a sweep file already read into ``data`` (the file ``p``: errors
    name it; relative paths are relative to its directory); see load_sweep. A suite file
    (hwemu.report.suite) shares these keys: ``check_traces=False`` leaves the traces, which
    may not be recorded yet, unchecked; ``trace_schedules`` are (trace, schedule) pairs whose
    schedules, relative to the file's directory too, replace ``schedule`` for that trace."""
    machines = _str_list(p, data, "machines")
    traces = _str_list(p, data, "traces")
    policies = _str_list(p, data, "policies")
    seeds = data.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise HwemuError(f"{p}: key 'seeds' must be a non-empty list of integers >= 0, "
                         f"got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise HwemuError(f"{p}: key 'seeds' lists a seed twice")
    schedule = data.get("schedule")
    if schedule is not None and (not isinstance(schedule, str) or not schedule):
        raise HwemuError(f"{p}: key 'schedule' must be a file name, got {schedule!r}")
    retries = data.get("retries", DEFAULT_RETRIES)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 100:
        raise HwemuError(f"{p}: key 'retries' must be an integer from 0 to 100, got {retries!r}")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise HwemuError(f"{p}: key 'params' must be a table of lists")
    shared: dict[str, list] = {}
    per_policy: dict[str, dict[str, list]] = {}
    for name, values in params.items():
        if isinstance(values, dict):
            if name not in policies:
                raise HwemuError(f"{p}: key 'params.{name}': a table of parameters for policy "
                                 f"{name!r}, which is not in 'policies'")
            if name == BASELINE:
                raise HwemuError(f"{p}: key 'params.{name}': the baseline takes no parameters "
                                 "of its own")
            per_policy[name] = {k: _param_values(p, f"params.{name}.{k}", v)
                                for k, v in values.items()}
        else:
            shared[name] = _param_values(p, f"params.{name}", values)
    for pol, own in per_policy.items():
        clash = sorted(set(own) & set(shared))
        if clash:
            raise HwemuError(f"{p}: key 'params.{pol}.{clash[0]}': also given to every policy "
                             f"in 'params.{clash[0]}'")
    run = run_params()
    # run parameters, shared or given to one policy: every value must parse
    for prefix, table in [("params.", shared)] + [(f"params.{pol}.", own)
                                                   for pol, own in per_policy.items()]:
        for name, values in table.items():
            if name in run:
                for v in values:
                    check_run_params({name: v}, lambda k: f"{p}: key '{prefix}{k}'")
    if check:
        base = p.resolve().parent
        for key, names, fn in (("machines", machines, check_machine),
                               ("traces", traces if check_traces else (), check_file)):
            for name in names:
                try:
                    fn(name, base)
                except HwemuError as exc:
                    raise HwemuError(f"{p}: key '{key}': {exc}") from None
        if schedule is not None:
            try:
                check_file(schedule, base, "schedule")
            except HwemuError as exc:
                raise HwemuError(f"{p}: key 'schedule': {exc}") from None
        run = run_params()
        for name in shared:
            if name not in run:
                raise HwemuError(f"{p}: key 'params.{name}': not a parameter of the run "
                                 f"({', '.join(sorted(run)) or 'none'}); give a policy's "
                                 f"parameters in [params.<policy>]")
        for pol in policies:
            try:
                check_policy(pol)
            except HwemuError as exc:
                raise HwemuError(f"{p}: key 'policies': {exc}") from None
        for pol, own in per_policy.items():
            for k, values in own.items():
                for v in values:
                    try:
                        check_policy(pol, {k: v})
                    except HwemuError as exc:
                        raise HwemuError(f"{p}: key 'params.{pol}.{k}': {exc}") from None
    spec = SweepSpec(str(p), str(p.resolve().parent), machines, traces, policies, tuple(seeds),
                     schedule, shared, retries, per_policy, tuple(trace_schedules))
    try:
        spec.cells()
    except HwemuError as exc:
        raise HwemuError(f"{p}: {exc}") from None
    return spec


#: The Dask event topic on which a cell's worker reports the cell's progress to the client.
PROGRESS_TOPIC = "hwemu-cell-progress"


def progress_period() -> float:
    """Seconds between two progress reports of a running cell (``HWEMU_PROGRESS_PERIOD``,
    default 10); a report line without a terminal comes at most every six periods."""
    try:
        return max(0.0, float(os.environ.get("HWEMU_PROGRESS_PERIOD", "10")))
    except ValueError:
        return 10.0


class _CellReporter:
    """A running cell's progress, sent from its Dask worker to the sweep's client as an event
    on :data:`PROGRESS_TOPIC` at most every :func:`progress_period` seconds."""

    def __init__(self, cell: str):
        self.cell = cell
        self.period = progress_period()
        self.last = time.monotonic()

    def __call__(self, done: int, total: int, sim_ps: int) -> None:
        now = time.monotonic()
        if now - self.last < self.period:
            return
        self.last = now
        from distributed import get_worker

        try:
            worker = get_worker()
        except ValueError:                      # not on a Dask worker: nobody to tell
            return
        worker.log_event(PROGRESS_TOPIC, {"cell": self.cell, "done": int(done),
                                          "total": int(total), "sim_ps": int(sim_ps)})


def cell_label(spec: CellSpec) -> str:
    """A cell as the progress lines name it: trace, machine, policy and its parameters."""
    params = "".join(f" {k}={v}" for k, v in spec.params)
    return (f"{trace_label(spec.trace)} on {machine_label(spec.machine)}, "
            f"{spec.policy}{params}")


class _CellWatch:
    """The running cells' progress on the sweep's progress display: the bar's postfix on a
    terminal, otherwise one line per cell at most every six report periods. ``event`` is the
    Dask topic handler (it runs on the client's event-loop thread)."""

    def __init__(self, bar, labels: dict[str, str]):
        self.bar, self.labels = bar, labels
        self.running: dict[str, str] = {}
        self.printed: dict[str, float] = {}
        self.lock = threading.Lock()
        self.every = 6 * progress_period()
        self.start = time.monotonic()

    def event(self, event) -> None:
        msg = event[1]
        cell = msg.get("cell") if isinstance(msg, dict) else None
        with self.lock:
            if cell not in self.labels:        # another sweep's cell, or finished already
                return
            text = (f"{self.labels[cell]}: {100 * msg['done'] / max(1, msg['total']):.0f}% of "
                    f"its records, {format_time_ns(msg['sim_ps'] / 1000)} simulated")
            self.running[cell] = text
            if isinstance(self.bar, LineProgress):
                now = time.monotonic()
                if now - self.printed.get(cell, self.start) >= self.every:
                    self.printed[cell] = now
                    self.bar.note(f"running {text}")
            else:
                self.bar.set_postfix_str("; ".join(self.running.values()))

    def finished(self, cell: str) -> None:
        with self.lock:
            self.labels.pop(cell, None)
            self.running.pop(cell, None)


def _sweep_task(spec_dict: dict, base_dir: str, cells_dir: str, runner,
                provenance: dict | None = None) -> dict:
    """Run one cell on a Dask worker and store it; user errors come back as data.
    ``provenance`` is the sweep's (made once, where the sweep started). With the default
    runner the cell reports its progress to the client (:class:`_CellReporter`)."""
    spec = CellSpec.from_dict(spec_dict)
    try:
        cell = run_one(spec, runner, base_dir,
                       progress=_CellReporter(spec.cell_id) if runner is None else None)
    except HwemuError as exc:
        return {"cell": spec.cell_id, "error": str(exc)}
    prov = Provenance.from_dict(provenance) if provenance is not None else None
    save_cell(cells_dir, cell, prov, base_dir)
    return {"cell": spec.cell_id, "error": None}


def _finished(cells_dir: Path, spec: CellSpec) -> bool:
    path = cell_path(cells_dir, spec)
    if not path.is_file():
        return False
    try:
        load_cell(path, spec)
    except HwemuError:
        return False
    return True


@dataclass
class SweepResult:
    table: object
    cells: int
    ran: int
    skipped: int


def run_sweep(sweep: SweepSpec | str | os.PathLike, out, workers: int = 2,
              scheduler: str | None = None, runner=None, quiet: bool = True,
              retries: int | None = None, connect_timeout: str = "20s",
              command: str | None = None, title: str | None = None,
              desc: str = "sweep") -> SweepResult:
    """Run the sweep on Dask (a LocalCluster of ``workers`` processes, or the scheduler at
    ``scheduler``), skipping cells whose files exist, and write the report into ``out``.
    ``runner`` replaces hwemu.sim.experiment.run_cell (a sweep file is then not checked against
    the real inputs: see load_sweep). ``command`` is the command line the provenance names
    (the CLI passes its own); ``title`` the report's (default ``hwemu sweep: FILE``); ``desc``
    names the run in the progress lines."""
    import dask
    from distributed import Client, LocalCluster, as_completed

    from hwemu.report.writer import write_report

    if not isinstance(sweep, SweepSpec):
        sweep = load_sweep(sweep, check=runner is None)
    retries = sweep.retries if retries is None else int(retries)
    specs = sweep.cells()
    prov = Provenance.now(command or python_command("hwemu.report.sweep.run_sweep"),
                          [s.seed for s in specs])               # before any file is written
    fresh = not Path(out).exists()
    out = prepare_out(out).resolve()
    cells_dir = out / "cells"
    todo = [s for s in specs if not _finished(cells_dir, s)]
    skipped = len(specs) - len(todo)
    prov = prov.with_machine_files(write_machine_files(out, [s.machine for s in specs],
                                                       sweep.base_dir))
    errors: list[str] = []
    if todo:
        if scheduler is None and (not isinstance(workers, int) or workers < 1):
            raise HwemuError(f"--workers {workers}: must be at least 1")
        with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
            cluster = None
            try:
                if scheduler is None:
                    cluster = LocalCluster(n_workers=min(workers, len(todo)), threads_per_worker=1,
                                           # a free port for the scheduler's HTTP
                                           # server: no warning when two sweeps run
                                           processes=True, dashboard_address=":0",
                                           silence_logs=logging.ERROR)
                    client = Client(cluster)
                else:
                    try:
                        client = Client(scheduler, timeout=connect_timeout)
                    except (OSError, TimeoutError) as exc:
                        raise HwemuError(f"--scheduler {scheduler}: cannot connect ({exc})") \
                            from None
                with client:
                    futures = [client.submit(_sweep_task, s.to_dict(), sweep.base_dir,
                                             str(cells_dir), runner, prov.to_dict(),
                                             key=f"hwemu-cell-{s.cell_id}",
                                             retries=retries, pure=False)
                               for s in todo]
                    with progress(len(specs), quiet, desc, initial=skipped) as bar:
                        watch = _CellWatch(bar, {s.cell_id: cell_label(s) for s in todo})
                        if not quiet:
                            client.subscribe_topic(PROGRESS_TOPIC, watch.event)
                        for fut in as_completed(futures):
                            watch.finished(str(fut.key).removeprefix("hwemu-cell-"))
                            try:
                                res = fut.result()
                            except Exception as exc:  # runner crashed beyond its retries
                                errors.append(f"{fut.key}: {type(exc).__name__}: {exc}")
                            else:
                                if res["error"]:
                                    errors.append(f"cell {res['cell']}: {res['error']}")
                            bar.update(1)
            finally:
                if cluster is not None:
                    cluster.close()
    if errors:
        if fresh and not any(cells_dir.iterdir()):
            import shutil

            # Nothing finished in a directory this run created: leave nothing behind.
            shutil.rmtree(out, ignore_errors=True)
        raise HwemuError(f"{len(errors)} of {len(todo)} cells failed (finished cells are kept; "
                         f"re-run to resume); first: {errors[0]}")
    cells = [load_cell(cell_path(cells_dir, s), s) for s in specs]
    table = write_report(out, cells, title=title or f"hwemu sweep: {Path(sweep.path).name}",
                         provenance=prov)
    return SweepResult(table, len(specs), len(todo), skipped)


__all__ = ["SweepSpec", "SweepResult", "load_sweep", "parse_sweep", "run_sweep", "BASELINE"]
