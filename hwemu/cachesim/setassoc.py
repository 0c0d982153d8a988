"""The set-associative cache core: compiled primitives over numpy arrays of state.

This module is the foundation that both ``hwemu cachesim`` and the NUMA timing model
(``hwemu.machine``) build on. A cache is a :class:`CacheState` named tuple of numpy arrays;
every per-access operation is a small numba ``@njit(cache=True)`` function that takes that tuple
and works on the arrays in place. Nothing allocates or touches Python objects per access, so the
functions can be called from any other ``@njit`` loop.

Geometry and line numbering
---------------------------
A line address (``block``) is ``addr >> line_bits``. The set is selected by bit selection,
``set = block & set_mask`` (as in cachegrind, ``cachegrind/cg_sim.c``), and the *whole block
number* is stored as the tag, so a victim's address is simply ``victim_block << line_bits``.
Line ``i = set * assoc + way`` is the flat index used by every per-line array.

State (:class:`CacheState`)
---------------------------
==========  ==============  ==================================================================
field       dtype / shape   meaning
==========  ==============  ==================================================================
tags        uint64[L]       block number held by line ``i`` (meaningful only when valid)
flags       uint8[L]        bit 0 ``F_VALID``, bit 1 ``F_DIRTY``
coh         uint8[L]        coherence state for the machine model: ``MESI_I/S/E/M`` (0..3);
                            the core sets it to ``MESI_I`` when a line is evicted or
                            invalidated and to ``MESI_E`` (clean fill) / ``MESI_M`` (write
                            fill) when it allocates; callers may overwrite it freely
repl        uint64[L]       replacement metadata: LRU time stamp, SRRIP re-reference value, or
                            (PLRU) the set's tree bits in the set's first line
params      int64[8]        ``P_SET_MASK, P_LINE_BITS, P_ASSOC, P_POLICY, P_CLOCK, P_RNG,
                            P_SETS, P_LINE_BYTES`` (``P_CLOCK``/``P_RNG`` change as it runs)
==========  ==============  ==================================================================

Replacement policies (integer ids, ``params[P_POLICY]``)
-------------------------------------------------------
``POLICY_LRU`` (0, default)
    true LRU by a per-cache access clock; an invalid way is always filled first (lowest way).
    Hit/miss behaviour is identical to cachegrind's move-to-front lists.
``POLICY_RANDOM`` (1)
    an invalid way first, else a way drawn from a xorshift64* generator seeded at creation
    (deterministic for a given seed).
``POLICY_SRRIP`` (2)
    static re-reference interval prediction with 2-bit RRPVs (Jaleel et al., ISCA 2010,
    "High Performance Cache Replacement Using Re-Reference Interval Prediction", SRRIP-HP):
    insert with RRPV 2, promote to 0 on a hit, evict the first way with RRPV 3 after ageing.
``POLICY_PLRU`` (3)
    tree pseudo-LRU (assoc - 1 bits per set, kept in ``repl`` of the set's first line; needs a
    power-of-two associativity <= 64): each reference points the bits on its path away from
    it; the victim is found by following the bits from the root. An invalid way goes first.

Per-access API (all ``@njit``; ``c`` is a :class:`CacheState`)
---------------------------------------------------------------
``find(c, block) -> int``
    flat line index holding ``block``, or -1. Probing: no state changes.
``access(c, block, is_write) -> (status, victim_block)``
    a demand access with write-allocate and write-back. On a hit the replacement state is
    updated and, for a write, the line is marked dirty. On a miss a victim is chosen, the block
    is installed (dirty if ``is_write``) and the victim reported. ``status`` is a bit set:
    ``ST_HIT`` (1), ``ST_EVICT`` (2: a valid line was displaced, its block in
    ``victim_block``), ``ST_EVICT_DIRTY`` (4: and it was dirty, i.e. a write-back is due).
``fill(c, block, dirty) -> (status, victim_block)``
    install a block without counting as a demand access (prefetch, fill from below, or
    inclusion); if already present only the dirty bit is or-ed in and replacement is touched.
``invalidate(c, block) -> status``
    drop the block (coherence invalidation, back-invalidation). Returns ``ST_HIT`` if it was
    present, plus ``ST_EVICT_DIRTY`` if it was dirty (the caller owes a write-back).
``clean(c, block) -> status``
    clear the dirty bit (write-back without invalidation, e.g. a MESI M -> S downgrade).
    Returns ``ST_HIT`` if present, plus ``ST_EVICT_DIRTY`` if it was dirty.
``touch_line(c, line)``
    mark a line most recently used / re-referenced per the policy.
``ref_is_miss(c, addr, size) -> bool``
    cachegrind's reference semantics (``cg_sim.c: cachesim_ref_is_miss``): an access that
    straddles two lines touches both (always both, in order) and is one miss if either misses.
    Reads only (no dirty tracking); used by the cachegrind-exact replay.

Python-side helpers: :class:`CacheGeometry` (validated geometry, parsed from ``S,A,L`` strings),
:func:`new_cache`, :func:`reset`, :func:`line_of` (decode a flat index), :func:`resident_blocks`
and :func:`dirty_blocks` (for tests and reports).

Example, from another numba loop::

    from hwemu.cachesim import setassoc as sa
    l1 = sa.new_cache(sa.CacheGeometry(32768, 8, 64))          # LRU

    @numba.njit
    def run(l1, addrs, writes):
        wbs = 0
        for i in range(addrs.shape[0]):
            st, victim = sa.access(l1, addrs[i] >> 6, writes[i])
            if st & sa.ST_EVICT_DIRTY:
                wbs += 1            # victim << 6 goes to the next level
        return wbs
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from hwemu.errors import HwemuError

# --- flags and return codes -------------------------------------------------------------------
F_VALID = 1
F_DIRTY = 2

ST_MISS = 0
ST_HIT = 1
ST_EVICT = 2
ST_EVICT_DIRTY = 4

MESI_I, MESI_S, MESI_E, MESI_M = 0, 1, 2, 3

POLICY_LRU = 0
POLICY_RANDOM = 1
POLICY_SRRIP = 2
POLICY_PLRU = 3
POLICIES = {"lru": POLICY_LRU, "random": POLICY_RANDOM, "srrip": POLICY_SRRIP, "plru": POLICY_PLRU}
POLICY_NAMES = {v: k for k, v in POLICIES.items()}

# params[] slots
P_SET_MASK, P_LINE_BITS, P_ASSOC, P_POLICY, P_CLOCK, P_RNG, P_SETS, P_LINE_BYTES = range(8)

SRRIP_MAX = 3        # 2-bit RRPV
SRRIP_INSERT = 2     # "long re-reference interval" insertion

MIN_LINE_BYTES = 16  # cachegrind's MIN_LINE_SIZE (cg_arch.c): smaller lines break straddling


class CacheState(NamedTuple):
    """The arrays that are one cache (see the module docstring)."""

    tags: np.ndarray
    flags: np.ndarray
    coh: np.ndarray
    repl: np.ndarray
    params: np.ndarray


def _is_pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


@dataclass(frozen=True, slots=True)
class CacheGeometry:
    """Size, associativity and line size of one cache, validated as cachegrind validates them.

    ``where`` names the option or key the values came from and prefixes every error message.
    """

    size_bytes: int
    assoc: int
    line_bytes: int
    where: str = "cache"

    def __post_init__(self):
        spec = f"{self.where} {self.size_bytes},{self.assoc},{self.line_bytes}"
        for name in ("size_bytes", "assoc", "line_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise HwemuError(f"{spec}: {name.replace('_', ' ')} must be a positive integer")
        if not _is_pow2(self.line_bytes):
            raise HwemuError(f"{spec}: line size ({self.line_bytes} B) is not a power of two")
        if self.line_bytes < MIN_LINE_BYTES:
            raise HwemuError(f"{spec}: line size ({self.line_bytes} B) is below the minimum of "
                             f"{MIN_LINE_BYTES} B (an instruction could straddle three lines)")
        if self.line_bytes > 256:
            raise HwemuError(f"{spec}: line size ({self.line_bytes} B) is above the maximum of 256 B")
        if self.size_bytes <= self.line_bytes:
            raise HwemuError(f"{spec}: cache size ({self.size_bytes} B) must exceed the line size")
        if self.assoc > self.size_bytes // self.line_bytes:
            raise HwemuError(f"{spec}: associativity ({self.assoc}) exceeds the number of lines "
                             f"({self.size_bytes // self.line_bytes})")
        sets = self.size_bytes / (self.assoc * self.line_bytes)
        if sets != int(sets) or not _is_pow2(int(sets)):
            shown = f"{sets:.2f}" if sets != int(sets) else str(int(sets))
            raise HwemuError(f"{spec}: number of sets ({shown}) = size / (assoc * line size) is not "
                             "a power of two, which set selection by address bits requires")

    @classmethod
    def parse(cls, text: str, where: str = "cache") -> "CacheGeometry":
        """From cachegrind's ``SIZE,ASSOC,LINE`` string (bytes, ways, bytes), e.g. ``32768,8,64``."""
        parts = str(text).split(",")
        if len(parts) != 3:
            raise HwemuError(f"{where} {text}: expected SIZE,ASSOC,LINE_SIZE such as 32768,8,64")
        vals = []
        for label, p in zip(("size", "associativity", "line size"), parts):
            p = p.strip()
            if not p.isdigit():
                raise HwemuError(f"{where} {text}: {label} {p!r} is not a positive integer")
            vals.append(int(p))
        return cls(vals[0], vals[1], vals[2], where=where)

    @property
    def sets(self) -> int:
        return self.size_bytes // (self.assoc * self.line_bytes)

    @property
    def lines(self) -> int:
        return self.size_bytes // self.line_bytes

    @property
    def line_bits(self) -> int:
        return int(math.log2(self.line_bytes))

    def spec(self) -> str:
        """The ``SIZE,ASSOC,LINE`` string."""
        return f"{self.size_bytes},{self.assoc},{self.line_bytes}"

    def describe(self) -> str:
        """cachegrind's description: ``32768 B, 64 B, 8-way associative``."""
        ways = "direct-mapped" if self.assoc == 1 else f"{self.assoc}-way associative"
        return f"{self.size_bytes} B, {self.line_bytes} B, {ways}"

    def to_json(self) -> dict:
        return {"size": self.size_bytes, "assoc": self.assoc, "line_size": self.line_bytes,
                "sets": self.sets}


