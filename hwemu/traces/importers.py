"""Import foreign trace formats into the native trace format (docs/traces.md).

Formats: ``lackey`` (Valgrind lackey ``--trace-mem=yes`` text), ``pin`` (Pin's pinatrace text),
``champsim`` (ChampSim binary ``input_instr`` records) and ``csv`` (documented columns with a
header). Input may be a path or ``-`` (stdin), plain or gzip/xz/zstd compressed.

Everything streams: text is read in blocks of :data:`BLOCK_BYTES`, each block is parsed by a
compiled kernel (:mod:`hwemu.traces._kernels`) up to its last newline, and the tail is carried
into the next block. Memory stays bounded whatever the input size. The output is written
through :class:`~hwemu.traces.format.TraceWriter`, so a malformed line leaves no output file.
"""

from __future__ import annotations

import os
from typing import IO, Callable, Iterator

import numpy as np

from hwemu.errors import HwemuError, warn
from hwemu.fileio import open_binary_input
from hwemu.traces.format import KIND_I, KIND_L, KIND_S, TraceChunk, TraceMeta, TraceWriter

FORMATS = ("lackey", "pin", "champsim", "csv")
BLOCK_BYTES = 8 << 20
MAX_LINE = 16 << 20

#: Size given to pinatrace records (pinatrace does not record access sizes).
PIN_ACCESS_SIZE = 8
#: Sizes given to ChampSim records (input_instr carries neither instruction length nor
#: operand sizes).
CHAMPSIM_INSTR_SIZE = 4
CHAMPSIM_ACCESS_SIZE = 8
CHAMPSIM_RECORD = np.dtype([
    ("ip", "<u8"), ("is_branch", "u1"), ("branch_taken", "u1"),
    ("destination_registers", "u1", (2,)), ("source_registers", "u1", (4,)),
    ("destination_memory", "<u8", (2,)), ("source_memory", "<u8", (4,)),
])
assert CHAMPSIM_RECORD.itemsize == 64

CSV_COLUMNS = ("kind", "addr", "size", "tid", "insts")
CSV_REQUIRED = ("kind", "addr", "size")


def _name(inp) -> str:
    return "<stdin>" if inp == "-" else str(inp)


def _read_blocks(fh: IO[bytes], name: str, block: int = BLOCK_BYTES) -> Iterator[bytes]:
    try:
        while True:
            data = fh.read(block)
            if not data:
                return
            yield data
    except (OSError, EOFError, ValueError) as exc:
        # gzip/lzma/zstd raise these on a corrupt or truncated compressed stream
        raise HwemuError(f"{name}: cannot read input: {exc}") from None
    except Exception as exc:  # zstandard.ZstdError and friends
        if type(exc).__name__ in ("ZstdError",):
            raise HwemuError(f"{name}: cannot read input: {exc}") from None
        raise


class LineBlocks:
    """Yield blocks of whole lines (bytes ending in a newline, except possibly the last one)
    from a byte stream, and turn an error offset in a block into a line number and text."""

    def __init__(self, fh: IO[bytes], name: str, block: int = BLOCK_BYTES, first_line: int = 1):
        self.fh = fh
        self.name = name
        self.block = block
        self.line = first_line  # number of the first line of the block being yielded

    def __iter__(self) -> Iterator[np.ndarray]:
        tail = b""
        for data in _read_blocks(self.fh, self.name, self.block):
            if tail:
                data = tail + data
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > MAX_LINE:
                    raise HwemuError(f"{self.name}:{self.line}: line longer than {MAX_LINE >> 20} MiB "
                                     f"(is this a text trace of the right format?)")
                tail = data
                continue
            tail = data[cut + 1:]
            yield np.frombuffer(data, dtype=np.uint8, count=cut + 1)
        if tail:
            yield np.frombuffer(tail, dtype=np.uint8)

    def error(self, buf: np.ndarray, pos: int, what: str) -> HwemuError:
        lineno = self.line + int(np.count_nonzero(buf[:pos] == 10))
        end = pos
        n = buf.shape[0]
        while end < n and buf[end] != 10:
            end += 1
        text = bytes(buf[pos:end]).decode("utf-8", "replace").rstrip("\r")
        if len(text) > 80:
            text = text[:77] + "..."
        return HwemuError(f"{self.name}:{lineno}: {what}: {text!r}")


