"""The results table: one row per cell, with the metrics derived against the baseline.

Stored numbers come from each cell's summary; derived numbers (latency reduction, speedup,
break-even time) are computed here, from the cell and the ``none`` cell of the same trace,
machine, seed, schedule and params (docs/reports.md defines every column).
"""

from __future__ import annotations

import math

from hwemu.report.cells import SUMMARY_NUMBERS, CellData, machine_label, trace_label
from hwemu.units import format_time_ns

#: Result columns in table order (``param.<name>`` columns go after ``seed``).
KEY_COLUMNS = ("trace", "machine", "policy", "seed")
METRIC_COLUMNS = (
    "mean_latency_ns", "p50_latency_ns", "p95_latency_ns", "p99_latency_ns",
    "latency_reduction_pct",
    "local_share", "remote_share", "cxl_share",
    "pages_migrated", "pages_failed", "migration_time_ns", "interconnect_bytes",
    "sim_time_ns", "speedup", "break_even_ns", "accesses",
)
TAIL_COLUMNS = ("cell",)

#: Columns shown in results.md / report.html (the CSV has all of them), with their headings
#: and number formats.
DISPLAY = (
    ("trace", "trace", None), ("machine", "machine", None), ("policy", "policy", None),
    ("mean_latency_ns", "mean ns", "{:.2f}"), ("p50_latency_ns", "p50 ns", "{:.1f}"),
    ("p99_latency_ns", "p99 ns", "{:.1f}"),
    ("latency_reduction_pct", "reduction %", "{:+.2f}"),
    ("local_share", "local", "{:.3f}"), ("remote_share", "remote", "{:.3f}"),
    ("cxl_share", "CXL", "{:.3f}"),
    ("pages_migrated", "migrated", "{:,.0f}"), ("pages_failed", "failed", "{:,.0f}"),
    ("migration_time_ns", "migrating ns", "{:,.0f}"),
    ("interconnect_bytes", "interconnect B", "{:,.0f}"),
    ("sim_time_ns", "runtime ns", "{:,.0f}"), ("speedup", "speedup", "{:.4f}"),
    ("break_even_ns", "break-even ns", "{:,.0f}"),
)


def _num(summary: dict, key: str) -> float:
    v = summary.get(key, math.nan)
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def break_even_ns(migration_time_ns: float, mean_ns: float, base_mean_ns: float,
                  accesses: float, sim_time_ns: float) -> float:
    """Run time after which the latency saved repays the time spent migrating.

    saved per access = base_mean - mean (ns); access rate = accesses / sim_time (per ns);
    saved per ns of run = saved per access x access rate;
    break-even = migration_time / saved per ns of run.
    NaN when nothing is saved (saved per access <= 0) or the rate is unknown.
    """
    saved = base_mean_ns - mean_ns
    if not (saved > 0) or not (accesses > 0) or not (sim_time_ns > 0):
        return math.nan
    if not (migration_time_ns >= 0):
        return math.nan
    rate = accesses / sim_time_ns
    return migration_time_ns / (saved * rate)


def order_cells(cells: list[CellData]) -> list[CellData]:
    """Table order: trace, machine, schedule, shared parameters (those the ``none`` cells
    have), seed, policy (baseline first, then POLICY_ORDER, then by name), the policy's own
    parameters."""
    import json

    from hwemu.report.cells import POLICY_ORDER

    shared = {k for c in cells if c.spec.policy == "none" for k, _ in c.spec.params}

    def key(c: CellData):
        s = c.spec
        rank = POLICY_ORDER.index(s.policy) if s.policy in POLICY_ORDER else len(POLICY_ORDER)
        common = [(k, v) for k, v in s.params if k in shared]
        # numbers in numeric order (time_compression 10 before 100 before 1000)
        own = tuple((k, (0, float(v), "") if isinstance(v, (int, float))
                     and not isinstance(v, bool) else (1, 0.0, json.dumps(v)))
                    for k, v in s.params if k not in shared)
        return (trace_label(s.trace), machine_label(s.machine), s.trace, s.machine,
                s.schedule or "", json.dumps(common, sort_keys=True), s.seed, rank, s.policy,
                own)

    return sorted(cells, key=key)


def _baselines(cells: list[CellData]) -> dict:
    """The baseline of each cell: the ``none`` cell of the same trace, machine, seed and
    schedule whose parameters are all among the cell's own (the shared ones); the one with
    the most parameters if several match."""
    nones: dict[tuple, list[CellData]] = {}
    for c in cells:
        if c.spec.policy == "none":
            s = c.spec
            nones.setdefault((s.trace, s.machine, s.seed, s.schedule), []).append(c)
    out = {}
    for c in cells:
        s = c.spec
        mine = set(s.params)
        best = None
        for b in nones.get((s.trace, s.machine, s.seed, s.schedule), ()):
            if set(b.spec.params) <= mine and (best is None
                                                or len(b.spec.params) > len(best.spec.params)):
                best = b
        if best is not None:
            out[s] = best
    return out


