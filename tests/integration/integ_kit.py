"""Small co-simulation scenarios built on the fly (seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "traces" / "demo"
DEMO_MACHINE = str(DEMO / "skx-2s-demo.toml")
CXL_MACHINE = str(DEMO / "skx-2s-cxl-demo.toml")

BASE = 0x10_0000_0000


def make_trace(path, threads=2, pages=64, accesses=16000, seed=5, insts=100, store_frac=0.3,
               stride_mib=16):
    """Each thread writes its ``pages`` pages once, then makes ``accesses`` random 8-byte
    loads/stores in them."""
    from hwemu.traces.format import TraceChunk, write_trace

    rng = np.random.default_rng(seed)
    addr, kind, tid = [], [], []
    for t in range(threads):
        base = BASE + t * stride_mib * (1 << 20)
        init = base + np.arange(pages, dtype=np.uint64) * 4096
        off = rng.integers(0, pages * 4096 // 8, accesses).astype(np.uint64) * 8
        a = np.concatenate([init, base + off])
        k = np.concatenate([np.full(pages, 2, np.uint8),
                            np.where(rng.random(accesses) < store_frac, 2, 1).astype(np.uint8)])
        addr.append(a)
        kind.append(k)
        tid.append(np.full(len(a), t, np.uint16))
    ch = TraceChunk.from_arrays(np.concatenate(kind), np.concatenate(addr),
                                np.full(sum(len(a) for a in addr), 8, np.uint16),
                                np.concatenate(tid),
                                np.full(sum(len(a) for a in addr), insts, np.uint32))
    write_trace(path, ch, "synthetic", "tests/integration")
    return str(path)


def make_schedule(path, threads=2, cpus=None, events="", nb=""):
    cpus = cpus or list(range(threads))
    text = nb + "\n[[process]]\npid = 1\nname = \"t\"\n"
    for t in range(threads):
        text += f"\n[[thread]]\ntid = {t}\npid = 1\ncpu = {cpus[t]}\n"
    text += events
    Path(path).write_text(text)
    return str(path)


# Threads 0 and 1 move to socket 1 (CPUs 24, 25) at 200 us.
MOVE = """
[[event]]
at = "200us"
action = "move_thread"
tid = 0
cpu = 24
[[event]]
at = "200us"
action = "move_thread"
tid = 1
cpu = 25
"""


def migrate_pages_event(at: str) -> str:
    """A schedule event: thread 0 calls migrate_pages(pid 1, from node 0, to node 1) at ``at``."""
    return f"""
[[event]]
at = "{at}"
action = "migrate_pages"
tid = 0
pid = 1
from = [0]
to = [1]
"""


# thread 0 migrates the process's pages to node 1 after the move
MIGRATE = migrate_pages_event("300us")


def assert_same_run(a, b):
    """Two runs ``(CoSim, CoSimResult)`` gave identical results: statistics, summary, frames,
    numa_maps, the kernel's pages and page tables, thread clocks, latency histogram."""
    import pandas as pd

    (sa, ra), (sb, rb) = a, b
    pd.testing.assert_frame_equal(ra.stats.to_frame(), rb.stats.to_frame())
    assert ra.summary == rb.summary
    for name in ("timeline", "placement", "migrations", "steps"):
        pd.testing.assert_frame_equal(getattr(ra, name), getattr(rb, name))
    assert ra.numa_maps == rb.numa_maps
    ka, kb = sa.kernel, sb.kernel
    # pages per node, the frames they hold, faults and their latencies
    assert ka.node_usage() == kb.node_usage()
    assert sorted((p.pfn, p.node, p.order, p.index) for p in ka.pages.values()) == \
        sorted((p.pfn, p.node, p.order, p.index) for p in kb.pages.values())
    for pid, mm in ka.mms.items():
        ea = {k: (e.kind, e.pfn, e.young, e.dirty) for k, e in mm.ptes.items()}
        eb = {k: (e.kind, e.pfn, e.young, e.dirty) for k, e in kb.mms[pid].ptes.items()}
        assert ea == eb
    assert (sa.m.S.th_clock == sb.m.S.th_clock).all()
    assert (sa.m.S.hist == sb.m.S.hist).all()
    assert sa.fault_stats.to_frame().equals(sb.fault_stats.to_frame())
