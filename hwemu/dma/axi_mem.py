"""An AXI4 slave memory for cocotb: the memory the page-copy DMA engine talks to in simulation.

cocotbext-axi's ``AxiRam`` serves one read burst at a time, so it cannot show what several
outstanding reads buy against memory latency. ``AxiMemory`` can:

* a configurable read latency (cycles from the AR handshake to the first R beat) applied to
  every burst independently, with any number of bursts in flight and their data returned in
  order, back to back, one beat per cycle;
* a configurable write-response latency (cycles from the last W beat to the B response);
* optional random backpressure: AWREADY, WREADY and ARREADY drop, RVALID and BVALID are
  delayed, each with its own probability, from a seeded generator (deterministic);
* error injection by address range (SLVERR or DECERR, on reads or on writes); an access outside
  the memory is a DECERR as from an interconnect's default slave. A failed write stores nothing;
* a protocol checker: every AR/AW burst is recorded, and violations (a burst crossing 4 KiB, a
  length above ``max_burst_len``, a non-INCR burst, a wrong size, more reads in flight than
  ``max_outstanding``, WLAST in the wrong place, a valid dropped or a payload changed before
  its handshake) are appended to ``violations``.

The whole slave is one coroutine that wakes on every rising clock edge, samples the handshakes
of that edge (values before the edge) and drives the next cycle's outputs. Port names follow the
``<prefix>_<channel><signal>`` convention (``m_axi_araddr``) used by cocotbext-axi.

Read latency ``L`` means: an AR accepted at edge ``n`` has its first R beat accepted at edge
``n + L`` at the earliest (``L >= 1``).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

OKAY, EXOKAY, SLVERR, DECERR = 0, 1, 2, 3


@dataclass
class Burst:
    """One address-channel transfer as the slave saw it."""

    addr: int
    beats: int        # AxLEN + 1
    size: int         # bytes per beat (2 ** AxSIZE)
    burst: int        # AxBURST
    edge: int         # clock edge of the handshake
    ready_edge: int = 0   # reads: first edge at which data may be accepted
    sent: int = 0     # beats returned / received so far
    resp: int = OKAY  # writes: the response to return


@dataclass
class ErrorRange:
    """Respond ``resp`` to any beat whose address lies in [start, end) on channel ``kind``."""

    start: int
    end: int
    resp: int = SLVERR
    kind: str = "read"  # "read" or "write"


@dataclass
class AxiMemory:
    """AXI4 slave RAM of ``size`` bytes at address ``base``; call :meth:`start` in a cocotb test."""

    dut: object
    clk: object
    size: int
    base: int = 0
    prefix: str = "m_axi"
    read_latency: int = 1
    write_latency: int = 1
    max_burst_len: int = 256
    max_outstanding: int | None = None
    # backpressure probabilities (0 = never), all drawn from one seeded generator
    ar_stall: float = 0.0
    aw_stall: float = 0.0
    w_stall: float = 0.0
    r_idle: float = 0.0
    b_idle: float = 0.0
    seed: int = 0
    errors: list[ErrorRange] = field(default_factory=list)

    def __post_init__(self):
        if self.read_latency < 1 or self.write_latency < 1:
            raise ValueError("AxiMemory latencies must be at least 1 cycle")
        self.mem = bytearray(self.size)
        self.rng = random.Random(self.seed)
        self.reads: list[Burst] = []
        self.writes: list[Burst] = []
        self.violations: list[str] = []
        self.max_reads_in_flight = 0
        self.edge = 0
        p = self.prefix + "_"
        g = lambda name: getattr(self.dut, p + name)  # noqa: E731
        self._s = {name: g(name) for name in (
            "awaddr", "awlen", "awsize", "awburst", "awvalid", "awready",
            "wdata", "wstrb", "wlast", "wvalid", "wready",
            "bresp", "bvalid", "bready", "bid",
            "araddr", "arlen", "arsize", "arburst", "arvalid", "arready",
            "rdata", "rresp", "rlast", "rvalid", "rready", "rid")}
        self.data_bytes = len(self._s["wdata"]) // 8

    # ------------------------------------------------------------------ memory access
    def _in_mem(self, addr: int, n: int) -> bool:
        return self.base <= addr and addr + n <= self.base + self.size

    def _resp_for(self, addr: int, n: int, kind: str) -> int:
        if not self._in_mem(addr, n):
            return DECERR
        for e in self.errors:
            if e.kind == kind and addr < e.end and e.start < addr + n:
                return e.resp
        return OKAY

    def read(self, addr: int, n: int) -> bytes:
        off = addr - self.base
        return bytes(self.mem[off:off + n])

    def write(self, addr: int, data: bytes) -> None:
        off = addr - self.base
        self.mem[off:off + len(data)] = data

    # ------------------------------------------------------------------ checks
    def _check_burst(self, b: Burst, kind: str) -> None:
        if b.burst != 1:
            self.violations.append(f"{kind} burst at {b.addr:#x}: AxBURST={b.burst}, not INCR")
        if b.size != self.data_bytes:
            self.violations.append(f"{kind} burst at {b.addr:#x}: {b.size} bytes/beat, "
                                   f"bus is {self.data_bytes}")
        if b.beats > self.max_burst_len:
            self.violations.append(f"{kind} burst at {b.addr:#x}: {b.beats} beats > "
                                   f"max {self.max_burst_len}")
        if b.addr % b.size:
            self.violations.append(f"{kind} burst at {b.addr:#x}: unaligned to beat size")
        last = b.addr + b.beats * b.size - 1
        if (b.addr >> 12) != (last >> 12):
            self.violations.append(f"{kind} burst at {b.addr:#x}+{b.beats}x{b.size} "
                                   "crosses a 4 KiB boundary")

    # ------------------------------------------------------------------ the slave
    def start(self):
        import cocotb

        return cocotb.start_soon(self._run())

    async def _run(self):
        from cocotb.triggers import RisingEdge

        s = self._s
        rng = self.rng
        nbytes = self.data_bytes
        edge_trigger = RisingEdge(self.clk)

        rd_q: deque[Burst] = deque()      # accepted reads not fully returned
        aw_q: deque[Burst] = deque()      # accepted write addresses awaiting data
        w_buf: deque[tuple[int, int, int]] = deque()  # W beats that arrived before their AW
        b_q: deque[tuple[int, int]] = deque()  # (edge when B may be accepted, resp)
        w_data: list[tuple[int, int]] = []  # beats of the write burst being received

        arready = awready = wready = 0
        rvalid = bvalid = 0
        last_ar = last_aw = last_w = None  # payload of a valid not yet accepted

        s["arready"].value = 0
        s["awready"].value = 0
        s["wready"].value = 0
        s["rvalid"].value = 0
        s["bvalid"].value = 0
        s["rid"].value = 0
        s["bid"].value = 0
        edge = 0

        while True:
            await edge_trigger
            edge += 1
            self.edge = edge

            # ---------------- sample this edge's handshakes
            arvalid = s["arvalid"].value == 1
            awvalid = s["awvalid"].value == 1
            wvalid = s["wvalid"].value == 1
            r_fire = rvalid and s["rready"].value == 1
            b_fire = bvalid and s["bready"].value == 1

            if arvalid:
                pay = (int(s["araddr"].value), int(s["arlen"].value),
                       int(s["arsize"].value), int(s["arburst"].value))
                if last_ar is not None and pay != last_ar:
                    self.violations.append(f"edge {edge}: AR payload changed while valid")
                if arready:
                    b = Burst(pay[0], pay[1] + 1, 1 << pay[2], pay[3], edge,
                              ready_edge=edge + self.read_latency)
                    self._check_burst(b, "read")
                    self.reads.append(b)
                    rd_q.append(b)
                    last_ar = None
                else:
                    last_ar = pay
            elif last_ar is not None:
                self.violations.append(f"edge {edge}: ARVALID dropped before ARREADY")
                last_ar = None

            if awvalid:
                pay = (int(s["awaddr"].value), int(s["awlen"].value),
                       int(s["awsize"].value), int(s["awburst"].value))
                if last_aw is not None and pay != last_aw:
                    self.violations.append(f"edge {edge}: AW payload changed while valid")
                if awready:
                    b = Burst(pay[0], pay[1] + 1, 1 << pay[2], pay[3], edge)
                    self._check_burst(b, "write")
                    self.writes.append(b)
                    aw_q.append(b)
                    last_aw = None
                else:
                    last_aw = pay
            elif last_aw is not None:
                self.violations.append(f"edge {edge}: AWVALID dropped before AWREADY")
                last_aw = None

            if wvalid:
                pay = (int(s["wdata"].value), int(s["wstrb"].value), int(s["wlast"].value))
                if last_w is not None and pay != last_w:
                    self.violations.append(f"edge {edge}: W payload changed while valid")
                if wready:
                    w_buf.append(pay)
                    last_w = None
                else:
                    last_w = pay
            elif last_w is not None:
                self.violations.append(f"edge {edge}: WVALID dropped before WREADY")
                last_w = None

            # match W beats to write bursts in order
            while w_buf and aw_q:
                data, strb, wlast = w_buf.popleft()
                b = aw_q[0]
                w_data.append((data, strb))
                b.sent += 1
                if bool(wlast) != (b.sent == b.beats):
                    self.violations.append(
                        f"write burst at {b.addr:#x}: WLAST={wlast} on beat {b.sent}/{b.beats}")
                if b.sent == b.beats:
                    aw_q.popleft()
                    resp = self._resp_for(b.addr, b.beats * b.size, "write")
                    if resp == OKAY:
                        for i, (d, st) in enumerate(w_data):
                            a = b.addr + i * b.size
                            raw = d.to_bytes(nbytes, "little")
                            if st == (1 << nbytes) - 1:
                                self.write(a, raw)
                            else:
                                for k in range(nbytes):
                                    if st >> k & 1:
                                        self.write(a + k, raw[k:k + 1])
                    w_data = []
                    b_q.append((edge + self.write_latency, resp))

            if r_fire:
                rvalid = 0
            if b_fire:
                bvalid = 0

            in_flight = len(rd_q)
            if in_flight > self.max_reads_in_flight:
                self.max_reads_in_flight = in_flight
                if self.max_outstanding is not None and in_flight > self.max_outstanding:
                    self.violations.append(f"edge {edge}: {in_flight} reads in flight > "
                                           f"max {self.max_outstanding}")

            # ---------------- drive the next cycle (its handshake is sampled at edge + 1)
            nxt = edge + 1
            if not rvalid and rd_q and rd_q[0].ready_edge <= nxt:
                if not (self.r_idle and rng.random() < self.r_idle):
                    b = rd_q[0]
                    a = b.addr + b.sent * b.size
                    resp = self._resp_for(a, b.size, "read")
                    data = int.from_bytes(self.read(a, b.size), "little") if resp == OKAY else 0
                    b.sent += 1
                    last = b.sent == b.beats
                    if last:
                        rd_q.popleft()
                    rvalid = 1
                    s["rdata"].value = data
                    s["rresp"].value = resp
                    s["rlast"].value = int(last)
            s["rvalid"].value = rvalid

            if not bvalid and b_q and b_q[0][0] <= nxt:
                if not (self.b_idle and rng.random() < self.b_idle):
                    bvalid = 1
                    s["bresp"].value = b_q.popleft()[1]
            s["bvalid"].value = bvalid

            n_ar = 0 if (self.ar_stall and rng.random() < self.ar_stall) else 1
            n_aw = 0 if (self.aw_stall and rng.random() < self.aw_stall) else 1
            n_w = 0 if (self.w_stall and rng.random() < self.w_stall) else 1
            if n_ar != arready:
                s["arready"].value = n_ar
                arready = n_ar
            if n_aw != awready:
                s["awready"].value = n_aw
                awready = n_aw
            if n_w != wready:
                s["wready"].value = n_w
                wready = n_w
