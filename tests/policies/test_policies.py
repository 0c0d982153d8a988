"""The policy interface: registry, parameters, placement policies, hooks of a migration
policy inside the co-simulation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hwemu.errors import HwemuError
from hwemu.policies import (MigrationPolicy, Param, get_policy, list_policies,
                            parse_policy_spec, register_policy)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from integ_kit import DEMO_MACHINE, make_schedule, make_trace  # noqa: E402


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return make_trace(tmp_path_factory.mktemp("p") / "t.parquet", accesses=6000)


def test_registry_lists_both_families_with_linux_defaults():
    pols = {p["name"]: p for p in list_policies()}
    for name in ("first-touch", "interleave", "bind", "preferred"):
        assert pols[name]["family"] == "placement"
    for name in ("none", "manual", "autonuma"):
        assert pols[name]["family"] == "migration"
    an = {p["name"]: p for p in pols["autonuma"]["params"]}
    assert "1s" in an["scan_period_min"]["linux"] and "256" in an["scan_size"]["linux"]
    assert all(p["description"] for p in pols.values())


def test_parameters_are_parsed_and_checked():
    p = get_policy("autonuma", scan_period_min="200us", scan_size="1MiB")
    assert p.p["scan_period_min"] == 200_000_000 and p.p["scan_size"] == 1 << 20
    assert get_policy("manual", move_all="yes").p["move_all"] is True
    assert get_policy("interleave", nodes="0,1").p["nodes"] == (0, 1)
    with pytest.raises(HwemuError, match="unknown parameter 'scan'"):
        get_policy("autonuma", scan="1")
    with pytest.raises(HwemuError, match="scan_size"):
        get_policy("autonuma", scan_size="big")
    with pytest.raises(HwemuError, match="unknown policy"):
        get_policy("nosuch")


def test_policy_spec_combines_placement_and_migration():
    pl, mg = parse_policy_spec("interleave+autonuma", {"scan_delay": "1ms", "nodes": "0,1"})
    assert pl.name == "interleave" and mg.name == "autonuma"
    assert mg.p["scan_delay"] == 1_000_000_000 and pl.p["nodes"] == (0, 1)
    pl, mg = parse_policy_spec("manual")
    assert pl.name == "first-touch" and mg.name == "manual"
    with pytest.raises(HwemuError):
        parse_policy_spec("manual+autonuma")
    with pytest.raises(HwemuError, match="unknown parameter"):
        parse_policy_spec("none", {"nodes": "0"})


def _final_nodes(res):
    pl = res.placement
    last = pl[pl.time_ns == pl.time_ns.max()]
    return dict(zip(last.node, last.pages))


@pytest.mark.parametrize("spec,params,expect", [
    ("first-touch", {}, {0: 128, 1: 0}),
    ("bind", {"nodes": "1"}, {0: 0, 1: 128}),
    ("preferred", {"node": 1}, {0: 0, 1: 128}),
    ("interleave", {}, {0: 64, 1: 64}),
])
def test_placement_policies(trace, spec, params, expect):
    from hwemu.sim.cosim import CoSim

    pl, mg = parse_policy_spec(spec, params)
    res = CoSim(DEMO_MACHINE, trace, placement=pl, migration=mg, cpus=[0, 1]).run()
    nodes = _final_nodes(res)
    for n, pages in expect.items():
        # page-table pages are allocated on the faulting CPU's node too
        assert pages <= nodes[n] <= pages + 4, (spec, nodes)


def test_bind_to_a_missing_node_is_an_error(trace):
    from hwemu.sim.cosim import CoSim

    pl, mg = parse_policy_spec("bind", {"nodes": "5"})
    with pytest.raises(HwemuError, match="node 5"):
        CoSim(DEMO_MACHINE, trace, placement=pl, migration=mg, cpus=[0, 1])


def test_preferred_falls_back_when_the_node_is_full(tmp_path):
    from hwemu.sim.cosim import CoSim

    # the CXL demo machine has 2 MiB DRAM nodes: 700 pages cannot all fit on node 0
    t = make_trace(tmp_path / "big.parquet", threads=1, pages=700, accesses=100)
    pl, mg = parse_policy_spec("preferred", {"node": 0})
    from integ_kit import CXL_MACHINE
    res = CoSim(CXL_MACHINE, t, placement=pl, migration=mg, cpus=[0]).run()
    nodes = _final_nodes(res)
    assert nodes[0] > 400 and nodes[1] + nodes[2] >= 700 - nodes[0]


class _Probe(MigrationPolicy):
    """Test policy: moves every page it sees in samples to node 1 on its first tick."""

    PARAMS = (Param("period", "time", "100us", "tick period"),)

    def attach(self, ctx):
        super().attach(ctx)
        self.tick_ps = self.p["period"]
        self.sample_every = 7
        self.ticks, self.samples, self.moved = [], [], 0
        self.moves = []

    def on_samples(self, s):
        self.samples.append(s)

    def on_thread_moved(self, tid, old, new, now):
        self.moves.append((tid, old, new, now))

    def on_tick(self, now_ps):
        self.ticks.append(now_ps)
        if len(self.ticks) == 2:
            seen = {(int(p), int(v) & ~0xFFF) for s in self.samples
                    for p, v in zip(s.pid, s.vaddr)}
            pages = [self.ctx.page_at(p, v) for p, v in sorted(seen)]
            self.ctx.migrate(pages, 1, self.ctx.idle_cpu(1), reason="probe")

    def finish(self, now_ps):
        self.ctx.stats.add("policy.probe", "ticks", len(self.ticks), "count")


def test_migration_policy_hooks(trace, tmp_path):
    from hwemu.sim.cosim import CoSim

    register_policy("test-probe")(_Probe)
    pol = get_policy("test-probe", period="100us")
    sched = make_schedule(tmp_path / "s.toml", events="""
[[event]]
at = "50us"
action = "move_thread"
tid = 1
cpu = 30
""")
    res = CoSim(DEMO_MACHINE, trace, schedule=sched, migration=pol).run()
    sim_ps = res.summary["sim_time_ns"] * 1000
    assert pol.ticks[:3] == [100_000_000, 200_000_000, 300_000_000]
    assert len(pol.ticks) >= int(sim_ps // 100_000_000) - 1
    assert pol.moves == [(1, 1, 30, 50_000_000)]
    s = pol.samples
    n = sum(len(x) for x in s)
    assert n == pytest.approx(res.summary["accesses"] / 7, rel=0.01)
    t = np.concatenate([x.time_ps for x in s])
    assert (t >= 0).all() and t.max() <= sim_ps
    served = np.concatenate([x.served_from for x in s])
    assert set(np.unique(served)) <= {-1, 0, 1, 2} and (served == 0).any()
    assert res.summary["pages_migrated"] > 100
    m = res.migrations
    assert (m.kind == "probe").sum() == 1 and m[m.kind == "probe"].pages.iloc[0] > 100
    st = res.stats.to_frame().set_index(["component", "stat"])["value"]
    assert st[("policy.probe", "ticks")] == len(pol.ticks)
