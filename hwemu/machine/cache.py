"""Set-associative cache arrays for the timing model (compiled primitives).

One level of cache for many instances (for example the L2 of every core) is three 2-D arrays
with one row per set of every instance, row ``instance * sets + line % sets``:

- ``tags``  int64: the line address (physical address >> 6) held by each way, -1 when invalid;
- ``stamp`` int64: replacement metadata (last use for LRU, insertion time for FIFO);
- ``state`` uint8: coherence state of the line: ``S`` shared clean, ``E`` exclusive clean,
  ``M`` modified (dirty). The LLC uses ``S``/``M`` only: clean or dirty with respect to memory.

Replacement policies: ``lru`` (0), ``fifo`` (1), ``random`` (2, xorshift64 with an explicit
seed, so runs are deterministic). Invalid ways are always filled first.
"""

from __future__ import annotations

import numpy as np
from numba import njit

POLICY_CODES = {"lru": 0, "fifo": 1, "random": 2}
ST_I, ST_S, ST_E, ST_M = 0, 1, 2, 3


def cache_arrays(instances: int, sets: int, ways: int):
    rows = instances * sets
    return (np.full((rows, ways), -1, np.int64), np.zeros((rows, ways), np.int64),
            np.zeros((rows, ways), np.uint8))


@njit(cache=True, inline="always")
def find(tags, row, line):
    ways = tags.shape[1]
    for w in range(ways):
        if tags[row, w] == line:
            return w
    return -1


@njit(cache=True, inline="always")
def touch(stamp, row, way, ctr, policy):
    if policy == 0:
        stamp[row, way] = ctr


@njit(cache=True, inline="always")
def _xorshift(rng):
    x = rng[0]
    x ^= (x << np.uint64(13))
    x ^= (x >> np.uint64(7))
    x ^= (x << np.uint64(17))
    rng[0] = x
    return x


@njit(cache=True)
def victim(tags, stamp, row, policy, rng):
    """The way to fill in ``row``: an invalid way, else by policy."""
    ways = tags.shape[1]
    for w in range(ways):
        if tags[row, w] < 0:
            return w
    if policy == 2:
        return np.int64(_xorshift(rng) % np.uint64(ways))
    best = 0
    bs = stamp[row, 0]
    for w in range(1, ways):
        if stamp[row, w] < bs:
            bs = stamp[row, w]
            best = w
    return best


@njit(cache=True, inline="always")
def install(tags, stamp, state, row, way, line, st, ctr):
    tags[row, way] = line
    stamp[row, way] = ctr
    state[row, way] = st


@njit(cache=True, inline="always")
def invalidate(tags, state, row, line):
    """Drop ``line`` from ``row``; returns its state before (ST_I if absent)."""
    w = find(tags, row, line)
    if w < 0:
        return ST_I
    st = state[row, w]
    tags[row, w] = -1
    state[row, w] = ST_I
    return st
