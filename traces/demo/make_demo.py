"""Generate the demo traces of traces/demo (deterministic: same seed -> same bytes).

    python traces/demo/make_demo.py [--out-dir traces/demo] [--seed 1]

Two workloads, both "per-thread private arrays with a hot part" (the shape of an OpenMP loop
nest over thread-private data):

* numa_move.parquet (4 threads): each thread first writes every page of its own 768 KiB
  array once (first touch), then performs 140,000 random loads/stores (30 % stores) of 8
  bytes: 70 % to the hot half of its array, 30 % anywhere in it; 100 instructions of other
  work per access. Paired with numa_move.toml, which starts the threads on socket 0 and moves them
  to socket 1 early in the run.
* tiering.parquet (2 threads): each thread writes a 1.5 MiB cold array, then its 1 MiB hot
  array (so on a machine whose DRAM nodes are full by then, the hot pages are first touched
  on the CXL node), then 150,000 random accesses: 85 % to the hot array, 15 % to the cold
  one; 40 instructions of other work per access.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hwemu.traces.format import TraceChunk, write_trace

KIB, MIB = 1 << 10, 1 << 20


def _thread_records(rng, base, size, hot_off, hot_size, n_random, hot_frac, store_frac,
                    init_ranges):
    """Addresses and kinds of one thread: one store per page of each init range in order,
    then ``n_random`` random 8-byte accesses (``hot_frac`` of them in the hot range)."""
    init = np.concatenate([np.arange(base + lo, base + lo + ln, 4096, dtype=np.uint64)
                           for lo, ln in init_ranges])
    hot = rng.random(n_random) < hot_frac
    off = np.where(hot, hot_off + rng.integers(0, hot_size // 8, n_random) * 8,
                   rng.integers(0, size // 8, n_random) * 8).astype(np.uint64)
    addr = np.concatenate([init, base + off])
    kind = np.concatenate([np.full(len(init), 2, np.uint8),
                           np.where(rng.random(n_random) < store_frac, 2, 1).astype(np.uint8)])
    return addr, kind


def _interleave(per_thread, insts):
    """Round-robin the threads' records (the order within a thread is what matters)."""
    n = max(len(a) for a, _ in per_thread)
    addr, kind, tid = [], [], []
    for i in range(0, n, 64):
        for t, (a, k) in enumerate(per_thread):
            a_ = a[i:i + 64]
            addr.append(a_)
            kind.append(k[i:i + 64])
            tid.append(np.full(len(a_), t, np.uint16))
    addr = np.concatenate(addr)
    kind = np.concatenate(kind)
    tid = np.concatenate(tid)
    return TraceChunk.from_arrays(kind, addr, np.full(len(addr), 8, np.uint16), tid,
                                  np.full(len(addr), insts, np.uint32))


def numa_move(seed: int) -> TraceChunk:
    rng = np.random.default_rng(seed)
    threads, size = 4, 768 * KIB
    per = []
    for t in range(threads):
        base = 0x10_0000_0000 + t * 16 * MIB
        per.append(_thread_records(rng, base, size, 0, size // 2, 140_000, 0.70, 0.30,
                                   [(0, size)]))
    return _interleave(per, 100)


def tiering(seed: int) -> TraceChunk:
    rng = np.random.default_rng(seed + 1)
    per = []
    cold, hot = 3 * MIB // 2, 1 * MIB
    for t in range(2):
        base = 0x20_0000_0000 + t * 16 * MIB
        # layout: cold [0, cold), hot [cold, cold + hot); touched cold first
        addr, kind = _thread_records(rng, base, cold, 0, cold, 0, 0.0, 0.3,
                                     [(0, cold), (cold, hot)])
        n = 150_000
        hot_hit = rng.random(n) < 0.85
        off = np.where(hot_hit, cold + rng.integers(0, hot // 8, n) * 8,
                       rng.integers(0, cold // 8, n) * 8).astype(np.uint64)
        k = np.where(rng.random(n) < 0.3, 2, 1).astype(np.uint8)
        per.append((np.concatenate([addr, base + off]), np.concatenate([kind, k])))
    return _interleave(per, 40)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(Path(__file__).parent))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    out = Path(a.out_dir)
    write_trace(out / "numa_move.parquet", numa_move(a.seed), "synthetic",
                f"traces/demo/make_demo.py numa_move --seed {a.seed}")
    write_trace(out / "tiering.parquet", tiering(a.seed), "synthetic",
                f"traces/demo/make_demo.py tiering --seed {a.seed}")


if __name__ == "__main__":
    main()
