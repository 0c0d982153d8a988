"""Data-only traces: instruction counts folded into the data records (``--data-only``).

A data-only trace holds loads, stores and modifies only; each one's ``insts`` is the number of
instructions its thread executed since the thread's previous data record, its own instruction
included. The instructions a thread executes after its last data record have no record to
carry them; they are kept, per thread, in the metadata (``extra["trailing_insts"]``), so the
instruction count of every thread is exact:

    I records of the full trace (per tid) == sum(insts) + trailing_insts[tid]

:class:`InstructionFolder` does the folding for any stream of records that carry instruction
counts (the hwtrace tool's data-only stream, lackey's text with its ``I`` lines, a full native
trace), one chunk at a time, with the per-thread counts carried from chunk to chunk.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hwemu.errors import HwemuError
from hwemu.traces.format import KIND_I, TraceChunk, TraceReader, TraceWriter


class InstructionFolder:
    """Fold per-record instruction counts into the next data record of the same thread."""

    def __init__(self):
        self.pending: dict[int, int] = {}   # tid -> instructions not yet given to a record

    def fold(self, is_data: np.ndarray, tid: np.ndarray, count: np.ndarray) -> np.ndarray:
        """``count[i]`` instructions belong to record ``i``'s thread at record ``i``'s place in
        the stream (an I record counts 1; a data record may carry its own). Return, for the
        data records (``is_data``) in order, the instructions since the thread's previous data
        record up to and including their own count."""
        is_data = np.asarray(is_data, bool)
        count = np.asarray(count, np.uint64)
        out = np.zeros(len(count), np.uint64)
        tids = np.flatnonzero(np.bincount(tid)) if len(tid) else ()
        for t in tids:
            t = int(t)
            sel = np.flatnonzero(tid == t) if len(tids) > 1 else np.arange(len(tid))
            cs = np.cumsum(count[sel], dtype=np.uint64)
            d = np.flatnonzero(is_data[sel])
            carry = self.pending.get(t, 0)
            if len(d):
                ends = cs[d]
                starts = np.empty_like(ends)
                starts[0] = 0
                starts[1:] = ends[:-1]
                vals = ends - starts
                vals[0] += np.uint64(carry)
                out[sel[d]] = vals
                carry = int(cs[-1] - ends[-1])
            else:
                carry += int(cs[-1]) if len(cs) else 0
            self.pending[t] = carry
        res = out[is_data]
        if res.size and res.max() > 0xFFFFFFFF:
            raise HwemuError(f"a thread executed {int(res.max()):,} instructions between two data "
                             f"records, more than the trace format's insts column holds (2^32-1)")
        return res.astype(np.uint32)

    def trailing(self) -> dict[str, int]:
        """Instructions after each thread's last data record (JSON-ready: str tid -> count)."""
        return {str(t): n for t, n in sorted(self.pending.items()) if n}

    def fold_chunk(self, ch: TraceChunk) -> TraceChunk | None:
        """The data records of a native chunk with I records (and existing insts) folded in."""
        is_data = ch.kind != KIND_I
        count = ch.insts.astype(np.uint64) + (~is_data)
        insts = self.fold(is_data, ch.tid, count)
        if not is_data.any():
            return None
        return TraceChunk.from_arrays(ch.kind[is_data], ch.addr[is_data], ch.size[is_data],
                                      tid=ch.tid[is_data], insts=insts)


def trailing_insts(meta) -> int:
    """Instructions a data-only trace keeps in its metadata (after each thread's last data
    record); 0 for other traces."""
    extra = meta.extra if isinstance(meta.extra, dict) else {}
    trailing = extra.get("trailing_insts")
    if not isinstance(trailing, dict):
        return 0
    return sum(v for v in trailing.values() if isinstance(v, int) and v > 0)


def convert_data_only(inp: str | os.PathLike, out: str | os.PathLike):
    """Write a data-only copy of the native trace ``inp`` to ``out`` (``hwemu trace convert
    --data-only``): I records are dropped and counted into the next data record's ``insts``."""
    reader = TraceReader(inp)
    meta = reader.meta
    out = Path(out)
    if out.parent and not out.parent.is_dir():
        raise HwemuError(f"{out}: directory {out.parent} does not exist")
    folder = InstructionFolder()
    extra = dict(meta.extra or {})
    with TraceWriter(out, source_format=meta.source_format, program=meta.program, extra=extra) as wr:
        for ch in reader.iter_chunks():
            folded = folder.fold_chunk(ch)
            if folded is not None:
                wr.write(folded)
        if wr.records == 0:
            raise HwemuError(f"{inp}: the trace has no data records (L, S, M); nothing to convert")
        extra["data_only"] = True
        trailing = folder.trailing()
        for t, n in ((meta.extra or {}).get("trailing_insts") or {}).items():
            trailing[t] = trailing.get(t, 0) + int(n)
        extra["trailing_insts"] = dict(sorted(trailing.items(), key=lambda kv: int(kv[0])))
        extra["converted_from"] = str(inp)
    return wr.meta()
