"""Property: whatever bytes or schema every reader is fed, hwemu exits 0 or 2 (a clean
one-line error), never 1 (internal error) and never with a traceback.

Readers: the text importers (lackey, pin, csv), ChampSim, plain and compressed input, native
Parquet traces (random schemas, types, nulls and values), and the TOML loaders (machine,
schedule, sweep). In-process through hwemu.cli.main; a few subprocess checks at the end.
"""

from __future__ import annotations

import gzip
import json
import lzma
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwemu.cli import main

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _run(capsys, *argv) -> tuple[int, str]:
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:
        status = exc.code
    _, err = capsys.readouterr()
    return status, err


def _check(status, err):
    assert status in (0, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
    if status == 2:
        errors = [l for l in err.splitlines() if ": error: " in l]
        assert len(errors) == 1, err


# Text that looks a little like each format, mutated by random bytes.
_TEXT_PIECES = [b"I  04000ad0,3\n", b" L 1ffefffd78,8\n", b" S 0,0\n", b" M ffffffffffffffff,65535\n",
                b"0x4005d0: R 0x7ffd1234\n", b"0x1: W 0x2\n", b"#eof\n", b"kind,addr,size,tid,insts\n",
                b"L,0x1000,8,0,1\n", b"I,4096,3,70000,0\n", b"==12== x\n", b"\n", b",,,\n",
                b"\xff\xfe\x00", b"\r\n", b" L 99999999999999999999,8\n", b"-1,-1,-1\n"]
_text = st.lists(st.one_of(st.sampled_from(_TEXT_PIECES), st.binary(max_size=40)),
                 max_size=30).map(b"".join)
_compress = st.sampled_from(["plain", "gz", "xz", "zst", "gz-cut", "zst-cut"])


def _compressed(data: bytes, how: str) -> bytes:
    if how.startswith("gz"):
        data = gzip.compress(data)
    elif how == "xz":
        data = lzma.compress(data)
    elif how.startswith("zst"):
        data = zstandard.ZstdCompressor().compress(data)
    if how.endswith("-cut"):
        data = data[: max(1, len(data) * 2 // 3)]
    return data


@SETTINGS
@given(data=_text, fmt=st.sampled_from(["lackey", "pin", "csv", "champsim"]), how=_compress)
def test_importers_never_fail_internally(tmp_path, capsys, data, fmt, how):
    src = tmp_path / "in.bin"
    out = tmp_path / "out.parquet"
    out.unlink(missing_ok=True)
    src.write_bytes(_compressed(data, how))
    status, err = _run(capsys, "trace", "import", "-f", fmt, src, out)
    _check(status, err)
    if status == 2:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.parquet.")]


@SETTINGS
@given(records=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       junk=st.binary(max_size=20))
def test_champsim_random_records(tmp_path, capsys, records, seed, junk):
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, 64 * records, dtype=np.uint8).tobytes()
    src = tmp_path / "c.bin"
    src.write_bytes(raw + (junk if seed % 2 else b""))
    out = tmp_path / "out.parquet"
    out.unlink(missing_ok=True)
    _check(*_run(capsys, "trace", "import", "-f", "champsim", src, out))


# Parquet: random column sets, types, nulls and values, with or without hwemu metadata.
_TYPES = [pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(), pa.int8(), pa.int16(), pa.int32(),
          pa.int64(), pa.float32(), pa.float64(), pa.string(), pa.bool_(), pa.binary()]
_COLS = ["kind", "tid", "size", "addr", "insts", "extra"]


@st.composite
def _parquet(draw):
    n = draw(st.integers(0, 30))
    cols = draw(st.lists(st.sampled_from(_COLS), min_size=1, max_size=6, unique=True))
    if draw(st.booleans()):
        cols = list(dict.fromkeys(["kind", "tid", "size", "addr", "insts"] + cols))
    arrays = {}
    for c in cols:
        t = draw(st.sampled_from(_TYPES)) if draw(st.integers(0, 3)) == 0 else \
            {"kind": pa.uint8(), "tid": pa.uint16(), "size": pa.uint16(), "addr": pa.uint64(),
             "insts": pa.uint32()}.get(c, pa.int64())
        vals = draw(st.lists(st.one_of(st.none(), st.integers(-2**70, 2**70)), min_size=n, max_size=n))
        if not draw(st.integers(0, 4)) == 0:  # mostly no nulls, small in-range values
            vals = [abs(v or 0) % 4 for v in vals]
        try:
            if pa.types.is_string(t):
                arr = pa.array([None if v is None else str(v) for v in vals], t)
            elif pa.types.is_binary(t):
                arr = pa.array([None if v is None else str(v).encode() for v in vals], t)
            elif pa.types.is_boolean(t):
                arr = pa.array([None if v is None else bool(v % 2) for v in vals], t)
            elif pa.types.is_floating(t):
                arr = pa.array([None if v is None else float(v) for v in vals], t)
            else:
                info = np.iinfo(t.to_pandas_dtype())
                arr = pa.array([None if v is None else int(min(max(v, info.min), info.max))
                                for v in vals], t)
        except (OverflowError, pa.ArrowInvalid):
            arr = pa.array([None] * n, t)
        arrays[c] = arr
    meta_kind = draw(st.sampled_from(["good", "none", "bad-json", "wrong-records", "odd-types"]))
    meta = {"format_version": 1, "source_format": "x", "program": "", "records": n,
            "records_by_kind": {"I": 0, "L": n, "S": 0, "M": 0}, "threads": 1}
    if meta_kind == "wrong-records":
        meta["records"] = n + 1
    if meta_kind == "odd-types":
        meta.update(program=5, threads="two", extra=[1], format_version=draw(st.integers(-2, 3)))
    table = pa.table(arrays)
    if meta_kind != "none":
        text = "{not json" if meta_kind == "bad-json" else json.dumps(meta)
        table = table.replace_schema_metadata({"hwemu": text})
    return table, draw(st.integers(1, 16))


@SETTINGS
@given(spec=_parquet(), cut=st.integers(0, 3))
def test_parquet_reader_never_fails_internally(tmp_path, capsys, spec, cut):
    table, rg = spec
    t = tmp_path / "t.parquet"
    pq.write_table(table, t, row_group_size=rg)
    if cut == 1:  # truncated file
        data = t.read_bytes()
        t.write_bytes(data[: len(data) // 2])
    for argv in (("trace", "info", t, "--json"), ("cachesim", t, "--json")):
        _check(*_run(capsys, *argv))


# TOML loaders: random documents made of plausible and implausible pieces.
_TOML_PIECES = ['base = "skx-2s"\n', 'base = 5\n', 'base = "nope"\n', '[cache.llc]\n',
                'size = "1e400KiB"\n', 'size = "64TiB"\n', 'size = -1\n', 'size = inf\n',
                'ways = 0\n', 'latency = nan\n', '[core]\n', 'freq = "1e400GHz"\n',
                '[[process]]\n', 'pid = 1\n', 'mmap = 5\n', '[[thread]]\n', 'tid = 0\n',
                'cpu = 0\n', 'thread = 5\n', '[[event]]\n', 'at = "1e400us"\n', 'at = "1us"\n',
                'action = "move_pages"\n', 'pages = 1000000000000\n', 'addr = "0x10000000"\n',
                'node = 1\n', 'machines = ["skx-2s"]\n', 'traces = ["t.parquet"]\n',
                'policies = ["autonuma"]\n', '[params]\n', 'window = ["12 parsecs"]\n',
                'window = ["0us"]\n', 'seeds = [-1]\n', 'x = [\n', '"\\u00e9" = 1\n',
                'a.b.c = {}\n', '[[a]]\n[a]\n']
_toml = st.lists(st.one_of(st.sampled_from(_TOML_PIECES), st.text(max_size=15)), max_size=12)


@SETTINGS
@given(pieces=_toml, raw=st.binary(max_size=8), kind=st.sampled_from(["machine", "schedule", "sweep"]))
def test_toml_loaders_never_fail_internally(tmp_path, capsys, pieces, raw, kind):
    f = tmp_path / "f.toml"
    f.write_bytes("".join(pieces).encode("utf-8", "surrogatepass") + raw)
    if kind == "machine":
        argv = ("machine", "show", "--no-measure", f)
    elif kind == "schedule":
        argv = ("schedule", "check", f)
    else:
        argv = ("sweep", f, "--out", tmp_path / "sweep-out", "--workers", "1", "--quiet")
    status, err = _run(capsys, *argv)
    _check(status, err)
    if kind == "sweep":
        assert status == 2 or (tmp_path / "sweep-out").exists()


@pytest.mark.parametrize("payload, fmt", [
    (b"\x1f\x8b\x08\x00garbage", "lackey"),
    (b"\xfd7zXZ\x00" + bytes(range(60)), "pin"),
    (b"\x28\xb5\x2f\xfd" + bytes(200), "csv"),
    (bytes(range(256)) * 4, "champsim"),
])
def test_subprocess_exit_status(tmp_path, payload, fmt):
    """The real process, the real exit status: 2 and one line."""
    src = tmp_path / "in"
    src.write_bytes(payload)
    r = subprocess.run([sys.executable, "-m", "hwemu", "trace", "import", "-f", fmt, str(src),
                        str(tmp_path / "o.parquet")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("hwemu: error: ")
    assert not (tmp_path / "o.parquet").exists()
