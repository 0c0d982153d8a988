"""Chunks decoded ahead by a background thread (hwemu.traces.format.read_ahead)."""

import threading

import numpy as np
import pytest

from hwemu.errors import HwemuError
from hwemu.traces.format import TraceChunk, TraceReader, read_ahead, write_trace


def test_same_items_in_order_and_errors_where_they_happen():
    def gen():
        yield from range(5)
        raise HwemuError("t.parquet: row group 5 is unreadable")

    got = []
    with pytest.raises(HwemuError, match="row group 5"):
        for x in read_ahead(gen(), depth=2):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_closing_early_stops_the_producer():
    made = []

    def gen():
        for i in range(1000):
            made.append(i)
            yield i

    it = read_ahead(gen(), depth=2)
    assert next(it) == 0
    it.close()
    assert not any(t.name == "hwemu-read-ahead" for t in threading.enumerate())
    assert len(made) <= 4          # one consumed, at most depth queued, one waiting to be put


def test_reader_chunks_ahead_equal_the_plain_ones(tmp_path):
    n = 10_000
    rng = np.random.default_rng(0)
    ch = TraceChunk.from_arrays(rng.integers(0, 4, n).astype(np.uint8),
                                rng.integers(0, 1 << 40, n).astype(np.uint64), np.full(n, 8))
    p = tmp_path / "t.parquet"
    write_trace(p, ch, "synthetic", row_group_size=1000)
    r = TraceReader(p)
    plain = list(r.iter_chunks(700))
    ahead = list(r.iter_chunks_ahead(700))
    assert len(plain) == len(ahead) > 10
    for a, b in zip(plain, ahead):
        assert all(np.array_equal(getattr(a, c), getattr(b, c))
                   for c in ("kind", "tid", "size", "addr", "insts"))
