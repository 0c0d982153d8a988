"""End-to-end: the OS model running inside the machine (hwemu.sim.cosim)."""

from __future__ import annotations

import numpy as np
import pytest

from hwemu.sim.cosim import CoSim
from hwemu.machine import pagetable as PT
from hwemu.machine.core import hist_edges_ps

from integ_kit import DEMO_MACHINE, MIGRATE, MOVE, make_schedule



@pytest.fixture(scope="module")
def moved_and_migrated(small_trace, tmp_path_factory):
    sched = make_schedule(tmp_path_factory.mktemp("s") / "s.toml", events=MOVE + MIGRATE)
    sim = CoSim(DEMO_MACHINE, small_trace, schedule=sched, window_ps=20_000_000)
    return sim, sim.run()


def _mean(tl, lo_ns, hi_ns):
    w = tl[(tl.time_ns > lo_ns) & (tl.time_ns <= hi_ns) & (tl.accesses > 0)]
    return (w.accesses * w.mean_latency_ns).sum() / w.accesses.sum()


def test_remote_before_local_after_and_latency_drops(moved_and_migrated):
    sim, r = moved_and_migrated
    mig = r.migrations[r.migrations.kind == "migrate_pages"].iloc[0]
    assert mig.time_ns == 300_000
    end = mig.time_ns + mig.duration_ns
    tl = r.timeline
    before = _mean(tl, 220_000, 300_000)        # moved, pages still on node 0
    after = _mean(tl, end + 20_000, end + 200_000)
    assert after < 0.85 * before
    assert mig.latency_after_ns < mig.latency_before_ns
    s = r.summary
    assert s["pages_migrated"] == 128 and s["pages_failed"] == 0
    assert s["remote_share"] > 0.05 and s["local_share"] > 0.5
    # numa_maps after the syscall: everything on node 1
    snap = [n for n in r.numa_maps if "migrate_pages" in n["when"]]
    assert snap and "N1=64" in snap[0]["text"] and "N0=" not in snap[0]["text"]
    # the schedule's syscall result is logged
    log = [e for e in r.log if e["action"] == "migrate_pages"]
    assert log and log[0]["ret"] == 0


def test_copies_are_dram_and_link_traffic(moved_and_migrated, small_trace, tmp_path):
    sim, r = moved_and_migrated
    base = CoSim(DEMO_MACHINE, small_trace,
                 schedule=make_schedule(tmp_path / "m.toml", events=MOVE)).run()
    st = r.stats.to_frame().set_index(["component", "stat"])["value"]
    b = base.stats.to_frame().set_index(["component", "stat"])["value"]
    copied = 128 * 4096
    assert st[("os.hw", "copy_bytes")] == copied
    assert st[("node1.mc", "bytes_written")] - b[("node1.mc", "bytes_written")] >= copied * 0.9
    # step 12 took time on the migrating CPU, and the report lists every step
    steps = r.steps.set_index("step")
    assert steps.loc["12_copy", "time_ns"] > 0 and steps.loc["12_copy", "count"] == 128
    assert r.summary["step_time_ns"]["04_unmap"] > 0
    assert r.summary["tlb_shootdowns"] >= 1 and r.summary["bytes_copied"] == copied


def test_access_to_page_under_migration_waits(moved_and_migrated):
    sim, r = moved_and_migrated
    s = r.summary
    assert s["faults_handled"]["migration_entry"] > 0
    assert s["fault_lock_wait_ns"] > 0
    st = r.stats.to_frame().set_index(["component", "stat"])["value"]
    # the waits are in the access latency (and the fault time is at least the lock wait)
    assert st[("cosim.faults", "migration_entry_time")] >= st[("cosim.faults", "lock_wait_time")]
    assert st[("cosim.faults", "migration_entry_time")] > 0


