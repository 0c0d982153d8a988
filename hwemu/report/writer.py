"""Write a report directory from finished cells (shared by ``hwemu compare`` and ``hwemu sweep``).

Layout of DIR (docs/reports.md):

    results.csv           every column, full precision (NaN as an empty field)
    results.md            the displayed columns as a Markdown table
    report.html           self-contained: the table and every figure (base64 PNG)
    figures/*.png         headline-, latency-, placement- and steps-<trace>-<machine>.png, and
                          param-<name>-<trace>-<machine>.png for a parameter swept over 3+ values
    machines/*.toml       every machine of the cells, dumped (hwemu.report.provenance)
    stats/<cell>.parquet  each cell's raw statistics (long form, with the cell's labels)
    cells/<cell>.zip      each cell's complete result (docs/sweep.md)

Every file is written atomically. The same cells give the same bytes, except for the
provenance (the date and the command) at the end of report.html and results.md and in each
cell.json; with SOURCE_DATE_EPOCH set and the same command those are equal too. results.csv
carries no provenance.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

from hwemu.fileio import atomic_path, atomic_write
from hwemu.report import figures
from hwemu.report.cells import CellData, frame_to_parquet_bytes, machine_label, trace_label
from hwemu.report.table import (display_table, order_cells, results_table, summary_lines,
                                to_markdown)

FIG_KINDS = (
    ("headline", figures.headline_figure,
     "What each policy buys and what it costs: the mean-latency reduction against the 'none' "
     "baseline (up is better) against the simulated time spent migrating pages (left is "
     "cheaper); the label gives the pages migrated and the runtime against the baseline "
     "(×1.25: a quarter longer)."),
    ("latency", figures.latency_figure,
     "Mean access latency per time window; below, a tick per migration event. Runs whose "
     "latency over time is identical are drawn as one line (labels joined by '=')."),
    ("placement", figures.placement_figure,
     "Resident pages per NUMA node over time (stacked), one panel per policy. Each page "
     "counts once: a page being migrated is shown as in flight (hatched), not on both nodes."),
    ("steps", figures.steps_figure,
     "Time spent in each step of the page-migration protocol, summed over all migrations."),
)


PARAM_CAPTION = (
    "Each policy as {param} varies (a parameter with three or more numeric values among the "
    "cells): the mean-latency reduction against the 'none' baseline (left, up is better; labels "
    "give the pages migrated) and the runtime against the baseline (right, down is better).")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _groups(cells: list[CellData]):
    """Cells grouped by (trace, machine) in table order, each with a unique file stem."""
    groups: dict[tuple[str, str], list[CellData]] = {}
    for c in order_cells(cells):
        groups.setdefault((c.spec.trace, c.spec.machine), []).append(c)
    stems: dict[tuple[str, str], str] = {}
    seen: dict[str, int] = {}
    for key in groups:
        stem = f"{_slug(trace_label(key[0]))}-{_slug(machine_label(key[1]))}"
        seen[stem] = seen.get(stem, 0) + 1
        stems[key] = stem
    for key, stem in stems.items():
        if seen[stem] > 1:
            stems[key] = stem + "-" + hashlib.sha256("\0".join(key).encode()).hexdigest()[:6]
    return [(key, stems[key], members) for key, members in groups.items()]


def write_report(out: str | Path, cells: list[CellData], title: str = "hwemu policy comparison",
                 provenance=None):
    """Write the report files for ``cells`` into ``out`` (created if needed); return the table.
    ``provenance`` (hwemu.report.provenance.Provenance) ends report.html and results.md; its
    machine files are kept in ``out/machines``, other files there are removed."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "stats").mkdir(parents=True, exist_ok=True)
    df = results_table(cells)

    written: set[Path] = set()
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    with atomic_write(out / "results.md", encoding="utf-8", newline="\n") as fh:
        fh.write(to_markdown(df))
        if provenance is not None:
            fh.write(_provenance_md(provenance))

    for c in cells:
        st = c.stats.copy()
        st.insert(0, "seed", c.spec.seed)
        st.insert(0, "policy", c.spec.policy)
        st.insert(0, "machine", machine_label(c.spec.machine))
        st.insert(0, "trace", trace_label(c.spec.trace))
        st.insert(0, "cell", c.spec.cell_id)
        with atomic_path(out / "stats" / f"{c.spec.cell_id}.parquet") as tmp:
            tmp.write_bytes(frame_to_parquet_bytes(st))
        written.add(out / "stats" / f"{c.spec.cell_id}.parquet")

    sections = []
    for (trace, machine), stem, members in _groups(cells):
        varying_seed = len({c.spec.seed for c in members}) > 1
        labels = [figures.cell_label(c, varying_seed) for c in members]
        title_tm = f"{trace_label(trace)} on {machine_label(machine)}"
        figs = []

        def emit(name: str, caption: str, png: bytes) -> None:
            with atomic_path(out / "figures" / name) as tmp:
                tmp.write_bytes(png)
            written.add(out / "figures" / name)
            figs.append((name, caption, png))

        for kind, fn, caption in FIG_KINDS:
            png = fn(members, title_tm, labels)
            if kind == "latency" and not any(len(c.migrations) for c in members):
                caption = caption.replace("; below, a tick per migration event",
                                          " (no page migrations in these runs)")
            emit(f"{kind}-{stem}.png", caption, png)
        for param in figures.numeric_params(members):
            emit(f"param-{_slug(param)}-{stem}.png", PARAM_CAPTION.format(param=param),
                 figures.param_figure(members, title_tm, param))
        sections.append((title_tm, figs))

    with atomic_write(out / "report.html", encoding="utf-8", newline="\n") as fh:
        fh.write(_html(title, df, sections, provenance))
    # Figures and stats of an earlier report into the same DIR that this one does not have.
    stale = [("figures", "*.png"), ("stats", "*.parquet")]
    if provenance is not None:
        written.update(out / rel for _, rel in provenance.machine_files)
        stale.append(("machines", "*.toml"))
    for sub, pattern in stale:
        for old in (out / sub).glob(pattern):
            if old not in written:
                old.unlink()
    return df


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; }
figcaption { font-size: 0.9em; color: #555; }
img { max-width: 100%; }
dt { font-weight: bold; } dd { margin-bottom: 0.4em; }
p.made { font-size: 0.85em; color: #555; }
p.work { margin: 0.8em 0 0.2em; font-weight: bold; }
ul.rank { margin: 0; } ul.rank code { white-space: pre; }
div.scroll { overflow-x: auto; }
dl.prov code { word-break: break-all; }
"""

_DEFS = (
    ("reduction %", "100 × (baseline mean latency − mean latency) / baseline mean latency; the "
     "baseline is the <code>none</code> run of the same trace, machine, seed, schedule and "
     "shared (run) parameters. Positive is better."),
    ("local / remote / CXL", "shares of memory accesses served by the accessing CPU's node, by "
     "another socket's DRAM, and by CXL-attached memory."),
    ("speedup", "baseline simulated runtime / simulated runtime."),
    ("break-even", "migrating time / (saved latency per access × accesses per ns of run): the "
     "run length after which the latency saved repays the time spent migrating; n/a when "
     "nothing is saved."),
)


def _provenance_rows(prov) -> list[tuple[str, str, str | None]]:
    """(label, text, link) rows of the provenance, in the order both reports show them."""
    rows = [("hwemu", prov.version, None), ("date (UTC)", prov.date_utc, None),
            ("command", prov.command, None),
            ("seeds", ", ".join(str(s) for s in prov.seeds) or "-", None)]
    for machine, rel in prov.machine_files:
        rows.append((f"machine {machine_label(machine)}", rel, rel))
    return rows


def _provenance_md(prov) -> str:
    lines = ["", "Provenance:", ""]
    for label, text, _ in _provenance_rows(prov):
        lines.append(f"- {label}: `{text}`")
    return "\n".join(lines) + "\n"


def _provenance_html(prov) -> list[str]:
    e = html.escape
    parts = ['<h2 id="provenance">Provenance</h2>', '<dl class="prov">']
    for label, text, link in _provenance_rows(prov):
        val = f'<a href="{e(link)}"><code>{e(text)}</code></a>' if link else f"<code>{e(text)}</code>"
        parts.append(f"<dt>{e(label)}</dt><dd>{val}</dd>")
    parts.append("</dl>")
    parts.append("<p>Each machine file holds every parameter of the machine, as "
                 "<code>hwemu machine dump</code> writes it; <code>--machine FILE</code> "
                 "runs it again. Each cell's own provenance is in <code>cell.json</code> "
                 "inside <code>cells/&lt;cell&gt;.zip</code>.</p>")
    return parts


def _summary_html(df) -> list[str]:
    """The answer first: per workload, the baseline's latency and each policy ranked by how
    much it cuts it, with what it cost (the lines ``hwemu compare`` prints)."""
    e = html.escape
    parts = ['<h2>Summary</h2>']
    items: list[str] = []
    for line in summary_lines(df):
        if line.startswith("  "):
            items.append(f"<li><code>{e(line.strip())}</code></li>")
            continue
        if items:
            parts.append('<ul class="rank">' + "".join(items) + "</ul>")
            items = []
        parts.append(f'<p class="work">{e(line)}</p>')
    if items:
        parts.append('<ul class="rank">' + "".join(items) + "</ul>")
    parts.append("<p>Latency changes are of the mean over every access (instruction fetches "
                 "included); runtime x2.00 means twice as long as without migration. Each "
                 "workload's section below opens with the same answer as a figure.</p>")
    return parts


def _html(title: str, df, sections, provenance=None) -> str:
    heads, body, numeric = display_table(df, human=True)
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(title)}</title>", f"<style>{_CSS}</style></head><body>",
             f"<h1>{e(title)}</h1>"]
    if provenance is not None:
        parts.append(f'<p class="made">hwemu {e(provenance.version)}, {e(provenance.date_utc)}: '
                     f'<code>{e(provenance.command)}</code> '
                     '(<a href="#provenance">provenance</a>)</p>')
    parts += _summary_html(df)
    parts += ["<h2>Results</h2>", '<div class="scroll"><table><thead><tr>']
    parts += [f"<th>{e(h)}</th>" for h in heads]
    parts.append("</tr></thead><tbody>")
    for row in body:
        cells = []
        for i, v in enumerate(row):
            cls = ' class="num"' if numeric[i] else ""
            cells.append(f"<td{cls}>{e(v)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table></div>")
    parts.append("<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in _DEFS) + "</dl>")
    parts.append("<p>Every column, at full precision, is in <code>results.csv</code>; each "
                 "cell's raw statistics are in <code>stats/&lt;cell&gt;.parquet</code>.</p>")
    for title_tm, figs in sections:
        parts.append(f"<h2>{e(title_tm)}</h2>")
        for name, caption, png in figs:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f'<figure><img alt="{e(name)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{e(name)}: {e(caption)}</figcaption></figure>")
    if provenance is not None:
        parts += _provenance_html(provenance)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
