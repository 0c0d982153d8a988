"""Threads stay in step however the trace orders them (replay.Feeder and the "starved" stop).

A recorder that runs one thread at a time writes long runs of one thread. Replayed chunk by
chunk without the feeder, a thread with no records in the current chunk would stand still while
the others ran on. With it, the result of a replay must not depend on how the threads'
records are interleaved in the file, nor on the chunk size.
"""

import numpy as np
import pytest

from hwemu.machine.replay import Feeder, run_trace
from hwemu.traces.format import TraceChunk, TraceReader, write_trace

from machine_testkit import TINY

BASE = 0x10_0000_0000


def _records(threads=2, n=6000, seed=3):
    """Per thread: its own 256 KiB (4x the tiny LLC), random 8-byte loads and stores."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(threads):
        off = rng.integers(0, (256 << 10) // 8, n).astype(np.uint64) * 8
        kind = np.where(rng.random(n) < 0.3, 2, 1).astype(np.uint8)
        out.append((kind, BASE + np.uint64(t << 24) + off))
    return out


def _write(path, recs, run):
    """Interleave the threads' records in runs of ``run`` records each."""
    parts = []
    pos = [0] * len(recs)
    while any(p < len(r[0]) for p, r in zip(pos, recs)):
        for t, (kind, addr) in enumerate(recs):
            a, b = pos[t], min(pos[t] + run, len(kind))
            if a < b:
                parts.append((kind[a:b], addr[a:b], np.full(b - a, t, np.uint16)))
            pos[t] = b
    kind = np.concatenate([p[0] for p in parts])
    addr = np.concatenate([p[1] for p in parts])
    tid = np.concatenate([p[2] for p in parts])
    n = len(kind)
    write_trace(path, TraceChunk.from_arrays(kind, addr, np.full(n, 8, np.uint16), tid,
                                             np.full(n, 20, np.uint32)), "synthetic", "test")
    return path


def _key(res):
    s = res.summary
    return (s["accesses"], s["mean_latency_ns"], s["p99_latency_ns"], s["sim_time_ns"],
            int(res.machine.S.th_lat_sum.sum()), tuple(res.machine.S.th_clock.tolist()))


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("feed")
    recs = _records()
    return {run: _write(d / f"run{run}.parquet", recs, run) for run in (1, 1500, 6000)}


def test_replay_does_not_depend_on_thread_runs_or_chunk_size(traces):
    ref = run_trace(str(TINY), traces[1], cpus=[0, 1], chunk_records=1 << 20)
    assert ref.stats.get("trace.feed", "refills") == 0
    for run, chunk in ((1, 1000), (1500, 1000), (1500, 700), (6000, 1000), (6000, 1 << 20)):
        res = run_trace(str(TINY), traces[run], cpus=[0, 1], chunk_records=chunk)
        assert _key(res) == _key(ref), (run, chunk)
        if chunk < 12000 and run > 1:
            assert res.stats.get("trace.feed", "refills") > 0


def _replay(path, feeder_of):
    from hwemu.machine.config import load_machine
    from hwemu.machine.replay import FirstTouch, run_chunks
    from hwemu.machine.system import Machine

    reader = TraceReader(path)
    m = Machine(load_machine(str(TINY)), threads=2, cpus=[0, 1])
    feeder = feeder_of(reader)
    run_chunks(m, feeder, FirstTouch(m))
    return m, feeder, reader


def test_chunk_by_chunk_without_thread_counts_is_what_the_feeder_prevents(traces):
    """The same replay without per-thread record counts (plain chunk after chunk): thread 1,
    whose records all come after thread 0's, replays its accesses at times whose queues and
    banks thread 0 has already booked, and the answer changes."""
    ref = run_trace(str(TINY), traces[1], cpus=[0, 1], chunk_records=1 << 20)
    m, _, _ = _replay(traces[6000], lambda r: Feeder(r.iter_chunks(1000)))
    assert int(m.S.th_acc.sum()) == 12000
    assert int(m.S.th_lat_sum.sum()) != int(ref.machine.S.th_lat_sum.sum())


def test_feeder_gives_up_waiting_beyond_its_limit(traces):
    """A thread whose records lie further ahead than the limit: the others go on without it,
    and the replay still covers every record."""
    m, feeder, reader = _replay(traces[6000], lambda r: Feeder(r.iter_chunks(1000),
                                                               r.thread_counts(2), max_held=3000))
    assert feeder.waits_given_up > 0 and feeder.refills > 0
    assert int(m.S.th_acc.sum()) == reader.num_records


