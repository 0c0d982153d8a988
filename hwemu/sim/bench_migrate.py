"""The move_pages microbenchmark (``hwemu bench migrate``).

One process faults in ``pages`` pages (4 KiB or 2 MiB THP) on node 0 from a thread on CPU 0,
then that thread calls move_pages() to move them all to node 1. Optional extra threads of the
process run on other CPUs (alternating sockets), so the address space is live on them and
every unmapped PTE needs a TLB shootdown: that is what batching (``tlb_batch``) saves.
"""

from __future__ import annotations

from hwemu.errors import HwemuError
from hwemu.linux.copy import make_copy_engine
from hwemu.linux.hw import ParametricHardware
from hwemu.linux.kernel import Kernel
from hwemu.linux.migrate import STEP_ORDER
from hwemu.linux.mm import HPAGE_SIZE, PAGE_SIZE
from hwemu.linux.syscalls import move_pages, run_syscall

BENCH_BASE = 0x7F00_0000_0000


def parametric_hardware(machine="epyc-2s", **overrides) -> ParametricHardware:
    """The parametric OS-cost model of a machine (preset name, TOML path or MachineConfig):
    its sockets and cores, its ``[os]`` TLB/IPI costs and its ``[parametric]`` calibration.
    Every node must have CPUs (one per socket). ``overrides``: ParametricHardware fields."""
    from hwemu.machine.config import as_config

    cfg = as_config(machine)
    if any(not n.has_cpus for n in cfg.nodes) or cfg.num_nodes != cfg.sockets:
        raise HwemuError(f"--hw parametric: {cfg.name} has CPU-less nodes; the parametric model "
                         "needs one node per socket (use --hw machine)")
    hops = cfg.hops()
    if any(h > 1 for row in hops for h in row):
        raise HwemuError(f"--hw parametric: {cfg.name} has sockets more than one link apart; "
                         "the parametric model knows one remote latency (use --hw machine)")
    o, p = cfg.os, cfg.parametric
    params = dict(
        nodes=cfg.num_nodes, cpus_per_node=cfg.cores_per_socket,
        remote_distance=p.remote_distance, freq_hz=p.freq_hz,
        mem_latency_local_ps=p.mem_latency_local_ps, mem_latency_remote_ps=p.mem_latency_remote_ps,
        cache_lines=p.cache_lines, hit_cycles=p.hit_cycles,
        prefetch_degree=o.metadata_prefetch_degree, atomic_cycles=o.atomic_cycles,
        tlb_flush_page_ps=o.tlb_flush_page_ps, tlb_flush_all_ps=o.tlb_flush_all_ps,
        tlb_single_page_ceiling=o.tlb_single_page_ceiling,
        ipi_rtt_same_socket_ps=o.ipi_rtt_same_socket_ps,
        ipi_rtt_remote_socket_ps=o.ipi_rtt_same_socket_ps + o.ipi_rtt_per_hop_ps,
        ipi_send_ps=o.ipi_send_ps,
        copy_bw_remote_bps=p.copy_bw_remote_bps, copy_bw_local_bps=p.copy_bw_local_bps,
        copy_startup_ps=p.copy_startup_ps, fill_bw_bps=p.fill_bw_bps)
    params.update(overrides)
    return ParametricHardware(**params)


def machine_hardware(machine: str):
    """MachineHardware on a fresh Machine of preset/TOML ``machine`` (the timing model)."""
    from hwemu.sim.hardware import MachineHardware
    from hwemu.machine.system import Machine

    return MachineHardware(Machine(machine, threads=1))


