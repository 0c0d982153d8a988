"""Synthetic traces with known structure (``hwemu trace synth``); see docs/traces.md.

Every kind generates ``records`` data records (no instruction fetches; ``insts`` non-memory
instructions are attributed to each record). Threads interleave round-robin: record ``g``
belongs to thread ``g % threads`` and is that thread's step ``g // threads``. Thread-private
kinds (stream, strided, chase) give each thread its own contiguous slice of the footprint
(``footprint // threads`` rounded down to a whole line); random and phase share the whole
footprint.

Generation is numpy-vectorised in fixed chunks of :data:`CHUNK` records from one
``numpy.random.Generator(PCG64(seed))``, so the same options and seed give a bit-identical file.
"""

from __future__ import annotations

import os

import numpy as np

from hwemu.errors import HwemuError
from hwemu.traces.format import KIND_L, KIND_M, KIND_S, TraceChunk, TraceMeta, TraceWriter

KINDS = ("stream", "random", "chase", "strided", "phase")
CHUNK = 1 << 20
#: Most records one synthetic trace may have (about 2 TB of Parquet at the worst).
MAX_RECORDS = 1 << 40
#: Most lines a chase permutes (the permutation is kept in memory, 8 bytes a line).
MAX_CHASE_NODES = 1 << 27
DEFAULTS = dict(records=1_000_000, footprint=64 << 20, threads=1, stride=None, seed=1, insts=0,
                line=64, size=8, base=0x10000000, store_fraction=0.25)


def _check(kind, records, footprint, threads, stride, insts, line, size, base, store_fraction,
           seed=1):
    if kind not in KINDS:
        raise HwemuError(f"unknown synthetic trace kind {kind!r} (choose from {', '.join(KINDS)})")
    if not 0 <= seed < 1 << 128:
        raise HwemuError(f"--seed must be 0..2**128-1 (got {seed})")
    if not 0 <= records <= MAX_RECORDS:
        raise HwemuError(f"--records {records} is more than hwemu can write (at most {MAX_RECORDS})")
    if footprint >= 1 << 57:
        raise HwemuError(f"--footprint {footprint} is larger than the 57-bit virtual address "
                         "space the machine models")
    if records < 1:
        raise HwemuError(f"--records must be at least 1 (got {records})")
    if not 1 <= threads <= 65535:
        raise HwemuError(f"--threads must be 1..65535 (got {threads})")
    if line < 1 or line & (line - 1):
        raise HwemuError(f"--line must be a power of two (got {line})")
    if not 1 <= size <= 65535:
        raise HwemuError(f"--size must be 1..65535 bytes (got {size})")
    if size > line:
        raise HwemuError(f"--size ({size}) must not exceed --line ({line})")
    if stride is not None and stride < 1:
        raise HwemuError(f"--stride must be positive (got {stride})")
    if not 0 <= insts <= 0xFFFFFFFF:
        raise HwemuError(f"--insts must be 0..4294967295 (got {insts})")
    if base < 0 or base % line:
        raise HwemuError(f"--base must be a non-negative multiple of --line (got 0x{base:x})")
    if not 0.0 <= store_fraction <= 1.0:
        raise HwemuError(f"--store-fraction must be in [0, 1] (got {store_fraction})")
    per = footprint // threads if kind in ("stream", "strided", "chase") else footprint
    if kind == "phase":
        per = footprint // 2
    if per < line:
        raise HwemuError(f"--footprint {footprint} is too small: each thread region"
                         f"{' (half the footprint for phase)' if kind == 'phase' else ''} needs at least one "
                         f"{line}-byte line")
    if base + footprint > 1 << 64:
        raise HwemuError("--base + --footprint exceeds the 64-bit address space")
    if kind == "chase" and footprint // line > MAX_CHASE_NODES:
        raise HwemuError(f"--footprint {footprint}: a chase keeps a permutation of every "
                         f"{line}-byte line in memory; at most {MAX_CHASE_NODES} lines "
                         f"({MAX_CHASE_NODES * line} bytes) at --line {line}")
    if not (store_fraction == store_fraction) or store_fraction in (float("inf"), float("-inf")):
        raise HwemuError(f"--store-fraction must be a number in [0, 1] (got {store_fraction})")


