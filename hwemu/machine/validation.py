"""Regenerate the figures and tables of docs/validation.md.

    python -m hwemu.machine.validation [OUT_DIR]   (default: docs/img)

For every preset: the idle latency matrix and loaded-latency curves (first CPU node reading
each memory node), drawn beside the published figures, one PNG per preset; the tables are
printed as Markdown on stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hwemu.machine.config import load_machine
from hwemu.machine.mlc import idle_matrix, loaded_latency
from hwemu.machine.plots import plot_loaded

PRESETS = ("skx-2s", "skx-2s-cxl", "skx-4s-ring", "epyc-2s")

# Published reference points: (label, cpu node, mem node, idle ns, saturation GB/s or None)
PUBLISHED = {
    "skx-2s": [("local", 0, 0, 94, 115), ("remote", 0, 1, 133, 34.5)],
    "skx-2s-cxl": [("CXL 170-250 ns, middle", 0, 2, 210, None)],
    "epyc-2s": [("local", 0, 0, 110, None), ("remote", 0, 1, 195, None)],
    "skx-4s-ring": [],
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs/img")
    out.mkdir(parents=True, exist_ok=True)
    for name in PRESETS:
        cfg = load_machine(name)
        lat = idle_matrix(cfg)
        print(f"\n### {name}\n")
        print("| CPU node \\ memory node | " + " | ".join(str(j) for j in range(cfg.num_nodes)) + " |")
        print("|---" * (cfg.num_nodes + 1) + "|")
        for i, row in zip(cfg.cpu_nodes(), lat):
            print(f"| {i} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
        curves = {}
        for mem in range(cfg.num_nodes):
            pts = loaded_latency(cfg, 0, mem)
            curves[f"node0 -> node{mem}"] = pts
            sat = max(p["bandwidth_gbs"] for p in pts)
            print(f"\nnode0 -> node{mem}: saturation {sat:.1f} GB/s; "
                  f"latency {pts[0]['latency_ns']:.1f} ns at {pts[0]['bandwidth_gbs']:.1f} GB/s, "
                  f"{pts[-1]['latency_ns']:.1f} ns at {pts[-1]['bandwidth_gbs']:.1f} GB/s")
            print("\n| delay (cycles) | bandwidth (GB/s) | latency (ns) |\n|---|---|---|")
            for p in pts:
                print(f"| {p['delay_cycles']} | {p['bandwidth_gbs']:.1f} | {p['latency_ns']:.1f} |")
        pub = {f"published {lab}: {idle:g} ns" + (f", {sat:g} GB/s" if sat else ""): (sat or 0, idle)
               for lab, c, mnode, idle, sat in PUBLISHED[name]}
        plot_loaded(out / f"loaded-{name}.png", curves, pub,
                    title=f"{name}: loaded latency measured through the model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
