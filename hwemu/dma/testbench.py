"""A cocotb test bench for ``page_copy_dma``: clock, reset, the AXI memory, descriptors, status.

Used by the RTL tests (tests/rtl/) and by ``hwemu dma calibrate``. It only runs inside a cocotb
simulation; import it from cocotb test modules, never from the rest of hwemu.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hwemu.dma.axi_mem import AxiMemory

CLOCK_PERIOD_NS = 10


@dataclass(frozen=True)
class Status:
    """One completion as the engine reported it."""

    tag: int
    error: int
    pages: int
    cycles: int   # descriptor handshake edge -> first edge with the status valid
    irq: bool     # irq was high in the first cycle the status was valid


class DmaBench:
    """Owns the clock, the reset and an :class:`AxiMemory`; submits descriptors.

    ``desc_idle`` and ``stat_stall`` are the probabilities of an idle cycle before a descriptor
    is presented and of STAT_READY being low in a cycle (seeded, deterministic).
    """

    def __init__(self, dut, *, mem_size: int, mem_base: int = 0, seed: int = 0,
                 desc_idle: float = 0.0, stat_stall: float = 0.0, **mem_kwargs):
        self.dut = dut
        self.rng = random.Random(seed ^ 0x5EED)
        self.desc_idle = desc_idle
        self.stat_stall = stat_stall
        self.mem = AxiMemory(dut, dut.clk, mem_size, base=mem_base, seed=seed, **mem_kwargs)
        self.irq_count = 0
        self.statuses: list[Status] = []
        self._edge = 0   # rising edges seen by copy()/chain()
        self.data_bytes = self.mem.data_bytes

    async def start(self) -> None:
        import cocotb
        from cocotb.clock import Clock
        from cocotb.triggers import RisingEdge

        dut = self.dut
        Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
        dut.rst.value = 1
        dut.s_desc_valid.value = 0
        dut.s_desc_src.value = 0
        dut.s_desc_dst.value = 0
        dut.s_desc_pages.value = 0
        dut.s_desc_tag.value = 0
        dut.s_desc_chain.value = 0
        dut.m_stat_ready.value = 0
        self.mem.start()
        for _ in range(4):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        cocotb.start_soon(self._irq_monitor())

    async def settle(self, cycles: int = 3) -> None:
        """Let a few clock edges pass (so monitors have seen everything)."""
        from cocotb.triggers import RisingEdge

        for _ in range(cycles):
            await RisingEdge(self.dut.clk)

    async def _irq_monitor(self) -> None:
        from cocotb.triggers import RisingEdge

        clk, irq = self.dut.clk, self.dut.irq
        while True:
            await RisingEdge(clk)
            if irq.value == 1:
                self.irq_count += 1

    async def copy(self, src: int, dst: int, pages: int, tag: int = 0,
                   timeout_cycles: int | None = None) -> Status:
        """Submit one descriptor and wait for its status; return it.

        Fails (AssertionError) if the descriptor is not accepted or the status does not come
        within ``timeout_cycles`` (default: generous for the size of the copy).
        """
        if timeout_cycles is None:
            timeout_cycles = self._timeout(pages)
        start = await self._submit(src, dst, pages, tag, 0, timeout_cycles)
        return (await self._collect(1, start, timeout_cycles))[0]

    async def chain(self, pointer: int, count: int, tag: int = 0, pages: int = 1,
                    timeout_cycles: int | None = None) -> list[Status]:
        """Submit a descriptor-chain pointer and collect ``count`` statuses.

        ``Status.cycles`` of each is counted from the pointer's handshake. ``pages`` (the total
        pages in the chain) only sizes the timeout.
        """
        if timeout_cycles is None:
            timeout_cycles = self._timeout(pages) + count * 200 * self.mem.read_latency
        start = await self._submit(pointer, 0, 0, tag, 1, timeout_cycles)
        return await self._collect(count, start, timeout_cycles)

    def _timeout(self, pages: int) -> int:
        beats = max(pages, 1) * (4096 // self.data_bytes)
        return 10_000 + beats * (8 + 2 * self.mem.read_latency)

    async def _submit(self, src, dst, pages, tag, chain, timeout_cycles) -> int:
        from cocotb.triggers import RisingEdge

        dut, rng = self.dut, self.rng
        clk = dut.clk
        while self.desc_idle and rng.random() < self.desc_idle:
            await RisingEdge(clk)
        dut.s_desc_src.value = src
        dut.s_desc_dst.value = dst
        dut.s_desc_pages.value = pages
        dut.s_desc_tag.value = tag
        dut.s_desc_chain.value = chain
        dut.s_desc_valid.value = 1
        edge = 0
        while True:
            await RisingEdge(clk)
            edge += 1
            self._edge += 1
            if dut.s_desc_ready.value == 1:
                break
            assert edge < timeout_cycles, f"descriptor not accepted in {edge} cycles"
        dut.s_desc_valid.value = 0
        dut.s_desc_chain.value = 0
        return self._edge

    async def _collect(self, count: int, start: int, timeout_cycles: int) -> list[Status]:
        from cocotb.triggers import RisingEdge

        dut = self.dut
        clk = dut.clk
        out: list[Status] = []
        seen = None
        irq = False
        ready = self._stat_ready()
        dut.m_stat_ready.value = ready
        while len(out) < count:
            await RisingEdge(clk)
            self._edge += 1
            edge = self._edge
            if dut.m_stat_valid.value == 1:
                if seen is None:
                    seen = edge
                    irq = dut.irq.value == 1
                if ready:
                    st = Status(int(dut.m_stat_tag.value), int(dut.m_stat_error.value),
                                int(dut.m_stat_pages.value), seen - start, irq)
                    out.append(st)
                    self.statuses.append(st)
                    seen = None
            assert edge - start < timeout_cycles, \
                f"status {len(out) + 1}/{count} not seen {edge - start} cycles after the " \
                "descriptor (engine hung)"
            ready = self._stat_ready() if len(out) < count else 0
            dut.m_stat_ready.value = ready
        return out

    def _stat_ready(self) -> int:
        if self.stat_stall and self.rng.random() < self.stat_stall:
            return 0
        return 1