def synthesize(kind: str, out: str | os.PathLike, records: int = DEFAULTS["records"],
               footprint: int = DEFAULTS["footprint"], threads: int = 1, stride: int | None = None,
               seed: int = DEFAULTS["seed"], insts: int = 0, line: int = 64, size: int = 8,
               base: int = DEFAULTS["base"], store_fraction: float = DEFAULTS["store_fraction"]) -> TraceMeta:
    """Write a synthetic trace of ``kind`` to ``out``; returns its metadata.

    stream   each thread reads its slice sequentially, ``size`` bytes at a time, wrapping.
    strided  each thread reads its slice every ``stride`` bytes (default: ``line``), wrapping
             (offset = step * stride mod slice).
    random   GUPS-like: read-modify-write (M) of a uniformly random ``size``-aligned word in
             the whole footprint.
    chase    pointer chase: each thread walks a uniformly random cyclic permutation of the
             lines of its slice (one ``size``-byte load at the start of each line).
    phase    working set moves halfway: the first ``records // 2`` records touch random
             ``size``-aligned words in the first half of the footprint, the rest in the second
             half; each record is a store with probability ``store_fraction``, else a load.
    """
    records, footprint, threads, insts = int(records), int(footprint), int(threads), int(insts)
    line, size, base, seed = int(line), int(size), int(base), int(seed)
    stride = None if stride is None else int(stride)
    _check(kind, records, footprint, threads, stride, insts, line, size, base, store_fraction, seed)
    rng = np.random.Generator(np.random.PCG64(seed))
    slice_bytes = (footprint // threads) // line * line
    t_base = base + np.arange(threads, dtype=np.uint64) * np.uint64(slice_bytes)
    if kind == "strided" and stride is None:
        stride = line
    orders = None
    if kind == "chase":
        nodes = slice_bytes // line
        orders = np.empty((threads, nodes), np.uint64)
        for t in range(threads):
            orders[t] = rng.permutation(nodes).astype(np.uint64)
    opts = dict(kind=kind, records=records, footprint=footprint, threads=threads, seed=seed,
                insts=insts, line=line, size=size, base=base)
    if kind == "strided":
        opts["stride"] = stride
    if kind == "phase":
        opts["store_fraction"] = store_fraction
    with TraceWriter(out, source_format="synth", program=f"synth {kind}", extra={"synth": opts}) as w:
        for start in range(0, records, CHUNK):
            n = min(CHUNK, records - start)
            g = np.arange(start, start + n, dtype=np.uint64)
            tid = (g % np.uint64(threads)).astype(np.uint16)
            j = g // np.uint64(threads)
            kinds = np.full(n, KIND_L, np.uint8)
            if kind == "stream":
                addr = t_base[tid] + (j * np.uint64(size)) % np.uint64(slice_bytes)
            elif kind == "strided":
                addr = t_base[tid] + (j * np.uint64(stride)) % np.uint64(slice_bytes)
            elif kind == "chase":
                nodes = orders.shape[1]
                addr = t_base[tid] + orders[tid, (j % np.uint64(nodes)).astype(np.int64)] * np.uint64(line)
            elif kind == "random":
                words = footprint // size
                addr = np.uint64(base) + rng.integers(0, words, n, dtype=np.uint64) * np.uint64(size)
                kinds[:] = KIND_M
            else:  # phase
                half = footprint // 2
                words = half // size
                second = g >= np.uint64(records // 2)
                addr = (np.uint64(base) + second.astype(np.uint64) * np.uint64(half)
                        + rng.integers(0, words, n, dtype=np.uint64) * np.uint64(size))
                kinds[rng.random(n) < store_fraction] = KIND_S
            w.write(TraceChunk(kind=kinds, tid=tid, size=np.full(n, size, np.uint16),
                               addr=np.ascontiguousarray(addr, dtype=np.uint64),
                               insts=np.full(n, insts, np.uint32)))
    return w.meta()
