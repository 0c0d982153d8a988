"""cachegrind semantics on tiny hand-made traces, and the ``hwemu cachesim`` command."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwemu.cachesim import simulate
from hwemu.cachesim.sim import EVENTS, CachegrindSim, format_summary
from hwemu.cli import main
from hwemu.errors import HwemuError
from hwemu.traces.format import TraceChunk, write_trace

I, L, S, M = 0, 1, 2, 3
# Tiny caches: I1/D1 2 sets x 2 ways x 64 B; LL 4 sets x 2 ways x 64 B.
SMALL = dict(I1="256,2,64", D1="256,2,64", LL="512,2,64")


def chunk(*recs, insts=None):
    kind = [r[0] for r in recs]
    addr = [r[1] for r in recs]
    size = [r[2] for r in recs]
    return TraceChunk.from_arrays(kind, addr, size, insts=insts)


def counts(*recs, **geo):
    r = simulate(chunk(*recs), **(geo or SMALL))
    return [r[e] for e in EVENTS]


def test_cold_misses_then_hits():
    #            Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
    assert counts((I, 0x1000, 4), (I, 0x1004, 4), (L, 0x8000, 8), (S, 0x8008, 8)) == \
        [2, 1, 1, 1, 1, 1, 1, 0, 0]


def test_modify_counts_as_one_read():
    assert counts((M, 0x8000, 4), (M, 0x8000, 4)) == [0, 0, 0, 2, 1, 1, 0, 0, 0]


def test_straddling_access_is_one_access_and_one_miss():
    # 8 bytes at 0x803c cover lines 0x8000 and 0x8040: one access, one miss, both lines loaded
    assert counts((L, 0x803C, 8), (L, 0x8000, 1), (L, 0x8040, 1)) == [0, 0, 0, 3, 1, 1, 0, 0, 0]
    # half-hit straddle still counts as a miss; the LL is asked and misses on the new line
    assert counts((L, 0x8000, 1), (L, 0x803C, 8)) == [0, 0, 0, 2, 2, 2, 0, 0, 0]
    # instruction straddle: same rule in I1
    assert counts((I, 0x103E, 4), (I, 0x1040, 2)) == [2, 1, 1, 0, 0, 0, 0, 0, 0]


def test_ll_is_shared_and_only_asked_on_l1_miss():
    # The data load of line 0x1000 misses D1 but hits LL, filled by the earlier I1 miss.
    assert counts((I, 0x1000, 4), (L, 0x1000, 8)) == [1, 1, 1, 1, 1, 0, 0, 0, 0]
    # Evict 0x8000 from D1 (2 ways, set 0: 0x8000, 0x8080, 0x8100) but not from LL
    # (4 sets x 2 ways: set 0 holds 0x8000 and 0x8100; 0x8080 goes to set 2).
    assert counts((L, 0x8000, 4), (L, 0x8080, 4), (L, 0x8100, 4), (L, 0x8000, 4)) == \
        [0, 0, 0, 4, 4, 3, 0, 0, 0]


def test_fifo_order_in_d1():
    # set 0 of D1 (2 ways): A, B, A, C evicts A under FIFO (inserted first; the hit does not
    # count), so the last A misses D1 and hits LL; under LRU it hits D1
    A, B, C = 0x8000, 0x8080, 0x8100
    recs = [(L, A, 4), (L, B, 4), (L, A, 4), (L, C, 4), (L, A, 4)]
    fifo = simulate(chunk(*recs), policy="fifo", **SMALL)
    assert [fifo[e] for e in EVENTS] == [0, 0, 0, 5, 4, 3, 0, 0, 0]
    assert counts(*recs) == [0, 0, 0, 5, 3, 3, 0, 0, 0]
    assert fifo["policy"] == "fifo"


def test_lru_order_in_d1():
    # set 0 of D1 (2 ways): A, B, A, C evicts B (LRU), so A hits and B misses
    A, B, C = 0x8000, 0x8080, 0x8100
    r = counts((L, A, 4), (L, B, 4), (L, A, 4), (L, C, 4), (L, A, 4), (L, B, 4))
    assert r[3:5] == [6, 4]


def test_write_allocate():
    # a store miss allocates, so the following load hits
    assert counts((S, 0x8000, 4), (L, 0x8000, 4)) == [0, 0, 0, 1, 0, 0, 1, 1, 1]


def test_sizes_clamped_to_min_line_size_and_zero_to_one():
    # 200-byte access clamped to 64 B: from 0x8010 that still straddles two lines (one miss);
    # a following access to the third line 0x8080 misses (it was not touched).
    assert counts((L, 0x8010, 200), (L, 0x8040, 4), (L, 0x8080, 4)) == [0, 0, 0, 3, 2, 2, 0, 0, 0]
    # size 0 (VEX could not decode the instruction) counts as 1 byte, not a straddle
    assert counts((I, 0x1040, 0), (I, 0x1000, 1)) == [2, 2, 2, 0, 0, 0, 0, 0, 0]


def test_insts_column_counts_towards_ir():
    r = simulate(chunk((L, 0x8000, 4), (L, 0x8004, 4), insts=[3, 2]), **SMALL)
    assert (r["Ir"], r["I1mr"], r["Dr"]) == (5, 0, 2)


def test_state_persists_across_chunks_and_matches_one_chunk():
    rng = np.random.default_rng(1)
    n = 20000
    kind = rng.integers(0, 4, n)
    addr = rng.integers(0, 1 << 14, n).astype(np.uint64) + np.uint64(0x10000)
    size = rng.choice([1, 2, 4, 8, 16, 32], n)
    whole = TraceChunk.from_arrays(kind, addr, size)
    parts = [whole.slice(a, a + 777) for a in range(0, n, 777)]
    one = simulate(whole, **SMALL)
    many = simulate(iter(parts), **SMALL)
    assert one == many
    assert one["records"] == n


def test_bad_kind_is_an_error():
    c = TraceChunk.from_arrays([0, 7], [0x1000, 0x1000], [4, 4])
    with pytest.raises(HwemuError, match="trace record 1: kind 7"):
        simulate(c, **SMALL)


def test_result_shape_and_rates():
    r = simulate(chunk((I, 0x1000, 4), (L, 0x8000, 8), (S, 0x8000, 8)), **SMALL)
    assert r["D1"] == {"size": 256, "assoc": 2, "line_size": 64, "sets": 2}
    assert r["miss_rates"]["D1"] == 0.5 and r["miss_rates"]["D1w"] == 0.0
    assert r["miss_rates"]["LL"] == pytest.approx(2 / 3)
    text = format_summary(r)
    assert "summary: 1 1 1 1 1 1 1 0 0" in text
    assert "D1 cache:         256 B, 64 B, 2-way associative" in text


def test_geometry_as_tuple_and_defaults():
    s = CachegrindSim(I1=(4096, 1, 32))
    assert s.I1.describe() == "4096 B, 32 B, direct-mapped"
    assert s.max_size == 32
    assert s.D1.spec() == "32768,8,64" and s.LL.spec() == "8388608,16,64"


# --- command line ----------------------------------------------------------------------------

@pytest.fixture
def trace(tmp_path):
    p = tmp_path / "t.parquet"
    write_trace(p, chunk((I, 0x1000, 4), (L, 0x8000, 8), (S, 0x8008, 8), (M, 0x9000, 4)),
                source_format="test", program="handmade")
    return p


def test_cli_json(trace, capsys):
    assert main(["cachesim", str(trace), "--I1", "256,2,64", "--D1", "256,2,64",
                 "--LL", "512,2,64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [out[e] for e in EVENTS] == [1, 1, 1, 2, 2, 2, 1, 0, 0]
    assert out["LL"]["sets"] == 4 and out["program"] == "handmade"
    assert set(out["miss_rates"]) >= {"I1", "D1", "LL"}


def test_cli_text(trace, capsys):
    assert main(["cachesim", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "I   refs:" in out and "LL miss rate:" in out
    assert "LL cache:         8388608 B, 64 B, 16-way associative" in out


@pytest.mark.parametrize("args, words", [
    (["--D1", "32768,3,64"], "--D1 32768,3,64: number of sets (170.67)"),
    (["--LL", "8388608,16,60"], "--LL 8388608,16,60: line size (60 B) is not a power of two"),
    (["--I1", "32K"], "--I1 32K: expected SIZE,ASSOC,LINE_SIZE"),
])
def test_cli_bad_geometry_exit_2(trace, capsys, args, words):
    assert main(["cachesim", str(trace), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwemu: error: ") and words in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_missing_and_foreign_files(tmp_path, capsys):
    assert main(["cachesim", str(tmp_path / "none.parquet")]) == 2
    assert "no such trace file" in capsys.readouterr().err
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    assert main(["cachesim", str(junk)]) == 2
    assert "not a readable hwemu trace" in capsys.readouterr().err


def test_cli_help_has_example(capsys):
    with pytest.raises(SystemExit) as e:
        main(["cachesim", "--help"])
    assert e.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_block_zero_starts_present_like_cachegrind():
    # cachegrind's zero-filled tags make addresses below one line hit in a cold cache, in every
    # way of set 0 until pushed out by other blocks of set 0
    assert counts((L, 0x0, 4), (L, 0x3F, 1)) == [0, 0, 0, 2, 0, 0, 0, 0, 0]
    # two more blocks of set 0 (2-way D1) push both copies of block 0 out of D1 (LL keeps one)
    assert counts((L, 0x8000, 4), (L, 0x8080, 4), (L, 0x0, 4)) == [0, 0, 0, 3, 3, 2, 0, 0, 0]


def test_other_policies_are_deterministic_and_differ(trace, capsys):
    rng = np.random.default_rng(5)
    n = 30000
    c = TraceChunk.from_arrays(rng.integers(1, 3, n), rng.integers(0, 1 << 13, n).astype(np.uint64)
                               + np.uint64(1 << 20), np.full(n, 8))
    lru = simulate(c, **SMALL)
    r1 = simulate(c, policy="random", seed=1, **SMALL)
    assert r1 == simulate(c, policy="random", seed=1, **SMALL)
    assert r1["D1mr"] != simulate(c, policy="random", seed=2, **SMALL)["D1mr"]
    srrip = simulate(c, policy="srrip", **SMALL)
    assert lru["Dr"] == r1["Dr"] == srrip["Dr"]
    assert len({lru["D1mr"], r1["D1mr"], srrip["D1mr"]}) == 3
    assert r1["policy"] == "random" and r1["seed"] == 1 and lru["policy"] == "lru"
    assert main(["cachesim", str(trace), "--policy", "srrip"]) == 0
    assert "Replacement:      srrip in all three caches" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:          # argparse usage error
        main(["cachesim", str(trace), "--policy", "mru"])
    assert e.value.code == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 12)),
                min_size=1, max_size=300),
       st.sampled_from([("128,1,64", "256,2,64", "1024,4,64"), ("256,2,32", "512,4,32", "512,2,64"),
                        ("128,2,64", "128,1,64", "256,4,64")]))
def test_lru_core_equals_general_core(recs, geo):
    """The LRU configuration's own core (cachegrind's most-recent-first sets) and the general
    cache core in cachegrind's initial state give the same counters, straddles and block 0
    included."""
    from hwemu.cachesim import setassoc as sa
    from hwemu.cachesim.sim import _replay

    def cachegrind_initial_state(c):
        # cachegrind zero-fills its tag arrays and has no valid bits, so block 0 starts in
        # every way of set 0: the same in a general-core LRU cache, with the oldest stamps
        assoc = int(c.params[sa.P_ASSOC])
        c.tags[:assoc] = 0
        c.flags[:assoc] = sa.F_VALID
        c.coh[:assoc] = sa.MESI_E
        c.repl[:assoc] = 0
        return c

    kinds = [k for k, _, _ in recs]
    # addresses on a few lines around 0 and a few sets apart, some straddling a line boundary
    addrs = [line * 24 + (line % 5) * 7 for _, line, _ in recs]
    sizes = [sz for _, _, sz in recs]
    c = chunk(*zip(kinds, addrs, sizes))
    fast = CachegrindSim(*geo)
    fast.feed(c)
    caches = [cachegrind_initial_state(sa.new_cache(g)) for g in (fast.I1, fast.D1, fast.LL)]
    ref = np.zeros(len(EVENTS), np.int64)
    assert _replay(*caches, c.kind, c.size, c.addr, c.insts, fast.max_size, ref) == -1
    assert fast.counts.tolist() == ref.tolist()
