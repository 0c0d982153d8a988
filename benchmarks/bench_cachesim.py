#!/usr/bin/env python3
"""Replay speed of ``hwemu cachesim`` and of the set-associative core, next to pycachesim.

Run by hand (not part of the test suite)::

    python benchmarks/bench_cachesim.py                 # records gzip itself
    python benchmarks/bench_cachesim.py --trace t.parquet --repeat 5

Rows of the table (accesses per second, best of --repeat runs, numba compile excluded):

cachesim I1/D1/LL
    ``hwemu.cachesim.simulate`` semantics on the whole trace (I, L, S, M records), cachegrind's
    default-like geometry 32768,8,64 / 32768,8,64 / 8388608,16,64.
setassoc L1+L2 write-back
    the data records only (L, S, M; an M is a load then a store of its line) through a two-level
    write-back, write-allocate LRU hierarchy built from ``hwemu.cachesim.setassoc``: an L1 miss
    reads L2, a dirty L1 victim is written to L2. L1 32768,8,64 and L2 1048576,16,64.
pycachesim loadstore / pycachesim runs
    the same data accesses, same hierarchy and policy (``cachesim.Cache`` LRU, write-back,
    write-allocate) in pycachesim: once through ``loadstore`` (the only in-order mixed API), once
    as runs of consecutive loads or stores each passed to ``load``/``store`` as one list (its
    fastest batched path). Building the Python lists is done before timing, in pycachesim's
    favour. L1 and L2 miss counts of both simulators are printed as a cross-check.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from hwemu.cachesim import setassoc as sa
from hwemu.cachesim.sim import CachegrindSim
from hwemu.traces.format import TraceReader


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def record_default_trace(tmp: Path) -> Path:
    """gzip -6 of an 80 kB deterministic text, recorded with ``hwemu trace record``."""
    rng = np.random.default_rng(1)
    words = np.array("the quick brown fox jumps over lazy dogs while seven wizards box".split())
    text = " ".join(words[rng.integers(0, len(words), 16_000)])
    (tmp / "input.txt").write_text(text)
    out = tmp / "gzip.parquet"
    print("recording gzip -6 input.txt (about 20 s under Valgrind) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "hwemu", "trace", "record", "--out", str(out), "--",
                    "/bin/gzip", "-6", "-c", "input.txt"], cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL)
    return out


@numba.njit(cache=True, _nrt=False)
def _wb_two_level(l1, l2, lines, writes, counts):
    """counts: [accesses, l1 misses, l2 accesses, l2 misses]."""
    for i in range(lines.shape[0]):
        counts[0] += 1
        st, victim = sa.access(l1, lines[i], writes[i])
        if (st & sa.ST_HIT) == 0:
            counts[1] += 1
            counts[2] += 1
            if (sa.access(l2, lines[i], False)[0] & sa.ST_HIT) == 0:
                counts[3] += 1
            if st & sa.ST_EVICT_DIRTY:
                counts[2] += 1
                if (sa.access(l2, victim, True)[0] & sa.ST_HIT) == 0:
                    counts[3] += 1


def data_stream(chunk):
    """Line numbers and write flags of the data records; an M becomes a load then a store."""
    k = chunk.kind
    d = k != 0
    kk = k[d]
    line = chunk.addr[d] >> np.uint64(6)
    rep = np.where(kk == 3, 2, 1)
    lines = np.repeat(line, rep)
    writes = np.repeat(kk == 2, rep)
    # second copy of each M is the store
    m_idx = np.cumsum(rep) - 1
    writes[m_idx[kk == 3]] = True
    return np.ascontiguousarray(lines), np.ascontiguousarray(writes)


def best(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", help="native trace to replay (default: record gzip)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row; the best is kept")
    ap.add_argument("--no-pycachesim", action="store_true", help="skip the pycachesim rows")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="hwemu-bench-") as tmpd:
        path = Path(args.trace) if args.trace else record_default_trace(Path(tmpd))
        chunk = TraceReader(path).read_all()
    n = len(chunk)
    print(f"machine: {cpu_model()}, {platform.python_implementation()} {platform.python_version()}, "
          f"numba {numba.__version__}")
    print(f"trace: {path if args.trace else 'gzip -6 (80 kB text)'}: {n:,} records")

    rows = []
    # 1. cachesim, whole trace (compile first, outside timing)
    CachegrindSim().feed(chunk.slice(0, 1000))

    def run_cachesim():
        s = CachegrindSim("32768,8,64", "32768,8,64", "8388608,16,64")
        s.feed(chunk)
        return s.counts

    t, counts = best(run_cachesim, args.repeat)
    rows.append(("cachesim I1/D1/LL (cachegrind semantics)", n, t, ""))

    # 2. two-level write-back through setassoc
    lines, writes = data_stream(chunk)
    m = len(lines)
    g1, g2 = sa.CacheGeometry(32768, 8, 64), sa.CacheGeometry(1048576, 16, 64)
    _wb_two_level(sa.new_cache(g1), sa.new_cache(g2), lines[:10], writes[:10], np.zeros(4, np.int64))

    def run_wb():
        c = np.zeros(4, np.int64)
        _wb_two_level(sa.new_cache(g1), sa.new_cache(g2), lines, writes, c)
        return c

    t, c = best(run_wb, args.repeat)
    rows.append(("setassoc L1+L2 write-back", m, t, f"L1 misses {c[1]:,}, L2 misses {c[3]:,}"))
    hw_wb = t

    if not args.no_pycachesim:
        from cachesim import Cache, CacheSimulator, MainMemory

        def build():
            mem = MainMemory()
            l2 = Cache("L2", g2.sets, g2.assoc, 64, "LRU")
            mem.load_to(l2)
            mem.store_from(l2)
            l1 = Cache("L1", g1.sets, g1.assoc, 64, "LRU", store_to=l2, load_from=l2)
            return CacheSimulator(l1, mem), l1, l2

        addrs = (lines << np.uint64(6)).tolist()
        wl = writes.tolist()
        pairs = [([], [a]) if w else ([a], []) for a, w in zip(addrs, wl)]
        # runs of equal kind
        edges = np.flatnonzero(np.diff(writes.astype(np.int8))) + 1
        bounds = np.concatenate([[0], edges, [m]])
        runs = [(bool(writes[a]), addrs[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

        def run_ls():
            cs, l1, l2 = build()
            cs.loadstore(pairs, length=1)
            return l1, l2

        def run_runs():
            cs, l1, l2 = build()
            for w, run in runs:
                if w:
                    cs.store(run, length=1)
                else:
                    cs.load(run, length=1)
            return l1, l2

        for name, fn in (("pycachesim loadstore", run_ls), ("pycachesim runs of load/store", run_runs)):
            t, (l1, l2) = best(fn, args.repeat)
            rows.append((name, m, t, f"L1 misses {l1.MISS_count:,}, L2 misses {l2.MISS_count:,}"))
            if name.endswith("runs of load/store"):
                py_best = min(t, rows[-2][2])

    print()
    print(f"{'replay':<42}{'accesses':>13}{'seconds':>10}{'M acc/s':>10}  check")
    for name, cnt, t, note in rows:
        print(f"{name:<42}{cnt:>13,}{t:>10.3f}{cnt / t / 1e6:>10.1f}  {note}")
    if not args.no_pycachesim:
        print(f"\nsetassoc two-level vs fastest pycachesim path: {py_best / hw_wb:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
