"""The native trace format: zstd-compressed Parquet, written and read in row groups.

One row per memory record. Columns (see docs/trace-format.md):

========  ======  ==========================================================================
column    type    meaning
========  ======  ==========================================================================
kind      uint8   0 = I instruction fetch, 1 = L load, 2 = S store, 3 = M modify
tid       uint16  thread id within the traced process (0 for single-threaded traces)
size      uint16  bytes accessed (instruction length for I)
addr      uint64  virtual address
insts     uint32  instructions this thread retired since its previous record that have no
                  I record of their own (0 in traces that carry instruction fetches)
========  ======  ==========================================================================

File-level metadata lives under the Parquet key ``hwemu`` as JSON: ``format_version``,
``source_format``, ``program``, ``records`` (total), ``records_by_kind`` and ``threads``.

Readers yield :class:`TraceChunk` objects of contiguous numpy arrays, one row group (or a slice
of one) at a time, so a trace much larger than memory streams through in bounded memory.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from hwemu.errors import HwemuError
from hwemu.fileio import atomic_path

FORMAT_VERSION = 1
META_KEY = b"hwemu"
KIND_I, KIND_L, KIND_S, KIND_M = 0, 1, 2, 3
KIND_NAMES = ("I", "L", "S", "M")
KIND_LONG_NAMES = ("instruction fetch", "load", "store", "modify")
DTYPES = {
    "kind": np.uint8,
    "tid": np.uint16,
    "size": np.uint16,
    "addr": np.uint64,
    "insts": np.uint32,
}
COLUMNS = tuple(DTYPES)
#: Virtual addresses the machine model can map (57 bits, x86-64 5-level paging); readers that
#: replay a trace pass it as ``TraceReader(path, max_addr=MAX_VADDR)``.
MAX_VADDR = 1 << 57
DEFAULT_ROW_GROUP = 1 << 20


def arrow_schema():
    import pyarrow as pa

    return pa.schema([
        pa.field("kind", pa.uint8(), nullable=False),
        pa.field("tid", pa.uint16(), nullable=False),
        pa.field("size", pa.uint16(), nullable=False),
        pa.field("addr", pa.uint64(), nullable=False),
        pa.field("insts", pa.uint32(), nullable=False),
    ])


@dataclass
class TraceChunk:
    """A run of trace records as contiguous numpy arrays of equal length."""

    kind: np.ndarray
    tid: np.ndarray
    size: np.ndarray
    addr: np.ndarray
    insts: np.ndarray

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @classmethod
    def empty(cls) -> "TraceChunk":
        return cls(**{c: np.empty(0, dtype=t) for c, t in DTYPES.items()})

    @classmethod
    def from_arrays(cls, kind, addr, size, tid=None, insts=None) -> "TraceChunk":
        n = len(kind)
        return cls(
            kind=np.ascontiguousarray(kind, dtype=np.uint8),
            tid=np.zeros(n, np.uint16) if tid is None else np.ascontiguousarray(tid, dtype=np.uint16),
            size=np.ascontiguousarray(size, dtype=np.uint16),
            addr=np.ascontiguousarray(addr, dtype=np.uint64),
            insts=np.zeros(n, np.uint32) if insts is None else np.ascontiguousarray(insts, dtype=np.uint32),
        )

    def slice(self, start: int, stop: int) -> "TraceChunk":
        return TraceChunk(*(getattr(self, c)[start:stop] for c in COLUMNS))


@dataclass
class TraceMeta:
    """What a trace file says about itself."""

    source_format: str
    program: str
    records: int
    records_by_kind: dict
    threads: int
    format_version: int = FORMAT_VERSION
    extra: dict | None = None

    def to_json(self) -> dict:
        d = {
            "format_version": self.format_version,
            "source_format": self.source_format,
            "program": self.program,
            "records": self.records,
            "records_by_kind": self.records_by_kind,
            "threads": self.threads,
        }
        if self.extra:
            d["extra"] = self.extra
        return d


class TraceWriter:
    """Write records to ``path`` as zstd Parquet, atomically.

    Use as a context manager; the file appears under its name only when the block completes
    without an exception::

        with TraceWriter(out, source_format="lackey", program="ls /") as w:
            w.write(chunk)
    """

    def __init__(self, path: str | os.PathLike, source_format: str, program: str = "",
                 row_group_size: int = DEFAULT_ROW_GROUP, extra: dict | None = None):
        self.path = Path(path)
        self.source_format = source_format
        self.program = program
        self.row_group_size = int(row_group_size)
        self.extra = extra
        self._counts = np.zeros(4, np.int64)
        self._max_tid = -1
        self._tids: set[int] = set()
        self._pending: list[TraceChunk] = []
        self._pending_n = 0
        self._ctx = None
        self._writer = None

    def __enter__(self) -> "TraceWriter":
        import pyarrow.parquet as pq

        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        try:
            self._writer = pq.ParquetWriter(str(tmp), arrow_schema(), compression="zstd",
                                            compression_level=3,
                                            use_dictionary=["kind", "tid", "size"],
                                            write_statistics=["addr", "tid"])
        except BaseException as exc:
            self._ctx.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def write(self, chunk: TraceChunk) -> None:
        if len(chunk) == 0:
            return
        if chunk.kind.max(initial=0) > KIND_M:
            raise ValueError("trace record kind out of range")
        self._counts += np.bincount(chunk.kind, minlength=4)[:4]
        self._tids.update(np.unique(chunk.tid).tolist())
        self._pending.append(chunk)
        self._pending_n += len(chunk)
        while self._pending_n >= self.row_group_size:
            self._flush(self.row_group_size)

    def _flush(self, n: int) -> None:
        import pyarrow as pa

        merged = {c: np.concatenate([getattr(ch, c) for ch in self._pending]) for c in COLUMNS}
        table = pa.table({c: merged[c][:n] for c in COLUMNS}, schema=arrow_schema())
        self._writer.write_table(table, row_group_size=n)
        rest = TraceChunk(**{c: merged[c][n:] for c in COLUMNS})
        self._pending = [rest] if len(rest) else []
        self._pending_n = len(rest)

    @property
    def records(self) -> int:
        return int(self._counts.sum())

    def meta(self) -> TraceMeta:
        return TraceMeta(
            source_format=self.source_format,
            program=self.program,
            records=int(self._counts.sum()),
            records_by_kind={k: int(v) for k, v in zip(KIND_NAMES, self._counts)},
            threads=len(self._tids),
            extra=self.extra,
        )

    def __exit__(self, exc_type, exc, tb) -> bool:
        # Any failure here (a full disk while the last row group or the footer is written)
        # must reach atomic_path as an exception, so that the temporary file is removed and
        # not renamed into place.
        try:
            if exc_type is None:
                if self._pending_n:
                    self._flush(self._pending_n)
                self._writer.add_key_value_metadata({META_KEY: json.dumps(self.meta().to_json())})
            self._writer.close()
        except BaseException as close_exc:
            if exc_type is None:
                exc_type, exc, tb = type(close_exc), close_exc, close_exc.__traceback__
            with contextlib.suppress(BaseException):
                self._writer.close()
        if exc_type is None:
            self._ctx.__exit__(None, None, None)
            return False
        # Re-raise through atomic_path: it removes the temporary file and turns a write
        # failure into a HwemuError naming the target.
        try:
            self._ctx.__exit__(exc_type, exc, tb)
        except BaseException as raised:
            if raised is exc:
                raise
            raise raised from None
        raise exc


class TraceReader:
    """Read a native trace in chunks. Errors on a missing, truncated or foreign file."""

    def __init__(self, path: str | os.PathLike, max_addr: int | None = None):
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.max_addr = max_addr
        if not self.path.exists():
            raise HwemuError(f"{self.path}: no such trace file")
        if self.path.is_dir():
            raise HwemuError(f"{self.path}: is a directory, expected a trace file")
        try:
            self._pf = pq.ParquetFile(str(self.path))
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise HwemuError(f"{self.path}: not a readable hwemu trace (truncated or corrupt Parquet: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        kv = dict(self._pf.metadata.metadata or {})
        kv.update(self._pf.schema_arrow.metadata or {})
        if META_KEY not in kv:
            raise HwemuError(f"{self.path}: Parquet file has no hwemu metadata; import it with 'hwemu trace import'")
        names = self._pf.schema_arrow.names
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise HwemuError(f"{self.path}: trace lacks column(s) {', '.join(missing)}")
        twice = [c for c in COLUMNS if names.count(c) > 1]
        if twice:
            raise HwemuError(f"{self.path}: column {twice[0]} appears twice")
        try:
            d = json.loads(kv[META_KEY])
            self.meta = TraceMeta(
                source_format=d["source_format"], program=d.get("program", ""),
                records=int(d["records"]), records_by_kind=d["records_by_kind"],
                threads=int(d["threads"]), format_version=int(d["format_version"]),
                extra=d.get("extra"),
            )
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            raise HwemuError(f"{self.path}: malformed hwemu metadata ({type(exc).__name__}: {exc})") from None
        if (not isinstance(self.meta.source_format, str) or not isinstance(self.meta.program, str)
                or not isinstance(self.meta.records_by_kind, dict)
                or not (self.meta.extra is None or isinstance(self.meta.extra, dict))):
            raise HwemuError(f"{self.path}: malformed hwemu metadata (source_format and program "
                             f"must be strings, records_by_kind and extra tables)")
        if self.meta.format_version > FORMAT_VERSION:
            raise HwemuError(f"{self.path}: trace format version {self.meta.format_version} is newer "
                             f"than this hwemu understands ({FORMAT_VERSION})")
        self._check_schema()
        rows = self.num_records
        if rows == 0:
            raise HwemuError(f"{self.path}: trace has no records")
        if self.meta.records != rows:
            raise HwemuError(f"{self.path}: metadata says {self.meta.records} records but the file "
                             f"holds {rows} rows (truncated, or rewritten by another tool?)")
        md = self._pf.metadata
        self._group_start = np.concatenate(
            [[0], np.cumsum([md.row_group(i).num_rows for i in range(md.num_row_groups)])]).astype(np.int64)

    def _check_schema(self) -> None:
        """Every column must have an integer type (values are range-checked when read)."""
        import pyarrow as pa

        schema = self._pf.schema_arrow
        for c in COLUMNS:
            t = schema.field(c).type
            if pa.types.is_dictionary(t):
                t = t.value_type
            if not pa.types.is_integer(t):
                raise HwemuError(f"{self.path}: column {c} has type {schema.field(c).type}, "
                                 f"expected an integer type ({np.dtype(DTYPES[c]).name})")

    def _read_group(self, i: int, columns: list[str]) -> dict:
        """Row group ``i``'s ``columns`` as numpy arrays of the native dtypes, checked: no
        nulls, every value in its column's range (kind 0..3)."""
        try:
            table = self._pf.read_row_group(i, columns=columns)
        except Exception as exc:
            raise HwemuError(f"{self.path}: row group {i} is unreadable (truncated or corrupt): "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        return {c: self._checked(table.column(c), c, int(self._group_start[i])) for c in columns}

    def _checked(self, col, name: str, first_row: int) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if col.null_count:
            bad = int(np.argmax(pc.is_null(col).to_numpy(zero_copy_only=False)))
            raise HwemuError(f"{self.path}: column {name}: row {first_row + bad} is null")
        arr = col.to_numpy()
        want = np.dtype(DTYPES[name])
        hi = KIND_M if name == "kind" else int(np.iinfo(want).max)
        if arr.dtype != want or name == "kind":
            if arr.size and (arr.dtype.kind == "i" and int(arr.min()) < 0 or int(arr.max()) > hi):
                bad = int(np.flatnonzero((arr < 0) | (arr > hi))[0]) if arr.dtype.kind == "i" \
                    else int(np.flatnonzero(arr > hi)[0])
                what = "a record kind 0..3 (I, L, S, M)" if name == "kind" else f"0..{hi}"
                raise HwemuError(f"{self.path}: column {name}: row {first_row + bad} has value "
                                 f"{int(arr[bad])}, expected {what}")
        out = np.ascontiguousarray(arr, dtype=want)
        if name == "addr" and self.max_addr is not None and out.size \
                and int(out.max()) >= self.max_addr:
            bad = int(np.flatnonzero(out >= np.uint64(self.max_addr))[0])
            raise HwemuError(f"{self.path}: column addr: row {first_row + bad} has address "
                             f"{int(out[bad]):#x}, outside the {self.max_addr.bit_length() - 1}-bit "
                             f"virtual address space the machine models")
        return out

    @property
    def num_records(self) -> int:
        return int(self._pf.metadata.num_rows)

    @property
    def num_row_groups(self) -> int:
        return int(self._pf.metadata.num_row_groups)

    def iter_chunks(self, max_records: int | None = None) -> Iterator[TraceChunk]:
        """Yield chunks of at most ``max_records`` records (default: one row group each)."""
        for i in range(self._pf.metadata.num_row_groups):
            chunk = TraceChunk(**self._read_group(i, list(COLUMNS)))
            if max_records is None or len(chunk) <= max_records:
                yield chunk
            else:
                for start in range(0, len(chunk), max_records):
                    yield chunk.slice(start, start + max_records)

    def iter_chunks_ahead(self, max_records: int | None = None,
                          depth: int = 2) -> Iterator[TraceChunk]:
        """:meth:`iter_chunks`, decoded ``depth`` chunks ahead by a background thread, so that
        decoding the next row group (Parquet decompression in Arrow, the column checks in
        numpy: both release the GIL) overlaps the compiled replay of the current one (which
        runs without the GIL). Same chunks in the same order; an error reading the file is
        raised where :meth:`iter_chunks` would raise it."""
        return read_ahead(self.iter_chunks(max_records), depth)

    def thread_counts(self, threads: int) -> np.ndarray:
        """Records per thread id (length ``threads``, ids >= threads counted in the last), read
        from the tid column alone, one row group at a time."""
        return self.group_thread_counts(threads).sum(axis=0)

    def group_thread_counts(self, threads: int) -> np.ndarray:
        """Records per (row group, thread id): shape (row groups, ``threads``), ids >= threads
        counted in the last column, read from the tid column alone. Its column sums are
        :meth:`thread_counts`."""
        counts = np.zeros((self.num_row_groups, max(1, threads)), np.int64)
        for i in range(self.num_row_groups):
            tid = np.minimum(self._read_group(i, ["tid"])["tid"], counts.shape[1] - 1)
            counts[i] = np.bincount(tid, minlength=counts.shape[1])
        return counts

    def read_group(self, i: int) -> TraceChunk:
        """Row group ``i`` as one chunk, checked as :meth:`iter_chunks` checks it."""
        return TraceChunk(**self._read_group(i, list(COLUMNS)))

    def read_all(self) -> TraceChunk:
        """The whole trace in memory (for small traces and tests)."""
        chunks = list(self.iter_chunks())
        if not chunks:
            return TraceChunk.empty()
        return TraceChunk(**{c: np.concatenate([getattr(ch, c) for ch in chunks]) for c in COLUMNS})


def write_trace(path, chunk: TraceChunk, source_format: str, program: str = "", **kw) -> TraceMeta:
    """Write one in-memory chunk as a trace file (convenience for generators and tests)."""
    with TraceWriter(path, source_format=source_format, program=program, **kw) as w:
        w.write(chunk)
    return w.meta()


_END = object()


def read_ahead(chunks, depth: int = 2):
    """Iterate ``chunks`` with a background thread producing up to ``depth`` items ahead of
    the consumer. Exceptions of the producer reach the consumer in order; closing the
    generator early stops the producer."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in chunks:
                if not put((item, None)):
                    return
        except BaseException as exc:        # handed to the consumer, raised there
            put((None, exc))
            return
        put((_END, None))

    worker = threading.Thread(target=produce, name="hwemu-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()
