"""Figures of measured machine behaviour (matplotlib, written atomically)."""

from __future__ import annotations

from pathlib import Path

from hwemu.errors import HwemuError
from hwemu.fileio import atomic_path


def plot_loaded(path, curves: dict, published: dict | None = None, title: str | None = None,
                xlabel: str | None = None, measured: dict | None = None) -> None:
    """Draw loaded-latency curves (label -> points with bandwidth_gbs, latency_ns) to a PNG.
    ``published`` maps a label to (saturation bandwidth GB/s, idle latency ns) markers;
    ``measured`` maps a label to a published measured curve, a list of (GB/s, ns) pairs,
    drawn dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise HwemuError(f"{path}: the plot is written as PNG; give a .png file name")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pts in curves.items():
        # in measurement order (decreasing delay), so the curve runs from idle to saturation
        ax.plot([p["bandwidth_gbs"] for p in pts], [p["latency_ns"] for p in pts], "o-",
                label=label, markersize=3)
    for label, pairs in (measured or {}).items():
        ax.plot([b for b, _ in pairs], [n for _, n in pairs], "x--", label=label, markersize=3,
                linewidth=1)
    for label, (bw, lat) in (published or {}).items():
        if bw:
            ax.axvline(bw, linestyle=":", color="grey")
        ax.axhline(lat, linestyle=":", color="lightgrey")
        ax.annotate(label, (bw or 0, lat), textcoords="offset points", xytext=(3, 5), fontsize=7)
    ax.set_xlabel(xlabel or "read bandwidth (GB/s)")
    ax.set_ylabel("probe load latency (ns)")
    ax.set_title(title or "loaded latency (measured through the model)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
