"""``hwemu compare --suite NAME``: a study suite's workloads recorded where missing, then its
cells run on Dask through the sweep machinery (resumable), one report (docs/study.md,
"Running a suite").

A suite file is TOML: the workloads of traces/suite/record.py and a scale, plus the keys a
sweep file has for machines, policies, seeds, [params] and retries (read by
hwemu.report.sweep.parse_sweep, so both formats check them the same way), and an optional
``[schedule]`` table giving a workload its own schedule file. The bundled suites are
``traces/suite/suites/NAME.toml``; NAME may also be the path of a suite file.

The recorder and the bundled suites live in the source tree (traces/ at the top of the
repository), not in the package: ``--suite`` needs the checkout hwemu was installed from
(``pip install -e``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from hwemu.errors import HwemuError
from hwemu.fileio import read_toml
from hwemu.report.cells import trace_label
from hwemu.report.sweep import SweepSpec, check_keys, parse_sweep

#: The repository the package is installed from (an editable install: hwemu/ is in it).
REPO = Path(__file__).resolve().parents[2]
SUITE_DIR = REPO / "traces" / "suite"
RECORDER = SUITE_DIR / "record.py"
BUNDLED = SUITE_DIR / "suites"

_SUITE_KEYS = {"workloads", "scale", "machines", "policies", "seeds", "params", "retries",
               "schedule", "variants"}
_VARIANT_KEYS = {"workload", "seed", "params"}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def recorder() -> Path:
    """traces/suite/record.py of the checkout, or a one-line error."""
    if not RECORDER.is_file():
        raise HwemuError(f"{RECORDER}: not found; --suite needs the source checkout of hwemu "
                         "(installed with pip install -e), whose traces/suite/record.py "
                         "records the workloads")
    return RECORDER


def _recorder_module():
    """traces/suite/record.py, loaded as a module (once)."""
    path = recorder()
    name = "hwemu_suite_record"
    mod = sys.modules.get(name)
    if mod is None or getattr(mod, "__file__", None) != str(path):
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod                    # its dataclasses look the module up
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise HwemuError(f"{path}: cannot be loaded ({type(exc).__name__}: {exc})") from None
    return mod


def known_workloads() -> tuple[str, ...]:
    """The workload names of traces/suite/record.py (its WORKLOADS table)."""
    return tuple(_recorder_module().WORKLOADS)


def known_scales() -> tuple[str, ...]:
    """The scales traces/suite/record.py records at (its SCALES)."""
    return tuple(_recorder_module().SCALES)


def bundled_suites() -> list[str]:
    return sorted(p.stem for p in BUNDLED.glob("*.toml")) if BUNDLED.is_dir() else []


def suite_file(name: str) -> Path:
    """A bundled suite's file, or ``name`` itself when it is a path (has a '/' or ends in
    .toml, or names an existing file)."""
    if "/" in name or name.endswith(".toml") or Path(name).is_file():
        p = Path(name)
        if not p.is_file():
            raise HwemuError(f"--suite {name}: no such suite file")
        return p
    p = BUNDLED / f"{name}.toml"
    if not p.is_file():
        known = ", ".join(bundled_suites()) or "none found in " + str(BUNDLED)
        raise HwemuError(f"--suite {name}: unknown suite (bundled: {known}; or give the path "
                         "of a suite TOML file)")
    return p


@dataclass(frozen=True)
class Variant:
    """A suite's own recording of a workload (``[variants.NAME]``): the recorder's workload,
    its input seed and parameter overrides (record.py --seed, --param, --name)."""

    name: str
    workload: str
    seed: int = 1
    params: tuple = ()                 # ((key, value), ...) in the file's order

    def record_args(self) -> list[str]:
        args = [self.workload, "--seed", str(self.seed)]
        if self.name != self.workload:
            args += ["--name", self.name]
        for k, v in self.params:
            args += ["--param", f"{k}={v}"]
        return args


@dataclass(frozen=True)
class Suite:
    """A parsed suite file: its workloads (recorder workloads or its own variants), each
    recorded into ``traces_dir/NAME-SCALE.parquet``, and the sweep that runs them."""

    name: str
    path: Path
    workloads: tuple
    scale: str
    traces_dir: Path
    sweep: SweepSpec
    variants: tuple = ()               # one Variant per workload, in workload order

    def trace(self, workload: str) -> Path:
        return self.traces_dir / f"{workload}-{self.scale}.parquet"

    def variant(self, workload: str) -> Variant:
        return next((v for v in self.variants if v.name == workload), Variant(workload, workload))


def _parse_variants(p: Path, data: dict, known: tuple) -> dict:
    """The suite's ``[variants.NAME]`` tables, checked (workload known, seed a non-negative
    integer, params a table of integers and strings)."""
    raw = data.pop("variants", {})
    if not isinstance(raw, dict):
        raise HwemuError(f"{p}: key 'variants' must be a table of tables [variants.NAME]")
    out = {}
    for name, t in raw.items():
        where = f"variants.{name}"
        if not _NAME_RE.fullmatch(name):
            raise HwemuError(f"{p}: key '{where}': a variant name uses letters, digits, '_', '-' "
                             "and '.', starting with a letter or digit")
        if name in known:
            raise HwemuError(f"{p}: key '{where}': {name!r} is a recorder workload; give the "
                             "variant another name")
        if not isinstance(t, dict):
            raise HwemuError(f"{p}: key '{where}' must be a table (workload, seed, params)")
        check_keys(p, t, _VARIANT_KEYS, where)
        w = t.get("workload")
        if w not in known:
            raise HwemuError(f"{p}: key '{where}.workload': expected one of {', '.join(known)}, "
                             f"got {w!r}")
        seed = t.get("seed", 1)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise HwemuError(f"{p}: key '{where}.seed' must be a non-negative integer, got {seed!r}")
        params = t.get("params", {})
        if not isinstance(params, dict):
            raise HwemuError(f"{p}: key '{where}.params' must be a table KEY = value")
        for k, v in params.items():
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise HwemuError(f"{p}: key '{where}.params.{k}' must be an integer or a string, "
                                 f"got {v!r}")
        out[name] = Variant(name, w, seed, tuple(params.items()))
    return out


def _checked_params(p: Path, v: Variant, scale: str) -> Variant:
    """``v`` with its parameters checked and converted by the recorder (record.py
    parse_params: known keys, integers where the scale has integers), as they will be recorded."""
    mod = _recorder_module()
    items = [f"{k}={val}" for k, val in v.params]
    try:
        params = mod.parse_params(mod.WORKLOADS[v.workload], scale, items)
    except mod.SuiteError as exc:
        raise HwemuError(f"{p}: key 'variants.{v.name}.params': "
                         f"{str(exc).removeprefix('--param ')}") from None
    return replace(v, params=tuple(params.items()))


def load_suite(name: str, traces_dir="suite-traces", check: bool = True) -> Suite:
    """Parse and validate the suite ``name`` (bundled, or a file); errors name the file and
    the key. The traces are ``traces_dir/WORKLOAD-SCALE.parquet`` and need not exist yet.
    With ``check``, machines, policies, parameters and schedules are checked as in a sweep."""
    p = suite_file(name)
    data = read_toml(p, "suite TOML file")
    check_keys(p, data, _SUITE_KEYS)
    if "workloads" not in data:
        raise HwemuError(f"{p}: key 'workloads' is missing (a list of workload names)")
    workloads = data.pop("workloads")
    if isinstance(workloads, str):
        workloads = [workloads]
    if (not isinstance(workloads, list) or not workloads
            or not all(isinstance(w, str) and w for w in workloads)):
        raise HwemuError(f"{p}: key 'workloads' must be a non-empty list of strings, "
                         f"got {workloads!r}")
    if len(set(workloads)) != len(workloads):
        raise HwemuError(f"{p}: key 'workloads' lists a name twice")
    known = known_workloads()
    variants = _parse_variants(p, data, known)
    for w in workloads:
        if w not in known and w not in variants:
            raise HwemuError(f"{p}: key 'workloads': unknown workload {w!r} "
                             f"(known: {', '.join(known)}; or a [variants.{w}] table)")
    for name in variants:
        if name not in workloads:
            raise HwemuError(f"{p}: key 'variants.{name}': {name!r} is not in 'workloads'")
    scales = known_scales()
    if "scale" not in data:
        raise HwemuError(f"{p}: key 'scale' is missing ({', '.join(scales)})")
    scale = data.pop("scale")
    if scale not in scales:
        raise HwemuError(f"{p}: key 'scale' must be one of {', '.join(scales)}, got {scale!r}")
    variants = {n: _checked_params(p, v, scale) for n, v in variants.items()}
    schedules = data.pop("schedule", {})
    if not isinstance(schedules, dict):
        raise HwemuError(f"{p}: key 'schedule' must be a table WORKLOAD = \"file.toml\", "
                         f"got {schedules!r}")
    base = p.resolve().parent
    for w, f in schedules.items():
        if w not in workloads:
            raise HwemuError(f"{p}: key 'schedule.{w}': {w!r} is not in 'workloads'")
        if not isinstance(f, str) or not f:
            raise HwemuError(f"{p}: key 'schedule.{w}' must be a file name, got {f!r}")
        if check and not (base / f).is_file():
            raise HwemuError(f"{p}: key 'schedule.{w}': {f}: no such schedule file")
    traces_dir = Path(traces_dir).resolve()
    traces = {w: str(traces_dir / f"{w}-{scale}.parquet") for w in workloads}
    for key in ("machines", "policies"):
        if key not in data:
            raise HwemuError(f"{p}: key '{key}' is missing (a list of names)")
    data["traces"] = [traces[w] for w in workloads]
    sweep = parse_sweep(data, p, check=check, check_traces=False,
                        trace_schedules=tuple((traces[w], f) for w, f in schedules.items()))
    return Suite(p.stem, p, tuple(workloads), scale, traces_dir, sweep,
                 tuple(variants[w] for w in workloads if w in variants))


def _hwemu_exe() -> str | None:
    """The hwemu the recorder should run: $HWEMU, this interpreter's, else PATH's."""
    if os.environ.get("HWEMU"):
        return os.environ["HWEMU"]
    mine = Path(sys.executable).with_name("hwemu")
    if mine.is_file() and os.access(mine, os.X_OK):
        return str(mine)
    return shutil.which("hwemu")


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(f"hwemu: {text}", file=sys.stderr, flush=True)


def check_recorded(suite: Suite, workload: str) -> None:
    """A one-line error when the trace of ``workload`` was recorded from another workload,
    seed or parameters than the suite asks for (its record.py JSON file, NAME-SCALE.json,
    says which; a trace without one is taken as it is)."""
    trace = suite.trace(workload)
    side = trace.with_suffix(".json")
    try:
        row = json.loads(side.read_text())
    except (OSError, ValueError):
        return
    v = suite.variant(workload)
    want = {"workload": v.workload, "seed": v.seed, "params": dict(v.params)}
    got = {"workload": row.get("workload"), "seed": row.get("seed"),
           "params": row.get("params", {})}
    for key in want:
        if want[key] != got[key]:
            raise HwemuError(f"{side}: {trace.name} was recorded with {key} {got[key]!r}, but "
                             f"suite {suite.name} asks for {want[key]!r}; remove the trace (and "
                             "its .json) to record it again")


def record_missing(suite: Suite, quiet: bool = False) -> list[dict]:
    """Record, one at a time, each workload whose trace is missing (traces/suite/record.py);
    return record.py's JSON row of each. A failed recording is a one-line HwemuError; so is a
    trace recorded from other inputs than the suite's (check_recorded)."""
    for w in suite.workloads:
        if suite.trace(w).is_file():
            check_recorded(suite, w)
    missing = [w for w in suite.workloads if not suite.trace(w).is_file()]
    if not missing:
        _say(quiet, f"suite {suite.name}: all {len(suite.workloads)} traces are in "
                    f"{suite.traces_dir}")
        return []
    script = recorder()
    env = dict(os.environ)
    exe = _hwemu_exe()
    if exe:
        env["HWEMU"] = exe
    try:
        suite.traces_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HwemuError(f"--traces {suite.traces_dir}: cannot create: {exc.strerror}") from None
    rows = []
    for i, w in enumerate(missing, 1):
        _say(quiet, f"suite {suite.name}: recording {w} at scale {suite.scale} "
                    f"({i} of {len(missing)}) into {suite.trace(w)} ...")
        p = subprocess.run([sys.executable, str(script), *suite.variant(w).record_args(),
                            "--scale", suite.scale, "--out", str(suite.traces_dir)],
                           capture_output=True, text=True, env=env)
        if p.returncode:
            lines = p.stderr.strip().splitlines()
            why = lines[-1] if lines else f"exit status {p.returncode}"
            why = why.removeprefix("record.py: error: ")
            raise HwemuError(f"suite {suite.name}: recording {w} failed: {why}")
        try:
            row = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise HwemuError(f"suite {suite.name}: recording {w}: {script} printed no result "
                             "line") from None
        row["name"] = w                 # the suite's name for it: a variant's or the workload's
        rows.append(row)
        _say(quiet, f"suite {suite.name}: {w}: {row['records']:,} records, "
                    f"{row['footprint_mib']} MiB of data, recorded in {row['record_s']} s")
    return rows


