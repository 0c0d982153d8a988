"""Cachegrind-exact replay of a trace through I1, D1 and a shared LL cache.

The semantics are those of Valgrind 3.19's cachegrind (``cachegrind/cg_sim.c``,
``cachegrind/cg_main.c``):

* LRU, write-allocate, set index by bit selection; the block number is the tag.
* An instruction fetch (``I``) is looked up in I1; a load (``L``) or modify (``M``) is a data
  read in D1, a store (``S``) a data write. A modify counts as **one read** (``Dr``, and
  ``D1mr``/``DLmr`` on a miss) and no write: cachegrind merges a load and a store of the same
  address and size in one instruction into an ``Ev_Dm`` event and simulates it as a read.
* LL is looked up only after an I1 or D1 miss, and is shared by instructions and data.
* An access that straddles two lines touches both lines (in address order, both always, at
  each level it reaches) and counts as one access and at most one miss.
* Access sizes are clamped to ``[1, min(line sizes)]``, as cachegrind does for instruction
  lengths of 0 (undecodable) and for large dirty-helper accesses; a record can therefore never
  span more than two lines.
* Threads share the caches (cachegrind serialises threads and simulates one hierarchy).
* The caches start as cachegrind's do: its tag arrays are zero-filled with no valid bits, so
  block 0 (addresses ``0 .. line-1``) is initially a hit in every way of set 0.

``Ir`` is the number of ``I`` records plus the trace's ``insts`` column (instructions retired
without an ``I`` record of their own; zero in traces recorded with instruction fetches), plus,
for a data-only trace, the instructions after each thread's last data record that its metadata
keeps (``trailing_insts``), so a data-only trace gives the full trace's ``Ir``.

The replay is one compiled loop per trace chunk (no Python per access); cache state and
counters persist across chunks.

Library use::

    from hwemu.cachesim import simulate
    r = simulate("ls.parquet", I1="32768,8,64", D1="32768,8,64", LL="8388608,16,64")
    r["D1mr"], r["miss_rates"]["D1"]
"""

from __future__ import annotations

import os
from pathlib import Path

import numba
import numpy as np

from hwemu.cachesim import setassoc as sa
from hwemu.cachesim.setassoc import CacheGeometry
from hwemu.errors import HwemuError
from hwemu.jitcache import check_package

# _replay inlines the cache core: drop its cached machine code when setassoc.py changes
check_package(Path(__file__).parent)