def new_cache(geom: CacheGeometry, policy: int | str = POLICY_LRU, seed: int = 0) -> CacheState:
    """Allocate an empty cache (all lines invalid) for ``geom``."""
    if isinstance(policy, str):
        if policy.lower() not in POLICIES:
            raise HwemuError(f"replacement policy {policy!r}: unknown (choose from "
                             f"{', '.join(POLICIES)})")
        policy = POLICIES[policy.lower()]
    if int(policy) not in POLICY_NAMES:
        raise HwemuError(f"replacement policy id {policy}: unknown (0 lru, 1 random, 2 srrip, 3 plru)")
    if int(policy) == POLICY_PLRU and (not _is_pow2(geom.assoc) or geom.assoc > 64):
        raise HwemuError(f"{geom.where} {geom.spec()}: tree PLRU needs a power-of-two associativity "
                         f"of at most 64, not {geom.assoc}")
    n = geom.lines
    params = np.zeros(8, np.int64)
    params[P_SET_MASK] = geom.sets - 1
    params[P_LINE_BITS] = geom.line_bits
    params[P_ASSOC] = geom.assoc
    params[P_POLICY] = int(policy)
    params[P_SETS] = geom.sets
    params[P_LINE_BYTES] = geom.line_bytes
    c = CacheState(tags=np.zeros(n, np.uint64), flags=np.zeros(n, np.uint8),
                   coh=np.zeros(n, np.uint8), repl=np.zeros(n, np.uint64), params=params)
    reset(c, seed)
    return c


