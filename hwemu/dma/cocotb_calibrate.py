"""cocotb test module run by ``hwemu dma calibrate``: time page copies in the RTL.

Configuration (``HWEMU_DMA_CONFIG``): ``points`` (a list of ``{"mem_latency", "pages"}``),
``write_latency`` (cycles), ``seed`` and ``out`` (a JSON file to write the measured cycles to).
The memory never stalls: calibration measures the engine, not a random bus. Every copy is
checked byte for byte, so a timing point is only reported for a correct copy.
"""

from __future__ import annotations

import json
import random

import cocotb

from hwemu.dma.testbench import DmaBench
from hwemu.dma.rtl import load_config

PAGE = 4096


@cocotb.test()
async def calibrate(dut):
    cfg = load_config()
    points = cfg["points"]
    max_pages = max(p["pages"] for p in points)
    span = max_pages * PAGE
    tb = DmaBench(dut, mem_size=2 * span, seed=cfg.get("seed", 1),
                  read_latency=1, write_latency=cfg.get("write_latency", 1))
    await tb.start()
    rng = random.Random(cfg.get("seed", 1))
    tb.mem.mem[:span] = rng.randbytes(span)
    results = []
    for i, p in enumerate(points):
        tb.mem.read_latency = p["mem_latency"]
        n = p["pages"]
        tb.mem.mem[span:2 * span] = bytes(span)
        st = await tb.copy(0, span, n, tag=i & 0xFF)
        assert st.error == 0, f"point {p}: error status {st.error}"
        assert tb.mem.mem[span:span + n * PAGE] == tb.mem.mem[:n * PAGE], f"point {p}: bad copy"
        assert not tb.mem.violations, tb.mem.violations[:5]
        results.append({**p, "rtl_cycles": st.cycles})
    with open(cfg["out"], "w") as f:
        json.dump(results, f)
