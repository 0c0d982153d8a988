"""Run the cocotb tests of page_copy_dma under Icarus Verilog, once per parameter set."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("cocotb")
pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")

HERE = Path(__file__).resolve().parent

# (DATA_WIDTH, MAX_BURST_LEN, MAX_OUTSTANDING): every data width; short, long, odd-length and
# page-long bursts; one to eight reads in flight; 2-beat bursts (descriptors fetched in single
# beats). The soak runs 30 random copies (10 with the slow 2-beat bursts).
PARAM_SETS = [
    (64, 16, 4),
    (128, 16, 4),
    (256, 16, 4),
    (64, 256, 1),
    (128, 32, 8),
    (256, 12, 3),
    (64, 2, 2),
]


@pytest.mark.parametrize("dw,burst,outstanding", PARAM_SETS,
                         ids=[f"dw{d}-bl{b}-out{o}" for d, b, o in PARAM_SETS])
def test_page_copy_dma(dw, burst, outstanding, tmp_path_factory):
    from hwemu.dma import rtl

    params = {"DATA_WIDTH": dw, "MAX_BURST_LEN": burst, "MAX_OUTSTANDING": outstanding}
    build_dir = tmp_path_factory.mktemp(rtl.param_key(params))
    rtl.build(params, build_dir)
    cfg = {"params": params, "seed": 1000 + dw + burst + outstanding,
           "soak": 10 if burst < 4 else 30}
    tests, failed = rtl.run("dma_cocotb_tests", params, build_dir, cfg, extra_path=HERE)
    results = build_dir / "run_dma_cocotb_tests" / "results.xml"
    names = [tc.get("name") for tc in ET.parse(results).getroot().iter("testcase")
             if tc.find("failure") is not None or tc.find("error") is not None]
    log = build_dir / "run_dma_cocotb_tests" / "sim.log"
    assert tests >= 8, f"only {tests} cocotb tests ran, see {log}"
    assert failed == 0, f"failed: {names}, see {log}"
