"""The report's figures (matplotlib, Agg backend), one set per (trace, machine):

* ``headline-*.png``: latency reduction against time spent migrating, one labelled point per
  cell, in its policy's colour (the first figure of each workload);
* ``latency-*.png``: mean access latency over time, one line per cell, and a strip of migration
  events below;
* ``placement-*.png``: resident pages per NUMA node over time, each page once (pages under
  migration as "in flight"), one panel per cell;
* ``steps-*.png``: time spent in each step of the migration protocol, grouped bars per cell.

Figures are deterministic: fixed sizes and DPI, a fixed hash salt, no timestamps or software
tag in the PNG metadata, and cells in the order of the results table; the same inputs give
byte-identical PNGs.
"""

from __future__ import annotations

import io

DPI = 100
_RC = {
    "svg.hashsalt": "hwemu",
    "font.size": 9,
    "axes.titlesize": 10,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "path.simplify": True,
}
_PNG_METADATA = {"Software": None}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata=_PNG_METADATA)
    _plt().close(fig)
    return buf.getvalue()


def cell_label(cell, varying_seed: bool) -> str:
    label = cell.spec.policy
    extra = [f"{k}={v}" for k, v in cell.spec.params]
    if varying_seed:
        extra.append(f"seed={cell.spec.seed}")
    return label + (" (" + ", ".join(extra) + ")" if extra else "")


def _colors(n: int):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


#: One colour per policy, the same in every figure and report (tab10 hues; "none" grey,
#: the oracle bound black). Other policies get a tab20 hue chosen by their name.
POLICY_COLORS = {
    "none": "#7f7f7f", "manual": "#1f77b4", "manual-dma": "#aec7e8", "autonuma": "#2ca02c", "tpp": "#d62728",
    "hotness": "#9467bd", "nomad": "#8c564b", "oracle": "#000000", "first-touch": "#7f7f7f",
    "interleave": "#17becf", "bind": "#bcbd22", "preferred": "#e377c2",
}


def policy_color(policy: str):
    """The colour of ``policy`` (a ``placement+migration`` pair takes its migration half's)."""
    name = policy.split("+")[-1]
    if name in POLICY_COLORS:
        return POLICY_COLORS[name]
    import zlib

    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return cmap(zlib.crc32(name.encode()) % cmap.N)


def _cell_colors(cells):
    return [policy_color(c.spec.policy) for c in cells]


def _cell_styles(cells):
    """Line styles that tell apart cells of the same policy (other params or seeds)."""
    seen: dict[str, int] = {}
    out = []
    for c in cells:
        k = seen.get(c.spec.policy, 0)
        seen[c.spec.policy] = k + 1
        out.append(("-", "--", ":", "-.")[k % 4])
    return out


def node_labels(cells, nodes) -> dict:
    """``node N (name)`` with its kind: the socket whose CPUs are local to it, or CXL for a
    CPU-less node (from the cells' machine description; plain ``node N`` if it cannot be
    read)."""
    out = {nd: f"node {nd}" for nd in nodes}
    for c in cells:
        try:
            from hwemu.machine.config import load_machine

            cfg = load_machine(c.spec.machine)
        except Exception:
            continue
        for n in cfg.nodes:
            if n.id in out:
                kind = f"socket {n.socket}" if n.socket >= 0 else "CXL"
                out[n.id] = f"node {n.id} ({kind})"
        break
    return out


def _time_unit(max_ns: float) -> tuple[float, str]:
    """A divisor and unit for times up to ``max_ns``: µs below 10 ms, else ms (the headline's
    migrating time, and the time axes of the latency and placement figures)."""
    return (1e6, "ms") if max_ns >= 1e7 else (1e3, "µs")


