"""trace info numbers on a hand-made trace."""

from __future__ import annotations

import json


from hwemu.traces.format import TraceChunk, TraceWriter
from hwemu.traces.info import trace_info


def _write(path):
    a = TraceChunk.from_arrays([0, 1, 2, 3], [0x400000, 0x1000, 0x1ff8, 0x5000], [4, 8, 8, 16],
                               tid=[0, 0, 1, 1], insts=[0, 2, 0, 1])
    b = TraceChunk.from_arrays([0, 1], [0x400004, 0x1008], [3, 8], tid=[2, 2])
    with TraceWriter(path, source_format="test", program="prog x", row_group_size=3,
                     extra={"exit_status": 0, "argv": ["prog", "x"], "cwd": "/tmp"}) as w:
        w.write(a)
        w.write(b)


def test_trace_info(tmp_path):
    path = tmp_path / "t.parquet"
    _write(path)
    info = trace_info(path)
    assert info["records"] == 6
    assert info["records_by_kind"] == {"I": 2, "L": 2, "S": 1, "M": 1}
    assert info["instructions"] == 2 + 3
    assert info["threads"] == 3 and info["tids"] == [0, 1, 2]
    assert info["addr_min"] == 0x1000 and info["addr_max"] == 0x400004
    assert info["data_addr_min"] == 0x1000 and info["data_addr_max"] == 0x5000
    assert info["pages_4k"] == 3          # 0x1, 0x5, 0x400
    assert info["data_pages_4k"] == 2     # 0x1, 0x5
    assert info["bytes_accessed"] == 4 + 8 + 8 + 16 + 3 + 8
    assert info["bytes_on_disk"] == path.stat().st_size
    assert info["row_groups"] == 2
    assert info["program"] == "prog x" and info["source_format"] == "test"
    assert info["extra"]["exit_status"] == 0


def test_info_cli(tmp_path, run_cli):
    path = tmp_path / "t.parquet"
    _write(path)
    status, out, _ = run_cli("trace", "info", path, "--json")
    assert status == 0 and json.loads(out)["pages_4k"] == 3
    status, out, _ = run_cli("trace", "info", path)
    assert status == 0
    assert "records        6  (I 2  L 2  S 1  M 1)" in out
    assert "threads        3  (tids 0, 1, 2)" in out
    assert "exit status    0" in out


def test_info_missing(tmp_path, run_cli):
    status, _, err = run_cli("trace", "info", tmp_path / "nope.parquet")
    assert status == 2 and "no such trace file" in err
