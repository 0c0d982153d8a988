#!/usr/bin/env python3
"""``hwemu cachesim`` on a load-only trace, with and without decoding ahead, next to
pycachesim's batched ``load``.

    python benchmarks/bench_cachesim_loads.py [--records 12M] [--footprint 64MiB]
        [--repeat 3] [--workdir DIR] [--json]

The trace comes from ``hwemu trace synth strided`` (one 8-byte load per 64-byte line, so every
access misses D1 and, beyond 8 MiB, LL), cached in --workdir. Rows (accesses per second, best
of --repeat, numba compile excluded):

- ``cachesim core``: ``CachegrindSim.feed`` over the trace's chunks decoded beforehand (the
  replay alone, as pycachesim's row below is its simulation alone);
- ``cachesim, plain``: ``CachegrindSim.feed`` over ``TraceReader.iter_chunks`` (decode, then
  replay, one row group after the other);
- ``cachesim, decoded ahead``: the same over ``TraceReader.iter_chunks_ahead`` (the next row
  group decoded by a background thread while the compiled loop replays without the GIL), as
  ``hwemu cachesim`` reads a file;
- ``pycachesim batched load``: pycachesim's L1 (32768,8,64) + LL (8388608,16,64) LRU hierarchy,
  all addresses passed to one ``load`` call as a Python list built before timing (its fastest
  path), if pycachesim is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchkit import synth_cached


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default="12M")
    ap.add_argument("--footprint", default="64MiB")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/hwemu-bench-cachesim")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    from hwemu.cachesim.sim import CachegrindSim
    from hwemu.traces.format import TraceReader

    path = synth_cached(a.workdir, f"strided-{a.records}-{a.footprint}.parquet", "strided",
                        "--records", a.records, "--footprint", a.footprint)
    n = TraceReader(path).num_records
    CachegrindSim().feed(next(TraceReader(path).iter_chunks()))      # compile or load

    def best(fn) -> float:
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return n / min(times)

    def replay(ahead: bool):
        r = TraceReader(path)
        sim = CachegrindSim()
        for chunk in (r.iter_chunks_ahead() if ahead else r.iter_chunks()):
            sim.feed(chunk)

    chunks = list(TraceReader(path).iter_chunks())

    def core():
        sim = CachegrindSim()
        for chunk in chunks:
            sim.feed(chunk)

    rows = {"cachesim core": best(core),
            "cachesim, plain": best(lambda: replay(False)),
            "cachesim, decoded ahead": best(lambda: replay(True))}
    try:
        from cachesim import Cache, CacheSimulator, MainMemory
    except ImportError:
        pass
    else:
        addrs = TraceReader(path).read_all().addr.astype("int64").tolist()

        def pyc():
            mem = MainMemory()
            ll = Cache("LL", 8192, 16, 64, "LRU")
            mem.load_to(ll)
            mem.store_from(ll)
            l1 = Cache("L1", 64, 8, 64, "LRU", store_to=ll, load_from=ll)
            CacheSimulator(l1, mem).load(addrs, length=8)

        rows["pycachesim batched load"] = best(pyc)
        rows["core / pycachesim"] = rows["cachesim core"] / rows["pycachesim batched load"]
    if a.json:
        ratio = rows.pop("core / pycachesim", None)
        print(json.dumps({"records": n, "maccs": {k: round(v / 1e6, 2) for k, v in rows.items()},
                          "core_vs_pycachesim": None if ratio is None else round(ratio, 2)},
                         indent=2))
    else:
        for k, v in rows.items():
            if k == "core / pycachesim":
                print(f"{k:26s} {v:8.2f}x")
            else:
                print(f"{k:26s} {v / 1e6:8.2f} M accesses/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
