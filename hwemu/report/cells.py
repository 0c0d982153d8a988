"""Experiment cells: their identity, and the one-file-per-cell store.

A *cell* is one run of one policy on one trace on one machine: the tuple (trace, machine,
policy, seed, schedule, params). :class:`CellSpec` is that tuple; :func:`CellSpec.cell_id` is a
stable hash of it that names the cell's file, so a re-run of a sweep finds the cells it already
has. A finished cell is stored as ``<cell_id>.zip`` (docs/sweep.md, "Cell files"):

* ``cell.json``: the spec, the run's summary numbers and its provenance (hwemu version,
  command, date, seed, the dumped machine file; hwemu.report.provenance). The spec's file
  paths (trace, schedule, a machine file) are relative to the report directory, the parent of
  the directory the cell file is in; ``cell_id`` is the hash of the spec as it was planned;
* ``stats.parquet``, ``timeline.parquet``, ``placement.parquet``, ``migrations.parquet``,
  ``steps.parquet``: the frames of the run's result.

The zip is written with fixed timestamps and no compression of its own (Parquet is already
zstd-compressed), through :func:`hwemu.fileio.atomic_path`, so a cell file is either complete
or absent and the same result gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from hwemu.errors import HwemuError
from hwemu.fileio import atomic_path

#: The frames of a cell result, in file order, with the columns each must have.
FRAMES = {
    "stats": ("component", "stat", "value", "unit"),
    "timeline": ("time_ns", "accesses", "mean_latency_ns"),
    "placement": ("time_ns", "node", "pages"),
    "migrations": ("time_ns", "pages", "bytes", "duration_ns", "kind"),
    "steps": ("step", "time_ns", "count"),
}

#: Summary numbers every cell result carries (besides the machine/trace/policy/seed labels).
SUMMARY_NUMBERS = (
    "accesses", "mean_latency_ns", "p50_latency_ns", "p95_latency_ns", "p99_latency_ns",
    "local_share", "remote_share", "cxl_share", "pages_migrated", "pages_failed",
    "migration_time_ns", "interconnect_bytes", "sim_time_ns",
)

#: Known policies in report order (the baseline first). Unknown names sort after, by name.
POLICY_ORDER = ("none", "manual", "manual-dma", "autonuma", "tpp", "hotness", "nomad", "oracle")

CELL_SUFFIX = ".zip"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _check_param_value(name: str, value):
    if isinstance(value, bool) or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise HwemuError(f"params.{name}: {value!r} is not a finite number")
        return value
    raise HwemuError(f"params.{name}: {value!r} is a {type(value).__name__}; expected a number, "
                     "a string or a boolean")


@dataclass(frozen=True, slots=True)
class CellSpec:
    """What defines one experiment cell. ``params`` is a sorted tuple of (name, value)."""

    trace: str
    machine: str
    policy: str
    seed: int = 0
    schedule: str | None = None
    params: tuple = ()
    #: The identity read from a cell file (whose paths were rewritten relative to the report
    #: directory): ``cell_id`` returns it instead of hashing this spec. Not part of equality.
    stored_id: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, trace, machine, policy, seed=0, schedule=None, params=None) -> "CellSpec":
        items = tuple(sorted((str(k), _check_param_value(str(k), v))
                             for k, v in (params or {}).items()))
        return cls(str(trace), str(machine), str(policy), int(seed),
                   None if schedule is None else str(schedule), items)

    def to_dict(self) -> dict:
        return {"trace": self.trace, "machine": self.machine, "policy": self.policy,
                "seed": self.seed, "schedule": self.schedule, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: dict) -> "CellSpec":
        return cls.make(d["trace"], d["machine"], d["policy"], d.get("seed", 0),
                        d.get("schedule"), d.get("params") or {})

    @property
    def cell_id(self) -> str:
        """16 hex digits of SHA-256 over the canonical JSON of :meth:`to_dict` (or the id
        stored in the cell file the spec was read from)."""
        if self.stored_id is not None:
            return self.stored_id
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def params_dict(self) -> dict:
        return dict(self.params)

    def sort_key(self):
        p = self.policy
        rank = POLICY_ORDER.index(p) if p in POLICY_ORDER else len(POLICY_ORDER)
        return (trace_label(self.trace), machine_label(self.machine), self.trace, self.machine,
                json.dumps(self.params, sort_keys=True), self.seed, rank, p,
                self.schedule or "")


def trace_label(trace: str) -> str:
    """How a trace is named in tables and figures: the file name without its extension."""
    name = Path(trace).name
    for ext in (".parquet", ".zst", ".gz", ".xz"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name or trace


def machine_label(machine: str) -> str:
    """A preset name as is; a machine TOML file by its name without ``.toml``."""
    if machine.endswith(".toml") or "/" in machine:
        return Path(machine).stem
    return machine


@dataclass
class CellData:
    """A finished cell: its spec, its summary numbers and its frames."""

    spec: CellSpec
    summary: dict
    stats: object = None
    timeline: object = None
    placement: object = None
    migrations: object = None
    steps: object = None
    frames: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_result(cls, spec: CellSpec, result) -> "CellData":
        """Take a runner's result (an object with ``summary`` and the five frames)."""
        import pandas as pd

        summary = getattr(result, "summary", None)
        if not isinstance(summary, dict):
            raise TypeError(f"cell {spec.cell_id}: runner returned {type(result).__name__} "
                            "without a summary dict")
        frames = {}
        for name, cols in FRAMES.items():
            df = getattr(result, name, None)
            if hasattr(df, "to_frame") and not hasattr(df, "columns"):
                df = df.to_frame()              # a hwemu.stats.Stats
            if df is None:
                df = pd.DataFrame({c: [] for c in cols})
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise TypeError(f"cell {spec.cell_id}: {name} frame lacks columns {missing}")
            frames[name] = df.reset_index(drop=True)
        return cls(spec, _clean_summary(summary), **frames)

    def frame(self, name: str):
        return getattr(self, name)


