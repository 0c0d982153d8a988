"""The set-associative core: exact hit/miss/eviction behaviour of each primitive."""

import numba
import numpy as np
import pytest

from hwemu.cachesim import setassoc as sa
from hwemu.errors import HwemuError

# 4 sets x 2 ways x 64 B lines: blocks b, b+4, b+8 ... share a set.
G = sa.CacheGeometry(512, 2, 64)


def acc(c, block, write=False):
    st, victim = sa.access(c, np.uint64(block), write)
    return int(st), int(victim)


def test_geometry_derived_values():
    g = sa.CacheGeometry(32768, 8, 64)
    assert (g.sets, g.lines, g.line_bits) == (64, 512, 6)
    assert g.describe() == "32768 B, 64 B, 8-way associative"
    assert sa.CacheGeometry(4096, 1, 32).describe() == "4096 B, 32 B, direct-mapped"
    assert sa.CacheGeometry.parse("49152,12,64", "--D1").sets == 64   # 12-way is fine


@pytest.mark.parametrize("spec, words", [
    ("32768,3,64", "--D1 32768,3,64: number of sets (170.67)"),
    ("98304,8,64", "number of sets (192) = size / (assoc * line size) is not a power of two"),
    ("32768,8,48", "line size (48 B) is not a power of two"),
    ("32768,8,8", "line size (8 B) is below the minimum of 16 B"),
    ("64,1,64", "cache size (64 B) must exceed the line size"),
    ("1024,32,64", "associativity (32) exceeds the number of lines (16)"),
    ("32768,8", "expected SIZE,ASSOC,LINE_SIZE"),
    ("32768,x,64", "associativity 'x' is not a positive integer"),
    ("32768,0,64", "assoc must be a positive integer"),
])
def test_geometry_errors_name_the_option(spec, words):
    with pytest.raises(HwemuError) as e:
        sa.CacheGeometry.parse(spec, "--D1")
    msg = str(e.value)
    assert msg.startswith("--D1 ")
    assert words in msg
    assert "\n" not in msg


def test_lru_order_and_eviction():
    c = sa.new_cache(G)
    assert acc(c, 0) == (sa.ST_MISS, 0)
    assert acc(c, 4) == (sa.ST_MISS, 0)           # set 0 now full: {0, 4}
    assert acc(c, 0) == (sa.ST_HIT, 0)            # 4 is now LRU
    assert acc(c, 8) == (sa.ST_EVICT, 4)          # evicts 4, not 0
    assert acc(c, 0) == (sa.ST_HIT, 0)
    assert acc(c, 4) == (sa.ST_EVICT, 8)
    assert list(sa.resident_blocks(c)) == [0, 4]
    assert acc(c, 1) == (sa.ST_MISS, 0)           # other set untouched by set 0 traffic


def test_write_allocate_dirty_eviction_and_mesi():
    c = sa.new_cache(G)
    assert acc(c, 0, write=True) == (sa.ST_MISS, 0)   # write miss allocates
    i = sa.find(c, np.uint64(0))
    assert i >= 0 and c.coh[i] == sa.MESI_M and c.flags[i] == sa.F_VALID | sa.F_DIRTY
    assert acc(c, 4) == (sa.ST_MISS, 0)
    j = sa.find(c, np.uint64(4))
    assert c.coh[j] == sa.MESI_E and c.flags[j] == sa.F_VALID
    assert acc(c, 8) == (sa.ST_EVICT | sa.ST_EVICT_DIRTY, 0)   # dirty block 0 written back
    assert acc(c, 12) == (sa.ST_EVICT, 4)                     # clean victim
    assert list(sa.dirty_blocks(c)) == []
    acc(c, 12, write=True)                                     # write hit dirties the line
    assert list(sa.dirty_blocks(c)) == [12]


def test_probe_does_not_update_lru():
    c = sa.new_cache(G)
    acc(c, 0)
    acc(c, 4)
    before = c.repl.copy()
    assert sa.find(c, np.uint64(0)) >= 0            # probe 0: must not make it MRU
    assert sa.find(c, np.uint64(99)) == -1
    assert np.array_equal(before, c.repl)
    assert acc(c, 8) == (sa.ST_EVICT, 0)            # 0 was still LRU


def test_invalidate_and_clean():
    c = sa.new_cache(G)
    acc(c, 0, write=True)
    acc(c, 4)
    assert sa.invalidate(c, np.uint64(0)) == sa.ST_HIT | sa.ST_EVICT_DIRTY
    assert sa.invalidate(c, np.uint64(0)) == sa.ST_MISS
    assert sa.invalidate(c, np.uint64(4)) == sa.ST_HIT
    assert len(sa.resident_blocks(c)) == 0
    assert (c.coh == sa.MESI_I).all()
    acc(c, 0, write=True)
    assert sa.clean(c, np.uint64(0)) == sa.ST_HIT | sa.ST_EVICT_DIRTY
    assert sa.clean(c, np.uint64(0)) == sa.ST_HIT
    assert c.coh[sa.find(c, np.uint64(0))] == sa.MESI_E
    # the invalidated way is refilled before any valid line is evicted
    acc(c, 4)
    sa.invalidate(c, np.uint64(0))
    assert acc(c, 8) == (sa.ST_MISS, 0)
    assert list(sa.resident_blocks(c)) == [4, 8]


