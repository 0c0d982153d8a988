"""What is in a trace (``hwemu trace info``): computed by streaming the file chunk by chunk."""

from __future__ import annotations

import os

import numpy as np

from hwemu.traces.fold import trailing_insts

from hwemu.traces.format import KIND_I, KIND_NAMES, TraceReader

PAGE_SHIFT = 12  # 4 KiB pages


def _merge_unique(acc: np.ndarray, new: np.ndarray) -> np.ndarray:
    new = np.unique(new)
    if acc.size == 0:
        return new
    return np.union1d(acc, new)


def trace_info(path: str | os.PathLike) -> dict:
    """Summary of a native trace, computed in bounded memory (one chunk at a time plus the set
    of distinct 4 KiB page numbers).

    Keys: path, bytes_on_disk, source_format, program, format_version, records,
    records_by_kind (I/L/S/M), instructions (I records + the insts column
    + a data-only trace's trailing_insts), threads (count)
    and tids (list), addr_min/addr_max (all records) and data_addr_min/data_addr_max
    (L/S/M only; None if there are none), pages_4k (distinct 4 KiB pages touched by any
    record's first byte) and data_pages_4k, bytes_accessed (sum of sizes), row_groups, and the
    recorder's extra metadata (argv, cwd, exit status...) under ``extra``.
    """
    reader = TraceReader(path)
    counts = np.zeros(4, np.int64)
    tids = np.empty(0, np.uint16)
    pages = np.empty(0, np.uint64)
    dpages = np.empty(0, np.uint64)
    amin = dmin = None
    amax = dmax = None
    insts = 0
    nbytes = 0
    for ch in reader.iter_chunks():
        if len(ch) == 0:
            continue
        counts += np.bincount(ch.kind, minlength=4)[:4]
        tids = _merge_unique(tids, ch.tid)
        insts += int(ch.insts.sum(dtype=np.uint64))
        nbytes += int(ch.size.sum(dtype=np.uint64))
        lo, hi = int(ch.addr.min()), int(ch.addr.max())
        amin = lo if amin is None else min(amin, lo)
        amax = hi if amax is None else max(amax, hi)
        pg = ch.addr >> np.uint64(PAGE_SHIFT)
        pages = _merge_unique(pages, pg)
        data = ch.kind != KIND_I
        if data.any():
            da = ch.addr[data]
            lo, hi = int(da.min()), int(da.max())
            dmin = lo if dmin is None else min(dmin, lo)
            dmax = hi if dmax is None else max(dmax, hi)
            dpages = _merge_unique(dpages, pg[data])
    meta = reader.meta
    # data-only traces: instructions after each thread's last data record (hwemu.traces.fold)
    insts += trailing_insts(meta)
    return {
        "path": str(path),
        "bytes_on_disk": os.path.getsize(path),
        "source_format": meta.source_format,
        "program": meta.program,
        "format_version": meta.format_version,
        "records": int(counts.sum()),
        "records_by_kind": {k: int(v) for k, v in zip(KIND_NAMES, counts)},
        "instructions": int(counts[KIND_I]) + insts,
        "threads": int(tids.size),
        "tids": [int(t) for t in tids[:64]],
        "addr_min": amin,
        "addr_max": amax,
        "data_addr_min": dmin,
        "data_addr_max": dmax,
        "pages_4k": int(pages.size),
        "data_pages_4k": int(dpages.size),
        "bytes_accessed": nbytes,
        "row_groups": reader.num_row_groups,
        "extra": meta.extra or {},
    }


def format_info(info: dict) -> str:
    """Human-readable rendering of :func:`trace_info`'s result."""
    from hwemu.units import format_bytes

    def hx(v):
        return "-" if v is None else f"0x{v:x}"

    rk = info["records_by_kind"]
    lines = [
        f"trace          {info['path']}",
        f"size on disk   {format_bytes(info['bytes_on_disk'])}",
        f"source format  {info['source_format']}",
        f"program        {info['program'] or '-'}",
        f"records        {info['records']:,}  (I {rk['I']:,}  L {rk['L']:,}  S {rk['S']:,}  M {rk['M']:,})",
        f"instructions   {info['instructions']:,}",
        f"threads        {info['threads']}" + (f"  (tids {', '.join(map(str, info['tids']))}"
                                               + (", ..." if info['threads'] > len(info['tids']) else "") + ")"
                                               if info['threads'] > 1 else ""),
        f"address range  {hx(info['addr_min'])} .. {hx(info['addr_max'])}",
        f"data addresses {hx(info['data_addr_min'])} .. {hx(info['data_addr_max'])}",
        f"4 KiB pages    {info['pages_4k']:,} distinct ({info['data_pages_4k']:,} touched by data)",
        f"bytes accessed {format_bytes(info['bytes_accessed'])}",
    ]
    extra = info.get("extra") or {}
    if "exit_status" in extra:
        lines.append(f"exit status    {extra['exit_status']}")
    if "cwd" in extra:
        lines.append(f"recorded in    {extra['cwd']}")
    if "tool" in extra:
        lines.append(f"recorder       {extra['tool']} ({extra.get('valgrind', '?')})")
    if "synth" in extra:
        lines.append("synthesised    " + " ".join(f"{k}={v}" for k, v in extra["synth"].items()))
    return "\n".join(lines)