def test_thread_counts_read_from_the_tid_column(traces):
    r = TraceReader(traces[1500])
    assert r.thread_counts(2).tolist() == [6000, 6000]
    assert r.thread_counts(1).tolist() == [12000]


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """The same records in files of 1,000-record row groups: thread 0's 6,000 first, then
    thread 1's (runs of 6000), or alternating runs of 1,500."""
    import shutil

    d = tmp_path_factory.mktemp("grouped")
    out = {}
    for run in (1500, 6000):
        src = _write(d / f"tmp{run}.parquet", _records(), run)
        chunk = TraceReader(src).read_all()
        write_trace(d / f"run{run}.parquet", chunk, "synthetic", "test", row_group_size=1000)
        out[run] = d / f"run{run}.parquet"
        src.unlink()
    shutil.rmtree(d / "unused", ignore_errors=True)
    return out


def test_group_thread_counts(grouped):
    r = TraceReader(grouped[6000])
    c = r.group_thread_counts(2)
    assert c.shape == (12, 2) and c.sum(axis=0).tolist() == r.thread_counts(2).tolist()
    assert c[:6, 0].tolist() == [1000] * 6 and c[6:, 0].tolist() == [0] * 6


def test_per_thread_streams_keep_threads_in_step(traces, grouped):
    """Fed per thread (one cursor each, ThreadStreams), a trace replays exactly as with every
    record at hand, whatever the batch, with nothing held back beyond the groups in use."""
    from hwemu.machine.replay import StreamFeeder, ThreadStreams

    ref = run_trace(str(TINY), traces[1], cpus=[0, 1], chunk_records=1 << 20)
    for run in (1500, 6000):
        for batch in (1000, 2400, 1 << 20):
            m, feeder, reader = _replay(grouped[run], lambda r: StreamFeeder(
                ThreadStreams(r, 2), batch))
            assert int(m.S.th_lat_sum.sum()) == int(ref.machine.S.th_lat_sum.sum()), (run, batch)
            assert m.S.th_clock.tolist() == ref.machine.S.th_clock.tolist(), (run, batch)
            assert feeder.waits_given_up == 0
            # a group is decoded again only when it holds both threads' records (runs of 1,500
            # in groups of 1,000), and at most one decoded group per cursor is kept
            decoded = feeder.streams.groups_decoded
            assert (decoded == 12) if run == 6000 else (12 < decoded <= 24), (run, decoded)
            assert len(feeder.streams._split) <= 2


def test_large_traces_are_fed_per_thread(traces, grouped, monkeypatch):
    """A multi-threaded trace with more records than the feeder may hold back is fed per
    thread (feeder_for): the run stays in step where the file-order feeder gave up."""
    import hwemu.machine.replay as replay

    ref = run_trace(str(TINY), traces[1], cpus=[0, 1], chunk_records=1 << 20)
    monkeypatch.setattr(replay, "MAX_HELD_RECORDS", 3000)
    assert replay.feeder_for(TraceReader(grouped[6000]), 2).streams is not None
    assert replay.feeder_for(TraceReader(grouped[6000]), 1).streams is None
    # runs of 1,500 records are at most half the limit apart: fed in file order, as before
    assert replay.feeder_for(TraceReader(grouped[1500]), 2).streams is None
    res = run_trace(str(TINY), grouped[6000], cpus=[0, 1], chunk_records=1000)
    assert _key(res) == _key(ref)
    assert res.stats.get("trace.feed", "waits_given_up") == 0
    assert res.stats.get("trace.feed", "groups_decoded") == 12


def test_runs_far_apart():
    from hwemu.machine.replay import runs_far_apart

    near = np.array([[60, 40], [50, 50], [70, 30], [100, 0]])
    assert not runs_far_apart(near, 100)
    gap = np.array([[100, 0], [100, 0], [0, 100], [50, 50]])       # thread 1 starts at 200
    assert runs_far_apart(gap, 150) and not runs_far_apart(gap, 200)
    hole = np.array([[50, 50], [100, 0], [100, 0], [50, 50]])      # thread 1: 200 apart
    assert runs_far_apart(hole, 199) and not runs_far_apart(hole, 200)