def reset(c: CacheState, seed: int = 0) -> None:
    """Invalidate every line and restart the clock and the random generator."""
    c.tags[:] = 0
    c.flags[:] = 0
    c.coh[:] = MESI_I
    c.repl[:] = 0
    c.params[P_CLOCK] = 0
    # xorshift needs a non-zero state; mix the seed so seeds 0, 1, 2... differ well.
    s = (int(seed) * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) & 0x7FFFFFFFFFFFFFFF
    c.params[P_RNG] = s or 1


def line_of(c: CacheState, line: int) -> tuple[int, int]:
    """(set, way) of a flat line index."""
    a = int(c.params[P_ASSOC])
    return line // a, line % a


def resident_blocks(c: CacheState) -> np.ndarray:
    """Sorted block numbers of all valid lines."""
    return np.sort(c.tags[(c.flags & F_VALID) != 0])


def dirty_blocks(c: CacheState) -> np.ndarray:
    """Sorted block numbers of all valid dirty lines."""
    m = (c.flags & (F_VALID | F_DIRTY)) == (F_VALID | F_DIRTY)
    return np.sort(c.tags[m])


# --- compiled primitives ---------------------------------------------------------------------

@numba.njit(cache=True, _nrt=False)
def find(c, block):
    """Flat index of the line holding ``block``, or -1. Changes nothing."""
    assoc = c.params[P_ASSOC]
    base = (np.int64(block) & c.params[P_SET_MASK]) * assoc
    tags = c.tags
    flags = c.flags
    b = np.uint64(block)
    for i in range(base, base + assoc):
        if tags[i] == b and (flags[i] & F_VALID):
            return i
    return -1


