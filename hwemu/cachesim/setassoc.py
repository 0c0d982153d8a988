"""The set-associative cache core: compiled primitives over numpy arrays of state.

This module is the one set-associative cache implementation of hwemu. ``hwemu cachesim`` (the
cachegrind-exact replay, :mod:`hwemu.cachesim.sim`) and the NUMA timing model
(:mod:`hwemu.machine`: every core's L1I, L1D and L2, every socket's LLC, and the TLBs) are built
on it. A cache is a :class:`CacheState` named tuple of numpy arrays; every per-access operation
is a small numba ``@njit(cache=True)`` function that takes that tuple and works on the arrays in
place. Nothing allocates or touches Python objects per access, so the functions can be called
from any other ``@njit`` loop.

Instances, rows and lines
-------------------------
One :class:`CacheState` may hold several *instances* of one geometry and policy, for example the
L1D of every core of a machine: they share one set of arrays and one replacement policy, but
never each other's lines. A line address (``block``) is ``addr >> line_bits``; the *whole block
number* is stored as the tag, so a victim's address is simply ``victim_block << line_bits``.

- set index: ``block & set_mask`` (bit selection, as in cachegrind, ``cachegrind/cg_sim.c``)
  when the number of sets is a power of two, else ``block % sets`` (allowed for the machine
  model only, see :func:`new_cache_sets`; for a power of two both are the same set);
- row (the set of one instance): ``row = instance * sets + set index`` (:func:`set_row`);
- line (the flat index used by every per-line array): ``line = row * assoc + way``.

Callers may keep their own per-line payload arrays indexed by the same flat line index (the
machine model keeps LLC core-valid masks, prefetch arrival times and TLB page-table entries
that way).

State (:class:`CacheState`)
---------------------------
==========  ==============  ==================================================================
field       dtype / shape   meaning
==========  ==============  ==================================================================
tags        uint64[L]       block number held by line ``i``; ``INVALID_TAG`` (all ones) when
                            the line is invalid, so a lookup is one compare per way
flags       uint8[L]        bit 0 ``F_VALID``, bit 1 ``F_DIRTY``; kept in step with ``tags``
                            and ``coh``: valid <=> tag != INVALID_TAG, dirty <=> coh == M
coh         uint8[L]        MESI state ``MESI_I/S/E/M`` (0..3). Invalid lines are I; a clean
                            fill is E, a write or dirty fill M; the machine model sets S for
                            shared copies through :func:`set_coh` (which keeps ``flags`` in
                            step). Dirty means exactly "in state M".
repl        uint64[L]       replacement metadata: LRU time stamp, FIFO insertion stamp, SRRIP
                            re-reference value, or (PLRU) the row's tree bits in its first line
params      int64[9]        ``P_SET_MASK`` (sets - 1, or -1 for modulo indexing),
                            ``P_LINE_BITS, P_ASSOC, P_POLICY, P_CLOCK, P_RNG, P_SETS,
                            P_LINE_BYTES, P_INSTANCES`` (``P_CLOCK``/``P_RNG`` change as it
                            runs; the clock and the generator are shared by the instances)
==========  ==============  ==================================================================

Replacement policies (integer ids, ``params[P_POLICY]``)
-------------------------------------------------------
Every policy fills an invalid way first (the lowest one) before it evicts a valid line.

``POLICY_LRU`` (0, default)
    true LRU: every reference stamps the line with the cache's clock (``P_CLOCK``, incremented
    per reference); the victim is the line with the oldest stamp. Hit/miss behaviour is
    identical to cachegrind's move-to-front lists.
``POLICY_RANDOM`` (1)
    a way drawn from a xorshift64* generator (Vigna 2016) seeded at creation (deterministic for
    a given seed).
``POLICY_SRRIP`` (2)
    static re-reference interval prediction with 2-bit RRPVs (Jaleel et al., ISCA 2010,
    "High Performance Cache Replacement Using Re-Reference Interval Prediction", SRRIP-HP):
    insert with RRPV 2, promote to 0 on a hit, evict the first way with RRPV 3 after ageing.
``POLICY_PLRU`` (3)
    tree pseudo-LRU (assoc - 1 bits per set, kept in ``repl`` of the row's first line; needs a
    power-of-two associativity <= 64): each reference points the bits on its path away from
    it; the victim is found by following the bits from the root.
``POLICY_FIFO`` (4)
    first in, first out: a line is stamped with the clock when it is installed and hits do not
    change the order; the victim is the line installed longest ago.

Row-level API (all ``@njit``; ``c`` is a :class:`CacheState`)
------------------------------------------------------------
These are what a model with many instances (the machine) calls; the single-instance API below is
written on top of them, so there is one copy of every policy.

``set_row(c, instance, block) -> row``
    the row ``block`` maps to in ``instance``.
``same_set_row(c, row, instance, other) -> row``
    the row of the same set in instance ``other`` as ``row`` in ``instance`` (set_row for
    another instance, without its division).
``find_in_row(c, row, block) -> line``
    flat index of the line of ``row`` holding ``block``, or -1. Probing: no state changes.
``victim_in_row(c, row) -> line``
    the line the policy replaces next in ``row`` (an invalid one first). May advance the random
    generator or age SRRIP values; changes nothing else.
``install(c, line, block, coh) -> (status, victim_block)``
    put ``block`` in ``line`` with MESI state ``coh`` (dirty if ``MESI_M``), as the policy
    inserts a new line; report what was displaced (see status codes below).
``touch_line(c, line)``
    record a reference to ``line`` (LRU: most recent; SRRIP: re-referenced; PLRU: tree bits;
    FIFO and random: nothing).
``set_coh(c, line, coh)``
    change the MESI state of a valid line (and its dirty flag with it).
``invalidate_line(c, line) -> status``
    drop a line: ``ST_HIT`` if it was valid, plus ``ST_EVICT_DIRTY`` if it was dirty.

Per-instance API (``*_in(c, instance, ...)``) and single-instance API (instance 0)
---------------------------------------------------------------------------------
``find(c, block)`` / ``find_in(c, instance, block) -> int``
    flat line index holding ``block``, or -1. Probing: no state changes.
``access(c, block, is_write)`` / ``access_in(c, instance, block, is_write) -> (status, victim_block)``
    a demand access with write-allocate and write-back. On a hit the replacement state is
    updated and, for a write, the line becomes M (dirty). On a miss a victim is chosen, the
    block is installed (M if ``is_write``, else E) and the victim reported. ``status`` is a bit
    set: ``ST_HIT`` (1), ``ST_EVICT`` (2: a valid line was displaced, its block in
    ``victim_block``), ``ST_EVICT_DIRTY`` (4: and it was dirty, i.e. a write-back is due).
``fill(c, block, dirty)`` / ``fill_in(c, instance, block, dirty) -> (status, victim_block)``
    install a block without counting as a demand access (prefetch, fill from below, or
    inclusion); if already present only the dirty bit is or-ed in and replacement is touched.
``invalidate(c, block)`` / ``invalidate_in(c, instance, block) -> status``
    drop the block (coherence invalidation, back-invalidation). Returns ``ST_HIT`` if it was
    present, plus ``ST_EVICT_DIRTY`` if it was dirty (the caller owes a write-back).
``clean(c, block)`` / ``clean_in(c, instance, block) -> status``
    clear the dirty bit (write-back without invalidation): M becomes E. Returns ``ST_HIT`` if
    present, plus ``ST_EVICT_DIRTY`` if it was dirty.
``ref_is_miss(c, addr, size) -> bool``
    cachegrind's reference semantics (``cg_sim.c: cachesim_ref_is_miss``): an access that
    straddles two lines touches both (always both, in order) and is one miss if either misses.
    Reads only (no dirty tracking); used by the cachegrind-exact replay.

Python-side helpers: :class:`CacheGeometry` (validated geometry, parsed from ``S,A,L`` strings),
:func:`new_cache` (from a geometry), :func:`new_cache_sets` (from a set count, e.g. a TLB or a
machine LLC whose set count is not a power of two), :func:`policy_id`, :func:`reset`,
:func:`invalidate_instance`, :func:`line_of` (decode a flat index), :func:`resident_blocks` and
:func:`dirty_blocks` (for tests and reports).

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
from hwemu.units import MAX_CACHE_BYTES, check_max

# --- flags and return codes -------------------------------------------------------------------
F_VALID = 1
F_DIRTY = 2

ST_MISS = 0
ST_HIT = 1
ST_EVICT = 2
ST_EVICT_DIRTY = 4

MESI_I, MESI_S, MESI_E, MESI_M = 0, 1, 2, 3

INVALID_TAG = np.uint64(0xFFFFFFFFFFFFFFFF)

POLICY_LRU = 0
POLICY_RANDOM = 1
POLICY_SRRIP = 2
POLICY_PLRU = 3
POLICY_FIFO = 4
POLICIES = {"lru": POLICY_LRU, "fifo": POLICY_FIFO, "random": POLICY_RANDOM,
            "srrip": POLICY_SRRIP, "plru": POLICY_PLRU}
POLICY_NAMES = {v: k for k, v in POLICIES.items()}

# params[] slots
(P_SET_MASK, P_LINE_BITS, P_ASSOC, P_POLICY, P_CLOCK, P_RNG, P_SETS, P_LINE_BYTES,
 P_INSTANCES) = range(9)
P_N = 9

SRRIP_MAX = 3        # 2-bit RRPV
SRRIP_INSERT = 2     # "long re-reference interval" insertion

MIN_LINE_BYTES = 16  # cachegrind's MIN_LINE_SIZE (cg_arch.c): smaller lines break straddling


class CacheState(NamedTuple):
    """The arrays that are one cache, or several instances of one (see the module docstring)."""

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
        check_max(int(self.size_bytes), MAX_CACHE_BYTES, spec, "cache size (bytes)")
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


def policy_id(policy: int | str, assoc: int, where: str = "cache") -> int:
    """The integer id of a policy name (or id), checked against the associativity.
    ``where`` (an option or TOML key) prefixes the error message."""
    if isinstance(policy, str):
        if policy.lower() not in POLICIES:
            raise HwemuError(f"{where}: replacement policy {policy!r} is unknown (choose from "
                             f"{', '.join(POLICIES)})")
        policy = POLICIES[policy.lower()]
    if int(policy) not in POLICY_NAMES:
        raise HwemuError(f"{where}: replacement policy id {policy} is unknown ("
                         + ", ".join(f"{k} {v}" for k, v in sorted(POLICY_NAMES.items())) + ")")
    if int(policy) == POLICY_PLRU and (not _is_pow2(assoc) or assoc > 64):
        raise HwemuError(f"{where}: tree PLRU needs a power-of-two associativity of at most 64, "
                         f"not {assoc}")
    return int(policy)


def new_cache_sets(sets: int, assoc: int, policy: int | str = POLICY_LRU, seed: int = 0,
                   instances: int = 1, line_bytes: int = 64, where: str = "cache") -> CacheState:
    """Allocate ``instances`` empty caches (all lines invalid) of ``sets`` x ``assoc`` lines.

    The set count need not be a power of two (then the set index is ``block % sets``); this is
    the constructor for the machine model's caches and TLBs. ``line_bytes`` is only recorded
    (``P_LINE_BYTES``, ``P_LINE_BITS``) for :func:`ref_is_miss`; 1 for arrays whose tags are
    arbitrary keys (TLBs)."""
    sets, assoc, instances = int(sets), int(assoc), int(instances)
    if sets < 1 or assoc < 1 or instances < 1:
        raise HwemuError(f"{where}: sets ({sets}), ways ({assoc}) and instances ({instances}) "
                         "must be positive")
    pol = policy_id(policy, assoc, where)
    n = instances * sets * assoc
    params = np.zeros(P_N, np.int64)
    params[P_SET_MASK] = sets - 1 if _is_pow2(sets) else -1
    params[P_LINE_BITS] = int(math.log2(line_bytes)) if _is_pow2(line_bytes) else 0
    params[P_ASSOC] = assoc
    params[P_POLICY] = pol
    params[P_SETS] = sets
    params[P_LINE_BYTES] = line_bytes
    params[P_INSTANCES] = instances
    c = CacheState(tags=np.empty(n, np.uint64), flags=np.zeros(n, np.uint8),
                   coh=np.zeros(n, np.uint8), repl=np.zeros(n, np.uint64), params=params)
    reset(c, seed)
    return c


def new_cache(geom: CacheGeometry, policy: int | str = POLICY_LRU, seed: int = 0,
              instances: int = 1) -> CacheState:
    """Allocate ``instances`` empty caches (all lines invalid) of geometry ``geom``."""
    return new_cache_sets(geom.sets, geom.assoc, policy, seed, instances, geom.line_bytes,
                          where=f"{geom.where} {geom.spec()}")


def reset(c: CacheState, seed: int = 0) -> None:
    """Invalidate every line and restart the clock and the random generator."""
    c.tags[:] = INVALID_TAG
    c.flags[:] = 0
    c.coh[:] = MESI_I
    c.repl[:] = 0
    c.params[P_CLOCK] = 0
    # xorshift needs a non-zero state; mix the seed so seeds 0, 1, 2... differ well.
    s = (int(seed) * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) & 0x7FFFFFFFFFFFFFFF
    c.params[P_RNG] = s or 1


def _instance_slice(c: CacheState, instance: int) -> slice:
    per = int(c.params[P_SETS]) * int(c.params[P_ASSOC])
    if not 0 <= instance < int(c.params[P_INSTANCES]):
        raise IndexError(f"instance {instance} out of range")
    return slice(instance * per, (instance + 1) * per)


def invalidate_instance(c: CacheState, instance: int) -> None:
    """Drop every line of one instance (a full flush without write-backs; replacement stamps
    are left alone since invalid ways are always filled first)."""
    s = _instance_slice(c, instance)
    c.tags[s] = INVALID_TAG
    c.flags[s] = 0
    c.coh[s] = MESI_I


def line_of(c: CacheState, line: int) -> tuple[int, int]:
    """(row, way) of a flat line index; the row is ``instance * sets + set``."""
    a = int(c.params[P_ASSOC])
    return line // a, line % a


def _valid_mask(c: CacheState, instance):
    m = c.tags != INVALID_TAG
    if instance is not None:
        keep = np.zeros_like(m)
        keep[_instance_slice(c, instance)] = True
        m &= keep
    return m


def resident_blocks(c: CacheState, instance: int | None = None) -> np.ndarray:
    """Sorted block numbers of all valid lines (of one instance, or of all)."""
    return np.sort(c.tags[_valid_mask(c, instance)])


def dirty_blocks(c: CacheState, instance: int | None = None) -> np.ndarray:
    """Sorted block numbers of all valid dirty lines (of one instance, or of all)."""
    m = _valid_mask(c, instance) & ((c.flags & F_DIRTY) != 0)
    return np.sort(c.tags[m])


# --- compiled row-level primitives -----------------------------------------------------------

@numba.njit(cache=True, _nrt=False)
def set_row(c, instance, block):
    """Row (``instance * sets + set``) that ``block`` maps to."""
    b = np.int64(block)
    mask = c.params[P_SET_MASK]
    if mask >= 0:
        s = b & mask
    else:
        s = b % c.params[P_SETS]
    return np.int64(instance) * c.params[P_SETS] + s


@numba.njit(cache=True, inline="always")
def same_set_row(c, row, instance, other):
    """The row of the same set in instance ``other`` as ``row`` in ``instance``."""
    return row + (np.int64(other) - instance) * c.params[P_SETS]


@numba.njit(cache=True, _nrt=False)
def find_in_row(c, row, block):
    """Flat index of the line of ``row`` holding ``block``, or -1. Changes nothing."""
    # unsigned indices: numba adds no negative-index fix-up to them, which in the row loops
    # of the machine's caches and TLBs was three instructions of every way's eight to eleven
    assoc = np.uint64(c.params[P_ASSOC])
    base = np.uint64(row) * assoc
    tags = c.tags
    b = np.uint64(block)
    for i in range(base, base + assoc):
        if tags[i] == b:
            return np.int64(i)
    return np.int64(-1)


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
    # FIFO and random: a reference changes nothing


@numba.njit(cache=True, _nrt=False)
def _next_random(c):
    # xorshift64* (Vigna, 2016); state kept positive in an int64 slot.
    x = np.uint64(c.params[P_RNG])
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    c.params[P_RNG] = np.int64(x & np.uint64(0x7FFFFFFFFFFFFFFF)) | np.int64(1)
    return x * np.uint64(0x2545F4914F6CDD1D)


@numba.njit(cache=True, _nrt=False, inline="always")
def victim_in_row(c, row):
    """Flat index of the line to replace in ``row``: an invalid one first, else by policy.
    LRU and FIFO (the usual policies) are inlined into the caller; the others are a call."""
    pol = c.params[P_POLICY]
    if pol == POLICY_LRU or pol == POLICY_FIFO:
        assoc = np.uint64(c.params[P_ASSOC])
        base = np.uint64(row) * assoc          # unsigned indices, as in find_in_row
        tags = c.tags
        repl = c.repl
        # the first invalid way, else the oldest stamp (the first of equal ones): the first
        # smallest of 0 for an invalid way and stamp + 1 for a valid one, in one pass without
        # branches
        best = base
        oldest = INVALID_TAG
        for i in range(base, base + assoc):
            k = np.uint64(0) if tags[i] == INVALID_TAG else repl[i] + np.uint64(1)
            if k < oldest:
                oldest = k
                best = i
        return np.int64(best)
    return _victim_other(c, row)


@numba.njit(cache=True, _nrt=False)
def _victim_other(c, row):
    """:func:`victim_in_row` for the random, PLRU and SRRIP policies."""
    assoc = c.params[P_ASSOC]
    base = np.int64(row) * assoc
    tags = c.tags
    pol = c.params[P_POLICY]
    repl = c.repl
    for i in range(base, base + assoc):
        if tags[i] == INVALID_TAG:
            return i
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
def set_coh(c, line, coh):
    """Set the MESI state of a valid line; the dirty flag follows (dirty <=> M)."""
    c.coh[line] = coh
    c.flags[line] = (F_VALID | F_DIRTY) if coh == MESI_M else F_VALID


@numba.njit(cache=True, _nrt=False)
def install(c, line, block, coh):
    """Put ``block`` in ``line`` (normally the row's victim) with MESI state ``coh`` (M is
    dirty), inserted as the policy inserts. Returns (status, victim_block)."""
    st = ST_MISS
    victim = np.uint64(0)
    old = c.tags[line]
    if old != INVALID_TAG:
        st = ST_EVICT
        victim = old
        if c.flags[line] & F_DIRTY:
            st |= ST_EVICT_DIRTY
    c.tags[line] = np.uint64(block)
    set_coh(c, line, coh)
    pol = c.params[P_POLICY]
    if pol == POLICY_SRRIP:
        c.repl[line] = np.uint64(SRRIP_INSERT)
    elif pol == POLICY_FIFO:
        clk = c.params[P_CLOCK] + 1
        c.params[P_CLOCK] = clk
        c.repl[line] = np.uint64(clk)
    else:
        touch_line(c, line)
    return st, victim


@numba.njit(cache=True, _nrt=False)
def invalidate_line(c, line):
    """Drop ``line``. Returns ST_HIT if it was valid, | ST_EVICT_DIRTY if it was dirty."""
    if c.tags[line] == INVALID_TAG:
        return ST_MISS
    st = ST_HIT
    if c.flags[line] & F_DIRTY:
        st |= ST_EVICT_DIRTY
    c.tags[line] = INVALID_TAG
    c.flags[line] = 0
    c.coh[line] = MESI_I
    if c.params[P_POLICY] != POLICY_PLRU:     # PLRU keeps the row's tree in repl[base]
        c.repl[line] = np.uint64(0)
    return st


# --- per-instance operations (written on the row primitives) ---------------------------------

@numba.njit(cache=True, _nrt=False)
def find_in(c, instance, block):
    """Flat index of the line of ``instance`` holding ``block``, or -1. Changes nothing."""
    return find_in_row(c, set_row(c, instance, block), block)


@numba.njit(cache=True, _nrt=False)
def access_in(c, instance, block, is_write):
    """Demand access to ``block`` in ``instance`` (write-allocate, write-back).
    Returns (status, victim_block)."""
    row = set_row(c, instance, block)
    i = find_in_row(c, row, block)
    if i >= 0:
        touch_line(c, i)
        if is_write:
            set_coh(c, i, MESI_M)
        return ST_HIT, np.uint64(0)
    return install(c, victim_in_row(c, row), block, MESI_M if is_write else MESI_E)


@numba.njit(cache=True, _nrt=False)
def fill_in(c, instance, block, dirty):
    """Install ``block`` in ``instance`` (not a demand access). Returns (status, victim_block)."""
    row = set_row(c, instance, block)
    i = find_in_row(c, row, block)
    if i >= 0:
        if dirty:
            set_coh(c, i, MESI_M)
        touch_line(c, i)
        return ST_HIT, np.uint64(0)
    return install(c, victim_in_row(c, row), block, MESI_M if dirty else MESI_E)


@numba.njit(cache=True, _nrt=False)
def invalidate_in(c, instance, block):
    """Drop ``block`` from ``instance``. Returns ST_HIT if present, | ST_EVICT_DIRTY if dirty."""
    i = find_in(c, instance, block)
    if i < 0:
        return ST_MISS
    return invalidate_line(c, i)


@numba.njit(cache=True, _nrt=False)
def clean_in(c, instance, block):
    """Clear the dirty bit of ``block`` in ``instance`` (M becomes E). Returns ST_HIT if
    present, | ST_EVICT_DIRTY if it was dirty."""
    i = find_in(c, instance, block)
    if i < 0:
        return ST_MISS
    st = ST_HIT
    if c.flags[i] & F_DIRTY:
        st |= ST_EVICT_DIRTY
        set_coh(c, i, MESI_E)
    return st


# --- single-instance API (instance 0) ---------------------------------------------------------

@numba.njit(cache=True, _nrt=False)
def find(c, block):
    """Flat index of the line holding ``block``, or -1. Changes nothing."""
    return find_in_row(c, set_row(c, 0, block), block)


@numba.njit(cache=True, _nrt=False)
def access(c, block, is_write):
    """Demand access to ``block`` (write-allocate, write-back). Returns (status, victim_block)."""
    return access_in(c, 0, block, is_write)


@numba.njit(cache=True, _nrt=False)
def fill(c, block, dirty):
    """Install ``block`` (not a demand access). Returns (status, victim_block)."""
    return fill_in(c, 0, block, dirty)


@numba.njit(cache=True, _nrt=False)
def invalidate(c, block):
    """Drop ``block``. Returns ST_HIT if present, | ST_EVICT_DIRTY if it was dirty."""
    return invalidate_in(c, 0, block)


@numba.njit(cache=True, _nrt=False)
def clean(c, block):
    """Clear the dirty bit of ``block``. Returns ST_HIT if present, | ST_EVICT_DIRTY if it was dirty."""
    return clean_in(c, 0, block)


@numba.njit(cache=True, _nrt=False)
def ref_is_miss(c, addr, size):
    """cachegrind's reference: both lines of a straddling access are looked up (in order);
    one miss if either misses. ``size`` >= 1 and <= line size. Read-only (no dirty bits)."""
    lb = np.uint64(c.params[P_LINE_BITS])
    a = np.uint64(addr)
    b1 = a >> lb
    b2 = (a + np.uint64(size) - np.uint64(1)) >> lb
    miss1 = (access_in(c, 0, b1, False)[0] & ST_HIT) == 0
    if b1 == b2:
        return miss1
    miss2 = (access_in(c, 0, b2, False)[0] & ST_HIT) == 0
    return miss1 or miss2