# ----------------------------------------------------------------------------------------- lackey

def iter_lackey(fh: IO[bytes], name: str = "<input>", block: int = BLOCK_BYTES) -> Iterator[TraceChunk]:
    """Parse lackey text from a byte stream into chunks (tid 0, insts 0)."""
    from hwemu.traces._kernels import parse_lackey

    lines = LineBlocks(fh, name, block)
    for buf in lines:
        cap = buf.shape[0] // 6 + 2
        kind = np.empty(cap, np.uint8)
        addr = np.empty(cap, np.uint64)
        size = np.empty(cap, np.uint16)
        nrec, nlines, err = parse_lackey(buf, kind, addr, size)
        if err >= 0:
            raise lines.error(buf, err, "malformed lackey line (expected 'I  04000ad0,3' or ' L|S|M addr,size')")
        lines.line += nlines
        if nrec:
            yield TraceChunk.from_arrays(kind[:nrec], addr[:nrec], size[:nrec])


# -------------------------------------------------------------------------------------------- pin

def iter_pin(fh: IO[bytes], name: str = "<input>", block: int = BLOCK_BYTES) -> Iterator[TraceChunk]:
    """Parse pinatrace text. R -> load, W -> store, size :data:`PIN_ACCESS_SIZE`; a record whose
    instruction pointer differs from the previous record's carries insts = 1 (one new
    instruction), otherwise 0."""
    from hwemu.traces._kernels import parse_pin

    lines = LineBlocks(fh, name, block)
    prev_ip = None
    for buf in lines:
        cap = buf.shape[0] // 8 + 2
        kind = np.empty(cap, np.uint8)
        addr = np.empty(cap, np.uint64)
        ip = np.empty(cap, np.uint64)
        nrec, nlines, err = parse_pin(buf, kind, addr, ip)
        if err >= 0:
            raise lines.error(buf, err, "malformed pinatrace line (expected '0x7f..: R 0x7ffd..' or W)")
        lines.line += nlines
        if not nrec:
            continue
        ip = ip[:nrec]
        new = np.empty(nrec, dtype=bool)
        new[0] = prev_ip is None or ip[0] != prev_ip
        np.not_equal(ip[1:], ip[:-1], out=new[1:])
        prev_ip = ip[-1]
        yield TraceChunk.from_arrays(kind[:nrec], addr[:nrec], np.full(nrec, PIN_ACCESS_SIZE, np.uint16),
                                     insts=new.astype(np.uint32))


# --------------------------------------------------------------------------------------- champsim

def champsim_to_chunk(recs: np.ndarray) -> TraceChunk:
    """Expand ChampSim input_instr records: per record one I (ip), then a load for each nonzero
    source_memory slot, then a store for each nonzero destination_memory slot, in slot order."""
    n = recs.shape[0]
    # Per record: 1 + 4 + 2 candidate slots laid out in program order; keep the valid ones.
    slots = np.empty((n, 7), np.uint64)
    slots[:, 0] = recs["ip"]
    slots[:, 1:5] = recs["source_memory"]
    slots[:, 5:7] = recs["destination_memory"]
    valid = slots != 0
    valid[:, 0] = True
    kinds = np.array([KIND_I, KIND_L, KIND_L, KIND_L, KIND_L, KIND_S, KIND_S], np.uint8)
    sizes = np.array([CHAMPSIM_INSTR_SIZE] + [CHAMPSIM_ACCESS_SIZE] * 6, np.uint16)
    flat = valid.ravel()
    col = np.broadcast_to(np.arange(7), (n, 7)).ravel()[flat]
    return TraceChunk.from_arrays(kinds[col], slots.ravel()[flat], sizes[col])