@numba.njit(cache=True, _nrt=False)
def touch_line(c, line):
    """Record a reference to ``line`` in the replacement state."""
    pol = c.params[P_POLICY]
    if pol == POLICY_LRU:
        clk = c.params[P_CLOCK] + 1
        c.params[P_CLOCK] = clk
        c.repl[line] = np.uint64(clk)
    elif pol == POLICY_SRRIP:
        c.repl[line] = np.uint64(0)
    elif pol == POLICY_PLRU:
        assoc = c.params[P_ASSOC]
        way = line % assoc
        base = line - way
        bits = c.repl[base]
        node = np.int64(1)
        half = assoc >> 1
        while half > 0:                  # walk root -> leaf; point each node away from `way`
            right = (way & half) != 0
            if right:
                bits &= ~(np.uint64(1) << np.uint64(node))
            else:
                bits |= np.uint64(1) << np.uint64(node)
            node = 2 * node + (1 if right else 0)
            half >>= 1
        c.repl[base] = bits


@numba.njit(cache=True, _nrt=False)
def _next_random(c):
    # xorshift64* (Vigna, 2016); state kept positive in an int64 slot.
    x = np.uint64(c.params[P_RNG])
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    c.params[P_RNG] = np.int64(x & np.uint64(0x7FFFFFFFFFFFFFFF)) | np.int64(1)
    return x * np.uint64(0x2545F4914F6CDD1D)


@numba.njit(cache=True, _nrt=False)
def _victim(c, base):
    """Flat index of the way to replace in the set starting at ``base``."""
    assoc = c.params[P_ASSOC]
    flags = c.flags
    for i in range(base, base + assoc):
        if not (flags[i] & F_VALID):
            return i
    pol = c.params[P_POLICY]
    repl = c.repl
    if pol == POLICY_LRU:
        best = base
        oldest = repl[base]
        for i in range(base + 1, base + assoc):
            if repl[i] < oldest:
                oldest = repl[i]
                best = i
        return best
    if pol == POLICY_RANDOM:
        return base + np.int64(_next_random(c) % np.uint64(assoc))
    if pol == POLICY_PLRU:
        bits = repl[base]
        node = np.int64(1)
        while node < assoc:              # follow the bits: 1 = right subtree is older
            node = 2 * node + np.int64((bits >> np.uint64(node)) & np.uint64(1))
        return base + (node - assoc)
    # SRRIP: first way with the maximum RRPV, ageing the set until one exists.
    while True:
        for i in range(base, base + assoc):
            if repl[i] >= SRRIP_MAX:
                return i
        for i in range(base, base + assoc):
            repl[i] += np.uint64(1)


