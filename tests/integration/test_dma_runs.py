"""Page copies of migrations on the machine's DMA engines ([dma] table, copy=dma): the
engine's time is the RTL-calibrated recurrence of hwemu.dma.model fed burst by burst by the
memory system, and its reads and writes are traffic of the modelled controllers and links."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hwemu.dma.model import DmaParams, copy_cycles, copy_time_ps, fetch_cycles
from hwemu.errors import HwemuError
from hwemu.machine.config import load_machine_text
from hwemu.machine.dram import DC_READS, DC_WRITES
from hwemu.machine.system import Machine
from hwemu.sim.cosim import CoSim
from hwemu.sim.hardware import MachineHardware

from integ_kit import DEMO_MACHINE, MIGRATE, MOVE, make_schedule

# Thread 0 migrates the process's pages (128: 2 threads x 64) to node 1 after the move
# (integ_kit.MIGRATE).


def _machine(dma: str = "engines = 1"):
    return load_machine_text(f'base = "{DEMO_MACHINE}"\n[dma]\n{dma}\n', "<test>")


def _hw(dma: str = "engines = 1"):
    return MachineHardware(Machine(_machine(dma)))


class _FixedMemory:
    """A memory with a fixed latency in place of the machine's (mock neighbour): every line
    read returns ``read_ps`` after it was issued, every write completes ``write_ps`` after."""

    def __init__(self, read_ps: int, write_ps: int):
        self.read_ps, self.write_ps = read_ps, write_ps
        self.reads: list[int] = []
        self.writes: list[int] = []

    def __call__(self, socket, phys, nlines, at_ps, step_ps=0, write=False):
        t = at_ps + step_ps * np.arange(nlines, dtype=np.int64)
        (self.writes if write else self.reads).extend(phys + 64 * i for i in range(nlines))
        return t + (self.write_ps if write else self.read_ps)


def test_config_defaults_and_params():
    cfg = _machine()
    assert cfg.dma.engines == 1 and cfg.dma.data_width_bytes == 32 and cfg.dma.burst_len == 64
    assert _hw().dma_params() == DmaParams(data_width=256, burst_len=64, max_outstanding=16,
                                           max_write_outstanding=16, clock_hz=1_000_000_000)
    assert load_machine_text('base = "skx-2s"\n', "<t>").dma.engines == 0   # presets: none


@pytest.mark.parametrize("line, msg", [
    ("engines = -1", "[dma] engines: must be at least 0"),
    ('data_width = "12B"', "[dma] data_width: must be 8B, 16B or 32B"),
    ("burst_len = 300", "[dma] burst_len: must be 1..256"),
    ("outstanding = 0", "[dma] outstanding: must be at least 1"),
    ("fifo_depth = 3", "[dma] fifo_depth: must hold one burst"),
    ('clock = "fast"', "[dma] clock:"),
    ("engins = 1", "[dma] engins: unknown key"),
])
def test_bad_dma_values_name_the_key(line, msg):
    with pytest.raises(HwemuError, match=r"^<test>: " + msg.replace("[", r"\[").replace("]", r"\]")):
        _machine(line)


def test_copy_time_is_the_model_with_the_memory_latency():
    """One 4 KiB page, 256-bit engine at 1 GHz, 64-beat bursts (two per page), against a
    memory answering reads after 90 ns and writes after 37.5 ns: bandwidth-bound, so the copy
    takes N + L + B + Lw + 4 cycles (docs/dma.md) = 128 + 90 + 64 + 38 + 4 = 324 cycles."""
    hw = _hw()
    mem = _FixedMemory(90_000, 37_500)
    hw.m.engine_lines = mem
    src, dst = hw.m.phys_addr(0, 100), hw.m.phys_addr(1, 100)
    t = hw.dma_copy_ps(24, src, dst, 4096, 5_000_000)
    assert t == 324_000
    p = dataclasses.replace(hw.dma_params(), write_latency=38)
    assert t == copy_time_ps(1, 4096, p, 90_000) == 1000 * copy_cycles(1, p, 90)
    # every line of the page read once from the source and written once to the destination
    assert mem.reads == [src + 64 * i for i in range(64)]
    assert mem.writes == [dst + 64 * i for i in range(64)]
    # a descriptor of a chain in memory is fetched first: 2 + L + 1 beat = 93 cycles more
    # (fetch_cycles), then the same copy; the engine was free again at 5 us + 324 ns
    desc = hw.m.phys_addr(1, 7)
    assert hw.dma_copy_ps(24, src, dst, 4096, 6_000_000, desc_paddr=desc) == 93_000 + 324_000
    assert fetch_cycles(hw.dma_params(), 90) == 93
    assert mem.reads[64] == desc


def test_copy_time_latency_bound_and_queueing():
    """Few reads in flight: latency-bound, the recurrence gives what copy_cycles gives; a
    second copy on the same single engine waits for the first."""
    hw = _hw('engines = 1\ndata_width = "16B"\nburst_len = 16\noutstanding = 2\n'
             "write_outstanding = 8")
    hw.m.engine_lines = _FixedMemory(100_000, 1_000)
    src, dst = hw.m.phys_addr(0, 100), hw.m.phys_addr(1, 100)
    p = hw.dma_params()
    one = 1000 * copy_cycles(2, p, 100)
    assert hw.dma_copy_ps(0, src, dst, 8192, 0) == one
    assert hw.dma_copy_ps(1, src, dst, 8192, 0) == 2 * one      # queued behind the first
    assert hw.counter("dma_queue_time") == one
    # two engines per socket: no waiting
    hw2 = _hw('engines = 2\ndata_width = "16B"\nburst_len = 16\noutstanding = 2')
    hw2.m.engine_lines = _FixedMemory(100_000, 1_000)
    assert hw2.dma_copy_ps(0, src, dst, 8192, 0) == hw2.dma_copy_ps(1, src, dst, 8192, 0)


def test_engine_traffic_goes_through_controllers_and_links():
    """On the real memory system: a page copied from node 0 to node 1 by an engine of socket 1
    reads 64 lines at node 0's controller, writes 64 at node 1's, and its reads cross the link
    (a request header out, 64 bytes plus a header back); the copy takes at least what the
    cycle model gives with the idle latency of one line, and more when the burst's 32 lines
    queue on the link."""
    hw = _hw()
    m = hw.m
    S = m.S
    src, dst = m.phys_addr(0, 100), m.phys_addr(1, 100)
    reads0, writes1 = int(S.dram_cnt[0, DC_READS]), int(S.dram_cnt[1, DC_WRITES])
    link0 = int(S.chan_bytes.sum())
    t = hw.dma_copy_ps(24, src, dst, 4096, 0)
    assert int(S.dram_cnt[0, DC_READS]) - reads0 == 64
    assert int(S.dram_cnt[1, DC_WRITES]) - writes1 == 64
    hdr = m.config.links[0].header_bytes
    assert int(S.chan_bytes.sum()) - link0 == 64 * hdr + 64 * (64 + hdr)
    assert hw.counter("dma_bytes") == 4096 and hw.counter("dma_copies") == 1
    idle = int(Machine(m.config).engine_lines(1, src, 1, 0)[0])
    assert t >= copy_time_ps(1, 4096, hw.dma_params(), idle)


@pytest.fixture(scope="module")
def runs(small_trace, tmp_path_factory):
    sched = make_schedule(tmp_path_factory.mktemp("s") / "s.toml", events=MOVE + MIGRATE)
    out = {}
    for name, machine, copy in (("dma", _machine(), "dma"), ("cpu", _machine(), "cpu"),
                                ("none", _machine("engines = 0"), "cpu")):
        sim = CoSim(machine, small_trace, schedule=sched, window_ps=20_000_000, copy=copy)
        out[name] = (sim, sim.run())
    return out


def test_run_copies_on_the_engine(runs):
    sim, r = runs["dma"]
    st = r.stats
    assert r.summary["pages_migrated"] == 128
    assert st.get("os.hw", "dma_copies") == 128
    assert st.get("os.hw", "dma_bytes") == 128 * 4096
    assert st.get("os.hw", "copy_bytes") == 0              # no copy on a CPU
    assert r.summary["bytes_copied"] == 128 * 4096
    # one batch copy (a descriptor chain, one interrupt) for the whole async batch of 128
    assert st.get("linux.migrate", "batch_copies") == 1
    assert st.get("linux.migrate.steps", "12_copy_calls") == 128
    # the copies' reads and writes are in the controllers' counters: at least a page per
    # page migrated read on node 0 and written on node 1
    assert st.get("node0.mc", "bytes_read") >= 128 * 4096
    assert st.get("node1.mc", "bytes_written") >= 128 * 4096
    cpu = runs["cpu"][1]
    assert cpu.stats.get("os.hw", "copy_bytes") == 128 * 4096
    assert cpu.stats.get("os.hw", "dma_bytes", 0) == 0
    # a different copy engine: a different step-12 time
    assert r.summary["step_time_ns"]["12_copy"] != cpu.summary["step_time_ns"]["12_copy"]


def test_unused_engines_change_nothing(runs):
    a, b = runs["cpu"][1], runs["none"][1]
    assert a.summary == {**b.summary, "machine": a.summary["machine"]}
    assert a.stats.to_frame().equals(b.stats.to_frame())


def test_copy_dma_needs_engines(small_trace, tmp_path):
    sched = make_schedule(tmp_path / "s.toml", events=MOVE + MIGRATE)
    with pytest.raises(HwemuError, match="has no DMA engine"):
        CoSim(_machine("engines = 0"), small_trace, schedule=sched, copy="dma")


def test_manual_dma_policy_and_run_param(small_trace, tmp_path):
    """The manual-dma policy is manual with copy=dma; through the Python API."""
    import hwemu

    sched = make_schedule(tmp_path / "s.toml", events=MOVE)
    a = hwemu.run(DEMO_MACHINE, small_trace, policy="manual-dma", schedule=sched,
                  params={"delay": "10us"})
    b = hwemu.run(DEMO_MACHINE, small_trace, policy="manual", schedule=sched,
                  params={"delay": "10us", "copy": "dma"})
    assert a.summary["pages_migrated"] == b.summary["pages_migrated"] == 128
    for key in ("mean_latency_ns", "migration_time_ns", "interconnect_bytes", "sim_time_ns"):
        assert a.summary[key] == b.summary[key]
    with pytest.raises(HwemuError, match="copy mode"):
        hwemu.run(DEMO_MACHINE, small_trace, policy="manual", schedule=sched,
                  params={"copy": "gpu"})