EVENTS = ("Ir", "I1mr", "ILmr", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw")
IR, I1MR, ILMR, DR, D1MR, DLMR, DW, D1MW, DLMW = range(9)

# Used when an option is omitted. cachegrind would read the host's CPUID instead (and fall back
# to 65536,2,64 / 65536,2,64 / 262144,8,64 on x86 when it cannot), which makes its results
# depend on the machine. hwemu fixes an Intel Skylake client core (e.g. Core i7-6700): 32 KiB
# 8-way L1I and L1D and an 8 MiB 16-way L3, 64 B lines (Intel 64 and IA-32 Architectures
# Optimization Reference Manual, Skylake client microarchitecture cache parameters). See
# docs/cachesim.md.
DEFAULT_I1 = "32768,8,64"
DEFAULT_D1 = "32768,8,64"
DEFAULT_LL = "8388608,16,64"


@numba.njit(cache=True, nogil=True, _nrt=False)
def _ref_size(size, max_size):
    """A record's size as cachegrind simulates it: at least 1, at most ``max_size``."""
    s = np.int64(size)
    if s < 1:
        return np.int64(1)
    return s if s <= max_size else np.int64(max_size)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _replay(I1, D1, LL, kind, size, addr, insts, max_size, counts):
    n = kind.shape[0]
    for i in range(n):
        k = kind[i]
        a = addr[i]
        s = _ref_size(size[i], max_size)
        if k == 0:
            counts[IR] += 1
            if sa.ref_is_miss(I1, a, s):
                counts[I1MR] += 1
                if sa.ref_is_miss(LL, a, s):
                    counts[ILMR] += 1
        elif k == 2:
            counts[DW] += 1
            if sa.ref_is_miss(D1, a, s):
                counts[D1MW] += 1
                if sa.ref_is_miss(LL, a, s):
                    counts[DLMW] += 1
        elif k == 1 or k == 3:
            counts[DR] += 1
            if sa.ref_is_miss(D1, a, s):
                counts[D1MR] += 1
                if sa.ref_is_miss(LL, a, s):
                    counts[DLMR] += 1
        else:
            return i  # bad kind: report the record index
        counts[IR] += insts[i]
    return -1


# -- the exact-cachegrind configuration (LRU): cachegrind's own set layout -----------------------
# Each set is ``assoc`` block numbers, most recently used first; a hit moves its block to the
# front, a miss shifts the set down one way (dropping the last, least recently used block) and
# puts the new block in front. Zero-filled like cachegrind's tag arrays, so block 0 starts
# present in every way of set 0. No valid bits, no dirty bits, no clock: on a miss-heavy trace
# this runs about four times as fast as the general cache core (hwemu.cachesim.setassoc), which
# the other replacement policies use; tests/cachesim/test_sim.py replays random traces through
# both and compares the counters.

@numba.njit(cache=True, nogil=True, _nrt=False)
def _lru_block_miss(tags, base, assoc, block):
    """Look ``block`` up in the set whose ways start at ``base``, moving it to the front; True
    on a miss. One pass: each way takes its predecessor's block until ``block`` is found (a
    hit) or the last way's block falls out (a miss)."""
    prev = block
    for i in range(base, base + assoc):
        cur = tags[i]
        tags[i] = prev
        if cur == block:
            return False
        prev = cur
    return True


@numba.njit(cache=True, nogil=True, _nrt=False)
def _lru_ref_miss(tags, geo, a, s):
    """cachegrind's reference of ``s`` bytes at ``a`` (both lines of a straddling access, in
    order; one miss if either misses). ``geo``: (set mask, assoc, line bits)."""
    mask = np.uint64(geo[0])
    assoc = geo[1]
    lb = np.uint64(geo[2])
    b1 = a >> lb
    b2 = (a + np.uint64(s - 1)) >> lb
    miss1 = _lru_block_miss(tags, np.int64(b1 & mask) * assoc, assoc, b1)
    if b1 == b2:
        return miss1
    miss2 = _lru_block_miss(tags, np.int64(b2 & mask) * assoc, assoc, b2)
    return miss1 or miss2


@numba.njit(cache=True, nogil=True, _nrt=False)
def _replay_lru(ti, gi, td, gd, tl, gl, kind, size, addr, insts, max_size, counts):
    """:func:`_replay` for LRU caches in cachegrind's layout (``t*`` tags, ``g*`` geometry)."""
    n = kind.shape[0]
    for i in range(n):
        k = kind[i]
        a = addr[i]
        s = _ref_size(size[i], max_size)
        # this kind of record's L1, and its events: refs, L1 misses, LL misses (EVENTS lists
        # each kind's three in a row)
        if k == 1 or k == 3:
            e, t1, g1 = DR, td, gd
        elif k == 0:
            e, t1, g1 = IR, ti, gi
        elif k == 2:
            e, t1, g1 = DW, td, gd
        else:
            return i  # bad kind: report the record index
        counts[e] += 1
        if _lru_ref_miss(t1, g1, a, s):
            counts[e + 1] += 1
            if _lru_ref_miss(tl, gl, a, s):
                counts[e + 2] += 1
        counts[IR] += insts[i]
    return -1


class _LruCache:
    """One cache in cachegrind's layout: ``tags`` (sets x assoc block numbers, most recent
    first) and ``geo`` (set mask, assoc, line bits)."""

    def __init__(self, g: CacheGeometry):
        self.tags = np.zeros(g.sets * g.assoc, np.uint64)
        self.geo = np.array([g.sets - 1, g.assoc, g.line_bytes.bit_length() - 1], np.int64)


def _geometry(value, name: str) -> CacheGeometry:
    if isinstance(value, CacheGeometry):
        return value
    if isinstance(value, str):
        return CacheGeometry.parse(value, where=f"--{name}")
    if isinstance(value, (tuple, list)) and len(value) == 3:
        return CacheGeometry(*(int(v) for v in value), where=f"--{name}")
    raise HwemuError(f"--{name}: expected SIZE,ASSOC,LINE_SIZE, got {value!r}")


class CachegrindSim:
    """An I1/D1/LL hierarchy with cachegrind's semantics, fed trace chunks one at a time."""

    def __init__(self, I1=DEFAULT_I1, D1=DEFAULT_D1, LL=DEFAULT_LL, policy: str = "lru",
                 seed: int = 0):
        self.I1 = _geometry(I1, "I1")
        self.D1 = _geometry(D1, "D1")
        self.LL = _geometry(LL, "LL")
        self.max_size = min(self.I1.line_bytes, self.D1.line_bytes, self.LL.line_bytes)
        if str(policy).lower() not in sa.POLICIES:
            raise HwemuError(f"--policy {policy}: unknown replacement policy (choose from "
                             f"{', '.join(sa.POLICIES)})")
        self.policy = str(policy).lower()
        self.seed = int(seed)
        if self.policy == "lru":              # the exact-cachegrind configuration
            self._lru = tuple(_LruCache(g) for g in (self.I1, self.D1, self.LL))
        else:
            self._lru = None
            self._i1, self._d1, self._ll = (
                sa.new_cache(g, self.policy, seed=self.seed * 3 + k)
                for k, g in enumerate((self.I1, self.D1, self.LL)))
        self.counts = np.zeros(len(EVENTS), np.int64)
        self.records = 0

    def add_instructions(self, n: int) -> None:
        """Count ``n`` instructions without records (a data-only trace's ``trailing_insts``)."""
        self.counts[0] += int(n)

    def feed(self, chunk) -> None:
        """Replay one :class:`~hwemu.traces.format.TraceChunk`."""
        n = len(chunk)
        if n == 0:
            return
        if self._lru is not None:
            i1, d1, ll = self._lru
            bad = _replay_lru(i1.tags, i1.geo, d1.tags, d1.geo, ll.tags, ll.geo, chunk.kind,
                              chunk.size, chunk.addr, chunk.insts, self.max_size, self.counts)
        else:
            bad = _replay(self._i1, self._d1, self._ll, chunk.kind, chunk.size, chunk.addr,
                          chunk.insts, self.max_size, self.counts)
        if bad >= 0:
            raise HwemuError(f"trace record {self.records + bad}: kind {int(chunk.kind[bad])} "
                             "is not one of 0 I, 1 L, 2 S, 3 M")
        self.records += n

    def result(self) -> dict:
        """Counters, geometry and miss rates as a JSON-ready dict."""
        c = {e: int(v) for e, v in zip(EVENTS, self.counts)}
        out: dict = dict(c)
        out["I1"] = self.I1.to_json()
        out["D1"] = self.D1.to_json()
        out["LL"] = self.LL.to_json()
        out["policy"] = self.policy
        if self.policy == "random":
            out["seed"] = self.seed
        out["records"] = self.records
        out["miss_rates"] = miss_rates(c)
        return out

    def stats(self, component: str = "cachesim"):
        """The counters as :class:`hwemu.stats.Stats` (component ``cachesim.I1`` etc.)."""
        from hwemu.stats import Stats

        s = Stats()
        c = self.counts
        s.add(f"{component}.I1", "reads", int(c[IR]), "accesses")
        s.add(f"{component}.I1", "read_misses", int(c[I1MR]), "accesses")
        s.add(f"{component}.D1", "reads", int(c[DR]), "accesses")
        s.add(f"{component}.D1", "read_misses", int(c[D1MR]), "accesses")
        s.add(f"{component}.D1", "writes", int(c[DW]), "accesses")
        s.add(f"{component}.D1", "write_misses", int(c[D1MW]), "accesses")
        s.add(f"{component}.LL", "inst_read_misses", int(c[ILMR]), "accesses")
        s.add(f"{component}.LL", "data_read_misses", int(c[DLMR]), "accesses")
        s.add(f"{component}.LL", "data_write_misses", int(c[DLMW]), "accesses")
        return s


def _rate(num: int, den: int) -> float:
    return 0.0 if den == 0 else num / den


def miss_rates(c: dict) -> dict:
    """Miss rates (fractions, not percent) as cachegrind defines them."""
    d_refs = c["Dr"] + c["Dw"]
    ll_miss = c["ILmr"] + c["DLmr"] + c["DLmw"]
    return {
        "I1": _rate(c["I1mr"], c["Ir"]),
        "LLi": _rate(c["ILmr"], c["Ir"]),
        "D1": _rate(c["D1mr"] + c["D1mw"], d_refs),
        "D1r": _rate(c["D1mr"], c["Dr"]),
        "D1w": _rate(c["D1mw"], c["Dw"]),
        "LLd": _rate(c["DLmr"] + c["DLmw"], d_refs),
        "LLdr": _rate(c["DLmr"], c["Dr"]),
        "LLdw": _rate(c["DLmw"], c["Dw"]),
        # cachegrind divides LL misses by all references (Ir + Dr + Dw), not by LL refs.
        "LL": _rate(ll_miss, c["Ir"] + d_refs),
        "LLr": _rate(c["ILmr"] + c["DLmr"], c["Ir"] + c["Dr"]),
        "LLw": _rate(c["DLmw"], c["Dw"]),
    }


def _iter_source(source, progress: bool):
    """Yield chunks from a path, a TraceChunk or an iterable of chunks."""
    from hwemu.traces.format import TraceChunk, TraceReader

    if isinstance(source, TraceChunk):
        yield source
        return
    if isinstance(source, (str, os.PathLike)):
        reader = TraceReader(source)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=reader.num_records, unit="rec", unit_scale=True, desc="cachesim",
                       leave=False)
        try:
            # the next row group is decoded while this one replays (_replay runs without the GIL)
            for chunk in reader.iter_chunks_ahead():
                yield chunk
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        return
    yield from source


