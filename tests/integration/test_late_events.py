"""Schedule events after the trace's last record run on the idle processes (they outlive their
traces), after the replay; the workload's runtime stays where the trace ended."""

from __future__ import annotations

import pytest

from hwemu.sim.cosim import CoSim

from integ_kit import DEMO_MACHINE, make_schedule, migrate_pages_event

LATE = migrate_pages_event("50ms") + """
[[event]]
at = "60ms"
action = "move_thread"
tid = 1
cpu = 30
"""


@pytest.fixture(scope="module")
def late(small_trace, tmp_path_factory):
    d = tmp_path_factory.mktemp("late")
    base = CoSim(DEMO_MACHINE, small_trace, schedule=make_schedule(d / "a.toml"),
                 window_ps=20_000_000).run()
    r = CoSim(DEMO_MACHINE, small_trace, schedule=make_schedule(d / "b.toml", events=LATE),
              window_ps=20_000_000).run()
    return base, r


def test_late_events_run(late):
    base, r = late
    assert base.summary["sim_time_ns"] < 50_000_000          # the trace ends well before
    call = [e for e in r.log if e["action"] == "migrate_pages"]
    assert len(call) == 1 and call[0]["ret"] == 0 and call[0]["start_ps"] == 50_000_000_000
    assert r.summary["pages_migrated"] == 128 and base.summary["pages_migrated"] == 0
    moves = [e for e in r.log if e["action"] == "move_thread"]
    assert len(moves) == 1 and r.machine.thread_cpu(1) == 30
    # every page of the process is on node 1 at the end
    end = r.placement[r.placement.time_ns == r.placement.time_ns.max()]
    assert dict(zip(end.node, end.pages))[0] == 0


def test_late_events_leave_the_workload_alone(late):
    base, r = late
    for key in ("sim_time_ns", "accesses", "mean_latency_ns", "p99_latency_ns"):
        assert r.summary[key] == base.summary[key], key