def _clean_summary(summary: dict) -> dict:
    import numpy as np

    out = {}
    for k, v in summary.items():
        if isinstance(v, np.integer):
            v = int(v)
        elif isinstance(v, np.floating):
            v = float(v)
        out[str(k)] = v
    return out


def _frame_for_parquet(df):
    """Parquet columns must be homogeneous: make mixed object columns numeric or text."""
    import pandas as pd

    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object:
            try:
                df[col] = pd.to_numeric(df[col])
            except (ValueError, TypeError):
                df[col] = df[col].astype(str)
    return df


def frame_to_parquet_bytes(df) -> bytes:
    buf = io.BytesIO()
    _frame_for_parquet(df).to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
    return buf.getvalue()


def _json_number(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def looks_like_file(name: str) -> bool:
    """A machine given as a TOML file rather than a preset name."""
    return "/" in name or os.sep in name or name.endswith((".toml", ".parquet"))


#: Keys of a spec, and of a run's summary, that may hold a file path.
PATH_KEYS = ("trace", "schedule", "machine")


def _is_path(key: str, value) -> bool:
    return isinstance(value, str) and (key != "machine" or looks_like_file(value))


def _relative_paths(d: dict, out: Path, base_dir) -> dict:
    """``d`` with its file paths (PATH_KEYS) relative to ``out``. Relative paths in ``d`` are
    relative to ``base_dir`` (a sweep file's directory) or to the working directory."""
    base = os.path.abspath(base_dir if base_dir is not None else os.curdir)
    top = os.path.abspath(out)
    d = dict(d)
    for key in PATH_KEYS:
        if _is_path(key, d.get(key)):
            d[key] = Path(os.path.relpath(os.path.join(base, d[key]), top)).as_posix()
    return d


def _joined_paths(d: dict, top: Path) -> dict:
    """The inverse of :func:`_relative_paths`: paths relative to ``top`` joined to it."""
    d = dict(d)
    for key in PATH_KEYS:
        if _is_path(key, d.get(key)):
            d[key] = os.path.normpath(top / d[key])
    return d


def save_cell(directory: str | Path, cell: CellData, provenance=None,
              base_dir: str | Path | None = None) -> Path:
    """Write ``cell`` to ``directory/<cell_id>.zip`` atomically; return the path.
    ``provenance`` (a :class:`hwemu.report.provenance.Provenance`; a fresh one when not given)
    goes into ``cell.json``; paths there are relative to ``directory``'s parent, the report
    directory."""
    from hwemu.report.provenance import Provenance

    directory = Path(directory)
    path = directory / (cell.spec.cell_id + CELL_SUFFIX)
    prov = provenance if provenance is not None else Provenance.now()
    meta = {"format": "hwemu-cell", "version": 1, "cell_id": cell.spec.cell_id,
            "spec": _relative_paths(cell.spec.to_dict(), directory.parent, base_dir),
            "provenance": prov.for_cell(cell.spec.machine, cell.spec.seed),
            "summary": _relative_paths({k: _json_number(v) for k, v in cell.summary.items()},
                                       directory.parent, base_dir)}
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            _zip_put(zf, "cell.json", json.dumps(meta, indent=1, sort_keys=True).encode())
            for name in FRAMES:
                _zip_put(zf, f"{name}.parquet", frame_to_parquet_bytes(cell.frame(name)))
    return path


def _zip_put(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def load_cell(path: str | Path, spec: CellSpec | None = None) -> CellData:
    """Read a cell file written by :func:`save_cell`. Its spec's file paths, relative to the
    report directory, come back joined to it; the cell keeps its stored ``cell_id``. With
    ``spec`` (the planned cell: a resumed sweep) that spec is used instead, and must have the
    file's id."""
    import pandas as pd

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("cell.json"))
            frames = {name: pd.read_parquet(io.BytesIO(zf.read(f"{name}.parquet")))
                      for name in FRAMES}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise HwemuError(f"{path}: not a readable hwemu cell file ({exc})") from None
    if meta.get("format") != "hwemu-cell":
        raise HwemuError(f"{path}: not a hwemu cell file (format {meta.get('format')!r})")
    stored = str(meta.get("cell_id") or "")
    if spec is not None:
        if spec.cell_id != stored:
            raise HwemuError(f"{path}: holds cell {stored or '?'}, not {spec.cell_id}")
    else:
        d = meta["spec"]
        if "provenance" in meta:            # paths relative to the report directory
            d = _joined_paths(d, path.parent.parent)
        spec = replace(CellSpec.from_dict(d), stored_id=stored or None)
    summary = {k: (math.nan if v is None and k in SUMMARY_NUMBERS else v)
               for k, v in meta["summary"].items()}
    if "provenance" in meta:
        summary = _joined_paths(summary, path.parent.parent)
    return CellData(spec, summary, **frames)


def cell_path(directory: str | Path, spec: CellSpec) -> Path:
    return Path(directory) / (spec.cell_id + CELL_SUFFIX)
