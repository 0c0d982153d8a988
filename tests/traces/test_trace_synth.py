"""Synthetic traces: determinism and the structure each kind promises."""

from __future__ import annotations

import numpy as np
import pytest

from hwemu.errors import HwemuError
from hwemu.traces import synth
from hwemu.traces.format import TraceReader
from hwemu.traces.synth import synthesize

BASE = 0x10000000


def _gen(tmp_path, kind, name="t.parquet", **kw):
    path = tmp_path / name
    synthesize(kind, path, **kw)
    return TraceReader(path).read_all()


@pytest.mark.parametrize("kind", synth.KINDS)
def test_same_seed_bit_identical_other_seed_differs(tmp_path, kind, monkeypatch):
    monkeypatch.setattr(synth, "CHUNK", 1000)  # several generation chunks
    kw = dict(records=5000, footprint=1 << 16, threads=3, seed=11)
    synthesize(kind, tmp_path / "a.parquet", **kw)
    synthesize(kind, tmp_path / "b.parquet", **kw)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    if kind in ("random", "chase", "phase"):
        synthesize(kind, tmp_path / "c.parquet", **{**kw, "seed": 12})
        a = TraceReader(tmp_path / "a.parquet").read_all().addr
        c = TraceReader(tmp_path / "c.parquet").read_all().addr
        assert not np.array_equal(a, c)


def test_stream(tmp_path):
    ch = _gen(tmp_path, "stream", records=10, footprint=64, threads=2, size=8, line=32, insts=5)
    assert ch.tid.tolist() == [0, 1] * 5
    assert ch.addr.tolist() == [BASE, BASE + 32, BASE + 8, BASE + 40, BASE + 16, BASE + 48,
                                BASE + 24, BASE + 56, BASE, BASE + 32]
    assert set(ch.kind.tolist()) == {1} and set(ch.insts.tolist()) == {5}


def test_strided(tmp_path):
    ch = _gen(tmp_path, "strided", records=6, footprint=1024, stride=256)
    assert (ch.addr - BASE).tolist() == [0, 256, 512, 768, 0, 256]


def test_chase_visits_every_line_once_per_cycle(tmp_path):
    lines = 4096 // 64
    ch = _gen(tmp_path, "chase", records=2 * lines * 2, footprint=8192, threads=2, line=64, seed=3)
    for t in (0, 1):
        a = ch.addr[ch.tid == t]
        first, second = a[:lines], a[lines:]
        region = BASE + t * 4096
        assert sorted(first.tolist()) == [region + 64 * i for i in range(lines)]
        assert np.array_equal(first, second)  # a cycle: the walk repeats
        assert not np.array_equal(first, np.sort(first))  # and it is not sequential


def test_random_gups(tmp_path):
    ch = _gen(tmp_path, "random", records=20000, footprint=1 << 20, threads=4, seed=5)
    assert set(ch.kind.tolist()) == {3}
    assert ch.addr.min() >= BASE and ch.addr.max() < BASE + (1 << 20)
    assert np.all(ch.addr % 8 == 0)
    assert len(np.unique(ch.addr >> np.uint64(12))) == 256  # uniform: every page touched


def test_phase(tmp_path):
    ch = _gen(tmp_path, "phase", records=10000, footprint=1 << 20, seed=2, store_fraction=0.25)
    half = BASE + (1 << 19)
    assert np.all(ch.addr[:5000] < half) and np.all(ch.addr[5000:] >= half)
    stores = np.count_nonzero(ch.kind == 2) / len(ch)
    assert 0.2 < stores < 0.3 and set(ch.kind.tolist()) == {1, 2}


@pytest.mark.parametrize("kw, match", [
    (dict(records=0), "--records"),
    (dict(line=48), "power of two"),
    (dict(footprint=100, threads=4), "too small"),
    (dict(size=128), "must not exceed --line"),
])
def test_bad_options(tmp_path, kw, match):
    with pytest.raises(HwemuError, match=match):
        synthesize("stream", tmp_path / "t.parquet", **kw)
    assert not (tmp_path / "t.parquet").exists()


def test_cli(tmp_path, run_cli):
    out = tmp_path / "g.parquet"
    status, stdout, err = run_cli("trace", "synth", "random", "--records", "2k", "--footprint", "1MiB",
                                  "--threads", "2", "--seed", "9", "--out", out, "--json")
    assert status == 0, err
    import json

    meta = json.loads(stdout)
    assert meta["records"] == 2000 and meta["threads"] == 2
    assert meta["extra"]["synth"]["footprint"] == 1 << 20
    with pytest.raises(SystemExit) as exc:
        run_cli("trace", "synth", "chase", "--footprint", "12x", "--out", out)
    assert exc.value.code == 2
