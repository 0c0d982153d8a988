"""The Python API for notebooks and scripts: ``import hwemu`` and go.

    >>> import hwemu
    >>> m = hwemu.Machine("skx-2s", {"cache.llc.size": "11MiB"})   # a preset, keys overridden
    >>> t = hwemu.Trace("traces/matmul.parquet")
    >>> r = hwemu.run(m, t)                                         # timing replay, first touch
    >>> round(r.summary["mean_latency_ns"], 1) > 0
    True
    >>> r.stats.columns.tolist()
    ['component', 'stat', 'value', 'unit']

With a policy or a schedule (a file or a dict) the run includes the OS model (page faults,
migrations, NUMA balancing) and the result has ``timeline``, ``placement``, ``migrations`` and
``steps`` frames. :func:`compare` runs a policy comparison and returns its table (a DataFrame);
machines and traces may be :class:`Machine` and :class:`Trace` objects. docs/python.md walks
through all of it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hwemu.errors import HwemuError

__all__ = ["Machine", "Trace", "Result", "run", "compare"]


def _scratch(kind: str) -> Path:
    d = Path(tempfile.gettempdir()) / f"hwemu-{os.getuid() if hasattr(os, 'getuid') else 0}" / kind
    d.mkdir(parents=True, exist_ok=True)
    return d


# -- machines ---------------------------------------------------------------------------------
class Machine:
    """A machine description: a preset name or a TOML file, with keys overridden from Python.

    ``overrides`` uses the TOML keys, nested (``{"cache": {"llc": {"size": "11MiB"}}}``) or
    dotted (``{"cache.llc.size": "11MiB", "os.ipi_rtt_per_hop": "2us"}``); values are
    validated as a file's would be (an error names the key).

    >>> m = hwemu.Machine("skx-2s-cxl")
    >>> m.name, m.num_nodes, m.num_cpus
    ('skx-2s-cxl', 3, 48)
    """

    def __init__(self, machine: str = "skx-2s", overrides: dict | None = None):
        from hwemu.machine.config import MachineConfig, from_dict, machine_dict

        if isinstance(machine, Machine):
            base = dict(machine._dict)
            from hwemu.machine.config import _merge, _nest

            self._dict = _merge(base, _nest(overrides)) if overrides else base
            src = machine.config.source
        elif isinstance(machine, MachineConfig):
            raise HwemuError("Machine(): give a preset name or TOML path (a MachineConfig is "
                             "already loaded; pass it to run() directly)")
        else:
            self._dict = machine_dict(str(machine), overrides)
            src = str(machine) + (" + overrides" if overrides else "")
        self.config = from_dict(self._dict, src)

    # the description
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def num_nodes(self) -> int:
        return self.config.num_nodes

    @property
    def num_cpus(self) -> int:
        return self.config.num_cpus

    def to_toml(self) -> str:
        """The machine as one self-contained TOML text (as ``hwemu machine dump``)."""
        from hwemu.machine.config import dump_toml

        return dump_toml(self._dict, f"{self.name}: {self.config.description}")

    def save(self, path) -> Path:
        """Write :meth:`to_toml` to ``path`` (usable as ``--machine path``)."""
        from hwemu.fileio import atomic_path

        with atomic_path(path) as tmp:
            Path(tmp).write_text(self.to_toml())
        return Path(path)

    def path(self) -> str:
        """A TOML file holding this machine (written once per content into a scratch
        directory): what the command line, compare cells and Dask workers take."""
        text = self.to_toml()
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        p = _scratch("machines") / f"{self.name}-{digest}.toml"
        if not p.exists():
            self.save(p)
        return str(p)

    def params(self):
        """Every parameter with this machine's value, unit, where it came from and its meaning
        (a DataFrame; as ``hwemu machine show NAME --params``)."""
        import pandas as pd

        from hwemu.machine.config import param_values

        return pd.DataFrame(param_values(self._dict))

    def topology(self, measure: bool = False) -> dict:
        """Nodes, CPUs, caches and links; with ``measure``, the idle latency matrix and SLIT
        distances measured through the model (as ``hwemu machine show``)."""
        from hwemu.machine.topology import describe

        return describe(self.config, measure=measure)

    def __repr__(self) -> str:
        c = self.config
        return (f"Machine({c.name!r}: {c.sockets} sockets x {c.cores_per_socket} cores, "
                f"{c.num_nodes} nodes, LLC {c.llc.size_bytes >> 20} MiB/socket)")

    def _repr_html_(self) -> str:
        import html

        from hwemu.machine.topology import cpu_ranges

        t = self.topology(measure=False)
        rows = "".join(
            f"<tr><td>{n['node']}</td><td>{html.escape(n['name'])}</td>"
            f"<td>{','.join(cpu_ranges(n['cpus'])) or '(none)'}</td><td>{n['size']}</td>"
            f"<td>{html.escape(n['memory'])}</td><td>{n['peak_bandwidth_gbs']} GB/s</td></tr>"
            for n in t["nodes"])
        caches = ", ".join(f"{k} {v['size']} {v['ways']}-way {v['latency_cycles']} cyc"
                           for k, v in t["caches"].items())
        return (f"<b>{html.escape(self.name)}</b>: {html.escape(self.config.description)}<br>"
                f"{self.config.sockets} sockets, {self.num_cpus} CPUs at "
                f"{self.config.freq_hz / 1e9:g} GHz; {caches}"
                "<table><tr><th>node</th><th>name</th><th>CPUs</th><th>memory</th>"
                f"<th>DRAM</th><th>peak</th></tr>{rows}</table>")


def _machine_arg(machine):
    """What the library takes: a MachineConfig (from a Machine) or a name/path."""
    if isinstance(machine, Machine):
        return machine.config
    return machine


def _machine_path(machine) -> str:
    """What a compare cell takes: a preset name or a file path."""
    from hwemu.machine.config import MachineConfig

    if isinstance(machine, Machine):
        return machine.path()
    if isinstance(machine, MachineConfig):
        raise HwemuError("compare(): pass machines as preset names, TOML paths or "
                         "hwemu.Machine objects (a MachineConfig has no file to hand to a cell)")
    return str(machine)


# -- traces -----------------------------------------------------------------------------------
class Trace:
    """A trace file (hwemu's Parquet format, docs/trace-format.md), opened or built from
    arrays or a DataFrame.

    >>> import numpy as np
    >>> t = hwemu.Trace.from_arrays(kind=np.ones(1000, np.uint8),
    ...                             addr=0x7f0000000000 + 64 * np.arange(1000))
    >>> t.records
    1000
    """

    def __init__(self, path):
        from hwemu.traces.format import TraceReader

        self.path = str(path)
        self._reader = TraceReader(self.path)      # validates the file: an error names it

    @property
    def records(self) -> int:
        return int(self._reader.num_records)

    @property
    def threads(self) -> int:
        return int(self._reader.meta.threads)

    def info(self) -> dict:
        """Records by kind, threads, pages touched (as ``hwemu trace info --json``)."""
        from hwemu.traces.info import trace_info

        return trace_info(self.path)

    def to_dataframe(self, limit: int | None = None):
        """The records as a DataFrame (columns kind, addr, size, tid, insts)."""
        import pandas as pd

        ch = self._reader.read_all()
        n = len(ch) if limit is None else min(int(limit), len(ch))
        return pd.DataFrame({"kind": ch.kind[:n], "addr": ch.addr[:n], "size": ch.size[:n],
                             "tid": ch.tid[:n], "insts": ch.insts[:n]})

    @classmethod
    def from_arrays(cls, kind, addr, size=8, tid=0, insts=0, path=None,
                    program: str = "python") -> "Trace":
        """Write a trace from numpy arrays (or scalars broadcast to the length of ``addr``):
        ``kind`` 0 instruction fetch, 1 load, 2 store, 3 modify; ``addr`` virtual address;
        ``size`` bytes; ``tid`` thread; ``insts`` instructions before the record. Without
        ``path`` the file goes to a scratch directory (named by its content)."""
        import numpy as np

        from hwemu.traces.format import TraceChunk, write_trace

        addr = np.asarray(addr)
        n = len(addr)

        def col(v, dtype):
            a = np.asarray(v)
            return np.full(n, a, dtype) if a.ndim == 0 else a.astype(dtype, copy=False)

        kind = col(kind, np.int64)
        if n == 0:
            raise HwemuError("Trace.from_arrays: no records")
        bad = (kind < 0) | (kind > 3)
        if bad.any():
            raise HwemuError(f"Trace.from_arrays: kind must be 0-3 (I, L, S, M); record "
                             f"{int(np.argmax(bad))} has {int(kind[bad][0])}")
        ch = TraceChunk.from_arrays(kind.astype(np.uint8), addr.astype(np.uint64),
                                    col(size, np.uint16), tid=col(tid, np.uint16),
                                    insts=col(insts, np.uint32))
        if path is None:
            h = hashlib.sha256()
            for a in (ch.kind, ch.addr, ch.size, ch.tid, ch.insts):
                h.update(np.ascontiguousarray(a).tobytes())
            path = _scratch("traces") / f"{h.hexdigest()[:16]}.parquet"
            if Path(path).exists():
                return cls(path)
        write_trace(path, ch, "python", program)
        return cls(path)

    @classmethod
    def from_dataframe(cls, df, path=None) -> "Trace":
        """From a DataFrame with columns ``addr`` and ``kind`` (and optionally ``size``,
        ``tid``, ``insts``)."""
        missing = [c for c in ("kind", "addr") if c not in df.columns]
        if missing:
            raise HwemuError(f"Trace.from_dataframe: missing column {missing[0]!r} (need kind "
                             "and addr; size, tid, insts optional)")
        get = (lambda c, d: df[c].to_numpy() if c in df.columns else d)
        return cls.from_arrays(df["kind"].to_numpy(), df["addr"].to_numpy(), get("size", 8),
                               get("tid", 0), get("insts", 0), path=path)

    def __repr__(self) -> str:
        return f"Trace({self.path!r}: {self.records:,} records, {self.threads} thread(s))"

    def _repr_html_(self) -> str:
        import html

        i = self.info()
        kinds = ", ".join(f"{k} {v:,}" for k, v in i.get("records_by_kind", {}).items())
        return (f"<b>{html.escape(Path(self.path).name)}</b>: {self.records:,} records "
                f"({kinds}), {self.threads} thread(s)")


def _trace_path(trace) -> str:
    return trace.path if isinstance(trace, Trace) else str(trace)


def _schedule_arg(schedule, for_cells: bool = False):
    """A schedule file path, a dict (the TOML's tables), or None. Cells (compare, Dask) need a
    file: a dict is written to a scratch TOML file named by its content."""
    if schedule is None or not isinstance(schedule, dict):
        return None if schedule is None else str(schedule)
    if not for_cells:
        return schedule
    import tomli_w

    text = tomli_w.dumps(schedule)
    p = _scratch("schedules") / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.toml"
    if not p.exists():
        p.write_text(text)
    return str(p)


# -- results ----------------------------------------------------------------------------------
@dataclass
class Result:
    """The outcome of :func:`run`. ``summary``: the numbers ``hwemu run --json`` prints;
    ``stats``: every counter as a DataFrame (component, stat, value, unit). With the OS model
    also ``timeline`` (time_ns, accesses, mean_latency_ns), ``placement`` (time_ns, node,
    pages: resident pages, each once; in_flight: pages being migrated off the node; frames:
    frames in use), ``migrations`` and ``steps`` (protocol time per step)."""

    summary: dict
    stats: object
    timeline: object = None
    placement: object = None
    migrations: object = None
    steps: object = None
    numa_maps: list = field(default_factory=list)

    @property
    def mean_latency_ns(self) -> float:
        return float(self.summary["mean_latency_ns"])

    def _repr_html_(self) -> str:
        s = self.summary
        rows = [("machine", s.get("machine")), ("accesses", f"{s.get('accesses', 0):,}"),
                ("mean latency", f"{s.get('mean_latency_ns', 0):.2f} ns (loads, stores and "
                                 "instruction fetches)"),
                ("p50 / p95 / p99", f"{s.get('p50_latency_ns', 0):.1f} / "
                                    f"{s.get('p95_latency_ns', 0):.1f} / "
                                    f"{s.get('p99_latency_ns', 0):.1f} ns"),
                ("simulated time", f"{s.get('sim_time_ns', 0) / 1e6:.3f} ms")]
        if "pages_migrated" in s:
            rows.append(("pages migrated", f"{s['pages_migrated']:,} of "
                                           f"{s['pages_attempted']:,} attempted"))
            rows.append(("memory accesses", f"local {s['local_share']:.1%}, remote "
                                            f"{s['remote_share']:.1%}, CXL {s['cxl_share']:.1%}"))
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>"
                       for k, v in rows)
        return f"<table>{body}</table>"


def run(machine="skx-2s", trace=None, policy: str | None = None, schedule=None, seed: int = 0,
        params: dict | None = None, cpus: list[int] | None = None, window: str | None = None,
        progress: bool = False) -> Result:
    """Replay ``trace`` on ``machine``.

    Without ``policy`` and ``schedule`` it is a timing replay with first-touch placement
    (``hwemu run``); with either, the OS model runs inside the machine (``hwemu run
    --policy/--schedule``): ``policy`` is a name such as ``"autonuma"`` or
    ``"interleave+autonuma"``, ``params`` its parameters (``{"scan_period_min": "200us"}``;
    ``{"copy": "dma"}`` puts the page copies of migrations on the machine's [dma] engines),
    ``schedule`` a schedule file or a dict of its tables (docs/schedule.md).
    """
    if trace is None:
        raise HwemuError("run(): give a trace (a path or a hwemu.Trace)")
    m = _machine_arg(machine)
    path = _trace_path(trace)
    if not Path(path).is_file():
        raise HwemuError(f"{path}: no such trace file")
    if policy is None and schedule is None and not params and window is None:
        from hwemu.machine.replay import run_trace

        r = run_trace(m, path, cpus=cpus, seed=seed, progress=progress)
        return Result(dict(r.summary), r.stats.to_frame())
    from hwemu.policies.registry import parse_policy_spec
    from hwemu.sim.cosim import CoSim
    from hwemu.units import parse_time_ps

    from hwemu.sim.experiment import parse_run_param

    params = {k: str(v) for k, v in (params or {}).items()}
    copy = parse_run_param("copy", params.pop("copy", "cpu"), "params.copy")
    placement, migration = parse_policy_spec(policy or "first-touch", params)
    window_ps = parse_time_ps(window, "window") if window is not None else None
    r = CoSim(m, path, schedule=_schedule_arg(schedule), placement=placement,
              migration=migration, seed=seed, cpus=cpus, window_ps=window_ps,
              progress=progress, copy=copy).run()
    return Result(dict(r.summary), r.stats.to_frame(), r.timeline, r.placement, r.migrations,
                  r.steps, list(r.numa_maps))


def compare(machines=None, traces=None, policies=None, schedule=None, seed: int = 0, out=None,
            quiet: bool = True, params: dict | None = None, workers: int = 1):
    """A policy comparison (``hwemu compare``), returning the results table as a DataFrame.
    With no machines, traces and policies it runs the bundled demo. ``machines`` and
    ``traces`` may be names/paths or :class:`Machine` / :class:`Trace` objects (one or a
    list); ``schedule`` a file or a dict; ``workers``: processes running cells at once."""
    from hwemu.report.compare import compare as _compare

    def many(x, conv):
        if x is None:
            return None
        if isinstance(x, (list, tuple)):
            return [conv(v) for v in x]
        return [conv(x)]

    return _compare(machines=many(machines, _machine_path), traces=many(traces, _trace_path),
                    policies=policies, schedule=_schedule_arg(schedule, for_cells=True),
                    seed=seed, out=out, quiet=quiet, params=params, workers=workers)
