"""File helpers: atomic output, transparent decompression of input, TOML input.

Every file hwemu writes goes to a temporary name in the same directory and is renamed over the
target only when complete, so an error, an interrupt (SIGINT) or a termination (SIGTERM, which
the CLI turns into the same clean-up) never leaves a half-written output. Only SIGKILL, a
crash of the interpreter or a power cut can leave the temporary file behind; its name is
``.<target>.hwemu-<host>-<pid>-<random>.tmp`` and the next write to the same target removes
it once it is stale (its process is dead, or it is older than :data:`STALE_SECONDS`).

Failures to write (a full disk, a read-only directory, a target that is a directory) raise
:class:`~hwemu.errors.HwemuError` naming the target.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import lzma
import os
import re
import socket
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import IO, Iterator

from hwemu.errors import HwemuError

#: A temporary file of another process is removed by the next write to the same target
#: when its process is dead (same host) or when it is older than this.
STALE_SECONDS = 24 * 3600

# errno values that mean "the output cannot be written" rather than a bug of ours.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES,
                 errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.EMFILE,
                 errno.ENFILE, errno.ETXTBSY, errno.ENXIO}


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname() or "host")[:32]


def _tmp_prefix(target: Path) -> str:
    return f".{target.name}.hwemu-"


def write_error_reason(exc: BaseException) -> str | None:
    """The reason text if ``exc`` is a failure to write a file (full disk, read-only file
    system, permissions...), else None. Understands pyarrow's OSError subclasses, which carry
    the errno only in their message."""
    if not isinstance(exc, OSError):
        return None
    if exc.errno in _WRITE_ERRNOS:
        return os.strerror(exc.errno)
    text = str(exc)
    for e in _WRITE_ERRNOS:
        if os.strerror(e) in text:
            return os.strerror(e)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists
        return True
    return True


def clean_stale_temps(target: Path, now: float | None = None) -> list[Path]:
    """Remove the stale temporary files hwemu left beside ``target`` (its own naming pattern
    only): those of a dead process on this host, and any older than :data:`STALE_SECONDS`.
    Returns the removed paths. Never raises."""
    removed = []
    parent = target.parent if str(target.parent) else Path(".")
    prefix = _tmp_prefix(target)
    pat = re.compile(re.escape(prefix) + r"(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]+)-[A-Za-z0-9_]+\.tmp$")
    now = time.time() if now is None else now
    host = _host()
    try:
        names = [n for n in os.listdir(parent) if n.startswith(prefix)]
    except OSError:
        return removed
    for n in names:
        m = pat.match(n)
        if not m:
            continue
        p = parent / n
        try:
            st = p.lstat()
            pid = int(m.group("pid"))
            dead = m.group("host") == host and pid != os.getpid() and not _pid_alive(pid)
            if dead or now - st.st_mtime > STALE_SECONDS:
                p.unlink()
                removed.append(p)
        except (OSError, ValueError):
            continue
    return removed


def check_writable(path: str | os.PathLike, what: str = "") -> Path:
    """Refuse up front (HwemuError naming ``what`` or the path) an output path that cannot be
    written: its directory is missing or read-only, or the path is a directory. Creates and
    removes a temporary file of the atomic-write pattern to find out."""
    target = Path(path)
    label = f"{what} {target}" if what else str(target)
    parent = target.parent if str(target.parent) else Path(".")
    if str(path).endswith(os.sep) or target.is_dir():
        raise HwemuError(f"{label}: is a directory, expected a file name")
    if not parent.is_dir():
        raise HwemuError(f"{label}: directory {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_tmp_prefix(target)}{_host()}-{os.getpid()}-",
                                   suffix=".tmp", dir=parent)
    except OSError as exc:
        raise HwemuError(f"{label}: cannot write in directory {parent}: "
                         f"{exc.strerror or exc}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On any exception (including KeyboardInterrupt and the CLI's SIGTERM) the temporary file is
    removed and ``path`` is left untouched. A failure to write (full disk, read-only
    directory...) inside the block or at the rename becomes a HwemuError naming ``path``.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise HwemuError(f"{target}: directory {parent} does not exist")
    if target.is_dir():
        raise HwemuError(f"{target}: is a directory, expected a file name")
    clean_stale_temps(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_tmp_prefix(target)}{_host()}-{os.getpid()}-",
                                   suffix=".tmp", dir=parent)
    except OSError as exc:
        raise HwemuError(f"{target}: cannot write in directory {parent}: "
                         f"{exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        # mkstemp creates 0600; give the output the permissions a plain open() would (umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        reason = write_error_reason(exc)
        if reason is not None:
            raise HwemuError(f"{target}: cannot write: {reason}; nothing was written") from None
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; rename to ``path`` on success."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh


# ------------------------------------------------------------------------------------- input

def _zstd_error():
    try:
        import zstandard

        return (zstandard.ZstdError,)
    except ImportError:  # pragma: no cover
        return ()


class _WrappedInput(io.RawIOBase):
    """A readable raw stream over another one (``self._inner``): ``readinto`` from ``read``,
    and closing closes the inner stream too."""

    _inner: IO[bytes]

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._inner.close()
        super().close()


class _ZstdReader(_WrappedInput):
    """Streaming zstd decompression across frames that notices a truncated last frame
    (zstandard's stream_reader silently returns what it has)."""

    def __init__(self, raw: IO[bytes]):
        import zstandard

        self._raw = self._inner = raw
        self._zstd = zstandard
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._in_frame = False
        self._buf = b""
        self._eof = False

    def _fill(self, want: int) -> None:
        while len(self._buf) < want and not self._eof:
            data = self._raw.read(1 << 20)
            if not data:
                self._eof = True
                if self._in_frame:
                    raise EOFError("compressed stream ended before the end of its last frame "
                                   "(truncated file)")
                return
            while data:
                out = self._d.decompress(data)
                self._in_frame = True
                if out:
                    self._buf += out
                if self._d.eof:
                    data = self._d.unused_data
                    self._d = self._zstd.ZstdDecompressor().decompressobj()
                    self._in_frame = False
                else:
                    data = b""

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            while not self._eof:
                self._fill(len(self._buf) + (1 << 20))
            out, self._buf = self._buf, b""
            return out
        self._fill(n)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out



class CheckedInput(_WrappedInput):
    """A decompressing (or plain) input stream whose read errors, corrupt or truncated
    compressed data included, become one-line HwemuErrors naming the input."""

    def __init__(self, fh: IO[bytes], name: str, kind: str):
        self._fh = self._inner = fh
        self.name_ = name
        self.kind = kind
        self._errors = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) + _zstd_error()

    def read(self, n: int = -1) -> bytes:
        try:
            return self._fh.read(n)
        except self._errors as exc:
            what = f"corrupt or truncated {self.kind} data" if self.kind != "plain" else "cannot read"
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HwemuError(f"{self.name_}: {what}: {msg}") from None



