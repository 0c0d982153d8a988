"""The cycle model against the RTL (Icarus + cocotb): within 2% on every measured point."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("cocotb")


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_model_within_2_percent_of_rtl(tmp_path):
    from hwemu.dma.calibrate import calibrate

    points = calibrate(data_widths=(64, 128, 256), outstanding=(1, 3), latencies=(2, 90),
                       pages=(1, 3), burst_len=8, write_latency=2, build_root=tmp_path)
    assert len(points) == 24
    assert {p["bound"] for p in points} >= {"bandwidth", "outstanding"}
    for p in points:
        assert abs(p["model_cycles"] - p["rtl_cycles"]) <= 0.02 * p["rtl_cycles"], p
    # the latency-bound points really are slower than the bandwidth-bound ones
    by = {(p["data_width"], p["max_outstanding"], p["mem_latency"], p["pages"]): p["rtl_cycles"]
          for p in points}
    assert by[(64, 1, 90, 3)] > 2 * by[(64, 3, 2, 3)]


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_model_within_2_percent_odd_burst_and_small_fifo(tmp_path):
    from hwemu.dma import rtl
    from hwemu.dma.calibrate import CALIBRATE_MODULE
    from hwemu.dma.model import DmaParams, binding_bound, copy_cycles

    import json

    p = DmaParams(data_width=128, burst_len=12, max_outstanding=6, fifo_depth=30,
                  max_write_outstanding=2, write_latency=9)
    params = p.rtl_parameters()
    rtl.build(params, tmp_path)
    pts = [{"mem_latency": lat, "pages": n} for lat in (1, 40, 120) for n in (1, 2)]
    out = tmp_path / "out.json"
    tests, failed = rtl.run(CALIBRATE_MODULE, params, tmp_path,
                            {"points": pts, "write_latency": 9, "out": str(out)})
    assert (tests, failed) == (1, 0)
    res = json.loads(out.read_text())
    assert binding_bound(p, 120) == "buffer"
    for r in res:
        model = copy_cycles(r["pages"], p, r["mem_latency"])
        assert abs(model - r["rtl_cycles"]) <= 0.02 * r["rtl_cycles"], (r, model)