def results_table(cells: list[CellData]):
    """One row per cell, in :func:`order_cells` order (the baseline first in each group)."""
    import pandas as pd

    cells = order_cells(cells)
    baselines = _baselines(cells)
    param_names = sorted({k for c in cells for k, _ in c.spec.params})
    rows = []
    for c in cells:
        s = c.summary
        row = {"trace": trace_label(c.spec.trace), "machine": machine_label(c.spec.machine),
               "policy": c.spec.policy, "seed": c.spec.seed}
        for name in param_names:
            row[f"param.{name}"] = c.spec.params_dict.get(name)
        for key in SUMMARY_NUMBERS:
            row[key] = _num(s, key)
        base = baselines.get(c.spec)
        if base is not None:
            b = base.summary
            bmean, bsim = _num(b, "mean_latency_ns"), _num(b, "sim_time_ns")
            row["latency_reduction_pct"] = (100.0 * (bmean - row["mean_latency_ns"]) / bmean
                                            if bmean > 0 else math.nan)
            row["speedup"] = bsim / row["sim_time_ns"] if row["sim_time_ns"] > 0 else math.nan
            row["break_even_ns"] = break_even_ns(row["migration_time_ns"], row["mean_latency_ns"],
                                                 bmean, row["accesses"], row["sim_time_ns"])
        else:
            row["latency_reduction_pct"] = row["speedup"] = row["break_even_ns"] = math.nan
        row["cell"] = c.spec.cell_id
        rows.append(row)
    columns = (list(KEY_COLUMNS) + [f"param.{n}" for n in param_names] + list(METRIC_COLUMNS)
               + list(TAIL_COLUMNS))
    df = pd.DataFrame(rows, columns=columns)
    for col in ("pages_migrated", "pages_failed", "accesses", "interconnect_bytes"):
        vals = df[col]
        if len(vals) and vals.notna().all() and (vals == vals.round()).all():
            df[col] = vals.astype("int64")
    return df


def json_rows(df) -> list[dict]:
    """The table as a list of dicts for ``--json`` (NaN becomes null)."""
    out = []
    for rec in df.to_dict(orient="records"):
        clean = {}
        for k, v in rec.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            clean[k] = v
        out.append(clean)
    return out


def _display_columns(df):
    cols = list(DISPLAY[:3])
    cols += [(c, c[len("param."):], None) for c in df.columns if c.startswith("param.")]
    if df["seed"].nunique() > 1:
        cols.append(("seed", "seed", None))
    cols += list(DISPLAY[3:])
    return cols


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_cell(value, fmt) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if fmt is None:
        return str(value)
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


#: With ``human=True`` (report.html): these columns in the unit that suits each value.
HUMAN = {"migration_time_ns": ("migrating", "time"), "interconnect_bytes": ("interconnect", "bytes"),
         "sim_time_ns": ("runtime", "time"), "break_even_ns": ("break-even", "time")}


def display_table(df, human: bool = False) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headings, formatted cells and right-alignment flags of the displayed table (shared by
    Markdown and HTML). ``human``: times and byte counts in ms, us, MB... (report.html);
    otherwise in ns and bytes, as results.md has them."""
    cols = _display_columns(df)
    heads = [HUMAN[c][0] if human and c in HUMAN else h for c, h, _ in cols]

    def cell(c, f, v):
        if c.startswith("param.") and _missing(v):
            return "-"
        if human and c in HUMAN:
            if _missing(v):
                return "n/a"
            if not v:
                return "0"
            return _human_time_ns(v) if HUMAN[c][1] == "time" else _human_bytes(v)
        return format_cell(v, f)

    body = [[cell(c, f, rec[c]) for c, _, f in cols] for rec in df.to_dict(orient="records")]
    numeric = [f is not None for _, _, f in cols]
    return heads, body, numeric


def to_markdown(df) -> str:
    heads, body, numeric = display_table(df)

    def esc(t: str) -> str:
        return t.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in heads) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for r in body:
        lines.append("| " + " | ".join(esc(x) for x in r) + " |")
    return "\n".join(lines) + "\n"


# -- the answer first: what `hwemu compare` prints on a terminal ----------------------------
def _human_time_ns(ns: float) -> str:
    return "-" if _missing(ns) else format_time_ns(ns)


def _human_bytes(b: float) -> str:
    b = float(b)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(b) >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def _shared_param_columns(df) -> list[str]:
    """The ``param.*`` columns of shared (run) parameters: those a ``none`` row has. A
    policy's own parameters (``[params.autonuma]``) do not make a workload of their own."""
    base = df[df.policy == "none"] if "policy" in df.columns else df.iloc[0:0]
    return [c for c in df.columns if c.startswith("param.") and base[c].notna().any()]


