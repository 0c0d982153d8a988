"""hwemu dma cost / calibrate on the command line."""

from __future__ import annotations

import json
import shutil

import pytest

from hwemu.cli import main
from hwemu.dma.model import DmaParams, copy_cycles


def test_cost_json(capsys):
    assert main(["dma", "cost", "--pages", "1", "--page-size", "2MiB", "--mem-latency",
                 "90ns", "--clock", "1GHz", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cycles"] == copy_cycles(512, DmaParams(128, 16, 4), 90)
    assert out["time_ps"] == out["cycles"] * 1000
    assert out["bytes"] == 2 << 20
    assert out["bound"] in ("bandwidth", "outstanding", "buffer", "write-responses")


@pytest.mark.parametrize("argv,word", [
    (["dma", "cost", "--page-size", "3000"], "--page-size"),
    (["dma", "cost", "--mem-latency", "9parsecs"], "--mem-latency"),
    (["dma", "cost", "--data-width", "96"], "data_width"),
    (["dma", "cost", "--pages", "0"], "--pages"),
    (["dma", "calibrate", "--data-widths", "65"], "--data-widths"),
    (["dma", "calibrate", "--latencies", "0"], "--latencies"),
])
def test_bad_input_is_one_line_exit_2(argv, word, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and word in err and err.startswith("hwemu: error:")


def test_calibrate_without_iverilog(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["dma", "calibrate"]) == 2
    assert "iverilog" in capsys.readouterr().err


def test_help_has_examples(capsys):
    for cmd in ("calibrate", "cost"):
        with pytest.raises(SystemExit) as e:
            main(["dma", cmd, "--help"])
        assert e.value.code == 0
        assert "example:" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_calibrate_json_small_grid(capsys):
    pytest.importorskip("cocotb")
    assert main(["dma", "calibrate", "--data-widths", "256", "--outstanding", "2",
                 "--latencies", "1,30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["points"]) == 2
    for p in out["points"]:
        for key in ("rtl_cycles", "model_cycles", "data_width", "mem_latency",
                    "max_outstanding", "pages"):
            assert key in p
        assert abs(p["error_pct"]) <= 2.0


def test_cost_text_has_units(capsys):
    assert main(["dma", "cost", "--pages", "16", "--page-size", "2MiB"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("copy of 16 x 2 MiB pages (32 MiB) by a 128-bit engine at 1 GHz\n")
    assert "cycles (3.83 ms)" in out and "GB/s" in out and "page_bytes" not in out
