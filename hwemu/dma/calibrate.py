"""Measure the RTL against the cycle model over a grid of configurations.

Compiles ``page_copy_dma`` once per (data width, burst length, outstanding) set and times
copies at several memory latencies in one simulation per build, then evaluates
:func:`hwemu.dma.model.copy_cycles` at the same points.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from itertools import product
from pathlib import Path

from hwemu.dma import rtl
from hwemu.dma.model import DmaParams, binding_bound, copy_cycles

CALIBRATE_MODULE = "hwemu.dma.cocotb_calibrate"


def calibrate(data_widths: Sequence[int] = (64, 128, 256),
              outstanding: Sequence[int] = (1, 4),
              latencies: Sequence[int] = (1, 20, 60, 150),
              pages: Sequence[int] = (2,),
              burst_len: int = 16,
              write_latency: int = 1,
              build_root: Path | None = None,
              progress: Callable[[str], None] | None = None) -> list[dict]:
    """Run the grid; return one dict per point (RTL and model cycles, error in percent)."""
    rtl.check_simulator()
    rtl.rtl_dir()
    sets = [DmaParams(data_width=dw, burst_len=burst_len, max_outstanding=o,
                      write_latency=write_latency)
            for dw, o in product(data_widths, outstanding)]
    points = [{"mem_latency": int(lat), "pages": int(n)} for lat in latencies for n in pages]
    out: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="hwemu-dma-") as tmp:
        root = Path(build_root) if build_root is not None else Path(tmp)
        for p in sets:
            params = p.rtl_parameters()
            bdir = root / rtl.param_key(params)
            if progress:
                progress(f"DATA_WIDTH={p.data_width} MAX_OUTSTANDING={p.max_outstanding}")
            rtl.build(params, bdir)
            res_file = bdir / "calibration.json"
            cfg = {"points": points, "write_latency": write_latency, "seed": 1,
                   "out": str(res_file)}
            tests, failed = rtl.run(CALIBRATE_MODULE, params, bdir, cfg)
            if tests < 1 or failed:
                raise RuntimeError(f"calibration simulation failed, see "
                                   f"{bdir / ('run_' + CALIBRATE_MODULE) / 'sim.log'}")
            for r in json.loads(res_file.read_text()):
                model = copy_cycles(r["pages"], p, r["mem_latency"])
                rc = r["rtl_cycles"]
                out.append({
                    "data_width": p.data_width,
                    "burst_len": p.burst_len,
                    "max_outstanding": p.max_outstanding,
                    "mem_latency": r["mem_latency"],
                    "pages": r["pages"],
                    "rtl_cycles": rc,
                    "model_cycles": model,
                    "error_pct": round(100.0 * (model - rc) / rc, 3),
                    "rtl_bytes_per_cycle": round(r["pages"] * 4096 / rc, 3),
                    "bound": binding_bound(p, r["mem_latency"]),
                })
    return out