def test_fill_is_not_a_demand_access_but_installs():
    c = sa.new_cache(G)
    assert sa.fill(c, np.uint64(0), False) == (sa.ST_MISS, 0)
    assert sa.fill(c, np.uint64(0), True) == (sa.ST_HIT, 0)
    assert list(sa.dirty_blocks(c)) == [0]
    sa.fill(c, np.uint64(4), False)
    st, victim = sa.fill(c, np.uint64(8), False)
    assert (st, victim) == (sa.ST_EVICT | sa.ST_EVICT_DIRTY, 0)


def test_random_policy_is_seeded_and_deterministic():
    def run(seed):
        c = sa.new_cache(sa.CacheGeometry(1024, 4, 64), policy="random", seed=seed)
        rng = np.random.default_rng(7)
        out = [acc(c, int(b)) for b in rng.integers(0, 64, 500)]
        return out
    assert run(1) == run(1)
    assert run(1) != run(2)
    c = sa.new_cache(sa.CacheGeometry(1024, 4, 64), policy=sa.POLICY_RANDOM, seed=3)
    for b in (0, 4, 8, 12):                   # invalid ways are filled before any eviction
        assert acc(c, b) == (sa.ST_MISS, 0)


def test_srrip_protects_rereferenced_lines():
    # 1 set, 4 ways. Blocks 0 and 1 are re-referenced (RRPV 0); a scan of 4 new blocks then
    # evicts only scan blocks (inserted at RRPV 2), never 0 or 1; LRU would evict 0 and 1.
    g = sa.CacheGeometry(256, 4, 64)
    c = sa.new_cache(g, policy="srrip")
    for b in (0, 1, 0, 1):
        acc(c, b)
    for b in range(10, 14):
        acc(c, b)
    assert {0, 1} <= set(sa.resident_blocks(c).tolist())
    lru = sa.new_cache(g)
    for b in (0, 1, 0, 1, *range(10, 14)):
        acc(lru, b)
    assert not ({0, 1} & set(sa.resident_blocks(lru).tolist()))


def test_ref_is_miss_straddle_counts_once_and_touches_both():
    c = sa.new_cache(G)
    assert sa.ref_is_miss(c, np.uint64(60), 8)         # lines 0 and 1: one miss
    assert list(sa.resident_blocks(c)) == [0, 1]
    assert not sa.ref_is_miss(c, np.uint64(60), 8)
    assert sa.ref_is_miss(c, np.uint64(124), 8)        # line 1 hits, line 2 misses: a miss
    assert list(sa.resident_blocks(c)) == [0, 1, 2]


def test_bad_policy():
    with pytest.raises(HwemuError, match="unknown"):
        sa.new_cache(G, policy="mru")


def test_callable_from_user_njit_loop():
    @numba.njit(_nrt=False)
    def loop(c, blocks, writes):
        wb = 0
        for i in range(blocks.shape[0]):
            st, victim = sa.access(c, blocks[i], writes[i])
            if st & sa.ST_EVICT_DIRTY:
                wb += 1
        return wb

    c = sa.new_cache(G)
    blocks = np.array([0, 4, 8, 12, 0], np.uint64)
    writes = np.array([True, True, False, False, False])
    assert loop(c, blocks, writes) == 2


def test_tree_plru_victims():
    # one set, 4 ways. After A B C D the tree points at A; touching A then points it at the
    # right half, where D was touched last, so E evicts C (true LRU would evict B).
    c = sa.new_cache(sa.CacheGeometry(256, 4, 64), policy="plru")
    A, B, C, D, E = 10, 11, 12, 13, 14
    for b in (A, B, C, D):
        assert acc(c, b) == (sa.ST_MISS, 0)
    assert acc(c, A) == (sa.ST_HIT, 0)
    assert acc(c, E) == (sa.ST_EVICT, C)
    assert acc(c, B) == (sa.ST_HIT, 0)
    # tree now: root -> right (B touched on the left); right node -> D (E touched in way 2)
    assert acc(c, 15) == (sa.ST_EVICT, D)
    # invalidation keeps the tree and the freed way is refilled first
    sa.invalidate(c, np.uint64(A))
    assert acc(c, 16) == (sa.ST_MISS, 0)
    assert sorted(sa.resident_blocks(c).tolist()) == [B, E, 15, 16]