def headline_figure(cells, title: str, labels: list[str]) -> bytes:
    """One point per cell: x the simulated time spent migrating, y the mean-latency reduction
    against the baseline (results table's ``latency_reduction_pct``), in the policy's colour,
    labelled with its name, pages migrated and runtime against the baseline (×1.25: a quarter
    longer). Cells that land on the same
    point share one label (their markers are drawn as rings inside each other)."""
    import math

    import matplotlib

    from hwemu.report.table import results_table

    plt = _plt()
    rows = {r["cell"]: r for r in results_table(cells).to_dict("records")}
    pts = []
    for cell, label in zip(cells, labels):
        r = rows[cell.spec.cell_id]
        y = r["latency_reduction_pct"]
        x = r["migration_time_ns"]
        if not (math.isfinite(y) and math.isfinite(x)):
            continue
        pts.append((x, y, label, cell, r))
    div, unit = _time_unit(max([p[0] for p in pts], default=0.0))
    groups: dict[tuple, list] = {}
    for x, y, label, cell, r in pts:
        groups.setdefault((round(x / div, 3), round(y, 2)), []).append((label, cell, r))
    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(9.0, 4.6), layout="constrained")
        ax.axhline(0.0, color="0.6", linewidth=0.8, linestyle="--", zorder=1)
        xs = [k[0] for k in groups] or [0.0]
        ys = [k[1] for k in groups] or [0.0]
        xspan = max(xs) - min(min(xs), 0.0)
        if xspan <= 0:                     # nothing migrated anywhere: a 0..1 axis
            xspan = 1.0
        lo, hi = min(min(ys), 0.0), max(max(ys), 0.0)
        pad = max(hi - lo, 1.0) * 0.12
        pt_per_y = 300.0 / (hi - lo + 2 * pad)    # about 300 points of axis height
        placed: list[tuple[float, float, bool]] = []   # label anchors: x, y in points, side
        for (gx, gy), members in sorted(groups.items(), key=lambda kv: -kv[0][1]):
            n = len(members)
            for j, (label, cell, r) in enumerate(members):
                ax.scatter([gx], [gy], s=150 * (n - j) / n + 20, color=policy_color(cell.spec.policy),
                           edgecolors="white", linewidths=1.0, zorder=3 + j)
            names = ", ".join(m[0] for m in members)
            r = members[0][2]
            pages = r["pages_migrated"]
            what = [f"{pages:,.0f} pages moved" if math.isfinite(pages) and pages
                    else "no page moved"]
            if math.isfinite(r["speedup"]) and r["speedup"] > 0:
                what.append(f"runtime ×{1 / r['speedup']:.2f}")     # as the summary says it
            right = gx > min(xs) + 0.7 * xspan

            def covers(side_right: bool) -> bool:
                """Whether the label on that side would cover another policy's point (the
                text runs about a quarter of the axis width from its point)."""
                x0, x1 = (gx - 0.27 * xspan, gx) if side_right else (gx, gx + 0.27 * xspan)
                return any(x0 <= ox <= x1 and (ox, oy) != (gx, gy)
                           and abs(oy - gy) * pt_per_y < 16 for ox, oy in groups)

            if covers(right) and not covers(not right):
                right = not right
            # a label that would overlap one already placed nearby (two lines of 8 pt text)
            # moves down below it
            y_pt = gy * pt_per_y
            for px, py, pside in sorted(placed, key=lambda p: -p[1]):
                if pside == right and abs(px - gx) < 0.45 * xspan and abs(py - y_pt) < 24:
                    y_pt = py - 24
            placed.append((gx, y_pt, right))
            ax.annotate(f"{names}\n" + ", ".join(what), (gx, gy),
                        xytext=(-9 if right else 9, y_pt - gy * pt_per_y),
                        textcoords="offset points", ha="right" if right else "left",
                        va="center", fontsize=8, zorder=10,
                        arrowprops=None if abs(y_pt - gy * pt_per_y) < 1 else
                        {"arrowstyle": "-", "color": "0.6", "linewidth": 0.6})
        if not groups:
            ax.text(0.5, 0.5, "no cell has a baseline to compare with", ha="center",
                    va="center", transform=ax.transAxes)
        low_label = min([p[1] for p in placed], default=0.0) / pt_per_y - 12 / pt_per_y
        ax.set_ylim(min(lo - pad, low_label), hi + pad)
        ax.set_xlim(min(min(xs), 0.0) - 0.06 * xspan, max(max(xs), min(min(xs), 0.0) + xspan)
                    + 0.06 * xspan)
        ax.set_xlabel(f"time spent migrating pages ({unit}, simulated)")
        ax.set_ylabel("mean latency reduction vs none (%)")
        ax.set_title(f"What migration buys and what it costs: {title}")
        ax.grid(True, alpha=0.3)
        return _png(fig)


