"""First touches served inside the replay loop (hwemu.machine.osfault, hwemu.sim.loopfaults)
give exactly the results of the Python kernel's fault handler: the same frames, page tables,
counters, costs and timing, whatever the placement, with several threads faulting on the same
pages, with NUMA scans and thread moves, and when a node fills up."""

from __future__ import annotations

import pytest

from hwemu.sim.cosim import CoSim

from integ_kit import MIGRATE, MOVE, assert_same_run, make_schedule, make_trace

MACHINE = "skx-2s"


def _both(trace, machine=MACHINE, **kw):
    out = []
    for in_loop in (True, False):
        sim = CoSim(machine, trace, loop_faults=in_loop, **kw)
        out.append((sim, sim.run()))
    (sa, _), (sb, _) = out
    assert sb.loop_faults is None
    assert_same_run(*out)
    assert sorted(sa.m.pt.mappings()) == sorted(sb.m.pt.mappings())
    return sa.loop_faults.served, out


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("lf")
    return {
        "one": make_trace(d / "one.parquet", threads=1, pages=600, accesses=4000, insts=0),
        "two": make_trace(d / "two.parquet", threads=2, pages=300, accesses=6000),
        # four threads touching the same pages, so that faults race for one page
        "shared": make_trace(d / "shared.parquet", threads=4, pages=200, accesses=3000,
                             insts=0, stride_mib=0),
    }


def test_first_touch_one_thread(traces):
    served, ((sim, res), _) = _both(traces["one"])
    assert served >= 550                     # all but the first of every 2 MiB region
    assert res.summary["faults_handled"]["not_present"] == 600


def test_threads_racing_for_pages(traces):
    served, _ = _both(traces["shared"], cpus=[0, 1, 2, 3])
    assert served > 100


@pytest.mark.parametrize("placement,params", [
    ("bind", {"nodes": [1]}), ("preferred", {"node": 1}), ("interleave", {}),
])
def test_placements(traces, placement, params):
    served, _ = _both(traces["two"], placement=placement, params=params)
    if placement == "interleave":
        assert served == 0                   # a per-thread rotor decides: Python serves it
    else:
        assert served > 200


def test_autonuma_scans(traces):
    served, _ = _both(traces["two"], migration="autonuma",
                      params={"scan_delay": "20us", "scan_period_min": "20us"})
    assert served > 200


def test_thread_moves(traces, tmp_path):
    sched = make_schedule(tmp_path / "s.toml", events=MOVE)
    served, _ = _both(traces["two"], schedule=sched, window_ps=20_000_000)
    assert served > 200


def test_node_fills_up(tmp_path):
    """Node 0 has fewer free frames than the pages touched: the allocator falls back to node
    1, in the loop once node 0's reservation is known to hold all its free frames."""
    machine = tmp_path / "small.toml"
    machine.write_text('base = "skx-2s"\nname = "small"\n[[node]]\nsocket = 0\nsize = "4MiB"\n'
                       '[[node]]\nsocket = 1\nsize = "64MiB"\n')
    trace = make_trace(tmp_path / "t.parquet", threads=1, pages=1500, accesses=2000, insts=0)
    served, ((sim, _), _) = _both(trace, machine=str(machine))
    assert served > 1000
    assert sim.kernel.node_usage()[1] > 400


def test_metadata_streamer(traces):
    """A machine without an L2 prefetcher of its own (epyc-2s): the OS model's metadata
    streamer runs in the loop's faults too, on the same state as the Python kernel's."""
    served, ((sim, _), _) = _both(traces["two"], machine="epyc-2s")
    assert served > 200
    assert sim.hw.p.metadata_prefetch_degree > 0
    assert sim.hw.counter("metadata_prefetches") > 0


def test_bundled_threads_with_moves():
    """The bundled five-thread trace with its thread moves: threads race for pages while the
    kernel's handler of another thread's fault on the same page is in progress."""
    from integ_kit import ROOT

    served, _ = _both(str(ROOT / "traces" / "threads.parquet"),
                      schedule=str(ROOT / "docs" / "examples" / "threads.toml"))
    assert served > 50


def test_entries_that_would_do_nothing_are_skipped_with_the_same_results(traces, tmp_path,
                                                                         monkeypatch):
    """The replay driver does not enter the loop when it would return at once having done
    nothing (Machine.idle_stop), nor call the hooks around it (LoopFaults.before/after): the
    run is the one made entering every time, with thread moves, a migrate_pages call whose
    steps other threads' accesses run between, accesses waiting on migration entries."""
    from hwemu.machine.system import Machine

    sched = make_schedule(tmp_path / "s.toml", events=MOVE + MIGRATE)
    kw = dict(schedule=sched, window_ps=20_000_000, migration="autonuma",
              params={"scan_delay": "20us", "scan_period_min": "20us"})
    skipped = []
    real = Machine.idle_stop

    def counting(self, stop_ps):
        s = real(self, stop_ps)
        skipped.append(s is not None)
        return s

    monkeypatch.setattr(Machine, "idle_stop", counting)
    sa = CoSim(MACHINE, traces["two"], **kw)
    a = (sa, sa.run())
    assert sum(skipped) > 1000 and a[1].summary["pages_migrated"] > 300
    assert a[1].summary["faults_handled"]["migration_entry"] > 0
    monkeypatch.setattr(Machine, "idle_stop", lambda self, stop_ps: None)
    sb = CoSim(MACHINE, traces["two"], **kw)
    assert_same_run(a, (sb, sb.run()))
    # with a fault still pending in the loop, the hooks run even around an entry that would
    # do nothing: LoopFaults.after may make the fault the kernel's process then
    assert sa.idle_skips_hooks()
    sa.loop_faults.pending[0] = None
    assert not sa.idle_skips_hooks()
