"""Set-associative arrays: lookup, replacement policies, invalidation."""

import numpy as np

from hwemu.machine.cache import (ST_M, ST_S, cache_arrays, find, install, invalidate, touch,
                                 victim)


def test_lru_evicts_least_recently_used():
    t, s, st = cache_arrays(1, 1, 4)
    rng = np.array([1], np.uint64)
    for i, line in enumerate([10, 11, 12, 13]):
        w = victim(t, s, 0, 0, rng)
        assert w == i                       # invalid ways first, in order
        install(t, s, st, 0, w, line, ST_S, i + 1)
    touch(s, 0, find(t, 0, 10), 10, 0)      # 10 becomes most recent
    w = victim(t, s, 0, 0, rng)
    assert t[0, w] == 11


def test_fifo_ignores_hits():
    t, s, st = cache_arrays(1, 1, 2)
    rng = np.array([1], np.uint64)
    install(t, s, st, 0, 0, 1, ST_S, 1)
    install(t, s, st, 0, 1, 2, ST_S, 2)
    touch(s, 0, 0, 5, 1)                    # FIFO: a hit does not move line 1
    assert t[0, victim(t, s, 0, 1, rng)] == 1


def test_random_is_deterministic_for_a_seed():
    def picks(seed):
        t, s, st = cache_arrays(1, 1, 8)
        t[:] = np.arange(8)
        rng = np.array([seed], np.uint64)
        return [victim(t, s, 0, 2, rng) for _ in range(20)]
    assert picks(7) == picks(7)
    assert picks(7) != picks(8)
    assert set(picks(7)) <= set(range(8))


def test_invalidate_reports_state():
    t, s, st = cache_arrays(2, 4, 2)
    install(t, s, st, 5, 1, 99, ST_M, 1)
    assert invalidate(t, st, 5, 99) == ST_M
    assert find(t, 5, 99) == -1
    assert invalidate(t, st, 5, 99) == 0