#: ChampSim records checked for plausibility at the start of an import, and the share of
#: them that may look implausible before the input is refused as not a ChampSim trace.
CHAMPSIM_CHECK_RECORDS = 4096
CHAMPSIM_MAX_IMPLAUSIBLE = 0.05
_USER_ADDR_LIMIT = np.uint64(1 << 57)  # user virtual addresses are below 2^57 (5-level paging)


def champsim_implausible(recs: np.ndarray) -> np.ndarray:
    """Boolean per ChampSim record: it cannot come from a real program. Its instruction
    pointer is 0 or not a user address (>= 2^57), is_branch or branch_taken is not 0/1, a
    non-branch is taken, or a nonzero memory operand is not a user address."""
    ip = recs["ip"]
    bad = (ip == 0) | (ip >= _USER_ADDR_LIMIT)
    bad |= (recs["is_branch"] > 1) | (recs["branch_taken"] > 1)
    bad |= (recs["branch_taken"] == 1) & (recs["is_branch"] == 0)
    for col in ("source_memory", "destination_memory"):
        bad |= (recs[col] >= _USER_ADDR_LIMIT).any(axis=1)
    return bad


def _check_champsim_start(recs: np.ndarray, name: str) -> None:
    bad = champsim_implausible(recs)
    nbad = int(np.count_nonzero(bad))
    if not nbad:
        return
    first = int(np.argmax(bad))
    text = (f"{name}: {nbad:,} of the first {len(recs):,} ChampSim records look implausible "
            f"(instruction pointer 0 or not a user address, is_branch/branch_taken not 0 or 1, "
            f"or a memory operand above 2^57); first: record {first}")
    if nbad > CHAMPSIM_MAX_IMPLAUSIBLE * len(recs):
        raise HwemuError(f"{text}; is it really a ChampSim trace (uncompressed input_instr "
                         f"records of 64 bytes)?")
    warn(text)


