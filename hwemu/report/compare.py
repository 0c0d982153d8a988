"""``hwemu.compare``: run every (trace, machine, policy) cell and write the report.

The runner that executes one cell is injectable: any callable with the signature of
``hwemu.sim.experiment.run_cell(machine, trace, policy, schedule=None, seed=0, params=None)``
returning an object with ``summary`` and the frames ``stats``, ``timeline``, ``placement``,
``migrations``, ``steps``. By default that is :func:`hwemu.sim.experiment.run_cell`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hwemu.errors import HwemuError
from hwemu.report.cells import CellData, CellSpec, looks_like_file, save_cell

BASELINE = "none"


def default_runner():
    try:
        from hwemu.sim.experiment import run_cell
    except ImportError as exc:  # pragma: no cover - depends on the installed tree
        raise HwemuError(f"the experiment runner is not available ({exc})") from None
    return run_cell


#: Policies ``compare`` runs when --policy is not given (``manual`` too when a schedule is).
DEFAULT_POLICIES = ("none", "autonuma", "tpp", "hotness", "nomad", "oracle")
#: Machine ``compare`` uses when --machine is not given.
DEFAULT_MACHINE = "skx-2s"


def run_params() -> frozenset:
    """Parameters of the run itself (not of a policy): every cell, the baseline's included,
    gets them. From hwemu.sim.experiment.RUN_PARAMS."""
    try:
        from hwemu.sim.experiment import RUN_PARAMS
    except ImportError:  # pragma: no cover
        return frozenset()
    return frozenset(RUN_PARAMS)


def demo_specs(seed: int = 0, params: dict | None = None) -> list[CellSpec]:
    """The bundled demo's cells (hwemu.sim.experiment.demo_cells(): machine, trace, schedule and
    policy per cell), with ``seed`` and the run parameters ``params``."""
    try:
        from hwemu.sim.experiment import demo_cells
    except ImportError as exc:  # pragma: no cover
        raise HwemuError(f"the bundled demo is not available ({exc})") from None
    specs = [CellSpec.make(c["trace"], c["machine"], c["policy"], seed, c.get("schedule"),
                           params) for c in demo_cells()]
    return sorted(set(specs), key=CellSpec.sort_key)


def _unique(values, what: str) -> list[str]:
    out: list[str] = []
    for v in values:
        if not isinstance(v, str) or not v:
            raise HwemuError(f"{what}: {v!r} is not a name")
        if v not in out:
            out.append(v)
    return out


def plan_cells(machines, traces, policies, schedule=None, seeds=(0,), params_list=({},),
               policy_params=None):
    """The cells to run: the cross product, with the ``none`` baseline added when missing.

    ``params_list`` holds the shared parameter combinations (every cell, ``none`` included,
    gets one); ``policy_params`` maps a policy to its own combinations, crossed only with that
    policy's cells.
    """
    machines = _unique(machines, "machine")
    traces = _unique(traces, "trace")
    policies = _unique(policies, "policy")
    policy_params = dict(policy_params or {})
    if not machines:
        raise HwemuError("no machine given")
    if not traces:
        raise HwemuError("no trace given")
    if not policies:
        raise HwemuError("no policy given")
    for pol in policy_params:
        if pol not in policies:
            raise HwemuError(f"parameters given for policy {pol!r}, which is not in the "
                             f"policies ({', '.join(policies)})")
    if BASELINE in policy_params:
        raise HwemuError("the baseline policy 'none' takes no parameters of its own")
    if BASELINE not in policies:
        policies = [BASELINE] + policies
    specs = []
    for trace in traces:
        for machine in machines:
            for shared in params_list:
                for seed in seeds:
                    for policy in policies:
                        for own in policy_params.get(policy) or ({},):
                            clash = sorted(set(shared) & set(own))
                            if clash:
                                raise HwemuError(f"parameter {clash[0]!r} is given both to "
                                                 f"every policy and to {policy!r}")
                            specs.append(CellSpec.make(trace, machine, policy, seed, schedule,
                                                       {**shared, **own}))
    return sorted(set(specs), key=CellSpec.sort_key)


def split_params(params: dict | None, policies) -> tuple[dict, dict]:
    """``compare``'s params: a run parameter (``window``) goes to every cell; another
    ``{name: value}`` to every listed policy except ``none``; ``{policy: {name: value}}`` to
    that policy only. Returns (shared, {policy: [own]})."""
    per: dict[str, dict] = {}
    common = {}
    shared = {}
    run = run_params()
    for key, value in (params or {}).items():
        if isinstance(value, dict):
            per.setdefault(str(key), {}).update(value)
        elif str(key) in run:
            shared[str(key)] = value
        else:
            common[str(key)] = value
    for pol in policies:
        if pol != BASELINE and common:
            per.setdefault(pol, {}).update({k: v for k, v in common.items()
                                            if k not in per.get(pol, {})})
    return shared, {pol: [d] for pol, d in per.items() if d}


def check_policy(policy: str, params: dict | None = None) -> None:
    """Fail early, with the registry's one-line message, on an unknown policy (``name`` or
    ``placement+migration``) or a policy parameter it does not declare or cannot parse."""
    from hwemu.policies import parse_policy_spec

    run = run_params()
    parse_policy_spec(policy, {k: v for k, v in (params or {}).items() if k not in run})


def check_run_params(shared: dict, where) -> None:
    """Fail early on a run parameter value that a cell would refuse; ``where(name)`` is the
    key or option to name in the message."""
    from hwemu.sim.experiment import parse_run_param

    for name, value in shared.items():
        parse_run_param(name, value, where(name))


def check_machine(machine: str, base_dir=None) -> None:
    """Fail early on a machine that is neither a preset nor a valid machine file."""
    from hwemu.machine.config import load_machine

    load_machine(_resolve(machine, base_dir, looks_like_file(machine)))


def check_file(path: str, base_dir=None, what: str = "trace") -> None:
    full = _resolve(path, base_dir, True)
    if not Path(full).is_file():
        raise HwemuError(f"{path}: no such {what} file")


def _resolve(name: str | None, base_dir: str | Path | None, is_file: bool) -> str | None:
    """A path relative to ``base_dir`` (the sweep file's directory) made absolute."""
    if name is None or base_dir is None or not is_file or os.path.isabs(name):
        return name
    return str(Path(base_dir) / name)


def run_one(spec: CellSpec, runner=None, base_dir: str | Path | None = None,
            progress=None) -> CellData:
    """Run one cell with ``runner`` (default hwemu.sim.experiment.run_cell); ``progress``, a
    callable ``report(records_done, records_total, sim_time_ps)``, goes to the runner."""
    runner = runner or default_runner()
    trace = _resolve(spec.trace, base_dir, True)
    machine = _resolve(spec.machine, base_dir, looks_like_file(spec.machine))
    schedule = _resolve(spec.schedule, base_dir, True)
    extra = {} if progress is None else {"progress": progress}
    result = runner(machine, trace, spec.policy, schedule=schedule, seed=spec.seed,
                    params=spec.params_dict or None, **extra)
    return CellData.from_result(spec, result)


def progress(total: int, quiet: bool, desc: str, initial: int = 0):
    """Progress over cells: a bar on a terminal; otherwise (a pipe, nohup, CI, a notebook's
    subprocess) one line per finished cell with elapsed and estimated remaining time;
    nothing when ``quiet``."""
    from tqdm import tqdm

    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if not quiet and not tty:
        return LineProgress(total, desc, initial)
    return tqdm(total=total, initial=initial, desc=desc, unit="cell", file=sys.stderr,
                disable=quiet, dynamic_ncols=True)


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class LineProgress:
    """The tqdm calls compare and sweep make, as one plain line per finished cell."""

    def __init__(self, total: int, desc: str, initial: int = 0, file=None):
        import time

        self.total, self.desc, self.n, self.first = total, desc, initial, initial
        self.label = ""
        self.file = file or sys.stderr
        self.t0 = time.monotonic()
        if initial:
            print(f"hwemu: {desc}: {initial} of {total} cells already done", file=self.file,
                  flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def set_postfix_str(self, s: str, refresh: bool = False) -> None:
        self.label = s

    def note(self, text: str) -> None:
        """One line about a running cell (its progress), with the elapsed time."""
        import time

        print(f"hwemu: {self.desc}: {text}; elapsed {_hms(time.monotonic() - self.t0)}",
              file=self.file, flush=True)

    def update(self, k: int = 1) -> None:
        import time

        self.n += k
        elapsed = time.monotonic() - self.t0
        done_here = self.n - self.first
        left = (self.total - self.n) * elapsed / done_here if done_here else 0.0
        what = f" ({self.label})" if self.label else ""
        eta = f", about {_hms(left)} left" if self.n < self.total else ""
        print(f"hwemu: {self.desc}: cell {self.n}/{self.total} done{what}; elapsed "
              f"{_hms(elapsed)}{eta}", file=self.file, flush=True)


def prepare_out(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HwemuError(f"--out {out}: exists and is not a directory")
    try:
        (out / "cells").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HwemuError(f"--out {out}: cannot create: {exc.strerror}") from None
    return out


def _cell_weight(spec: CellSpec) -> float:
    """A rough cost of a cell, to start the longest first: its trace's size, more with a
    policy that scans or moves pages."""
    try:
        size = Path(spec.trace).stat().st_size
    except OSError:
        size = 0
    return size * (1.0 if spec.policy in ("none", "oracle") else 1.5)


def run_cells(specs, runner=None, workers: int = 1):
    """Run the cells ``specs``; yields (index, CellData) as each finishes. With ``workers`` > 1
    (and the default runner) the cells run in that many worker processes, the heaviest
    first; each cell's result does not depend on where or in which order it ran."""
    if workers <= 1 or runner is not None or len(specs) <= 1:
        for i, spec in enumerate(specs):
            yield i, run_one(spec, runner)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(range(len(specs)), key=lambda i: -_cell_weight(specs[i]))
    ex = ProcessPoolExecutor(min(workers, len(specs)),
                             mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {ex.submit(run_one, specs[i]): i for i in order}
        for f in as_completed(futures):
            yield futures[f], f.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def compare(machines=None, traces=None, policies=None, schedule=None, seed=0, out=None,
            quiet=True, runner=None, params=None, command=None, workers: int = 1):
    """Run each (trace, machine, policy) cell and return the results table (a DataFrame).

    With no machines, traces and policies it runs the bundled demo
    (hwemu.sim.experiment.demo_cells()). Otherwise ``traces`` is required, ``machines`` defaults
    to skx-2s and ``policies`` to DEFAULT_POLICIES (plus ``manual`` with a schedule). The
    ``none`` baseline is always run, listed or not. With ``out`` it also writes the report
    directory (docs/reports.md). ``runner`` replaces hwemu.sim.experiment.run_cell. ``params``: a
    run parameter (``window``) goes to every cell, another ``{name: value}`` entry to every
    listed policy but the baseline, a ``{policy: {name: value}}`` entry to that policy only.
    ``command`` is the command line the report's provenance names (the CLI passes its own;
    from Python it is the process's argv and the call). ``workers``: processes running cells
    at once (results do not depend on it).
    """
    from hwemu.report.provenance import Provenance, write_machine_files
    from hwemu.report.table import results_table
    from hwemu.report.writer import write_report

    if machines is None and traces is None and policies is None:
        shared, per_policy = split_params(params, ())
        if per_policy:
            raise HwemuError("the demo takes run parameters only (" +
                             ", ".join(sorted(run_params())) + ")")
        check_run_params(shared, lambda k: f"--param {k}")
        specs = demo_specs(int(seed), shared)
    else:
        if traces is None:
            raise HwemuError("no trace given (pass --trace, or nothing at all for the demo)")
        machines = [machines] if isinstance(machines, str) else list(machines or
                                                                      [DEFAULT_MACHINE])
        traces = [traces] if isinstance(traces, str) else list(traces)
        if policies is None:
            policies = list(DEFAULT_POLICIES) + (["manual"] if schedule is not None else [])
        policies = [policies] if isinstance(policies, str) else list(policies)
        shared, per_policy = split_params(params, policies)
        check_run_params(shared, lambda k: f"--param {k}")
        if runner is None:
            for pol in _unique(policies, "policy"):
                check_policy(pol, (per_policy.get(pol) or [{}])[0])
            for m in _unique(machines, "machine"):
                check_machine(m)
            for t in _unique(traces, "trace"):
                check_file(t)
            if schedule is not None:
                check_file(schedule, what="schedule")
        specs = plan_cells(machines, traces, policies, schedule, (int(seed),), (shared,),
                           per_policy)
    prov = Provenance.now(command, [s.seed for s in specs])     # before any file is written
    fresh = out is not None and not Path(out).exists()
    out_dir = prepare_out(out) if out is not None else None
    if out_dir is not None:
        prov = prov.with_machine_files(write_machine_files(out_dir, [s.machine for s in specs]))
    done: list = [None] * len(specs)
    try:
        with progress(len(specs), quiet, "compare") as bar:
            for i, cell in run_cells(specs, runner, workers):
                if out_dir is not None:
                    save_cell(out_dir / "cells", cell, prov)
                done[i] = cell
                spec = specs[i]
                bar.set_postfix_str(f"{Path(spec.trace).stem}, {spec.policy}", refresh=False)
                bar.update(1)
    except BaseException:
        # A failure before any cell finished leaves nothing behind in a directory we created;
        # finished cells are kept (a re-run resumes from them).
        if fresh and not any(c is not None for c in done):
            import shutil

            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    cells = done
    if out_dir is not None:
        return write_report(out_dir, cells, provenance=prov)
    return results_table(cells)
