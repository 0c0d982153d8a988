"""cocotb tests of page_copy_dma (run by test_dma_rtl.py, one build per parameter set).

Every test checks the whole memory after every copy: the expected image is the memory before
the copy with the source pages copied over the destination pages, so a stray write anywhere
(guard bytes around every destination included) fails. The memory model also checks the AXI
rules (4 KiB boundaries, MAX_BURST_LEN, MAX_OUTSTANDING, WLAST, valid/payload stability).
"""

from __future__ import annotations

import random
import struct

import cocotb

from hwemu.dma.axi_mem import DECERR, SLVERR, ErrorRange
from hwemu.dma.testbench import DmaBench
from hwemu.dma.model import DmaParams, chain_cycles
from hwemu.dma.rtl import load_config

PAGE = 4096
MEM_PAGES = 48
BASE = 0x12_3450_0000   # above 4 GiB: exercises the upper address bits

E_OK, E_ALIGN, E_ZERO, E_RANGE = 0, 1, 2, 3
E_RD_SLV, E_RD_DEC, E_WR_SLV, E_WR_DEC = 4, 5, 6, 7


def _cfg():
    cfg = load_config()
    return cfg, cfg["params"]


async def _bench(dut, seed, stalls=0.0, latency=8, **kw):
    cfg, p = _cfg()
    tb = DmaBench(dut, mem_size=MEM_PAGES * PAGE, mem_base=BASE, seed=seed,
                  read_latency=latency, write_latency=kw.pop("write_latency", 2),
                  max_burst_len=p["MAX_BURST_LEN"], max_outstanding=p["MAX_OUTSTANDING"],
                  ar_stall=stalls, aw_stall=stalls, w_stall=stalls, r_idle=stalls,
                  b_idle=stalls, desc_idle=stalls, stat_stall=stalls, **kw)
    tb.mem.mem[:] = random.Random(seed).randbytes(MEM_PAGES * PAGE)
    await tb.start()
    return tb


def _addr(page):
    return BASE + page * PAGE


async def _finish(tb):
    """One irq pulse per status, no more."""
    await tb.settle()
    assert tb.irq_count == len(tb.statuses), (tb.irq_count, len(tb.statuses))
    _check_bus(tb)


def _check_bus(tb):
    assert not tb.mem.violations, tb.mem.violations[:5]
    _, p = _cfg()
    assert tb.mem.max_reads_in_flight <= p["MAX_OUTSTANDING"]


async def _good_copy(tb, src_page, dst_page, pages, tag):
    before = bytes(tb.mem.mem)
    st = await tb.copy(_addr(src_page), _addr(dst_page), pages, tag)
    assert (st.tag, st.error, st.pages) == (tag, E_OK, pages), st
    exp = bytearray(before)
    s, d = src_page * PAGE, dst_page * PAGE
    exp[d:d + pages * PAGE] = before[s:s + pages * PAGE]
    assert tb.mem.mem == exp, "memory differs from the expected image"
    assert st.irq
    _check_bus(tb)
    return st


@cocotb.test()
async def single_page(dut):
    """One page, quiet bus: data, guard bytes, status, irq, burst shapes."""
    tb = await _bench(dut, seed=1)
    st = await _good_copy(tb, 3, 20, 1, tag=0x5A)
    assert st.cycles > 0
    _, p = _cfg()
    beats = 4096 // tb.data_bytes
    burst = min(p["MAX_BURST_LEN"], beats)
    assert sum(b.beats for b in tb.mem.reads) == beats
    assert sum(b.beats for b in tb.mem.writes) == beats
    assert max(b.beats for b in tb.mem.reads) == burst
    await _finish(tb)
    assert dut.busy.value == 0


@cocotb.test()
async def batches_with_backpressure(dut):
    """Batches of 1..4 pages, random stalls and idles on every channel, varying latency."""
    cfg, _ = _cfg()
    rng = random.Random(cfg["seed"])
    tb = await _bench(dut, seed=cfg["seed"], stalls=0.3)
    for i in range(4):
        tb.mem.read_latency = rng.choice([1, 5, 40])
        pages = rng.randint(1, 4)
        await _good_copy(tb, rng.randrange(0, 8), 24 + rng.randrange(0, 8), pages, tag=i)
    await _finish(tb)