def iter_champsim(fh: IO[bytes], name: str = "<input>", block: int = BLOCK_BYTES) -> Iterator[TraceChunk]:
    block = max(64, block - block % 64)
    done = 0
    tail = b""
    checked = False
    for data in _read_blocks(fh, name, block):
        if tail:
            data = tail + data
        usable = len(data) - len(data) % 64
        tail = data[usable:]
        if usable:
            recs = np.frombuffer(data, dtype=CHAMPSIM_RECORD, count=usable // 64)
            if not checked:
                _check_champsim_start(recs[:CHAMPSIM_CHECK_RECORDS], name)
                checked = True
            done += recs.shape[0]
            yield champsim_to_chunk(recs)
    if tail:
        raise HwemuError(f"{name}: truncated ChampSim trace: {len(tail)} byte(s) after record {done} "
                         f"(records are 64 bytes; is the file complete and really a ChampSim trace?)")


# -------------------------------------------------------------------------------------------- csv

def _csv_header(fh: IO[bytes], name: str) -> tuple[dict, int, bytes]:
    """Read the header line; return (column -> index, number of columns, leftover bytes)."""
    data = b""
    while b"\n" not in data:
        more = fh.read(65536)
        if not more:
            break
        data += more
        if len(data) > 1 << 20:
            raise HwemuError(f"{name}:1: CSV header line is longer than 1 MiB")
    cut = data.find(b"\n")
    head, rest = (data, b"") if cut < 0 else (data[:cut], data[cut + 1:])
    text = head.decode("utf-8", "replace").strip().lstrip("\ufeff")
    if not text:
        raise HwemuError(f"{name}:1: empty input; a CSV trace starts with a header line such as 'kind,addr,size'")
    names = [c.strip().lower() for c in text.split(",")]
    cols: dict[str, int] = {}
    for i, c in enumerate(names):
        if c not in CSV_COLUMNS:
            raise HwemuError(f"{name}:1: unknown CSV column {c!r} (columns: {', '.join(CSV_COLUMNS)}; "
                             f"kind, addr and size are required)")
        if c in cols:
            raise HwemuError(f"{name}:1: CSV column {c!r} appears twice")
        cols[c] = i
    missing = [c for c in CSV_REQUIRED if c not in cols]
    if missing:
        raise HwemuError(f"{name}:1: CSV header lacks required column(s) {', '.join(missing)} (got {text!r})")
    return cols, len(names), rest


def iter_csv(fh: IO[bytes], name: str = "<input>", block: int = BLOCK_BYTES) -> Iterator[TraceChunk]:
    from hwemu.traces._kernels import parse_csv

    cols, ncols, rest = _csv_header(fh, name)
    colnames = {i: c for c, i in cols.items()}

    class _Prefixed:
        def __init__(self, first: bytes, fh):
            self.first, self.fh = first, fh

        def read(self, n):
            if self.first:
                out, self.first = self.first, b""
                return out
            return self.fh.read(n)

    lines = LineBlocks(_Prefixed(rest, fh), name, block, first_line=2)
    for buf in lines:
        cap = buf.shape[0] // 6 + 2
        kind = np.empty(cap, np.uint8)
        addr = np.empty(cap, np.uint64)
        size = np.empty(cap, np.uint16)
        tid = np.empty(cap, np.uint16)
        insts = np.empty(cap, np.uint32)
        nrec, nlines, err, ecol = parse_csv(buf, ncols, cols["kind"], cols["addr"], cols["size"],
                                            cols.get("tid", -1), cols.get("insts", -1),
                                            kind, addr, size, tid, insts)
        if err >= 0:
            if ecol == -1:
                what = f"expected {ncols} comma-separated fields"
            elif colnames.get(ecol) == "kind":
                what = "bad kind (expected I, L, S or M)"
            else:
                limit = {"size": "0..65535", "tid": "0..65535", "insts": "0..4294967295"}.get(colnames[ecol], "")
                what = (f"bad {colnames[ecol]} (expected a decimal or 0x-hex integer"
                        + (f" in {limit})" if limit else ")"))
            raise lines.error(buf, err, what)
        lines.line += nlines
        if nrec:
            yield TraceChunk(kind=kind[:nrec], tid=tid[:nrec], size=size[:nrec], addr=addr[:nrec],
                             insts=insts[:nrec])


# ------------------------------------------------------------------------------------------- api

_PARSERS: dict[str, Callable[..., Iterator[TraceChunk]]] = {
    "lackey": iter_lackey,
    "pin": iter_pin,
    "champsim": iter_champsim,
    "csv": iter_csv,
}


def iter_format(fmt: str, fh: IO[bytes], name: str = "<input>") -> Iterator[TraceChunk]:
    """Chunks of ``fmt`` records parsed from the byte stream ``fh``."""
    try:
        parser = _PARSERS[fmt]
    except KeyError:
        raise HwemuError(f"unknown trace format {fmt!r} (known: {', '.join(FORMATS)})") from None
    return parser(fh, name)


def import_trace(fmt: str, inp: str | os.PathLike, out: str | os.PathLike, program: str = "",
                 progress: Callable[[int], None] | None = None) -> TraceMeta:
    """Convert ``inp`` (path or ``-``; plain, .gz, .xz or .zst) in format ``fmt`` into the native
    trace ``out``. Returns the written trace's metadata. Raises HwemuError on bad input, leaving
    no ``out`` behind. ``progress(nbytes_or_records)`` is called after each chunk if given."""
    if fmt not in _PARSERS:
        raise HwemuError(f"unknown trace format {fmt!r} (known: {', '.join(FORMATS)})")
    name = _name(inp)
    fh = open_binary_input(str(inp))
    try:
        with TraceWriter(out, source_format=fmt, program=program,
                         extra={"input": name}) as w:
            for chunk in iter_format(fmt, fh, name):
                w.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            if w.records == 0:
                raise HwemuError(f"{name}: no trace records found (is it really a {fmt} trace?)")
    finally:
        if inp != "-":
            fh.close()
    return w.meta()