def test_page_tables_agree_and_no_write_is_lost(moved_and_migrated):
    """Every page the trace wrote is mapped, present, at the same frame in the kernel and in
    the machine; no migration entry is left; every old frame was freed and its lines dropped;
    no access went to a frame after it was freed (the machine faulted instead)."""
    sim, r = moved_and_migrated
    k, m = sim.kernel, sim.m
    mm = k.mm(1)
    assert len(mm.ptes) == 128
    for vpn, e in mm.ptes.items():
        page = k.pages[e.pfn]
        assert e.kind.value == "present" and not page.freed and page.node == 1
        pte = m.get_pte(1, vpn << 12)
        assert PT.pte_state(pte) == PT.PTE_PRESENT
        assert PT.pte_phys(pte) == page.paddr and PT.pte_node(pte) == 1
    assert k.counter("linux.migrate", "pages_migrated") == 128
    # stores reached the pages: each page of the trace is dirty in numa_maps
    end = [n for n in r.numa_maps if n["when"] == "end"][0]
    assert sum(v["dirty"] for v in end["vmas"]) == 128


def test_deterministic(small_trace, tmp_path):
    sched = make_schedule(tmp_path / "s.toml", events=MOVE + MIGRATE)
    a = CoSim(DEMO_MACHINE, small_trace, schedule=sched).run()
    b = CoSim(DEMO_MACHINE, small_trace, schedule=sched).run()
    assert a.summary == b.summary
    assert a.timeline.equals(b.timeline) and a.migrations.equals(b.migrations)
    assert a.stats.to_frame().equals(b.stats.to_frame())


def test_schedule_must_cover_trace_threads(small_trace, tmp_path):
    from hwemu.errors import HwemuError

    sched = make_schedule(tmp_path / "one.toml", threads=1)
    with pytest.raises(HwemuError, match="thread 1"):
        CoSim(DEMO_MACHINE, small_trace, schedule=sched)


def test_migration_waits_are_in_the_latency_histogram(moved_and_migrated):
    """The wait of an access that met a page under migration is part of that access's
    latency: it is in the histogram the percentiles come from, not only in the mean."""
    sim, r = moved_and_migrated
    st = r.stats.to_frame().set_index(["component", "stat"])["value"]
    n = r.summary["faults_handled"]["migration_entry"]
    mean_wait_ps = st[("cosim.faults", "migration_entry_time")] / n
    hist = sim.m.S.hist
    edges = hist_edges_ps()
    top = int(np.flatnonzero(hist)[-1])
    # the access with the longest wait lies in a bin whose upper edge is at least that wait
    assert edges[top + 1] >= mean_wait_ps > 2_000_000      # waits of microseconds
    assert int(sim.m.S.th_wait.sum()) == 0                 # every wait was given to an access


def test_small_slices_give_the_same_run(moved_and_migrated, small_trace, tmp_path):
    """small_trace holds all of thread 0's records, then all of thread 1's. Loaded in slices
    of 3,000 records, thread 1's come only after many slices of thread 0; the feeder keeps the
    threads in step, so the run (placement, migration, latencies) is the one made with the
    whole trace in one slice."""
    _, ref = moved_and_migrated
    sched = make_schedule(tmp_path / "s.toml", events=MOVE + MIGRATE)
    sim = CoSim(DEMO_MACHINE, small_trace, schedule=sched, window_ps=20_000_000,
                slice_records=3000)
    r = sim.run()
    keys = ("accesses", "mean_latency_ns", "p99_latency_ns", "sim_time_ns", "pages_migrated",
            "local_share", "remote_share")
    assert {k: r.summary[k] for k in keys} == {k: ref.summary[k] for k in keys}
    assert r.stats.get("trace.feed", "refills") > 0
    assert ref.stats.get("trace.feed", "refills") == 0


def test_run_collects_garbage_less_often_and_restores_the_thresholds(monkeypatch):
    """CoSim.run raises the collector's thresholds for the run only, also when it fails."""
    import gc

    from hwemu.sim import cosim

    seen = []

    def fake_run(self):
        seen.append(gc.get_threshold())
        raise RuntimeError("stop")

    before = gc.get_threshold()
    monkeypatch.setattr(cosim.CoSim, "_run", fake_run)
    with pytest.raises(RuntimeError):
        cosim.CoSim.run(object.__new__(cosim.CoSim))
    assert seen == [cosim.RUN_GC_THRESHOLDS] != [before]
    assert gc.get_threshold() == before