def test_plru_needs_power_of_two_ways():
    with pytest.raises(HwemuError, match="tree PLRU needs a power-of-two associativity"):
        sa.new_cache(sa.CacheGeometry(49152, 12, 64, where="--LL"), policy="plru")


def test_fifo_exact_hits_misses_and_victims():
    # 4 sets x 2 ways: blocks 0, 4, 8 share set 0. FIFO evicts in insertion order whatever the
    # hits; LRU (same sequence) would evict 4 at the third miss, FIFO evicts 0.
    c = sa.new_cache(G, policy="fifo")
    assert acc(c, 0) == (sa.ST_MISS, 0)
    assert acc(c, 4, write=True) == (sa.ST_MISS, 0)
    assert acc(c, 0) == (sa.ST_HIT, 0)            # a hit does not reorder
    assert acc(c, 8) == (sa.ST_EVICT, 0)          # oldest insertion: 0
    assert acc(c, 0) == (sa.ST_EVICT | sa.ST_EVICT_DIRTY, 4)   # then 4 (dirty)
    assert acc(c, 8) == (sa.ST_HIT, 0)
    assert acc(c, 12) == (sa.ST_EVICT, 8)         # 8 was inserted before the second 0
    assert list(sa.resident_blocks(c)) == [0, 12]
    # a fill of a resident block and an invalidation keep the insertion order
    assert sa.fill(c, np.uint64(0), True) == (sa.ST_HIT, 0)
    assert sa.invalidate(c, np.uint64(12)) == sa.ST_HIT
    assert acc(c, 16) == (sa.ST_MISS, 0)          # the invalid way first
    assert acc(c, 20) == (sa.ST_EVICT | sa.ST_EVICT_DIRTY, 0)
    lru = sa.new_cache(G)
    assert [acc(lru, b)[1] for b in (0, 4, 0, 8)][-1] == 4


def test_invalid_lines_hold_the_sentinel_and_flags_follow_state():
    c = sa.new_cache(G)
    assert (c.tags == sa.INVALID_TAG).all() and (c.flags == 0).all()
    acc(c, 5, write=True)
    acc(c, 6)
    i, j = sa.find(c, np.uint64(5)), sa.find(c, np.uint64(6))
    assert c.flags[i] == sa.F_VALID | sa.F_DIRTY and c.coh[i] == sa.MESI_M
    assert c.flags[j] == sa.F_VALID and c.coh[j] == sa.MESI_E
    sa.set_coh(c, i, sa.MESI_S)                   # a downgrade cleans the line
    assert c.flags[i] == sa.F_VALID and list(sa.dirty_blocks(c)) == []
    sa.set_coh(c, j, sa.MESI_M)
    assert list(sa.dirty_blocks(c)) == [6]
    assert sa.invalidate_line(c, j) == sa.ST_HIT | sa.ST_EVICT_DIRTY
    assert c.tags[j] == sa.INVALID_TAG and c.flags[j] == 0 and c.coh[j] == sa.MESI_I
    assert sa.invalidate_line(c, j) == sa.ST_MISS
    # the sentinel is never a valid block: looking it up finds nothing
    assert sa.find(c, np.uint64(5)) == i


def test_instances_share_arrays_not_lines():
    # 3 instances of 4 sets x 2 ways: row = instance * 4 + set, line = row * 2 + way
    c = sa.new_cache(G, instances=3)
    assert c.tags.shape == (24,) and int(c.params[sa.P_INSTANCES]) == 3
    assert sa.set_row(c, 2, 9) == 2 * 4 + 1
    for inst in range(3):
        assert sa.access_in(c, inst, np.uint64(0), inst == 1) == (sa.ST_MISS, 0)
    assert sa.find_in(c, 0, 0) == 0 and sa.find_in(c, 1, 0) == 8 and sa.find_in(c, 2, 0) == 16
    assert sa.find(c, np.uint64(0)) == 0                 # the single-instance API is instance 0
    # traffic in instance 1 evicts only from instance 1
    sa.access_in(c, 1, np.uint64(4), False)
    assert sa.access_in(c, 1, np.uint64(8), False) == (sa.ST_EVICT | sa.ST_EVICT_DIRTY, 0)
    assert sa.find_in(c, 0, 0) == 0 and sa.find_in(c, 2, 0) == 16 and sa.find_in(c, 1, 0) == -1
    assert list(sa.resident_blocks(c, 1)) == [4, 8] and list(sa.resident_blocks(c)) == [0, 0, 4, 8]
    assert list(sa.dirty_blocks(c, 1)) == [] and list(sa.dirty_blocks(c, 0)) == []
    assert sa.fill_in(c, 2, np.uint64(0), True) == (sa.ST_HIT, 0)
    assert list(sa.dirty_blocks(c)) == [0]
    assert sa.clean_in(c, 2, np.uint64(0)) == sa.ST_HIT | sa.ST_EVICT_DIRTY
    assert sa.invalidate_in(c, 0, np.uint64(0)) == sa.ST_HIT
    assert sa.invalidate_in(c, 0, np.uint64(0)) == sa.ST_MISS
    sa.invalidate_instance(c, 1)
    assert list(sa.resident_blocks(c)) == [0]
    assert sa.line_of(c, 19) == (9, 1)
    with pytest.raises(IndexError):
        sa.invalidate_instance(c, 3)


