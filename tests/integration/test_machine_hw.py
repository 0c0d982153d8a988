"""MachineHardware: the OS model's hardware interface on the machine timing model."""

from __future__ import annotations

import pytest

from hwemu.linux.kernel import Kernel
from hwemu.sim.hardware import MachineHardware, MachineSync
from hwemu.linux.mm import PteKind
from hwemu.machine import pagetable as PT
from hwemu.machine.replay import machine_stats
from hwemu.machine.system import Machine

from integ_kit import DEMO_MACHINE


@pytest.fixture()
def hw():
    return MachineHardware(Machine(DEMO_MACHINE, threads=2))


def test_topology_from_the_machine(hw):
    m = hw.m
    assert hw.num_nodes == 2 and hw.num_cpus == 48
    assert hw.cpu_node(0) == 0 and hw.cpu_node(24) == 1
    assert hw.distance(0, 0) == 10 and hw.distance(0, 1) > 10
    assert hw.node_start_pfn(1) == m.phys_addr(1, 0) >> 12
    assert hw.node_frames(0) == m.node_frames(0)
    with pytest.raises(Exception, match="cpu 99"):
        hw.cpu_node(99)


def test_metadata_access_goes_through_the_caches(hw):
    pa = hw.m.phys_addr(1, 100)
    first = hw.mem_access_ps(0, pa, False, False, 0)       # remote DRAM
    again = hw.mem_access_ps(0, pa, False, False, 10**6)   # now cached
    assert first > 100_000 > again
    assert hw.mem_access_ps(0, pa, True, True, 2 * 10**6) > again  # atomic costs more
    assert hw.counter("metadata_accesses") == 3


def test_copy_is_real_traffic(hw):
    m = hw.m
    before = machine_stats(m).to_frame().set_index(["component", "stat"])["value"]
    t = hw.copy_ps(0, m.phys_addr(0, 200), m.phys_addr(1, 200), 4096, 1000)
    after = machine_stats(m).to_frame().set_index(["component", "stat"])["value"]
    d = after - before
    assert t > 0
    assert d[("node0.mc", "bytes_read")] >= 4096
    assert d[("node1.mc", "bytes_written")] >= 4096
    link = sum(v for (c, s), v in d.items() if c.startswith("link.") and s == "bytes")
    assert link >= 4096


def test_tlb_shootdown_flushes_and_costs_by_distance(hw):
    m = hw.m
    m.map_page(1, 0x5000, 0, 300)
    m.warm_tlb(1, 1, [0x5000])
    m.warm_tlb(24, 1, [0x5000])
    local_only = hw.flush_tlb(0, {0}, 1, 0, 1, [0x5000])
    same_socket = hw.flush_tlb(0, {0, 1}, 1, 0, 1, [0x5000])
    assert hw.counter("tlb_entries_dropped") >= 1          # CPU 1's entry is gone
    m.warm_tlb(24, 1, [0x5000])
    cross = hw.flush_tlb(0, {0, 24}, 1, 0, 1, [0x5000])
    assert local_only == hw.p.tlb_flush_page_ps
    assert local_only < same_socket < cross
    assert hw.ipi_count(0, {0, 1, 24}) == 2


def test_machine_sync_mirrors_ptes():
    m = Machine(DEMO_MACHINE, threads=1)
    hw = MachineHardware(m)
    k = Kernel(hw)
    sync = MachineSync(m, k.engine)
    k.observers.append(sync)
    k.create_process(1)
    k.add_thread(1, 0, 0)
    k.mmap(1, 0x40000000, 1 << 20, "anon")
    k.engine.run_process(k.access(0, 0x40000000, True))
    pte = m.get_pte(1, 0x40000000)
    page = k.follow_page(1, 0x40000000)
    assert PT.pte_state(pte) == PT.PTE_PRESENT and PT.pte_phys(pte) == page.paddr
    assert PT.pte_node(pte) == page.node == 0
    sync.pte_changed(1, 0x40000000, False, PteKind.MIGRATION, page.paddr, 0)
    assert PT.pte_state(m.get_pte(1, 0x40000000)) == PT.PTE_MIGRATION
    sync.pte_changed(1, 0x40000000, False, PteKind.NONE, -1, -1)
    assert m.get_pte(1, 0x40000000) == 0


