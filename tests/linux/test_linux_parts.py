"""Hardware model, frame allocator, memory policies, faults and numa_maps."""

import pytest

from hwemu.errors import HwemuError
from hwemu.linux.hw import Hardware, ParametricHardware
from hwemu.sim.bench_migrate import parametric_hardware
from hwemu.linux.kernel import Kernel
from hwemu.linux.mempolicy import Mempolicy, parse_policy
from hwemu.linux.mm import HPAGE_NR, PteKind, VmaKind
from hwemu.linux.page_alloc import NodeAllocator
from hwemu.linux.syscalls import numa_maps, set_mempolicy

from linux_testkit import BASE, FixedHardware, make, touch

P = 4096


def test_parametric_hardware_primitives():
    hw = ParametricHardware(cpus_per_node=2, mem_per_node_bytes=64 << 20, prefetch_degree=0)
    assert isinstance(hw, Hardware)
    assert hw.num_cpus == 4 and hw.cpu_node(3) == 1 and hw.distance(0, 1) == 32
    assert hw.node_start_pfn(1) == (64 << 20) // P
    assert hw.cycles_ps(0, 245) == 100_000                  # 2.45 GHz
    remote = hw.node_start_pfn(1) * P
    # First access misses to the remote node, the second hits in the CPU's cache.
    assert hw.mem_access_ps(0, remote, False, False, 0) == hw.mem_latency_remote_ps
    assert hw.mem_access_ps(0, remote, False, False, 0) == hw.cycles_ps(0, hw.hit_cycles)
    # A write by another CPU invalidates the line: next access is a cache-to-cache transfer
    # from that CPU (node 1: remote latency).
    hw.mem_access_ps(2, remote, True, True, 0)
    assert hw.mem_access_ps(0, remote, False, False, 0) == hw.mem_latency_remote_ps
    assert hw.mem_access_ps(1, 0, False, True, 0) == hw.mem_latency_local_ps + hw.cycles_ps(0, hw.atomic_cycles)
    # TLB: local single page, full flush beyond the ceiling, IPI to the other socket.
    assert hw.flush_tlb(0, {0}, 1, 0) == 100_000
    assert hw.flush_tlb(0, {0}, 40, 0) == hw.tlb_flush_all_ps
    assert hw.flush_tlb(0, {0, 2}, 1, 0) == 50_000 + 2_500_000 + 100_000
    assert hw.flush_tlb(0, {1}, 1, 0) == 50_000 + 1_200_000 + 100_000
    assert hw.ipi_count(0, {0, 1, 2}) == 2
    assert hw.copy_ps(0, 0, remote, 4096, 0) == round(4096 * 1e12 / 11.1e9)


def test_prefetcher_turns_a_stream_into_hits():
    hw = ParametricHardware(cpus_per_node=1, mem_per_node_bytes=64 << 20, prefetch_degree=4)
    costs = [hw.mem_access_ps(0, i * 64, False, False, 0) for i in range(32)]
    misses = sum(1 for c in costs if c == hw.mem_latency_local_ps)
    assert misses == 2                        # two misses detect the stream, then all hits


def test_hardware_validation_names_the_parameter():
    with pytest.raises(HwemuError, match="distances"):
        ParametricHardware(distances=((10, 20), (20, 12)))
    with pytest.raises(HwemuError, match="mem_latency_remote_ps"):
        ParametricHardware(mem_latency_local_ps=200_000, mem_latency_remote_ps=100_000)
    with pytest.raises(HwemuError, match="unknown machine"):
        parametric_hardware("nope")
    with pytest.raises(HwemuError, match="cpu 9"):
        ParametricHardware(cpus_per_node=2).cpu_node(9)


def test_node_allocator_orders_and_blocks():
    a = NodeAllocator(0, 0, 4 * HPAGE_NR)
    reserved = a.reserved
    assert a.capacity == 4 * HPAGE_NR - reserved
    first = a.alloc(0)
    assert first == reserved                  # lowest free frame
    huge = a.alloc(9)
    assert huge == HPAGE_NR                   # first whole block
    assert a.free_huge_blocks() == 2
    p2 = a.alloc(0)
    assert p2 == first + 1                    # partial block used before splitting a whole one
    a.free(huge, 9)
    assert a.free_huge_blocks() == 3
    # Use up the partial first block, then an order-0 allocation splits a whole block;
    # freeing it makes the block whole again.
    while a._partial_order:
        a.alloc(0)
    x = a.alloc(0)
    assert x == HPAGE_NR and a.free_huge_blocks() == 2
    a.free(x, 0)
    assert a.free_huge_blocks() == 3
    with pytest.raises(AssertionError, match="double free"):
        a.free(first, 0)
        a.free(first, 0)