def open_binary_input(path: str) -> IO[bytes]:
    """Open ``path`` for binary reading; ``-`` is stdin. ``.gz``, ``.xz`` and ``.zst`` files
    (recognised by their magic bytes, whatever the name) are decompressed on the fly. Read
    errors, including corrupt or truncated compressed data, raise HwemuError naming ``path``."""
    name = "<stdin>" if path == "-" else str(path)
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
            peek = raw.read(6)
            raw.seek(0)
        except OSError as exc:
            raise HwemuError(f"{path}: cannot open: {exc.strerror or exc}") from None
    if peek[:2] == b"\x1f\x8b":
        return CheckedInput(gzip.open(raw, "rb"), name, "gzip")  # type: ignore[return-value]
    if peek[:6] == b"\xfd7zXZ\x00":
        return CheckedInput(lzma.open(raw, "rb"), name, "xz")  # type: ignore[return-value]
    if peek[:4] == b"\x28\xb5\x2f\xfd":
        return CheckedInput(_ZstdReader(raw), name, "zstd")  # type: ignore[return-value]
    return CheckedInput(raw, name, "plain")  # type: ignore[return-value]


def read_toml(path: str | os.PathLike, what: str = "TOML file") -> dict:
    """Parse the TOML file ``path``; every failure (missing, a directory, unreadable, not
    UTF-8, not valid TOML) is a HwemuError naming the file and, where known, the line."""
    p = Path(path)
    if not p.exists():
        raise HwemuError(f"{p}: no such file")
    if p.is_dir():
        raise HwemuError(f"{p}: is a directory, expected a {what}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise HwemuError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_toml_bytes(data, str(p))


def parse_toml_bytes(data: bytes, name: str) -> dict:
    """Parse TOML from bytes; a HwemuError naming ``name`` and the line on bad UTF-8 or TOML."""
    import tomllib

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise HwemuError(f"{name}:{line}:{col}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                         f"TOML files must be UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HwemuError(f"{name}: not valid TOML: {exc}") from None
    except (RecursionError, ValueError) as exc:
        raise HwemuError(f"{name}: not valid TOML: {type(exc).__name__}") from None