@cocotb.test()
async def descriptor_errors(dut):
    """Misaligned src/dst, zero pages, wrapping range: error status, nothing on the bus."""
    tb = await _bench(dut, seed=3, stalls=0.2)
    before = bytes(tb.mem.mem)
    top = (1 << len(dut.s_desc_src)) - PAGE
    cases = [
        (_addr(1) + 64, _addr(30), 1, E_ALIGN),
        (_addr(1), _addr(30) + 8, 2, E_ALIGN),
        (_addr(1) + 4095, _addr(30) + 1, 0, E_ALIGN),
        (_addr(1), _addr(30), 0, E_ZERO),
        (top, _addr(30), 2, E_RANGE),
        (_addr(1), top - PAGE, 3, E_RANGE),
    ]
    for i, (src, dst, pages, err) in enumerate(cases):
        st = await tb.copy(src, dst, pages, tag=0x80 + i)
        assert (st.tag, st.error, st.pages) == (0x80 + i, err, 0), (i, st)
        assert st.irq
    assert not tb.mem.reads and not tb.mem.writes, "a rejected descriptor reached the bus"
    assert tb.mem.mem == before
    # the last page of the address space itself is allowed (no wrap): it is a DECERR here
    st = await tb.copy(top, _addr(30), 1, tag=1)
    assert st.error == E_RD_DEC
    assert tb.mem.mem == before
    await _good_copy(tb, 1, 30, 2, tag=2)
    await _finish(tb)


