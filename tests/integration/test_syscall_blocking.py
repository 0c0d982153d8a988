"""A system call blocks its calling thread for the whole call (Linux: the thread is inside
the kernel), and a thread's calls do not overlap."""

from __future__ import annotations

import pytest

from hwemu.sim.cosim import CoSim

from integ_kit import DEMO_MACHINE, MOVE, make_schedule, migrate_pages_event

# Thread 0 calls migrate_pages twice, 3 us apart; each call moves the process's 128 pages (or
# finds none left) and takes tens of microseconds.
TWO_CALLS = migrate_pages_event("300us") + migrate_pages_event("303us")


@pytest.fixture(scope="module")
def two_calls(small_trace, tmp_path_factory):
    sched = make_schedule(tmp_path_factory.mktemp("s") / "s.toml", events=MOVE + TWO_CALLS)
    sim = CoSim(DEMO_MACHINE, small_trace, schedule=sched, window_ps=20_000_000)
    return sim, sim.run()


def test_second_call_waits_for_the_first(two_calls):
    sim, r = two_calls
    first, second = [e for e in r.log if e["action"] == "migrate_pages"]
    assert first["start_ps"] == 300_000_000
    assert first["elapsed_ps"] > 3_000_000                 # longer than the gap between the calls
    # the second call entered the kernel only when the first had returned ...
    assert second["start_ps"] >= first["start_ps"] + first["elapsed_ps"]
    # ... so it found every page already moved: nothing isolated twice, no -EBUSY, ret 0
    assert first["ret"] == 0 and second["ret"] == 0
    assert r.summary["pages_failed"] == 0 and r.summary["pages_migrated"] == 128


def test_caller_replays_nothing_while_inside(two_calls):
    sim, r = two_calls
    first, second = [e for e in r.log if e["action"] == "migrate_pages"]
    end = second["start_ps"] + second["elapsed_ps"]
    st = r.stats
    # thread 0 was held from the first call's start to the second call's return
    assert st.get("cosim.syscalls", "calls_blocking_caller") == 1
    # (from its own clock, which may be a few ns past the event time, to the return)
    assert st.get("cosim.syscalls", "caller_blocked_time") >= end - first["start_ps"] - 100_000
    # and it took no fault of its own meanwhile (its pages were under migration by its own
    # call; before, it waited on the migration entries its own call had made)
    assert st.get("thread0", "faults_migration_entry") == 0


def test_one_page_move_pages_is_not_stretched_by_the_callers_faults(small_trace, tmp_path):
    one = """
[[event]]
at = "300us"
action = "move_pages"
tid = 0
pid = 1
addr = "0x1000000000"
pages = 1
nodes = [1]
"""
    sched = make_schedule(tmp_path / "s.toml", events=MOVE + one)
    r = CoSim(DEMO_MACHINE, small_trace, schedule=sched).run()
    call = [e for e in r.log if e["action"] == "move_pages"][0]
    assert call["ret"] == 0 and call["status"] == [1]
    assert call["elapsed_ps"] < 10_000_000       # a few microseconds, as for one page in Linux


def test_vmstat_and_numastat_views(small_trace, tmp_path):
    """The run's counters under /proc/vmstat names, numastat's per-node allocation counters
    and numastat -p's memory per node agree with the run's own figures."""
    from hwemu.policies.registry import parse_policy_spec

    sched = make_schedule(tmp_path / "s.toml", events=MOVE)
    place, migr = parse_policy_spec("autonuma", {"scan_delay": "20us", "scan_period_min": "20us",
                                                 "scan_size": "64MiB"})
    r = CoSim(DEMO_MACHINE, small_trace, schedule=sched, placement=place, migration=migr).run()
    s = r.summary
    v = s["vmstat"]
    assert v["pgmigrate_success"] == s["pages_migrated"] > 0
    assert v["numa_hint_faults"] == s["faults_handled"]["numa_hint"] > 0
    assert 0 < v["numa_hint_faults_local"] < v["numa_hint_faults"]
    assert v["numa_pages_migrated"] == s["pages_migrated"]
    assert v["numa_pte_updates"] > 0
    ns = s["numastat"]
    # every first-touch fault allocated one page for a CPU of node 0 (threads start there)
    faulted = s["faults_handled"]["not_present"]
    assert ns["node0"]["local_node"] + ns["node1"]["local_node"] + ns["node0"]["other_node"] \
        + ns["node1"]["other_node"] >= faulted
    # migrations allocate on node 1, the node they are preferred for: hits there
    assert ns["node1"]["numa_hit"] >= s["pages_migrated"]
    mib = sum(s["numastat_p"]["1"].values())
    assert mib == pytest.approx(128 * 4096 / (1 << 20))               # 2 x 64 pages resident