def test_row_primitives_build_an_access():
    # what a caller with its own per-line payload does: find, else pick a victim and install
    c = sa.new_cache(G, instances=2)
    payload = np.zeros(c.tags.shape[0], np.int64)

    @numba.njit(_nrt=False)
    def put(c, payload, inst, block, value):
        r = sa.set_row(c, inst, block)
        i = sa.find_in_row(c, r, block)
        if i >= 0:
            sa.touch_line(c, i)
            payload[i] = value
            return np.uint64(0)
        i = sa.victim_in_row(c, r)
        st, victim = sa.install(c, i, block, sa.MESI_S)
        payload[i] = value
        return victim if st & sa.ST_EVICT else np.uint64(sa.INVALID_TAG)

    assert put(c, payload, 1, 0, 10) == sa.INVALID_TAG
    assert put(c, payload, 1, 4, 11) == sa.INVALID_TAG
    assert put(c, payload, 1, 0, 12) == 0              # hit: 0 is now most recent
    assert put(c, payload, 1, 8, 13) == 4              # LRU victim 4, payload replaced
    i = sa.find_in(c, 1, 8)
    assert payload[i] == 13 and c.coh[i] == sa.MESI_S and c.flags[i] == sa.F_VALID
    assert payload[sa.find_in(c, 1, 0)] == 12
    assert sa.find_in(c, 0, 0) == -1


def test_modulo_set_index_for_non_power_of_two_sets():
    # the machine's 11-way 33 MiB LLC has 49152 sets: set = block % sets
    c = sa.new_cache_sets(3, 2, "lru", instances=2)
    assert int(c.params[sa.P_SET_MASK]) == -1
    assert sa.set_row(c, 1, 7) == 3 + 1
    for b in (0, 3, 6):                              # all set 0 of instance 0
        sa.access_in(c, 0, np.uint64(b), False)
    assert list(sa.resident_blocks(c, 0)) == [3, 6]
    # a power-of-two set count uses bit selection, which gives the same set
    p = sa.new_cache_sets(4, 2)
    assert int(p.params[sa.P_SET_MASK]) == 3 and sa.set_row(p, 0, 13) == 13 % 4


def test_policy_names_and_errors_name_the_key():
    assert sa.policy_id("FIFO", 8) == sa.POLICY_FIFO
    assert set(sa.POLICIES) == {"lru", "fifo", "random", "srrip", "plru"}
    with pytest.raises(HwemuError, match=r"^\[cache.llc\] policy: tree PLRU needs .* not 11$"):
        sa.new_cache_sets(64, 11, "plru", where="[cache.llc] policy")
    with pytest.raises(HwemuError, match="replacement policy id 9 is unknown"):
        sa.new_cache_sets(4, 2, 9)
    with pytest.raises(HwemuError, match="must be positive"):
        sa.new_cache_sets(4, 2, instances=0)


@pytest.mark.parametrize("policy", ["lru", "fifo", "random", "srrip", "plru"])
def test_every_policy_fills_invalid_ways_first_and_stays_in_its_row(policy):
    c = sa.new_cache(sa.CacheGeometry(1024, 4, 64), policy=policy, seed=3, instances=2)
    for b in (0, 4, 8, 12):
        assert sa.access_in(c, 1, np.uint64(b), False) == (sa.ST_MISS, 0)
    rng = np.random.default_rng(1)
    for b in rng.integers(0, 16, 200) * 4:            # set 0 only
        st, victim = sa.access_in(c, 1, np.uint64(b), False)
        assert st in (sa.ST_HIT, sa.ST_EVICT)
    assert len(sa.resident_blocks(c, 1)) == 4 and len(sa.resident_blocks(c, 0)) == 0


def test_same_set_row_is_set_row_in_the_other_instance():
    # 3 sets (not a power of two: set_row divides) x 2 ways, 4 instances
    c = sa.new_cache_sets(3, 2, instances=4)
    for block in (0, 1, 2, 5, 1000, 2 ** 40 + 7):
        for i in range(4):
            for o in range(4):
                row = sa.set_row(c, i, np.uint64(block))
                assert sa.same_set_row(c, row, i, o) == sa.set_row(c, o, np.uint64(block))