def test_fallback_by_distance_and_thisnode():
    hw = FixedHardware(nodes=3, frames=512)
    k = Kernel(hw)
    assert k.alloc.zonelists[2] == [2, 0, 1]
    while k.alloc.alloc(0, 2, thisnode=True):
        pass
    assert k.alloc.alloc(0, 2, thisnode=True) is None
    pfn, node = k.alloc.alloc(0, 2)
    assert node == 0
    assert k.alloc.alloc(0, 2, nodemask={1})[1] == 1


def test_policies_place_first_touch():
    k = make(FixedHardware(nodes=3))
    k.add_thread(1, 2, 4)                                  # a thread on node 2
    k.mmap(1, BASE + (1 << 20), 6 * P, VmaKind.ANON, policy=Mempolicy("interleave", (0, 2)))
    k.mmap(1, BASE + (2 << 20), 4 * P, VmaKind.ANON, policy=Mempolicy("bind", (1,)))
    k.mmap(1, BASE + (3 << 20), 4 * P, VmaKind.ANON, policy=Mempolicy("preferred", (2,)))
    k.mmap(1, BASE + (4 << 20), 6 * P, VmaKind.ANON,
           policy=Mempolicy("weighted_interleave", (0, 1), (2, 1)))
    touch(k, 1, BASE)                                      # default: local node of CPU 0
    touch(k, 2, BASE + P)                                  # local node of CPU 4
    assert k.follow_page(1, BASE).node == 0 and k.follow_page(1, BASE + P).node == 2
    nodes = []
    for i in range(6):
        touch(k, 1, BASE + (1 << 20) + i * P)
        nodes.append(k.follow_page(1, BASE + (1 << 20) + i * P).node)
    assert sorted(nodes) == [0, 0, 0, 2, 2, 2] and nodes[0] != nodes[1]
    touch(k, 2, BASE + (2 << 20))
    assert k.follow_page(1, BASE + (2 << 20)).node == 1
    touch(k, 1, BASE + (3 << 20))
    assert k.follow_page(1, BASE + (3 << 20)).node == 2
    w = []
    for i in range(6):
        touch(k, 1, BASE + (4 << 20) + i * P)
        w.append(k.follow_page(1, BASE + (4 << 20) + i * P).node)
    assert sorted(w) == [0, 0, 0, 0, 1, 1]
    # Task policy interleave rotates per thread.
    set_mempolicy(k, 1, Mempolicy("interleave", (0, 1)))
    got = []
    for i in range(10, 14):
        touch(k, 1, BASE + i * P)
        got.append(k.follow_page(1, BASE + i * P).node)
    assert got == [0, 1, 0, 1]


def test_policy_parsing_errors():
    assert parse_policy("bind:0,1", "x") == Mempolicy("bind", (0, 1))
    assert parse_policy({"mode": "preferred", "nodes": [1]}, "x").describe() == "prefer:1"
    assert Mempolicy("interleave", (0, 1, 2, 5)).describe() == "interleave:0-2,5"
    with pytest.raises(HwemuError, match="x: mempolicy preferred: takes exactly one node"):
        parse_policy({"mode": "preferred", "nodes": [0, 1]}, "x")
    with pytest.raises(HwemuError, match="unknown key 'nodez'"):
        parse_policy({"mode": "bind", "nodez": [0]}, "x")
    with pytest.raises(HwemuError, match="unknown mode"):
        parse_policy("spread:0", "x")


def test_bind_policy_without_room_is_out_of_memory():
    k = make(FixedHardware(frames=512))
    k.mmap(1, BASE + (1 << 20), 8 * P, VmaKind.ANON, policy=Mempolicy("bind", (1,)))
    while k.alloc.alloc(0, 1, thisnode=True):
        pass
    with pytest.raises(HwemuError, match="out of memory"):
        touch(k, 1, BASE + (1 << 20))


def test_faults_cost_and_auto_vma():
    k = make()
    lat, value = touch(k, 1, BASE)
    assert lat > 0 and value == 1
    assert k.counter("linux.fault", "anon_faults") == 1
    lat2, _ = touch(k, 1, BASE, False)
    assert lat2 < lat                                       # present: no fault
    # Outside every mapping: an anonymous VMA of the surrounding 2 MiB appears.
    touch(k, 1, 0x7000_0000_1000)
    v = k.mm(1).find_vma(0x7000_0000_1000)
    assert v.name == "[auto]" and v.start == 0x7000_0000_0000 and v.end == 0x7000_0020_0000
    k.mm(1).auto_vma = False
    with pytest.raises(HwemuError, match="outside every mapping"):
        touch(k, 1, 0x6000_0000_0000)


