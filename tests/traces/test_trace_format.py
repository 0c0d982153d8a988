"""The native format: round trip, metadata, and one-line errors on damaged files."""

from __future__ import annotations

import numpy as np
import pytest

from hwemu.errors import HwemuError
from hwemu.traces.format import TraceChunk, TraceReader, TraceWriter, write_trace


def _chunk(n, seed=0):
    rng = np.random.default_rng(seed)
    return TraceChunk.from_arrays(rng.integers(0, 4, n), rng.integers(0, 1 << 48, n, dtype=np.uint64),
                                  rng.integers(1, 64, n), tid=rng.integers(0, 3, n),
                                  insts=rng.integers(0, 9, n))


def test_round_trip_row_groups(tmp_path):
    ch = _chunk(10_000)
    path = tmp_path / "t.parquet"
    with TraceWriter(path, source_format="test", program="p", row_group_size=3000,
                     extra={"argv": ["p"]}) as w:
        w.write(ch.slice(0, 4000))
        w.write(ch.slice(4000, 10_000))
    r = TraceReader(path)
    assert r.num_row_groups == 4 and r.num_records == 10_000
    assert r.meta.records == 10_000 and r.meta.threads == 3 and r.meta.extra == {"argv": ["p"]}
    back = r.read_all()
    for col in ("kind", "tid", "size", "addr", "insts"):
        assert np.array_equal(getattr(back, col), getattr(ch, col))
    assert sum(len(c) for c in r.iter_chunks(max_records=999)) == 10_000
    assert max(len(c) for c in r.iter_chunks(max_records=999)) == 999


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "t.parquet"
    with pytest.raises(RuntimeError):
        with TraceWriter(path, source_format="test") as w:
            w.write(_chunk(100))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "empty", "text"])
def test_damaged_file_is_one_line_exit_2(tmp_path, run_cli, damage):
    path = tmp_path / "t.parquet"
    write_trace(path, _chunk(50_000), source_format="test")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "corrupt":
        path.write_bytes(data[:200] + bytes(len(data) - 400) + data[-200:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("I  0400,3\n")
    status, out, err = run_cli("trace", "info", path)
    assert status == 2, err
    assert err.startswith(f"hwemu: error: {path}") and err.count("\n") == 1
    assert "Traceback" not in err and out == ""


def test_foreign_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    with pytest.raises(HwemuError, match="no hwemu metadata"):
        TraceReader(path)


def test_written_file_has_umask_permissions(tmp_path):
    import os

    path = tmp_path / "t.parquet"
    write_trace(path, _chunk(10), source_format="test")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