def same_timelines(cells, labels: list[str]) -> list[tuple[int, list[str]]]:
    """The cells to draw as latency lines: (index of the first cell, labels of every cell with
    the same latency over time). Runs that behave alike (a policy that did nothing and the
    baseline) would otherwise hide each other."""
    lines: dict[bytes, tuple[int, list[str]]] = {}
    for i, (cell, label) in enumerate(zip(cells, labels)):
        tl = cell.timeline.sort_values("time_ns", kind="stable")
        key = (tl["time_ns"].to_numpy(dtype=float).tobytes() + b"|"
               + tl["mean_latency_ns"].to_numpy(dtype=float).tobytes())
        if key in lines:
            lines[key][1].append(label)
        else:
            lines[key] = (i, [label])
    return list(lines.values())


def latency_figure(cells, title: str, labels: list[str]) -> bytes:
    """Mean latency per time window, one line per cell (cells with identical timelines share
    one line, labelled with all their names); below it, when there are migrations,
    a strip with one row per migrating cell and a tick at each migration event. Short spikes
    (migration stalls) are clipped so the steady state stays readable: the y axis ends at
    1.2 x the 99th percentile of all windows, and a note gives the highest clipped peak."""
    import matplotlib
    import numpy as np

    plt = _plt()
    colors = _cell_colors(cells)
    styles = _cell_styles(cells)
    events = [(i, c) for i, c in enumerate(cells) if len(c.migrations)]
    with matplotlib.rc_context(_RC):
        if events:
            strip = 0.25 * len(events) + 0.5
            fig, (ax, ev) = plt.subplots(
                2, 1, figsize=(9.0, 4.2 + strip), sharex=True, layout="constrained",
                gridspec_kw={"height_ratios": [4.2, strip]})
        else:
            fig, ax = plt.subplots(figsize=(9.0, 4.2), layout="constrained")
            ev = None
        all_lat = []
        div, unit = _time_unit(max([float(c.timeline["time_ns"].max()) for c in cells
                                    if len(c.timeline)] or [0.0]))
        for i, names in same_timelines(cells, labels):
            tl = cells[i].timeline.sort_values("time_ns", kind="stable")
            t_us = tl["time_ns"].to_numpy(dtype=float) / div
            lat = tl["mean_latency_ns"].to_numpy(dtype=float)
            all_lat.append(lat[np.isfinite(lat)])
            ax.plot(t_us, lat, color=colors[i], linestyle=styles[i], linewidth=1.2,
                    label=" = ".join(names))
        lat = np.concatenate(all_lat) if all_lat else np.zeros(0)
        if len(lat):
            top = 1.2 * float(np.percentile(lat, 99))
            peak = float(lat.max())
            if peak > top > 0:
                ax.set_ylim(0, top)
                ax.text(0.99, 0.98, f"peaks up to {peak:,.0f} ns clipped", ha="right",
                        va="top", transform=ax.transAxes, fontsize=8, color="0.35")
            else:
                ax.set_ylim(0, max(peak * 1.05, 1.0))
        ax.set_ylabel("mean access latency (ns)")
        ax.set_title(f"Access latency over time: {title}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8, bbox_to_anchor=(1.0, 0.93))
        if ev is not None:
            for row, (i, cell) in enumerate(events):
                mt = np.sort(cell.migrations["time_ns"].to_numpy(dtype=float)) / div
                ev.plot(mt, np.full(len(mt), row), linestyle="none", marker="|", markersize=9,
                        color=colors[i])
            ev.set_yticks(range(len(events)))
            ev.set_yticklabels([labels[i] for i, _ in events], fontsize=8)
            ev.set_ylim(len(events) - 0.5, -0.5)
            ev.set_ylabel("migrations", fontsize=8)
            ev.grid(True, axis="x", alpha=0.3)
            ev.set_xlabel(f"simulated time ({unit})")
        else:
            ax.set_xlabel(f"simulated time ({unit})")
        fig.align_ylabels()
        return _png(fig)


IN_FLIGHT_COLOR = "#bdbdbd"


def placement_figure(cells, title: str, labels: list[str]) -> bytes:
    """Pages resident on each node over time (stacked), one panel per cell. Each page counts
    once: a page under migration is drawn as "in flight" (hatched, on top), not on both nodes
    (the ``in_flight`` column of the run's placement, hwemu/sim/residency.py; cells without
    it are drawn from ``pages`` alone)."""
    import math

    import matplotlib

    plt = _plt()
    nodes = sorted({int(n) for c in cells for n in c.placement["node"].unique()})
    node_colors = dict(zip(nodes, _colors(len(nodes))))
    names = node_labels(cells, nodes)
    flying = any("in_flight" in c.placement.columns and c.placement["in_flight"].sum() > 0
                 for c in cells)
    n = max(1, len(cells))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    div, unit = _time_unit(max([float(c.placement["time_ns"].max()) for c in cells
                                if len(c.placement)] or [0.0]))
    with matplotlib.rc_context(_RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 2.8 * nrows + 0.6),
                                 squeeze=False, sharey=True)
        for i, ax in enumerate(axes.flat):
            if i >= len(cells):
                ax.set_visible(False)
                continue
            cell = cells[i]
            pl = cell.placement
            ax.set_title(labels[i], fontsize=9)
            if len(pl):
                wide = pl.pivot_table(index="time_ns", columns="node", values="pages",
                                      aggfunc="sum", fill_value=0).sort_index()
                t_us = wide.index.to_numpy(dtype=float) / div
                cols = [nd for nd in nodes if nd in wide.columns]
                series = [wide[nd].to_numpy(dtype=float) for nd in cols]
                colors = [node_colors[nd] for nd in cols]
                if flying and "in_flight" in pl.columns:
                    fl = pl.groupby("time_ns")["in_flight"].sum().reindex(wide.index,
                                                                          fill_value=0)
                    series.append(fl.to_numpy(dtype=float))
                    colors.append(IN_FLIGHT_COLOR)
                polys = ax.stackplot(t_us, *series, colors=colors, step="post")
                if flying and len(polys) > len(cols):
                    polys[-1].set_hatch("////")
                    polys[-1].set_edgecolor("0.35")
                    polys[-1].set_linewidth(0.0)
            else:
                ax.text(0.5, 0.5, "no placement samples", ha="center", va="center",
                        transform=ax.transAxes)
            ax.set_xlabel(f"simulated time ({unit})")
            if i % ncols == 0:
                ax.set_ylabel("resident pages")
            ax.grid(True, alpha=0.3)
        handles = [matplotlib.patches.Patch(color=node_colors[nd], label=names[nd])
                   for nd in nodes]
        if flying:
            handles.append(matplotlib.patches.Patch(facecolor=IN_FLIGHT_COLOR, hatch="////",
                                                    edgecolor="0.35",
                                                    label="in flight (being migrated)"))
        if handles:
            fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8)
        fig.suptitle(f"Where the pages live: {title}", x=0.02, ha="left")
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        return _png(fig)


