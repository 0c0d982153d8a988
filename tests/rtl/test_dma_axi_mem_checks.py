"""The AXI memory model's protocol checks and error decoding (no simulator needed)."""

from __future__ import annotations

from types import SimpleNamespace

from hwemu.dma.axi_mem import DECERR, OKAY, SLVERR, AxiMemory, Burst, ErrorRange


class _Sig:
    def __init__(self, width):
        self.width = width

    def __len__(self):
        return self.width


def _mem(**kw):
    names = ["awaddr", "awlen", "awsize", "awburst", "awvalid", "awready", "wdata", "wstrb",
             "wlast", "wvalid", "wready", "bresp", "bvalid", "bready", "bid", "araddr", "arlen",
             "arsize", "arburst", "arvalid", "arready", "rdata", "rresp", "rlast", "rvalid",
             "rready", "rid"]
    dut = SimpleNamespace(**{f"m_axi_{n}": _Sig(128 if n in ("wdata", "rdata") else 8)
                             for n in names})
    return AxiMemory(dut, None, 1 << 16, base=0x10000, **kw)


def test_burst_checks_flag_each_rule():
    m = _mem(max_burst_len=16)
    m._check_burst(Burst(0x10000, 16, 16, 1, 0), "read")
    assert m.violations == []
    m._check_burst(Burst(0x10F80, 16, 16, 1, 0), "read")        # 0x10F80 + 256 > 0x11000
    assert "crosses a 4 KiB boundary" in m.violations[-1]
    m._check_burst(Burst(0x10000, 17, 16, 1, 0), "write")
    assert "17 beats > max 16" in m.violations[-1]
    m._check_burst(Burst(0x10000, 4, 16, 2, 0), "write")
    assert "not INCR" in m.violations[-1]
    m._check_burst(Burst(0x10000, 4, 8, 1, 0), "read")
    assert "bytes/beat" in m.violations[-1]
    assert len(m.violations) == 4


def test_error_ranges_and_decode_errors():
    m = _mem(errors=[ErrorRange(0x10100, 0x10140, SLVERR, "read")])
    assert m._resp_for(0x100f0, 16, "read") == OKAY
    assert m._resp_for(0x10130, 16, "read") == SLVERR
    assert m._resp_for(0x10130, 16, "write") == OKAY
    assert m._resp_for(0xfff0, 16, "read") == DECERR             # below the memory
    assert m._resp_for(0x1fff8, 16, "write") == DECERR           # runs off the end