def test_accessed_dirty_bits_through_machine_hardware():
    """The machine's walker sets A/D in its PTE words; MachineHardware reads and clears them;
    a kernel rewrite of the same frame (present <-> PROT_NONE) keeps them, a new frame does
    not; a hinting fault that restores the entry marks the OS model's Pte young."""
    import numpy as np

    from hwemu.machine.replay import run_chunks
    from hwemu.traces.format import TraceChunk

    m = Machine(DEMO_MACHINE, threads=1)
    hw = MachineHardware(m)
    k = Kernel(hw)
    sync = MachineSync(m, k.engine)
    k.observers.append(sync)
    k.create_process(1)
    k.add_thread(1, 0, 0)
    m.set_thread_pid(0, 1)
    va = 0x40000000
    k.mmap(1, va, 1 << 20, "anon")
    k.engine.run_process(k.access(0, va, True))
    assert not hw.test_and_clear_young(1, va, False)          # nothing replayed yet
    chunk = TraceChunk.from_arrays(np.array([1, 2], np.uint8), np.full(2, va, np.uint64),
                                   np.full(2, 8, np.uint16), insts=np.ones(2, np.uint32))

    def on_fault(stop):
        raise AssertionError(stop)

    run_chunks(m, [chunk], on_fault)
    assert PT.pte_young(m.get_pte(1, va)) and PT.pte_dirty(m.get_pte(1, va))
    page = k.follow_page(1, va)
    sync.pte_changed(1, va, False, PteKind.PROTNONE, page.paddr, page.node)
    assert PT.pte_young(m.get_pte(1, va)) and PT.pte_dirty(m.get_pte(1, va))    # kept
    assert hw.test_and_clear_young(1, va, False) and not hw.test_and_clear_young(1, va, False)
    assert hw.test_and_clear_dirty(1, va, False) and not hw.test_and_clear_dirty(1, va, False)
    # the hinting fault: the entry is restored and young
    entry = k.mm(1).ptes[va >> 12]
    entry.kind = PteKind.PROTNONE
    entry.young = False
    k.notify_pte(k.mm(1), va, False, entry)
    k.engine.run_process(k.fault(0, va, False))
    assert entry.kind is PteKind.PRESENT and entry.young


def test_kernel_costs_come_from_the_machine_file_not_its_name(tmp_path):
    """A user's machine inherits the [os] costs of its base and may override them; the name
    selects nothing (it used to: a name not starting with skx got EPYC's IPI costs)."""
    f = tmp_path / "mybox.toml"
    f.write_text('base = "skx-2s"\nname = "mybox"\n')
    hw = MachineHardware(Machine(str(f), threads=1))
    assert hw.p.ipi_rtt_same_socket_ps == 1_000_000 and hw.p.ipi_rtt_per_hop_ps == 1_000_000
    assert hw.ipi_rtt_ps(0, 24) == 2_000_000
    f.write_text('base = "skx-2s"\nname = "epyc-lookalike"\n[os]\nipi_rtt_per_hop = "3us"\n'
                 'tlb_flush_page = "150ns"\n')
    hw = MachineHardware(Machine(str(f), threads=1))
    assert hw.ipi_rtt_ps(0, 24) == 1_000_000 + 3_000_000
    assert hw.p.tlb_flush_page_ps == 150_000
    # a single-page local flush costs exactly the configured INVLPG
    assert hw.flush_tlb(0, [0], 1, 0, pid=1, vaddrs=[0x1000]) == 150_000