def steps_figure(cells, title: str, labels: list[str]) -> bytes:
    """Total time in each migration-protocol step, grouped horizontal bars per cell. Steps no
    cell spent any time in, and cells that spent none in any step, are left out (no empty
    rows)."""
    import matplotlib
    import numpy as np

    plt = _plt()
    steps: list[str] = []
    for c in cells:
        st = c.steps.assign(step=c.steps["step"].astype(str))
        for s in st.loc[st["time_ns"] > 0, "step"]:
            if s not in steps:
                steps.append(s)
    shown = [(c, lab) for c, lab in zip(cells, labels)
             if len(c.steps) and float(c.steps["time_ns"].sum()) > 0]
    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(9.0, max(3.0, 0.35 * len(steps) * max(1, len(shown))
                                                 / 2 + 1.5)))
        if not steps or not shown:
            ax.text(0.5, 0.5, "no page migrations in these runs", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
        else:
            y = np.arange(len(steps), dtype=float)
            h = 0.8 / len(shown)
            colors = _cell_colors(cells)
            for j, (c, lab) in enumerate(shown):
                per = c.steps.assign(step=c.steps["step"].astype(str)).groupby(
                    "step", sort=False)["time_ns"].sum()
                vals = np.array([float(per.get(s, 0.0)) for s in steps]) / 1e3
                ax.barh(y + (j - (len(shown) - 1) / 2) * h, vals, height=h,
                        color=colors[cells.index(c)], label=lab)
            ax.set_yticks(y)
            ax.set_yticklabels(steps)
            ax.invert_yaxis()
            ax.set_xlabel("time in step, all migrations (µs)")
            ax.grid(True, axis="x", alpha=0.3)
            ax.legend(loc="best", fontsize=8)
        ax.set_title(f"Migration cost per protocol step: {title}")
        fig.tight_layout()
        return _png(fig)


def numeric_params(cells) -> list[str]:
    """Parameters that take at least three distinct numeric values among the cells of one
    workload (a sweep of ``time_compression``, ``scan_period_min``...): each gets a
    :func:`param_figure`."""
    values: dict[str, set] = {}
    other: set[str] = set()
    for c in cells:
        for k, v in c.spec.params:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values.setdefault(k, set()).add(float(v))
            else:
                other.add(k)
    return sorted(k for k, vs in values.items() if len(vs) >= 3 and k not in other)


def param_figure(cells, title: str, param: str) -> bytes:
    """Each policy's result as ``param`` varies: left, the mean-latency reduction against the
    baseline (the results table's ``latency_reduction_pct``; up is better); right, the runtime
    against the baseline (1 / ``speedup``; down is better), one line per policy over the cells
    that set ``param``, the baseline as the dashed line. A log x axis when the values span a
    factor of 10 or more."""
    import math

    import matplotlib

    from hwemu.report.table import results_table

    plt = _plt()
    rows = {r["cell"]: r for r in results_table(cells).to_dict("records")}
    lines: dict[str, list] = {}
    for c in cells:
        p = dict(c.spec.params)
        if param not in p or c.spec.policy == "none":
            continue
        r = rows[c.spec.cell_id]
        y, s = r["latency_reduction_pct"], r["speedup"]
        runtime = 1 / s if math.isfinite(s) and s > 0 else math.nan
        lines.setdefault(c.spec.policy, []).append((float(p[param]), y, runtime,
                                                   r["pages_migrated"]))
    xs = [x for pts in lines.values() for x, *_ in pts]
    log = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 10
    with matplotlib.rc_context(_RC):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.8), layout="constrained")
        for ax, base in ((ax1, 0.0), (ax2, 1.0)):
            ax.axhline(base, color="0.6", linewidth=0.8, linestyle="--", zorder=1)
            ax.set_xlabel(param)
            if log:
                ax.set_xscale("log")
        for policy, pts in lines.items():
            pts.sort()
            col = policy_color(policy)
            ax1.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=col,
                     label=policy)
            ax2.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", color=col,
                     label=policy)
            for x, y, _rt, pages in pts:
                if math.isfinite(y) and math.isfinite(pages):
                    ax1.annotate(f"{pages:,.0f}", (x, y), textcoords="offset points",
                                 xytext=(0, 6), ha="center", fontsize=7, color=col)
        ax1.margins(y=0.15)
        return _finish_pair(fig, ax1, ax2, ("mean-latency reduction vs none (%)",
                                            "runtime vs none (×)"),
                            "latency (labels: pages migrated)", bool(lines),
                            f"{title}: policies as {param} varies")