def _groups(df):
    keys = [c for c in df.columns if c in ("trace", "machine")] + _shared_param_columns(df)
    keys += ["seed"] if "seed" in df.columns else []
    return df.groupby(keys, sort=False, dropna=False)


def _own_param_columns(df) -> list[str]:
    """The ``param.*`` columns of policies' own parameters (not shared, see above)."""
    shared = set(_shared_param_columns(df))
    return [c for c in df.columns if c.startswith("param.") and c not in shared]


def _policy_label(row, own: list[str]) -> str:
    """The policy with its own parameters as ``name=value`` (``own``: _own_param_columns):
    the summary and the compact table tell a policy's runs apart by them."""
    parts = [row.policy]
    for c in own:
        v = row.get(c)
        if not _missing(v):
            parts.append(f"{c[len('param.'):]}={v:g}" if isinstance(v, float) else
                         f"{c[len('param.'):]}={v}")
    return " ".join(parts)


def summary_lines(df) -> list[str]:
    """A short answer per workload (trace, machine, seed, params): the baseline's mean latency,
    then every other policy ranked by how much it cuts it, with what it cost."""
    out = []
    own = _own_param_columns(df)
    for _key, g in _groups(df):
        base = g[g.policy == "none"]
        head = f"{g.trace.iloc[0]} on {g.machine.iloc[0]}"
        if base.empty:
            out.append(f"{head}: no 'none' baseline")
            continue
        b = base.iloc[0]
        out.append(f"{head}: {b.mean_latency_ns:.1f} ns mean access latency without migration")
        rest = g[g.policy != "none"].sort_values("latency_reduction_pct", ascending=False,
                                                 kind="stable")
        for _, r in rest.iterrows():
            change = -r.latency_reduction_pct
            what = ("no change" if abs(change) < 0.05 else f"{change:+.1f}%")
            cost = (f"{int(r.pages_migrated):,} pages moved, {_human_time_ns(r.migration_time_ns)} "
                    "migrating" if r.pages_migrated else "no page moved")
            run = "" if _missing(r.speedup) or not r.speedup else f"; runtime x{1 / r.speedup:.2f}"
            out.append(f"  {_policy_label(r, own):<9} {what:>9} -> {r.mean_latency_ns:.1f} ns; "
                       f"{cost}{run}")
    return out


#: The compact table on the terminal: fits 100 columns, human units.
COMPACT = (
    ("trace", "trace", "{}"), ("policy", "policy", "{}"),
    ("mean_latency_ns", "mean ns", "{:.1f}"), ("latency_reduction_pct", "vs none", "{:+.1f}%"),
    ("p99_latency_ns", "p99 ns", "{:.0f}"), ("remote_share", "remote", "{:.0%}"),
    ("cxl_share", "CXL", "{:.0%}"), ("pages_migrated", "moved", "{:,.0f}"),
    ("migration_time_ns", "migrating", None), ("interconnect_bytes", "link", None),
    ("sim_time_ns", "runtime", None),
)


def compact_table(df, width: int = 100) -> str:
    """The results as a plain-text table no wider than ``width`` columns (human units); the
    full table is results.md / results.csv."""
    heads = [h for _c, h, _f in COMPACT]
    own = _own_param_columns(df)
    rows = []
    for _, r in df.iterrows():
        row = []
        for col, _h, fmt in COMPACT:
            v = r.get(col)
            if col in ("migration_time_ns", "sim_time_ns"):
                row.append("-" if _missing(v) or not v else _human_time_ns(v))
            elif col == "interconnect_bytes":
                row.append("-" if _missing(v) or not v else _human_bytes(v))
            elif col == "policy":
                row.append(_policy_label(r, own))
            elif _missing(v):
                row.append("-")
            elif col == "latency_reduction_pct":
                # the change in latency (lower is better); no sign on a zero
                row.append("0.0%" if abs(v) < 0.05 else f"{-v:+.1f}%")
            else:
                text = fmt.format(v)
                row.append(text[:16] if col == "trace" else text)
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(heads)]
    left = {0, 1}
    # drop columns from the right until it fits (the CSV keeps everything)
    while sum(widths) + 2 * (len(widths) - 1) > width and len(widths) > 4:
        widths.pop(len(widths) - 2)
        heads.pop(len(heads) - 2)
        rows = [row[:len(row) - 2] + row[-1:] for row in rows]

    def fmt_row(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    lines = [fmt_row(heads), fmt_row(["-" * w for w in widths])]
    lines += [fmt_row(row) for row in rows]
    return "\n".join(lines) + "\n"