async def _read_error(dut, resp, stalls):
    tb = await _bench(dut, seed=4 + resp, stalls=stalls)
    src, dst, pages = 2, 26, 4
    bad = _addr(src + 2) + 1024          # inside the third source page
    tb.mem.errors.append(ErrorRange(bad, bad + 64, resp, "read"))
    before = bytes(tb.mem.mem)
    st = await tb.copy(_addr(src), _addr(dst), pages, tag=7)
    assert st.tag == 7
    assert st.error == (E_RD_SLV if resp == SLVERR else E_RD_DEC), st
    assert st.pages <= 2
    # nothing outside the destination changed; every changed destination byte is source data;
    # no burst that read the failing range was written; whole pages reported are copied
    s, d, n = src * PAGE, dst * PAGE, pages * PAGE
    now = tb.mem.mem
    assert now[:d] == before[:d] and now[d + n:] == before[d + n:]
    for b in tb.mem.writes:
        off = b.addr - _addr(dst)
        lo, hi = _addr(src) + off, _addr(src) + off + b.beats * b.size
        assert not (lo < bad + 64 and bad < hi), "a burst with a read error was written"
        o = d + off
        assert now[o:o + b.beats * b.size] == before[s + off:s + off + b.beats * b.size]
    assert now[d:d + st.pages * PAGE] == before[s:s + st.pages * PAGE]
    # m_stat_pages is exactly the leading destination pages written out in full (all OKAY)
    written = [0] * pages
    for b in tb.mem.writes:
        written[(b.addr - _addr(dst)) // PAGE] += b.beats * b.size
    full = 0
    while full < pages and written[full] == PAGE:
        full += 1
    assert st.pages == full, (st, written)
    _check_bus(tb)
    tb.mem.errors.clear()
    await _good_copy(tb, src, dst, pages, tag=8)   # the engine recovers
    await _finish(tb)


@cocotb.test()
async def read_slverr(dut):
    await _read_error(dut, SLVERR, 0.0)


@cocotb.test()
async def read_decerr_backpressure(dut):
    await _read_error(dut, DECERR, 0.3)


async def _write_error(dut, resp, stalls):
    tb = await _bench(dut, seed=6 + resp, stalls=stalls)
    src, dst, pages = 5, 30, 4
    bad = _addr(dst + 1) + 2048         # inside the second destination page
    tb.mem.errors.append(ErrorRange(bad, bad + 16, resp, "write"))
    before = bytes(tb.mem.mem)
    st = await tb.copy(_addr(src), _addr(dst), pages, tag=9)
    assert st.error == (E_WR_SLV if resp == SLVERR else E_WR_DEC), st
    assert st.pages == 1, st             # responses return in order: page 0 was acknowledged
    s, d, n = src * PAGE, dst * PAGE, pages * PAGE
    now = tb.mem.mem
    assert now[:d] == before[:d] and now[d + n:] == before[d + n:]
    assert now[d:d + PAGE] == before[s:s + PAGE]
    _check_bus(tb)
    tb.mem.errors.clear()
    await _good_copy(tb, src, dst, pages, tag=10)
    await _finish(tb)


@cocotb.test()
async def write_slverr_backpressure(dut):
    await _write_error(dut, SLVERR, 0.3)


@cocotb.test()
async def write_decerr(dut):
    await _write_error(dut, DECERR, 0.0)


@cocotb.test()
async def soak(dut):
    """A fixed-seed random run: many descriptors, random sizes, places, latency and stalls."""
    cfg, _ = _cfg()
    rng = random.Random(cfg["seed"] * 7919 + 1)
    tb = await _bench(dut, seed=cfg["seed"] + 100, stalls=0.0)
    for i in range(cfg.get("soak", 12)):
        stall = rng.choice([0.0, 0.1, 0.5])
        m = tb.mem
        m.ar_stall = m.aw_stall = m.w_stall = m.r_idle = m.b_idle = stall
        tb.desc_idle = tb.stat_stall = stall
        m.read_latency = rng.choice([1, 2, 7, 30, 90])
        m.write_latency = rng.choice([1, 3, 20])
        pages = rng.randint(1, 3)
        src = rng.randrange(0, 20)
        dst = rng.randrange(24, MEM_PAGES - pages)
        await _good_copy(tb, src, dst, pages, tag=i & 0xFF)
    await _finish(tb)


# ---------------------------------------------------------------------- descriptor chains
DESC_PAGE = 46            # descriptors live in this page (never a copy source or destination)
E_F_ALIGN, E_F_SLV, E_F_DEC = 8, 9, 10
END = 1


def _put_desc(tb, slot, src, dst, pages, tag, flags, nxt):
    """Write a 32-byte descriptor at slot ``slot`` of the descriptor page; return its address."""
    off = DESC_PAGE * PAGE + slot * 32
    tb.mem.mem[off:off + 32] = struct.pack("<QQIHHQ", src, dst, pages, tag, flags, nxt)
    return BASE + off


def _expected_after(before, copies):
    exp = bytearray(before)
    for s, d, n in copies:
        exp[d * PAGE:(d + n) * PAGE] = exp[s * PAGE:(s + n) * PAGE]
    return exp


@cocotb.test()
async def chain_of_descriptors(dut):
    """A chain of 5 descriptors scattered in memory, with backpressure: 5 statuses, 5 copies."""
    cfg, _ = _cfg()
    rng = random.Random(cfg["seed"] + 7)
    tb = await _bench(dut, seed=cfg["seed"] + 7, stalls=0.25)
    slots = rng.sample(range(100), 5)
    copies = []
    dsts = rng.sample(range(24, 44, 3), 5)
    for i in range(5):
        copies.append((rng.randrange(0, 20), dsts[i], rng.randint(1, 2)))
    addrs = [BASE + DESC_PAGE * PAGE + s * 32 for s in slots]
    for i, (s, d, n) in enumerate(copies):
        last = i == len(copies) - 1
        _put_desc(tb, slots[i], _addr(s), _addr(d), n, 0xA0 + i, END if last else 0,
                  0 if last else addrs[i + 1])
    before = bytes(tb.mem.mem)
    sts = await tb.chain(addrs[0], 5, tag=0x77, pages=8)
    assert [(st.tag, st.error, st.pages) for st in sts] == \
        [(0xA0 + i, E_OK, n) for i, (_, _, n) in enumerate(copies)], sts
    assert all(st.irq for st in sts)
    assert tb.mem.mem == _expected_after(before, copies)
    await _finish(tb)
    assert dut.busy.value == 0 and dut.s_desc_ready.value == 1


@cocotb.test()
async def chain_errors(dut):
    """Misaligned pointers, fetch SLVERR/DECERR, a bad descriptor in the middle, wide fields."""
    tb = await _bench(dut, seed=12, stalls=0.2)
    a0 = _put_desc(tb, 0, _addr(1), _addr(30), 1, 0x11, 0, BASE + DESC_PAGE * PAGE + 64)
    before = bytes(tb.mem.mem)

    # the pointer itself misaligned: nothing on the bus
    sts = await tb.chain(a0 + 8, 1, tag=0x21)
    assert [(s.tag, s.error, s.pages) for s in sts] == [(0x21, E_F_ALIGN, 0)]
    assert not tb.mem.reads and not tb.mem.writes

    # a pointer outside the memory: DECERR on the fetch
    sts = await tb.chain(BASE - 4096, 1, tag=0x22)
    assert [(s.tag, s.error) for s in sts] == [(0x22, E_F_DEC)]
    assert tb.mem.mem == before and not tb.mem.writes

    # the second descriptor's fetch fails with SLVERR: the first copy happened
    tb.mem.errors.append(ErrorRange(a0 + 64, a0 + 96, SLVERR, "read"))
    sts = await tb.chain(a0, 2, tag=0x23)
    assert [(s.tag, s.error) for s in sts] == [(0x11, E_OK), (0x23, E_F_SLV)]
    tb.mem.errors.clear()
    assert tb.mem.mem == _expected_after(before, [(1, 30, 1)])

    # a zero-page descriptor stops the chain: the third is never run
    a1 = _put_desc(tb, 4, _addr(2), _addr(32), 1, 0x31, 0, BASE + DESC_PAGE * PAGE + 5 * 32)
    _put_desc(tb, 5, _addr(3), _addr(33), 0, 0x32, 0, BASE + DESC_PAGE * PAGE + 6 * 32)
    _put_desc(tb, 6, _addr(4), _addr(34), 1, 0x33, END, 0)
    before = bytes(tb.mem.mem)
    sts = await tb.chain(a1, 2, tag=0x24)
    assert [(s.tag, s.error) for s in sts] == [(0x31, E_OK), (0x32, E_ZERO)]
    assert tb.mem.mem == _expected_after(before, [(2, 32, 1)])

    # a misaligned next pointer: the first status, then FETCH_ALIGN back to back
    a2 = _put_desc(tb, 8, _addr(5), _addr(35), 1, 0x41, 0, BASE + DESC_PAGE * PAGE + 9 * 32 + 4)
    before = bytes(tb.mem.mem)
    sts = await tb.chain(a2, 2, tag=0x25)
    assert [(s.tag, s.error) for s in sts] == [(0x41, E_OK), (0x25, E_F_ALIGN)]
    assert tb.mem.mem == _expected_after(before, [(5, 35, 1)])

    # fields wider than the engine's (a page count above COUNT_WIDTH bits, even one whose low
    # bits are zero): RANGE, no traffic; tag bits above TAG_WIDTH are ignored
    nw = len(tb.mem.writes)
    for slot, pages in ((10, 1 << 20), (11, (1 << 20) | 1)):
        a3 = _put_desc(tb, slot, _addr(6), _addr(36), pages, 0x1251, END, 0)
        sts = await tb.chain(a3, 1, tag=0x26)
        assert [(s.tag, s.error) for s in sts] == [(0x51, E_RANGE)]
    assert len(tb.mem.writes) == nw

    # and the engine still copies
    await _good_copy(tb, 7, 37, 1, tag=0x60)
    await _finish(tb)


@cocotb.test()
async def chain_timing_matches_model(dut):
    """Quiet bus: every status of a chain arrives when the cycle model says."""
    _, p = _cfg()
    params = DmaParams(data_width=p["DATA_WIDTH"], burst_len=p["MAX_BURST_LEN"],
                       max_outstanding=p["MAX_OUTSTANDING"], write_latency=2)
    tb = await _bench(dut, seed=13, latency=17, write_latency=2)
    pages = [1, 2, 1]
    addrs = [BASE + DESC_PAGE * PAGE + s * 32 for s in (3, 1, 7)]
    for i, n in enumerate(pages):
        last = i == len(pages) - 1
        _put_desc(tb, (3, 1, 7)[i], _addr(2 * i), _addr(24 + 3 * i), n, i, END if last else 0,
                  0 if last else addrs[i + 1])
    sts = await tb.chain(addrs[0], 3, pages=4)
    assert [s.error for s in sts] == [E_OK] * 3
    for k, st in enumerate(sts):
        assert st.cycles == chain_cycles(pages[:k + 1], params, 17), (k, st)
    await _finish(tb)