def variant_axes(suite: Suite) -> dict:
    """``{(workload, param): {trace label: value}}`` for each integer parameter that takes two
    or more values among the suite's variants of one workload (gups's ``hot_percent`` in the
    ``hotset`` suite): the x axis of a variant figure."""
    by_workload: dict[str, list] = {}
    for v in suite.variants:
        by_workload.setdefault(v.workload, []).append(v)
    axes = {}
    for w, vs in by_workload.items():
        params = [dict(v.params) for v in vs]
        for k in sorted(set().union(*params)):
            vals = [p.get(k) for p in params]
            if all(isinstance(x, int) and not isinstance(x, bool) for x in vals) and len(set(vals)) > 1:
                axes[(w, k)] = {trace_label(str(suite.trace(v.name))): p[k]
                                for v, p in zip(vs, params)}
    return axes


def write_variant_figures(suite: Suite, table, out) -> list[Path]:
    """``out/figures/variant-WORKLOAD-PARAM.png`` for each of :func:`variant_axes`: every
    policy's mean latency and runtime across the variants (hwemu.report.figures.variant_figure)."""
    from hwemu.fileio import atomic_path
    from hwemu.report.figures import variant_figure

    paths = []
    rows = table.to_dict("records")
    for (w, param), xs in variant_axes(suite).items():
        if not any(r["trace"] in xs for r in rows):
            continue
        path = Path(out) / "figures" / f"variant-{w}-{param}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(variant_figure(rows, xs, param, f"suite {suite.name}, {w}"))
        paths.append(path)
    return paths


