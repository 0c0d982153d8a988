"""Static checks of the RTL: Verilator lint (-Wall, every parameter set) and Yosys synthesis."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

RTL = Path(__file__).resolve().parents[2] / "rtl"
SOURCES = sorted(str(p) for p in RTL.glob("*.v"))

LINT_SETS = [
    {},
    {"DATA_WIDTH": 128, "MAX_BURST_LEN": 12, "MAX_OUTSTANDING": 3},
    {"DATA_WIDTH": 256, "MAX_BURST_LEN": 256, "MAX_OUTSTANDING": 1},
    {"DATA_WIDTH": 64, "MAX_BURST_LEN": 1, "MAX_OUTSTANDING": 16, "ADDR_WIDTH": 32},
]


@pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator not installed")
@pytest.mark.parametrize("params", LINT_SETS, ids=lambda p: "-".join(f"{k}{v}" for k, v in
                                                                       p.items()) or "default")
def test_verilator_lint_clean(params):
    cmd = ["verilator", "--lint-only", "-Wall", *[f"-G{k}={v}" for k, v in params.items()],
           "--top-module", "page_copy_dma", *SOURCES]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "%Warning" not in out and "%Error" not in out, out


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_icarus_accepts_verilog_2001(tmp_path):
    r = subprocess.run(["iverilog", "-g2001", "-o", str(tmp_path / "a.vvp"), *SOURCES],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


@pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")
@pytest.mark.parametrize("dw", [64, 256])
def test_yosys_synth_no_latches(dw, tmp_path):
    reads = "; ".join(f"read_verilog {s}" for s in SOURCES)
    script = (f"{reads}; chparam -set DATA_WIDTH {dw} page_copy_dma; "
              f"synth -top page_copy_dma; tee -o {tmp_path / 'stat.txt'} stat")
    r = subprocess.run(["yosys", "-q", "-p", script], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    stat = (tmp_path / "stat.txt").read_text()
    m = re.search(r"Number of cells:\s+(\d+)", stat)
    assert m and int(m.group(1)) > 1000, stat
    assert not re.search(r"\$_?DLATCH", stat, re.IGNORECASE), "latch inferred:\n" + stat
    assert "$_DFF" in stat or "$_SDFF" in stat, stat
