"""File helpers: atomic output and transparent decompression of input.

Every file hwemu writes goes to a temporary name in the same directory and is renamed over the
target only when complete, so an error or an interrupt never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import lzma
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterator

from hwemu.errors import HwemuError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path``
    is left untouched.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise HwemuError(f"{target}: directory {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    # mkstemp creates 0600; give the output the permissions a plain open() would (umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; rename to ``path`` on success."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh


def open_binary_input(path: str) -> IO[bytes]:
    """Open ``path`` for binary reading; ``-`` is stdin. ``.gz``, ``.xz`` and ``.zst`` files
    (recognised by their magic bytes, whatever the name) are decompressed on the fly."""
    if path == "-":
        raw: IO[bytes] = sys.stdin.buffer
        peek = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
    else:
        p = Path(path)
        if not p.exists():
            raise HwemuError(f"{path}: no such file")
        if p.is_dir():
            raise HwemuError(f"{path}: is a directory, expected a file")
        try:
            raw = open(p, "rb")
        except OSError as exc:
            raise HwemuError(f"{path}: cannot open: {exc.strerror}") from None
        peek = raw.read(6)
        raw.seek(0)
    if peek[:2] == b"\x1f\x8b":
        return gzip.open(raw, "rb")  # type: ignore[return-value]
    if peek[:6] == b"\xfd7zXZ\x00":
        return lzma.open(raw, "rb")  # type: ignore[return-value]
    if peek[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[return-value]
    if not isinstance(raw, io.BufferedReader) and path != "-":
        raw = io.BufferedReader(raw)  # type: ignore[arg-type]
    return raw
