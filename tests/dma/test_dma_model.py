"""The DMA cycle model: exact hand-derived latencies, regimes, extrapolation, API checks."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwemu.dma import model as m
from hwemu.dma.model import (DmaParams, binding_bound, copy_cycles, copy_time_ps, page_bursts,
                             steady_beats_per_cycle, steady_period)
from hwemu.errors import HwemuError


def test_page_bursts_never_cross_a_page_and_respect_max_len():
    assert page_bursts(DmaParams(64, 16)) == (16,) * 32
    assert page_bursts(DmaParams(256, 256)) == (128,)           # capped at one page
    assert page_bursts(DmaParams(256, 12)) == (12,) * 10 + (8,)
    for p in (DmaParams(64, 7), DmaParams(128, 100), DmaParams(256, 1)):
        assert sum(page_bursts(p)) == p.beats_per_page
        assert max(page_bursts(p)) <= p.burst_len


def test_single_page_bandwidth_bound_exact():
    # 64-bit bus, 16-beat bursts, 4 reads in flight, memory latency L=1, write response Lw=1.
    # Edges from the descriptor handshake (0): AR register loaded at 1, AR handshake at 2,
    # first read beat at 2+L, the 512 beats stream one per cycle to 2+L+511, the last burst's
    # AW is loaded one edge later and its 16 write beats follow (the earlier bursts' writes
    # overlap the reads), the B response comes Lw later and the status is valid 2 edges after:
    # N + L + B + Lw + 4 = 512 + 1 + 16 + 1 + 4.
    p = DmaParams(data_width=64, burst_len=16, max_outstanding=4)
    assert copy_cycles(1, p, 1) == 534
    # bandwidth-bound: each extra page costs exactly its 512 beats, each latency cycle one
    assert copy_cycles(2, p, 1) == 534 + 512
    assert copy_cycles(1, p, 10) == 534 + 9


def test_single_outstanding_is_latency_bound_exact():
    # one read in flight: every burst waits for the previous one's last beat:
    # per burst = AR load + handshake + L + 16 beats -> L + B + 1 cycles
    p = DmaParams(data_width=128, burst_len=16, max_outstanding=1)
    lat = 50
    one = copy_cycles(1, p, lat)
    two = copy_cycles(2, p, lat)
    assert two - one == 16 * (lat + 16 + 1)
    assert binding_bound(p, lat) == "outstanding"


@pytest.mark.parametrize("dw,burst,out,lat,bound", [
    (64, 16, 4, 1, "bandwidth"),
    (64, 16, 4, 150, "outstanding"),
    (256, 16, 1, 1, "outstanding"),
    (128, 16, 8, 40, "bandwidth"),
])
def test_regimes(dw, burst, out, lat, bound):
    p = DmaParams(dw, burst, out)
    assert binding_bound(p, lat) == bound
    # long copies approach the steady-state rate
    bursts = len(page_bursts(p))
    slope = Fraction(copy_cycles(300, p, lat) - copy_cycles(200, p, lat), 100 * bursts)
    assert abs(slope - steady_period(p, lat)) / steady_period(p, lat) < 0.01


def test_buffer_bound_with_small_fifo():
    p = DmaParams(64, 16, 8, fifo_depth=32)
    assert binding_bound(p, 60) == "buffer"
    assert steady_period(p, 60) == Fraction((60 + 32 + 2) * 16, 32)


def test_monotonic_in_latency_and_outstanding():
    p1, p4 = DmaParams(128, 16, 1), DmaParams(128, 16, 4)
    prev = 0
    for lat in (1, 5, 20, 80, 300):
        c = copy_cycles(4, p1, lat)
        assert c > prev
        assert copy_cycles(4, p4, lat) <= c
        prev = c
    assert steady_beats_per_cycle(p4, 1) == 1.0


@settings(max_examples=25, deadline=None)
@given(dw=st.sampled_from([64, 128, 256]), burst=st.integers(1, 64),
       out=st.integers(1, 8), wout=st.integers(1, 8), wl=st.integers(1, 30),
       lat=st.integers(1, 400), extra=st.integers(1, 300))
def test_extrapolation_matches_exact_recurrence(dw, burst, out, wout, wl, lat, extra):
    p = DmaParams(dw, burst, out, max_write_outstanding=wout, write_latency=wl)
    pages = m._exact_pages(p) + extra
    exact = m._simulate(list(page_bursts(p)) * pages, p, lat)[-1] + 2
    # exact when the steady state is periodic with a short period, never off by 0.1%
    assert abs(copy_cycles(pages, p, lat) - exact) <= exact * 1e-3


def test_exact_up_to_a_huge_page_at_common_settings():
    for p in (DmaParams(64, 16, 4), DmaParams(128, 16, 4), DmaParams(256, 32, 8)):
        for lat in (1, 100):
            exact = m._simulate(list(page_bursts(p)) * 600, p, lat)
            assert copy_cycles(512, p, lat) == exact[512 * len(page_bursts(p)) - 1] + 2
            assert copy_cycles(600, p, lat) == exact[-1] + 2


def test_copy_time_ps_huge_page_is_512_small_pages():
    p = DmaParams(128, 16, 4, clock_hz=2_000_000_000)   # 500 ps cycle
    lat_ps = 80_000                                      # 80 ns = 160 cycles
    assert copy_time_ps(1, 2 << 20, p, lat_ps) == copy_cycles(512, p, 160) * 500
    assert copy_time_ps(3, 4096, p, 80_001) == copy_cycles(3, p, 161) * 500   # rounds up


@pytest.mark.parametrize("kwargs,key", [
    ({"data_width": 96}, "data_width"),
    ({"burst_len": 0}, "burst_len"),
    ({"burst_len": 257}, "burst_len"),
    ({"max_outstanding": 0}, "max_outstanding"),
    ({"fifo_depth": 4}, "fifo_depth"),
    ({"clock_hz": 0}, "clock_hz"),
])
def test_bad_params_name_the_key(kwargs, key):
    with pytest.raises(HwemuError, match=key):
        DmaParams(**kwargs)


def test_bad_arguments():
    p = DmaParams()
    with pytest.raises(HwemuError, match="pages"):
        copy_cycles(0, p, 10)
    with pytest.raises(HwemuError, match="mem_latency"):
        copy_cycles(1, p, 0)
    with pytest.raises(HwemuError, match="page_bytes"):
        copy_time_ps(1, 1000, p, 1000)


def test_rtl_parameters():
    assert DmaParams(256, 12, 3).rtl_parameters() == {
        "DATA_WIDTH": 256, "MAX_BURST_LEN": 12, "MAX_OUTSTANDING": 3,
        "MAX_WRITE_OUTSTANDING": 8}
    assert DmaParams(64, 16, 4).depth == 80


def test_fetch_and_chain_cycles():
    from hwemu.dma.model import chain_cycles, fetch_cycles

    # 32-byte descriptor: 4 beats at 64 bits in one burst: AR (2) + L + 4 beats
    assert fetch_cycles(DmaParams(64, 16, 4), 10) == 2 + 10 + 4
    assert fetch_cycles(DmaParams(256, 16, 4), 10) == 2 + 10 + 1
    # bursts shorter than a descriptor: four single-beat fetches, one after the other
    assert fetch_cycles(DmaParams(64, 2, 4), 10) == 4 * (2 + 10) + 1
    p = DmaParams(128, 16, 4)
    assert chain_cycles([1, 3], p, 20) == (2 * fetch_cycles(p, 20) + copy_cycles(1, p, 20)
                                           + copy_cycles(3, p, 20))
    with pytest.raises(HwemuError):
        chain_cycles([], p, 20)


@pytest.mark.parametrize("params, lat, lw, pages", [
    (DmaParams(256, 64, 4), 3, 1, 1),                      # docs/dma.md: 200 cycles
    (DmaParams(128, 16, 4), 90, 1, 3),
    (DmaParams(64, 12, 2, 3), 40, 7, 2),                   # odd bursts, few responses
    (DmaParams(256, 16, 4, fifo_depth=20), 48, 2, 2),      # buffer-bound
])
def test_simulate_copy_with_constant_memory_is_copy_cycles(params, lat, lw, pages):
    """The per-burst form the emulator's engines use (hwemu.sim.hardware.dma_copy_ps) is the
    same recurrence: constant latencies give copy_cycles exactly."""
    from dataclasses import replace

    from hwemu.dma.model import simulate_copy

    seen = []

    def read(k, edge):
        seen.append(k)
        return lat

    got = simulate_copy(pages, params, read, lambda k, wf, wl: lw)
    assert got == copy_cycles(pages, replace(params, write_latency=lw), lat)
    assert seen == list(range(pages * len(page_bursts(params))))
    if params == DmaParams(256, 64, 4):
        assert got == 200