def simulate(source, I1=DEFAULT_I1, D1=DEFAULT_D1, LL=DEFAULT_LL, progress: bool = False,
             policy: str = "lru", seed: int = 0) -> dict:
    """Replay ``source`` (trace path, TraceChunk or iterable of chunks); return the result dict.

    ``I1``/``D1``/``LL`` are ``"SIZE,ASSOC,LINE"`` strings, ``(size, assoc, line)`` tuples or
    :class:`CacheGeometry` objects. Keys of the result: ``Ir I1mr ILmr Dr D1mr DLmr Dw D1mw
    DLmw`` (ints), ``I1``/``D1``/``LL`` (geometry), ``policy``, ``records`` and ``miss_rates``.

    ``policy`` other than ``"lru"`` (``"random"`` with ``seed``, ``"srrip"``, ``"plru"``) replaces LRU in
    all three caches; everything else keeps cachegrind's rules. Only ``"lru"`` is cachegrind.
    """
    sim = CachegrindSim(I1, D1, LL, policy=policy, seed=seed)
    for chunk in _iter_source(source, progress):
        sim.feed(chunk)
    if isinstance(source, (str, os.PathLike)):
        from hwemu.traces.fold import trailing_insts
        from hwemu.traces.format import TraceReader

        sim.add_instructions(trailing_insts(TraceReader(source).meta))
    return sim.result()


