"""Importers: exact records from small fixtures, compressed and stdin input, errors."""

from __future__ import annotations

import gzip
import io
import lzma
import sys

import numpy as np
import pytest
import zstandard

from hwemu.errors import HwemuError
from hwemu.traces import importers
from hwemu.traces.format import TraceReader
from hwemu.traces.importers import CHAMPSIM_RECORD, import_trace, iter_lackey

LACKEY = b"""==1234== Lackey, an example Valgrind tool
==1234== Command: ./a.out
I  04000ad0,3
 S 1ffefffd78,8
I  04000ad3,5
 L 1ffefffd70,8

 M 0403a2c8,4
I  04000ad8,15
==1234== Counted 1 call to main()
"""
LACKEY_KIND = [0, 2, 0, 1, 3, 0]
LACKEY_ADDR = [0x04000AD0, 0x1FFEFFFD78, 0x04000AD3, 0x1FFEFFFD70, 0x0403A2C8, 0x04000AD8]
LACKEY_SIZE = [3, 8, 5, 8, 4, 15]


def _read(path):
    return TraceReader(path).read_all()


def _check_lackey(path):
    ch = _read(path)
    assert ch.kind.tolist() == LACKEY_KIND
    assert ch.addr.tolist() == LACKEY_ADDR
    assert ch.size.tolist() == LACKEY_SIZE
    assert ch.tid.tolist() == [0] * 6
    assert ch.insts.tolist() == [0] * 6


@pytest.mark.parametrize("compress", ["plain", "gz", "xz", "zst"])
def test_lackey_plain_and_compressed(tmp_path, compress):
    data = {"plain": lambda b: b, "gz": gzip.compress, "xz": lzma.compress,
            "zst": lambda b: zstandard.ZstdCompressor().compress(b)}[compress](LACKEY)
    src = tmp_path / "in.txt"  # the name says nothing: compression is detected by content
    src.write_bytes(data)
    meta = import_trace("lackey", src, tmp_path / "out.parquet")
    assert meta.records == 6
    assert meta.records_by_kind == {"I": 3, "L": 1, "S": 1, "M": 1}
    assert meta.source_format == "lackey"
    _check_lackey(tmp_path / "out.parquet")


def test_lackey_stdin_cli(tmp_path, run_cli, monkeypatch):
    class FakeStdin:
        buffer = io.BufferedReader(io.BytesIO(gzip.compress(LACKEY)))

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    status, out, err = run_cli("trace", "import", "--format", "lackey", "-", tmp_path / "o.parquet")
    assert status == 0, err
    assert "6 records" in out
    _check_lackey(tmp_path / "o.parquet")


def test_lackey_lines_split_across_blocks():
    """Every block size, down to a few bytes, gives the same records (lines straddle blocks)."""
    whole = np.concatenate([c.addr for c in iter_lackey(io.BytesIO(LACKEY))])
    for block in (1, 2, 3, 5, 7, 11, 16, 64):
        chunks = list(iter_lackey(io.BytesIO(LACKEY), block=block))
        got = np.concatenate([c.addr for c in chunks])
        assert got.tolist() == whole.tolist() == LACKEY_ADDR


def test_lackey_no_trailing_newline(tmp_path):
    src = tmp_path / "in"
    src.write_bytes(b"I  10,2\n L 20,4")
    ch = _read(import_trace("lackey", src, tmp_path / "o.parquet") and tmp_path / "o.parquet")
    assert ch.addr.tolist() == [0x10, 0x20] and ch.size.tolist() == [2, 4]


@pytest.mark.parametrize("bad, lineno", [
    (b"I  04000ad0,3\n X 1ffe,8\n", 2),
    (b"I  04000ad0,3\nI  04000ad0\n", 2),
    (b"I  04000ad0,3\n\n\n L zz,8\n", 4),
    (b" L 1ffe,99999\n", 1),
    (b" L 1ffe,8 trailing\n", 1),
    (b" L 12345678901234567,8\n", 1),
])
def test_lackey_malformed_line(tmp_path, run_cli, bad, lineno):
    src = tmp_path / "bad.txt"
    src.write_bytes(bad)
    out = tmp_path / "o.parquet"
    status, _, err = run_cli("trace", "import", "-f", "lackey", src, out)
    assert status == 2
    assert err.startswith(f"hwemu: error: {src}:{lineno}: malformed lackey line")
    assert err.count("\n") == 1
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary file left either