def _finish_pair(fig, ax1, ax2, ylabels, title1: str, legend: bool, suptitle: str) -> bytes:
    """Labels, titles and legend of a latency / runtime pair of panels; the PNG bytes."""
    ax1.set_ylabel(ylabels[0])
    ax2.set_ylabel(ylabels[1])
    ax1.set_title(title1)
    ax2.set_title("runtime")
    if legend:
        ax1.legend(loc="best", fontsize=8)
    fig.suptitle(suptitle)
    return _png(fig)


def variant_figure(rows, xs: dict, param: str, title: str) -> bytes:
    """Each policy's absolute result across a suite's variants of one workload that differ in
    the recording parameter ``param`` (a GUPS hot-set sweep: ``hot_percent``): left, mean
    access latency (ns); right, simulated runtime (ms), one line per policy, the baseline
    included. ``rows`` are results-table rows (dicts with trace, policy, mean_latency_ns,
    sim_time_ns), ``xs`` maps a trace label to its value of ``param``; rows of other traces
    are left out."""
    import matplotlib

    plt = _plt()
    lines: dict[str, list] = {}
    for r in rows:
        if r["trace"] in xs:
            lines.setdefault(r["policy"], []).append(
                (float(xs[r["trace"]]), float(r["mean_latency_ns"]), float(r["sim_time_ns"]) / 1e6))
    with matplotlib.rc_context(_RC):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.8), layout="constrained")
        for policy in sorted(lines, key=lambda p: (p != "none", p)):
            pts = sorted(lines[policy])
            style = dict(marker="o", color=policy_color(policy), label=policy)
            if policy == "none":
                style.update(linestyle="--")
            ax1.plot([p[0] for p in pts], [p[1] for p in pts], **style)
            ax2.plot([p[0] for p in pts], [p[2] for p in pts], **style)
        for ax in (ax1, ax2):
            ax.set_xlabel(param)
            ax.set_ylim(bottom=0)
        return _finish_pair(fig, ax1, ax2, ("mean access latency (ns)", "runtime (ms, simulated)"),
                            "latency", bool(lines), f"{title}: policies as {param} varies")
