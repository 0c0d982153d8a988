"""Copy engines for step 12 of the migration protocol, behind one interface.

``engine.copy(kernel, cpu, src, dst, at_ps) -> (cpu_ps, wait_ps)``: the CPU doing the
migration is busy for ``cpu_ps`` (it computes or polls) and then sleeps ``wait_ps`` (the copy
completes without it). Both are integer picoseconds.

* :class:`CpuCopyEngine`: ``copy_page()`` on the migrating CPU; time from the hardware
  interface's ``copy_ps`` (in the machine model this generates the real read and write traffic
  through caches, controllers and links).
* :class:`DmaCopyEngine`: a descriptor-based page-copy DMA engine. The CPU writes a descriptor
  and rings a doorbell, the engine moves the bytes over ``channels`` channels, and completion
  is seen by an interrupt. The transfer time comes from ``copy_time_ps(nbytes)``: by default
  the RTL-calibrated cycle model of ``hwemu.dma.model`` (:func:`rtl_model_copy_time`); if that
  is not importable, :func:`placeholder_dma_copy_time_ps` (documented in docs/migration.md)
  stands in behind the same signature. On hardware with its own engines (the machine's
  ``[dma]`` table: ``hw.dma_engines`` > 0) the engines do the copy instead
  (``hw.dma_copy_ps``, their traffic through the modelled memory system), a whole migration
  batch at a time (:meth:`DmaCopyEngine.copy_batch`, docs/dma.md "In runs").
"""

from __future__ import annotations

from typing import Callable

from hwemu.errors import HwemuError

DMA_DESCRIPTOR_BYTES = 64


class CpuCopyEngine:
    name = "cpu"

    def copy(self, kernel, cpu: int, src, dst, at_ps: int) -> tuple[int, int]:
        return kernel.hw.copy_ps(cpu, src.paddr, dst.paddr, src.size_bytes, at_ps), 0


def placeholder_dma_copy_time_ps(nbytes: int, channels: int = 4,
                                 channel_bw_bps: float = 8.0e9,
                                 setup_ps: int = 600_000) -> int:
    """PLACEHOLDER for the RTL-calibrated model: a descriptor fetch and engine start-up
    (``setup_ps``) then the bytes split evenly over ``channels`` channels of
    ``channel_bw_bps`` each (figures of the order published for Intel DSA / I/OAT
    page-copy offload; see docs/migration.md)."""
    per_channel = -(-nbytes // channels)
    return int(setup_ps + round(per_channel * 1e12 / channel_bw_bps))


def rtl_model_copy_time(mem_latency_ps: int = 190_000):
    """``copy_time_ps(nbytes)`` from the RTL-calibrated cycle model of ``hwemu.dma.model``,
    configured as a migration offload engine: 256-bit AXI at 1 GHz, 64-beat bursts, 16 reads
    in flight (bandwidth-bound at 32 B/cycle for cross-socket read latencies). Returns None
    when that model is not available."""
    try:
        from hwemu.dma.model import DmaParams, copy_time_ps
    except ImportError:
        return None
    params = DmaParams(data_width=256, burst_len=64, max_outstanding=16,
                       max_write_outstanding=16, clock_hz=1_000_000_000)

    def copy_time(nbytes: int) -> int:
        return int(copy_time_ps(1, nbytes, params, mem_latency_ps))
    return copy_time


class DmaCopyEngine:
    name = "dma"

    def __init__(self, copy_time_ps: Callable[[int], int] | None = None,
                 interrupt_ps: int = 1_000_000, mem_latency_ps: int = 190_000,
                 on_hardware: bool = False):
        # on_hardware: the hardware's own engines do the copy (``hw.dma_copy_ps``: the
        # machine's [dma] engines, their traffic through its memory system); otherwise the
        # stand-alone cycle model below times it and no memory traffic is generated.
        self.on_hardware = bool(on_hardware)
        # the hardware's engines copy a migration batch as one descriptor chain
        # (hwemu.linux.migrate.Migrator.step_12_batch_copy)
        self.batches = self.on_hardware
        model = None if on_hardware else (copy_time_ps or rtl_model_copy_time(mem_latency_ps))
        self.placeholder = model is None and not on_hardware
        self.copy_time_ps = model or placeholder_dma_copy_time_ps
        self.interrupt_ps = int(interrupt_ps)

    def copy(self, kernel, cpu: int, src, dst, at_ps: int) -> tuple[int, int]:
        # CPU: build the descriptor in a cache line of the node's slab and ring the doorbell
        # (an uncached MMIO write, costed as a remote-memory write).
        node = kernel.hw.cpu_node(cpu)
        desc = kernel.alloc.nodes[node].slab_alloc(DMA_DESCRIPTOR_BYTES)
        cpu_ps = kernel.hw.cycles_ps(cpu, 150)
        cpu_ps += kernel.hw.mem_access_ps(cpu, desc, True, False, at_ps)
        cpu_ps += kernel.hw.mem_access_ps(cpu, desc, True, True, at_ps + cpu_ps)
        # The transfer itself, then the completion interrupt and wake-up. The migrating task
        # sleeps meanwhile (its CPU is free); migrate_pages() itself still waits for the copy.
        if self.on_hardware:
            transfer = kernel.hw.dma_copy_ps(cpu, src.paddr, dst.paddr, src.size_bytes,
                                             at_ps + cpu_ps)
        else:
            transfer = self.copy_time_ps(src.size_bytes)
        wait_ps = int(transfer) + self.interrupt_ps
        return cpu_ps, wait_ps

    def copy_batch(self, kernel, cpu: int, pairs, at_ps: int) -> tuple[int, int]:
        """The folios ``pairs`` ((src, dst) pages) of one migration batch, on the hardware's
        engines: the CPU writes one 32-byte descriptor per folio (a chain in its node's slab)
        and rings the doorbell once; the engines fetch and run the descriptors (each takes
        the engine of the CPU's socket that is free first); one completion interrupt wakes
        the task when the last is done. Returns (CPU time, wait)."""
        hw = kernel.hw
        node = hw.cpu_node(cpu)
        slab = kernel.alloc.nodes[node]
        cpu_ps = hw.cycles_ps(cpu, 150)
        descs = []
        for _ in pairs:
            d = slab.slab_alloc(32)
            descs.append(d)
            cpu_ps += hw.cycles_ps(cpu, 50)      # fill in src, dst, count, next
            cpu_ps += hw.mem_access_ps(cpu, d, True, False, at_ps + cpu_ps)
        cpu_ps += hw.mem_access_ps(cpu, descs[0], True, True, at_ps + cpu_ps)   # doorbell
        submit = at_ps + cpu_ps
        end = submit
        for (src, dst), d in zip(pairs, descs):
            t = hw.dma_copy_ps(cpu, src.paddr, dst.paddr, src.size_bytes, submit, desc_paddr=d)
            end = max(end, submit + int(t))
        return cpu_ps, end - submit + self.interrupt_ps


def make_copy_engine(name: str, hw=None):
    """``cpu`` or ``dma``. A ``dma`` engine uses the hardware's own engines when it has some
    (``hw.dma_engines`` > 0: the machine's [dma] table), else the stand-alone offload model."""
    if name == "cpu":
        return CpuCopyEngine()
    if name == "dma":
        if getattr(hw, "dma_engines", 0) > 0:
            return DmaCopyEngine(interrupt_ps=hw.dma_interrupt_ps, on_hardware=True)
        return DmaCopyEngine(mem_latency_ps=int(getattr(hw, "mem_latency_remote_ps", 190_000)))
    raise HwemuError(f"--copy: unknown copy engine {name!r} (use cpu or dma)")