@numba.njit(cache=True, _nrt=False)
def _install(c, line, block, dirty):
    """Put ``block`` in ``line`` (already chosen as victim); return (status, victim_block)."""
    st = ST_MISS
    victim = np.uint64(0)
    f = c.flags[line]
    if f & F_VALID:
        st = ST_EVICT
        victim = c.tags[line]
        if f & F_DIRTY:
            st |= ST_EVICT_DIRTY
    c.tags[line] = np.uint64(block)
    if dirty:
        c.flags[line] = F_VALID | F_DIRTY
        c.coh[line] = MESI_M
    else:
        c.flags[line] = F_VALID
        c.coh[line] = MESI_E
    if c.params[P_POLICY] == POLICY_SRRIP:
        c.repl[line] = np.uint64(SRRIP_INSERT)
    else:
        touch_line(c, line)
    return st, victim


@numba.njit(cache=True, _nrt=False)
def access(c, block, is_write):
    """Demand access to ``block`` (write-allocate, write-back). Returns (status, victim_block)."""
    assoc = c.params[P_ASSOC]
    base = (np.int64(block) & c.params[P_SET_MASK]) * assoc
    tags = c.tags
    flags = c.flags
    b = np.uint64(block)
    for i in range(base, base + assoc):
        if tags[i] == b and (flags[i] & F_VALID):
            touch_line(c, i)
            if is_write:
                flags[i] |= F_DIRTY
                c.coh[i] = MESI_M
            return ST_HIT, np.uint64(0)
    return _install(c, _victim(c, base), b, is_write)


@numba.njit(cache=True, _nrt=False)
def fill(c, block, dirty):
    """Install ``block`` (not a demand access). Returns (status, victim_block)."""
    i = find(c, block)
    if i >= 0:
        if dirty:
            c.flags[i] |= F_DIRTY
            c.coh[i] = MESI_M
        touch_line(c, i)
        return ST_HIT, np.uint64(0)
    base = (np.int64(block) & c.params[P_SET_MASK]) * c.params[P_ASSOC]
    return _install(c, _victim(c, base), np.uint64(block), dirty)


@numba.njit(cache=True, _nrt=False)
def invalidate(c, block):
    """Drop ``block``. Returns ST_HIT if present, | ST_EVICT_DIRTY if it was dirty."""
    i = find(c, block)
    if i < 0:
        return ST_MISS
    st = ST_HIT
    if c.flags[i] & F_DIRTY:
        st |= ST_EVICT_DIRTY
    c.flags[i] = 0
    c.coh[i] = MESI_I
    if c.params[P_POLICY] != POLICY_PLRU:     # PLRU keeps the set's tree in repl[base]
        c.repl[i] = np.uint64(0)
    return st


@numba.njit(cache=True, _nrt=False)
def clean(c, block):
    """Clear the dirty bit of ``block``. Returns ST_HIT if present, | ST_EVICT_DIRTY if it was dirty."""
    i = find(c, block)
    if i < 0:
        return ST_MISS
    st = ST_HIT
    if c.flags[i] & F_DIRTY:
        st |= ST_EVICT_DIRTY
        c.flags[i] &= np.uint8(~F_DIRTY & 0xFF)
        if c.coh[i] == MESI_M:
            c.coh[i] = MESI_E
    return st


@numba.njit(cache=True, _nrt=False)
def ref_is_miss(c, addr, size):
    """cachegrind's reference: both lines of a straddling access are looked up (in order);
    one miss if either misses. ``size`` >= 1 and <= line size. Read-only (no dirty bits)."""
    lb = np.uint64(c.params[P_LINE_BITS])
    a = np.uint64(addr)
    b1 = a >> lb
    b2 = (a + np.uint64(size) - np.uint64(1)) >> lb
    miss1 = (access(c, b1, False)[0] & ST_HIT) == 0
    if b1 == b2:
        return miss1
    miss2 = (access(c, b2, False)[0] & ST_HIT) == 0
    return miss1 or miss2