def run_bench(pages: int, page_size: int, copy: str = "cpu", machine: str = "epyc-2s",
              threads: int = 1, tlb_batch: bool = True, hw: ParametricHardware | None = None,
              progress=None, migrate_progress=None, hw_kind: str = "parametric") -> dict:
    """``hw_kind``: "parametric" (ParametricHardware preset) or "machine" (MachineHardware on
    the timing model of hwemu.machine: every metadata line, copy and flush goes through its
    caches, controllers and links)."""
    if page_size not in (PAGE_SIZE, HPAGE_SIZE):
        raise HwemuError(f"--page-size: must be 4KiB or 2MiB, got {page_size} bytes")
    if pages < 1:
        raise HwemuError(f"--pages: must be >= 1, got {pages}")
    if threads < 1:
        raise HwemuError(f"--threads: must be >= 1, got {threads}")
    nbytes = pages * page_size
    if hw is None and hw_kind == "machine":
        hw = machine_hardware(machine)
        if hw.node_frames(1) < pages * (page_size // PAGE_SIZE) + 4096:
            raise HwemuError(f"--pages: {pages} pages do not fit on node 1 of {machine}")
    elif hw_kind not in ("parametric", "machine"):
        raise HwemuError(f"--hw: unknown hardware {hw_kind!r} (use parametric or machine)")
    if hw is None:
        need = nbytes + (256 << 20)
        per_node = max(1 << 30, -(-need // (1 << 30)) * (1 << 30))
        hw = parametric_hardware(machine, mem_per_node_bytes=per_node)
    if threads > hw.num_cpus:
        raise HwemuError(f"--threads: {threads} threads but the machine has {hw.num_cpus} CPUs")
    k = Kernel(hw, tlb_batch=tlb_batch, copy_engine=make_copy_engine(copy, hw))
    huge = page_size == HPAGE_SIZE
    k.create_process(1, "bench", thp=huge)
    k.add_thread(1, 1, 0)
    # Extra threads: alternate between the other socket and this one.
    cpus_per_node = hw.num_cpus // hw.num_nodes
    for t in range(1, threads):
        node = t % hw.num_nodes
        cpu = node * cpus_per_node + (t // hw.num_nodes) + (1 if node == 0 else 0)
        k.add_thread(1, 1 + t, cpu)
    k.mmap(1, BENCH_BASE, nbytes, "anon", thp=huge, name="bench")
    for i in range(pages):
        k.engine.run_process(k.access(1, BENCH_BASE + i * page_size, True))
        if progress is not None:
            progress(1)
    before = k.collect_stats().snapshot()
    steps_before = {name: c.time_ps for name, c in k.step_costs.items()}
    if migrate_progress is not None:
        k.on_migrated = lambda n: migrate_progress(n // (page_size // PAGE_SIZE) or 1)
    addrs = [BENCH_BASE + i * page_size for i in range(pages)]
    t0 = k.engine.now_ps
    res = run_syscall(k, move_pages(k, 0, 1, addrs, [1] * pages), 0, "move_pages")
    elapsed = res.elapsed_ps
    stats = k.collect_stats().since(before)
    moved = sum(1 for s in res.status if s == 1)
    steps = {}
    for name in STEP_ORDER:
        c = k.step_costs.get(name)
        v = (c.time_ps - steps_before.get(name, 0)) if c is not None else 0
        if v:
            steps[name] = {"total_ps": int(v), "per_page_ns": v / pages / 1000.0,
                           "fraction": v / elapsed if elapsed else 0.0}
    copy_ps = steps.get("12_copy", {}).get("total_ps", 0)
    ipis = stats.get("linux.tlb", "ipis_sent", 0)
    return {
        "machine": machine, "hw": hw_kind, "page_size": page_size, "pages": pages, "bytes": nbytes,
        "copy": copy, "threads": threads, "tlb_batch": tlb_batch,
        "dma_model": ("placeholder" if getattr(k.copy_engine, "placeholder", False) else
                      "machine [dma]" if getattr(k.copy_engine, "on_hardware", False) else
                      "hwemu.dma.model") if copy == "dma" else None,
        "ret": res.ret, "pages_moved": moved,
        "elapsed_ps": elapsed, "start_ps": t0,
        "gbps": nbytes / (elapsed / 1e12) / 1e9 if elapsed else 0.0,
        "us_per_page": elapsed / pages / 1e6,
        "copy_fraction": copy_ps / elapsed if elapsed else 0.0,
        "passes": int(stats.get("linux.migrate", "passes", 0)),
        "tlb_ipis": int(ipis),
        "tlb_flushes": int(stats.get("linux.tlb", "flushes", 0)),
        "tlb_batched_flushes": int(stats.get("linux.tlb", "batched_flushes", 0)),
        "bytes_copied": int(stats.get("linux.migrate", "bytes_copied", 0)),
        "steps": steps,
    }