def format_summary(r: dict, title: dict | None = None) -> str:
    """cachegrind's end-of-run summary layout for a result of :func:`simulate`."""
    c = r
    mr = r["miss_rates"]
    lines = []
    for name in ("I1", "D1", "LL"):
        g = r[name]
        ways = "direct-mapped" if g["assoc"] == 1 else f"{g['assoc']}-way associative"
        lines.append(f"{name} cache:{'':9}{g['size']} B, {g['line_size']} B, {ways}")
    if r.get("policy", "lru") != "lru":
        extra = f" (seed {r['seed']})" if "seed" in r else ""
        lines.append(f"{'Replacement:':<18}{r['policy']}{extra} in all three caches, not cachegrind's LRU")
    for k, v in (title or {}).items():
        lines.append(f"{k + ':':<18}{v}")
    lines.append("")

    def num(x):
        return f"{x:,}"

    def pct(x):
        return f"{100.0 * x:.1f}%"

    d_refs = c["Dr"] + c["Dw"]
    ll_rd = c["I1mr"] + c["D1mr"]
    w = max(len(num(v)) for v in (c["Ir"], d_refs, ll_rd + c["D1mw"], 1))
    wr = max(len(num(v)) for v in (c["Dr"], c["I1mr"] + c["D1mr"], 1))
    ww = max(len(num(v)) for v in (c["Dw"], 1))

    def row(label, total, rd=None, wt=None):
        s = f"{label:<14}{total:>{w}}"
        if rd is not None:
            s += f"  ({rd:>{wr}} rd   + {wt:>{ww}} wr)"
        return s

    lines.append(row("I   refs:", num(c["Ir"])))
    lines.append(row("I1  misses:", num(c["I1mr"])))
    lines.append(row("LLi misses:", num(c["ILmr"])))
    lines.append(row("I1  miss rate:", f"{100.0 * mr['I1']:.2f}%"))
    lines.append(row("LLi miss rate:", f"{100.0 * mr['LLi']:.2f}%"))
    lines.append("")
    lines.append(row("D   refs:", num(d_refs), num(c["Dr"]), num(c["Dw"])))
    lines.append(row("D1  misses:", num(c["D1mr"] + c["D1mw"]), num(c["D1mr"]), num(c["D1mw"])))
    lines.append(row("LLd misses:", num(c["DLmr"] + c["DLmw"]), num(c["DLmr"]), num(c["DLmw"])))
    lines.append(row("D1  miss rate:", pct(mr["D1"]), pct(mr["D1r"]), pct(mr["D1w"])))
    lines.append(row("LLd miss rate:", pct(mr["LLd"]), pct(mr["LLdr"]), pct(mr["LLdw"])))
    lines.append("")
    lines.append(row("LL refs:", num(ll_rd + c["D1mw"]), num(ll_rd), num(c["D1mw"])))
    lines.append(row("LL misses:", num(c["ILmr"] + c["DLmr"] + c["DLmw"]),
                     num(c["ILmr"] + c["DLmr"]), num(c["DLmw"])))
    lines.append(row("LL miss rate:", pct(mr["LL"]), pct(mr["LLr"]), pct(mr["LLw"])))
    lines.append("")
    lines.append("events: " + " ".join(EVENTS))
    lines.append("summary: " + " ".join(str(c[e]) for e in EVENTS))
    return "\n".join(lines)