def test_lackey_error_line_number_in_later_block(tmp_path, monkeypatch):
    lines = b"I  04000ad0,3\n" * 1000 + b"garbage\n"
    src = tmp_path / "in"
    src.write_bytes(lines)
    monkeypatch.setattr(importers, "BLOCK_BYTES", 100)
    with pytest.raises(HwemuError, match=r":1001: malformed lackey line.*'garbage'"):
        importers.import_trace("lackey", src, tmp_path / "o.parquet")


def test_empty_input_is_an_error(tmp_path):
    src = tmp_path / "empty"
    src.write_bytes(b"==1== nothing\n")
    with pytest.raises(HwemuError, match="no trace records"):
        import_trace("lackey", src, tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists()


def test_missing_input(tmp_path, run_cli):
    status, _, err = run_cli("trace", "import", "-f", "pin", tmp_path / "nope", tmp_path / "o")
    assert status == 2 and "no such file" in err


def test_corrupt_compressed_input(tmp_path, run_cli):
    src = tmp_path / "in.gz"
    src.write_bytes(gzip.compress(LACKEY)[:-12])
    status, _, err = run_cli("trace", "import", "-f", "lackey", src, tmp_path / "o.parquet")
    assert status == 2 and err.count("\n") == 1
    assert not (tmp_path / "o.parquet").exists()


# -------------------------------------------------------------------------------------- pin

PIN = b"""# pinatrace output
0x7f1c2d0: W 0x7ffd1000
0x7f1c2d0: R 0x7ffd1008
0x7f1c2d4: R 0x601040
0x7f1c2d4: R 0x601048
0x7f1c2d9: W 0x601050
#eof
"""


def test_pin(tmp_path):
    src = tmp_path / "pin.out.xz"
    src.write_bytes(lzma.compress(PIN))
    meta = import_trace("pin", src, tmp_path / "o.parquet")
    assert meta.records == 5
    ch = _read(tmp_path / "o.parquet")
    assert ch.kind.tolist() == [2, 1, 1, 1, 2]
    assert ch.addr.tolist() == [0x7FFD1000, 0x7FFD1008, 0x601040, 0x601048, 0x601050]
    assert ch.size.tolist() == [8] * 5
    assert ch.insts.tolist() == [1, 0, 1, 0, 1]  # one instruction per new instruction pointer


def test_pin_instruction_count_across_blocks():
    chunks = list(importers.iter_pin(io.BytesIO(PIN), block=9))
    assert np.concatenate([c.insts for c in chunks]).tolist() == [1, 0, 1, 0, 1]


def test_pin_malformed(tmp_path):
    src = tmp_path / "pin"
    src.write_bytes(b"0x10: R 0x20\n0x10: X 0x20\n")
    with pytest.raises(HwemuError, match=r"pin:2: malformed pinatrace line.*'0x10: X 0x20'"):
        import_trace("pin", src, tmp_path / "o.parquet")


# --------------------------------------------------------------------------------- champsim

def _champsim_records():
    r = np.zeros(3, CHAMPSIM_RECORD)
    r["ip"] = [0x401000, 0x401004, 0x401008]
    r["source_memory"][0] = [0x7000, 0, 0x7010, 0]
    r["destination_memory"][1] = [0x8000, 0x8040]
    r["source_memory"][2] = [0, 0, 0, 0x9000]
    r["destination_memory"][2] = [0, 0x9008]
    r["is_branch"][2] = 1
    return r


def test_champsim(tmp_path):
    src = tmp_path / "t.champsimtrace.xz"
    src.write_bytes(lzma.compress(_champsim_records().tobytes()))
    meta = import_trace("champsim", src, tmp_path / "o.parquet")
    assert meta.records_by_kind == {"I": 3, "L": 3, "S": 3, "M": 0}
    ch = _read(tmp_path / "o.parquet")
    assert ch.kind.tolist() == [0, 1, 1, 0, 2, 2, 0, 1, 2]
    assert ch.addr.tolist() == [0x401000, 0x7000, 0x7010, 0x401004, 0x8000, 0x8040,
                                0x401008, 0x9000, 0x9008]
    assert ch.size.tolist() == [4, 8, 8, 4, 8, 8, 4, 8, 8]


def test_champsim_truncated(tmp_path, run_cli):
    src = tmp_path / "t.bin"
    src.write_bytes(_champsim_records().tobytes()[:-10])
    status, _, err = run_cli("trace", "import", "-f", "champsim", src, tmp_path / "o.parquet")
    assert status == 2
    assert "truncated ChampSim trace: 54 byte(s) after record 2" in err
    assert not (tmp_path / "o.parquet").exists()


# -------------------------------------------------------------------------------------- csv

def test_csv_all_columns_any_order(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("addr, kind,size,insts,tid\n0x1000,L,8,3,0\n4096,S,4,0,2\n 0x2000 , m , 16 , 1 , 1 \n0x10,I,3,0,0\n")
    meta = import_trace("csv", src, tmp_path / "o.parquet")
    assert meta.threads == 3
    ch = _read(tmp_path / "o.parquet")
    assert ch.kind.tolist() == [1, 2, 3, 0]
    assert ch.addr.tolist() == [0x1000, 4096, 0x2000, 0x10]
    assert ch.size.tolist() == [8, 4, 16, 3]
    assert ch.insts.tolist() == [3, 0, 1, 0]
    assert ch.tid.tolist() == [0, 2, 1, 0]


def test_csv_required_columns_only(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("kind,addr,size\r\nL,0xffffffffffffffff,8\r\n")
    ch = _read(import_trace("csv", src, tmp_path / "o.parquet") and tmp_path / "o.parquet")
    assert ch.addr.tolist() == [0xFFFFFFFFFFFFFFFF]
    assert ch.tid.tolist() == [0] and ch.insts.tolist() == [0]


@pytest.mark.parametrize("text, match", [
    ("kind,addr\nL,1\n", r"t.csv:1: CSV header lacks required column\(s\) size"),
    ("kind,addr,size,colour\n", r"t.csv:1: unknown CSV column 'colour'"),
    ("kind,addr,size\nL,0x10,8\nQ,0x10,8\n", r"t.csv:3: bad kind \(expected I, L, S or M\): 'Q,0x10,8'"),
    ("kind,addr,size\nL,0x10,8\nL,0xzz,8\n", r"t.csv:3: bad addr"),
    ("kind,addr,size\nL,16,70000\n", r"t.csv:2: bad size .* 0..65535"),
    ("kind,addr,size\nL,16\n", r"t.csv:2: expected 3 comma-separated fields"),
    ("kind,addr,size\nL,16,8,9\n", r"t.csv:2: expected 3 comma-separated fields"),
    ("kind,addr,size\nL,18446744073709551616,8\n", r"t.csv:2: bad addr"),
])
def test_csv_errors(tmp_path, text, match):
    src = tmp_path / "t.csv"
    src.write_text(text)
    with pytest.raises(HwemuError, match=match):
        import_trace("csv", src, tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists()


def test_unknown_format_cli(tmp_path, run_cli):
    with pytest.raises(SystemExit) as exc:
        run_cli("trace", "import", "-f", "nope", "a", "b")
    assert exc.value.code == 2


def test_binary_garbage_as_text(tmp_path, monkeypatch):
    monkeypatch.setattr(importers, "MAX_LINE", 1000)
    monkeypatch.setattr(importers, "BLOCK_BYTES", 512)
    src = tmp_path / "bin"
    src.write_bytes(bytes(range(11, 256)) * 20)  # no newline at all
    with pytest.raises(HwemuError, match=r"bin:1: line longer than"):
        import_trace("lackey", src, tmp_path / "o.parquet")