def test_numa_maps_text():
    k = make()
    k.create_process(2)
    k.add_thread(2, 2, 2)
    k.mmap(1, BASE + (1 << 20), 4 * P, VmaKind.FILE, file="lib.so")
    k.mmap(2, BASE, 4 * P, VmaKind.FILE, file="lib.so")
    for i in range(3):
        touch(k, 1, BASE + i * P)
    touch(k, 1, BASE + (1 << 20), False)
    touch(k, 2, BASE, False)
    page = k.follow_page(1, BASE + (1 << 20))
    k.start_writeback(page, 10**9)
    text, rows = numa_maps(k, 1)
    lines = text.splitlines()
    assert lines[0] == f"{BASE:08x} default anon=3 dirty=3 active=0 N0=3 kernelpagesize_kB=4"
    assert lines[1] == (f"{BASE + (1 << 20):08x} default file=lib.so mapped=1 mapmax=2 active=0 "
                        "writeback=1 N0=1 kernelpagesize_kB=4")
    assert rows[1]["file"] == "lib.so" and rows[1]["nodes"] == {0: 1}


def test_numa_hinting_fault_records_cpupid_and_restores_entry():
    k = make()
    k.add_thread(1, 2, 3)
    touch(k, 1, BASE)
    assert k.change_prot_numa(1, BASE, BASE + (1 << 20)) == 1
    e = k.mm(1).ptes[BASE >> 12]
    assert e.kind is PteKind.PROTNONE
    assert k.follow_page(1, BASE) is not None           # still mapped (numa_maps counts it)
    lat, _ = touch(k, 2, BASE, False)
    assert e.kind is PteKind.PRESENT
    page = k.follow_page(1, BASE)
    assert page.last_cpupid == (3 << 16) | 2
    assert k.counter("linux.fault", "numa_hint_faults") == 1


def test_parametric_hardware_comes_from_the_machine_file(tmp_path):
    """One table of machines: the parametric model's numbers are the machine TOML's [os] and
    [parametric] tables, inherited through ``base`` and overridable."""
    skx = parametric_hardware("skx-2s")
    assert (skx.nodes, skx.cpus_per_node, skx.remote_distance) == (2, 24, 21)
    assert skx.ipi_rtt_remote_socket_ps == 2_000_000 and skx.mem_latency_local_ps == 90_000
    assert parametric_hardware("epyc-2s") == ParametricHardware()     # the documented defaults
    f = tmp_path / "m.toml"
    f.write_text('base = "skx-2s"\nname = "mine"\n[parametric]\ncopy_bw_remote = "5GB/s"\n')
    mine = parametric_hardware(str(f))
    assert mine.copy_bw_remote_bps == 5e9 and mine.remote_distance == 21
    with pytest.raises(HwemuError, match="CPU-less"):
        parametric_hardware("skx-2s-cxl")
    f.write_text('base = "skx-2s"\n[parametric]\nremote_distance = 10\n')
    with pytest.raises(HwemuError, match=r"\[parametric\] remote_distance: must be above 10"):
        parametric_hardware(str(f))


def test_find_vma_is_a_scan_of_the_vmas_as_they_change():
    """MM.find_vma (a binary search of the VMAs by start) against a scan of them, while
    VMAs are inserted in random order, grown at their end, split, and the list replaced."""
    import random

    from hwemu.linux.mm import MM, VMA

    rng = random.Random(3)
    mm = MM(pid=1)

    def scan(addr):
        return next((v for v in mm.vmas if v.start <= addr < v.end), None)

    def check():
        for _ in range(40):
            a = rng.randrange(0, 130 << 21)
            assert mm.find_vma(a) is scan(a)
        for v in mm.vmas:
            assert mm.find_vma(v.start) is v and mm.find_vma(v.end - 1) is v
            assert mm.find_vma(v.end) is scan(v.end)

    slots = list(range(0, 128, 2))
    rng.shuffle(slots)
    for n, s in enumerate(slots):
        mm.insert_vma(VMA(mm=mm, start=s << 21, end=(s + 1) << 21, kind=VmaKind.ANON))
        if n % 7 == 0:                                              # grown at its end
            i = rng.randrange(len(mm.vmas))
            nxt = mm.vmas[i + 1].start if i + 1 < len(mm.vmas) else 1 << 40
            mm.vmas[i].end = min(mm.vmas[i].end + (1 << 20), nxt)
        if n % 11 == 0:                                             # split, as mbind does
            v = mm.vmas[rng.randrange(len(mm.vmas))]
            mid = v.start + (1 << 12)
            upper = VMA(mm=mm, start=mid, end=v.end, kind=v.kind)
            v.end = mid
            mm.vmas.append(upper)
            mm.vmas.sort(key=lambda x: x.start)
        check()
    mm.vmas = sorted(mm.vmas[::2], key=lambda x: x.start)              # replaced
    check()
    mm.vmas = [VMA(mm=mm, start=v.start + (1 << 26), end=v.end + (1 << 26), kind=v.kind)
               for v in mm.vmas]                              # replaced, the same length
    check()