def run_suite(name: str, traces_dir="suite-traces", out=None, workers: int = 2,
              scheduler: str | None = None, quiet: bool = True, command: str | None = None):
    """Record the suite's missing traces, run its cells on Dask (resuming from ``out``'s
    finished cells) and write the report into ``out`` (default ``suite-NAME``), with a
    variant figure per :func:`variant_axes`. Returns (suite, recorded rows,
    hwemu.report.sweep.SweepResult, variant figure paths)."""
    from hwemu.report.sweep import run_sweep

    suite = load_suite(name, traces_dir)
    if scheduler is None and (not isinstance(workers, int) or workers < 1):
        raise HwemuError(f"--workers {workers}: must be at least 1")
    out = Path(out if out is not None else f"suite-{suite.name}")
    if out.exists() and not out.is_dir():
        raise HwemuError(f"--out {out}: exists and is not a directory")
    recorded = record_missing(suite, quiet)
    res = run_sweep(suite.sweep, out, workers=workers, scheduler=scheduler, quiet=quiet,
                    command=command, title=f"hwemu compare --suite {suite.name}",
                    desc=f"suite {suite.name}")
    return suite, recorded, res, write_variant_figures(suite, res.table, out)


__all__ = ["Suite", "load_suite", "record_missing", "run_suite", "bundled_suites",
           "known_workloads"]
