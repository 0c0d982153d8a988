"""Record a program's memory trace by running it under Valgrind (``hwemu trace record``).

Two recorders:

``hwtrace`` (preferred)
    Our own Valgrind tool, C source in ``valgrind_tool/hw_main.c``. It emits exactly the
    events cachegrind 3.19 counts (one I per instruction, loads, stores and modifies by
    cachegrind's own rules), with thread ids, as 12-byte binary records into a pipe. It is
    built on first use against the installed Valgrind's headers and static libraries
    (``libcoregrind``, ``libvex``) into a cache directory and run through the normal
    ``valgrind`` launcher with ``VALGRIND_LIB`` pointing at that directory.
``lackey``
    Valgrind's lackey with ``--trace-mem=yes --log-fd=N``; its text is parsed as it arrives.
    Single-threaded view (all records tid 0); used when the tool cannot be built.

Nothing is written to disk but the output trace: the stream is read from a pipe and written
chunk by chunk through :class:`~hwemu.traces.format.TraceWriter` (atomic: a failed run leaves
no output).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwemu.errors import HwemuError
from hwemu.traces.fold import InstructionFolder
from hwemu.traces.format import TraceChunk, TraceMeta, TraceWriter

TOOL_NAME = "hwtrace"
TOOL_SOURCE = Path(__file__).with_name("valgrind_tool") / "hw_main.c"
LAUNCH_SOURCE = TOOL_SOURCE.with_name("hw_launch.c")
TOOLS = ("auto", "hwtrace", "lackey")

#: One record of the hwtrace stream: u64 address, u32 info = kind | size << 8.
STREAM_RECORD = np.dtype([("addr", "<u8"), ("info", "<u4")])
KIND_THREAD = 0xFF
KIND_END = 0xFE
KIND_EXEC = 0xFD
KIND_COUNT = 0xFC   # data-only mode: addr = instructions of the current thread
READ_BYTES = 4 << 20


# ---------------------------------------------------------------------------- valgrind discovery

def find_valgrind() -> str:
    exe = shutil.which("valgrind")
    if exe is None:
        raise HwemuError("valgrind is not installed or not on PATH (Debian/Ubuntu: apt-get install valgrind)")
    return exe


def valgrind_version(valgrind: str | None = None) -> str:
    valgrind = valgrind or find_valgrind()
    try:
        out = subprocess.run([valgrind, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HwemuError(f"{valgrind}: cannot run 'valgrind --version': {exc}") from None
    return out.stdout.strip() or "unknown"


@dataclass(frozen=True)
class ValgrindBuildEnv:
    """Where the installed Valgrind keeps what a tool is built and run with."""

    include_dir: Path      # pub_tool_*.h
    lib_dir: Path          # libcoregrind-amd64-linux.a, libvex-amd64-linux.a
    stock_dir: Path        # installed tools and vgpreload_*.so
    load_address: str      # text segment address of tools
    platform: str = "amd64-linux"


def _pkgconfig(var: str) -> str | None:
    if shutil.which("pkg-config") is None:
        return None
    try:
        out = subprocess.run(["pkg-config", f"--variable={var}", "valgrind"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_env() -> ValgrindBuildEnv:
    """Locate the installed Valgrind's headers, static libraries and stock tool directory."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise HwemuError(f"the hwtrace Valgrind tool is built for amd64 Linux only (this is "
                         f"{sys.platform}/{platform.machine()}); use --tool lackey")
    inc = _pkgconfig("includedir")
    libdir = _pkgconfig("libdir")
    load = _pkgconfig("valt_load_address") or "0x58000000"
    inc_c = [Path(inc)] if inc else []
    inc_c += [Path("/usr/include/valgrind"), Path("/usr/local/include/valgrind")]
    include = next((p for p in inc_c if (p / "pub_tool_basics.h").is_file()), None)
    lib_c = [Path(libdir) / "valgrind"] if libdir else []
    lib_c += [Path("/usr/lib/x86_64-linux-gnu/valgrind"), Path("/usr/lib/valgrind"),
              Path("/usr/libexec/valgrind"), Path("/usr/local/lib/valgrind"),
              Path("/usr/local/libexec/valgrind")]
    lib = next((p for p in lib_c if (p / "libcoregrind-amd64-linux.a").is_file()), None)
    stock_c = [Path(os.environ["VALGRIND_LIB"])] if os.environ.get("VALGRIND_LIB") else []
    stock_c += [Path("/usr/libexec/valgrind"), Path("/usr/lib/x86_64-linux-gnu/valgrind"),
                Path("/usr/lib/valgrind"), Path("/usr/local/libexec/valgrind"),
                Path("/usr/local/lib/valgrind")]
    stock = next((p for p in stock_c if (p / "vgpreload_core-amd64-linux.so").is_file()), None)
    if include is None:
        raise HwemuError("Valgrind tool headers (pub_tool_basics.h) not found; install the valgrind "
                         "package's headers, or use --tool lackey")
    if lib is None:
        raise HwemuError("Valgrind's static libraries (libcoregrind-amd64-linux.a) not found; "
                         "use --tool lackey")
    if stock is None:
        raise HwemuError("Valgrind's preload libraries (vgpreload_core-amd64-linux.so) not found")
    return ValgrindBuildEnv(include, lib, stock, load)


# -------------------------------------------------------------------------------------- building

def cache_root() -> Path:
    if os.environ.get("HWEMU_CACHE"):
        return Path(os.environ["HWEMU_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hwemu"


CFLAGS = ["-O2", "-g", "-Wall", "-fno-strict-aliasing", "-fno-builtin", "-fno-stack-protector",
          "-fomit-frame-pointer", "-fno-pie", "-m64",
          "-DVGA_amd64=1", "-DVGO_linux=1", "-DVGP_amd64_linux=1", "-DVGPV_amd64_linux_vanilla=1"]


def _tool_key(env: ValgrindBuildEnv, version: str) -> str:
    h = hashlib.sha256()
    h.update(TOOL_SOURCE.read_bytes())
    h.update(LAUNCH_SOURCE.read_bytes())
    h.update(version.encode())
    h.update(" ".join(CFLAGS).encode())
    h.update(str(env).encode())
    return h.hexdigest()[:16]


def tool_dir(env: ValgrindBuildEnv | None = None, version: str | None = None) -> Path:
    env = env or build_env()
    version = version or valgrind_version()
    return cache_root() / "valgrind-tool" / _tool_key(env, version)


def build_tool(force: bool = False, verbose: bool = False) -> Path:
    """Build the hwtrace tool (if not built yet) and return its VALGRIND_LIB directory."""
    env = build_env()
    version = valgrind_version()
    dest = tool_dir(env, version)
    exe = f"{TOOL_NAME}-{env.platform}"
    if not force and (dest / exe).is_file() and (dest / (exe + ".bin")).is_file():
        return dest
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise HwemuError("no C compiler (gcc) found to build the hwtrace Valgrind tool; "
                         "install gcc or use --tool lackey")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=dest.parent))
    try:
        obj = work / "hw_main.o"
        compile_cmd = [cc, "-c", *CFLAGS, f"-I{env.include_dir}", str(TOOL_SOURCE), "-o", str(obj)]
        lib = env.lib_dir
        link_cmd = [cc, "-o", str(work / (exe + ".bin")), "-static", "-nodefaultlibs", "-nostartfiles",
                    "-u", "_start", "-Wl,--build-id=none", "-no-pie",
                    f"-Wl,-Ttext-segment={env.load_address}", "-m64", str(obj),
                    str(lib / "libcoregrind-amd64-linux.a"), str(lib / "libvex-amd64-linux.a"),
                    *([str(lib / "libgcc-sup-amd64-linux.a")] if (lib / "libgcc-sup-amd64-linux.a").is_file() else []),
                    "-lgcc"]
        for cmd in (compile_cmd, link_cmd):
            if verbose:
                print(shlex.join(cmd), file=sys.stderr)
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                msg = next((ln for ln in res.stderr.splitlines() if "error" in ln.lower()),
                           res.stderr.strip().splitlines()[0] if res.stderr.strip() else "failed")
                raise HwemuError(f"building the hwtrace Valgrind tool failed: {msg}")
        # The launcher runs <dir>/hwtrace-amd64-linux: a small shim (hw_launch.c) that drops
        # the VALGRIND_LIB entry added for it, keeping the order of everything else, and starts
        # the real tool, so the traced program sees the environment it has under a stock tool.
        launch_cmd = [cc, "-O2", "-o", str(work / exe), str(LAUNCH_SOURCE)]
        if verbose:
            print(shlex.join(launch_cmd), file=sys.stderr)
        res = subprocess.run(launch_cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise HwemuError(f"building the hwtrace launcher failed: {res.stderr.strip().splitlines()[:1]}")
        obj.unlink()
        for f in env.stock_dir.iterdir():
            if f.name == "vgpreload_core-amd64-linux.so" or f.suffix == ".supp":
                (work / f.name).symlink_to(f)
        (work / "SOURCE").write_text(f"{TOOL_SOURCE}\n{version}\n")
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.replace(work, dest)
        except OSError:
            if not (dest / exe).is_file():  # lost a race with a concurrent build: fine if it won
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return dest


# ------------------------------------------------------------------------------------- recording

def _check_program(argv: list[str]) -> str:
    if not argv:
        raise HwemuError("no program given: hwemu trace record --out OUT -- PROG [ARGS...]")
    prog = argv[0]
    if os.sep in prog:
        p = Path(prog)
        if not p.exists():
            raise HwemuError(f"{prog}: program not found")
        if p.is_dir():
            raise HwemuError(f"{prog}: is a directory, not a program")
        if not os.access(p, os.X_OK):
            raise HwemuError(f"{prog}: program is not executable")
        return str(p)
    found = shutil.which(prog)
    if found is None:
        raise HwemuError(f"{prog}: program not found on PATH")
    return found


class _HwtraceDecoder:
    """Turn the hwtrace byte stream into TraceChunks (thread switches resolved)."""

    def __init__(self, data_only: bool = False):
        self.data_only = data_only
        self.folder = InstructionFolder() if data_only else None
        self.tail = b""
        self.tid = 0
        self.ended = False
        self.end_count = -1
        self.records = 0
        self.exec_count = -1   # records sent before the last exec attempt

    def feed(self, data: bytes) -> TraceChunk | None:
        if self.tail:
            data = self.tail + data
        usable = len(data) - len(data) % STREAM_RECORD.itemsize
        self.tail = data[usable:]
        if not usable:
            return None
        recs = np.frombuffer(data, dtype=STREAM_RECORD, count=usable // STREAM_RECORD.itemsize)
        if self.ended:
            raise HwemuError("hwtrace stream has data after its end record (corrupt stream)")
        addr = recs["addr"]
        info = recs["info"]
        kind = (info & 0xFF).astype(np.uint8)
        end = np.flatnonzero(kind == KIND_END)
        if end.size:
            e = int(end[0])
            if e != len(recs) - 1:
                raise HwemuError("hwtrace stream has data after its end record (corrupt stream)")
            self.ended = True
            self.end_count = int(addr[e])
            recs, addr, info, kind = recs[:e], addr[:e], info[:e], kind[:e]
        execs = kind == KIND_EXEC
        if execs.any():
            # an exec attempt: the stream may end here (exec succeeded) or go on (it failed)
            idx = np.flatnonzero(execs)
            self.exec_count = int(addr[idx[-1]]) if idx[-1] == len(kind) - 1 else -1
            keep = ~execs
            addr, info, kind = addr[keep], info[keep], kind[keep]
        elif len(kind):
            self.exec_count = -1
        marker = kind == KIND_THREAD
        if marker.any():
            idx = np.where(marker, np.arange(len(kind)), -1)
            np.maximum.accumulate(idx, out=idx)
            vg_tid = np.where(idx >= 0, addr[np.maximum(idx, 0)], self.tid + 1)
            self.tid = int(vg_tid[-1]) - 1
            tid = (vg_tid - 1).astype(np.uint16)
            keep = ~marker
            addr, info, kind, tid = addr[keep], info[keep], kind[keep], tid[keep]
        else:
            tid = np.full(len(kind), self.tid, np.uint16)
        if self.data_only:
            # count records and the counts packed into data records' top byte (hw_main.c)
            counts = kind == KIND_COUNT
            is_data = ~counts
            n = np.where(counts, addr, (info >> 24).astype(np.uint64))
            if (kind[is_data] > 3).any() or (kind[is_data] == 0).any():
                bad = int(kind[is_data][(kind[is_data] > 3) | (kind[is_data] == 0)][0])
                raise HwemuError(f"hwtrace data-only stream has an unexpected record kind {bad} "
                                 f"(corrupt stream)")
            insts = self.folder.fold(is_data, tid, n)
            addr, info, kind, tid = addr[is_data], info[is_data] & 0xFFFFFF, kind[is_data], tid[is_data]
        else:
            insts = None
        if kind.size and kind.max() > 3:
            raise HwemuError(f"hwtrace stream has an unknown record kind {int(kind.max())} (corrupt stream)")
        size = info >> 8
        if size.size and size.max() > 0xFFFF:
            raise HwemuError(f"hwtrace stream has an access of {int(size.max())} bytes, larger than the "
                             f"trace format's 65535")
        self.records += len(kind)
        if not len(kind):
            return None
        return TraceChunk.from_arrays(kind, addr.copy(), size.astype(np.uint16), tid=tid, insts=insts)


class _LackeyDecoder:
    """Parse lackey text as it arrives from the pipe."""

    def __init__(self, data_only: bool = False):
        from hwemu.traces._kernels import parse_lackey  # compile before the program starts

        self.parse = parse_lackey
        self.folder = InstructionFolder() if data_only else None
        self.tail = b""
        self.line = 1
        self.records = 0

    def feed(self, data: bytes, final: bool = False) -> TraceChunk | None:
        data = self.tail + data if self.tail else data
        cut = len(data) if final else data.rfind(b"\n") + 1
        self.tail = data[cut:]
        if cut <= 0:
            return None
        buf = np.frombuffer(data, dtype=np.uint8, count=cut)
        cap = cut // 6 + 2
        kind = np.empty(cap, np.uint8)
        addr = np.empty(cap, np.uint64)
        size = np.empty(cap, np.uint16)
        nrec, nlines, err = self.parse(buf, kind, addr, size)
        if err >= 0:
            end = data.find(b"\n", err)
            text = data[err:end if end >= 0 else cut][:80].decode("utf-8", "replace")
            lineno = self.line + data.count(b"\n", 0, err)
            raise HwemuError(f"lackey output line {lineno} is not a trace line: {text!r} "
                             f"(did the program print to Valgrind's log?)")
        self.line += nlines
        self.records += nrec
        if not nrec:
            return None
        chunk = TraceChunk.from_arrays(kind[:nrec], addr[:nrec], size[:nrec])
        if self.folder is not None:   # --data-only: I lines counted into the next data record
            chunk = self.folder.fold_chunk(chunk)
        return chunk


def record_trace(argv: list[str], out: str | os.PathLike, tool: str = "auto",
                 allow_failure: bool = False, valgrind_args: list[str] | None = None,
                 progress: bool | None = None, data_only: bool = False) -> TraceMeta:
    """Run ``argv`` under Valgrind and write its memory trace to ``out``.

    ``tool``: ``hwtrace`` (our tool; built on first use), ``lackey``, or ``auto`` (hwtrace, or
    lackey with a warning if the tool cannot be built). A program that exits non-zero or is
    killed is an error (no output) unless ``allow_failure``. ``data_only``: loads, stores and
    modifies only, each with the instructions since its thread's previous data record in
    ``insts`` (see :mod:`hwemu.traces.fold`); the hwtrace tool then sends no per-instruction
    records at all. The program's exit status, argv,
    working directory and the recorder used are stored in the trace metadata (``extra``).
    """
    if tool not in TOOLS:
        raise HwemuError(f"unknown recording tool {tool!r} (choose from {', '.join(TOOLS)})")
    valgrind = find_valgrind()
    argv = [str(a) for a in argv]
    _check_program(argv)
    out = Path(out)
    if out.parent and not out.parent.is_dir():
        raise HwemuError(f"{out}: directory {out.parent} does not exist")
    warning = None
    libdir = None
    if tool in ("auto", "hwtrace"):
        try:
            libdir = build_tool()
            used = "hwtrace"
        except HwemuError as exc:
            if tool == "hwtrace":
                raise
            warning = f"hwtrace tool unavailable ({exc}); recording with lackey (no thread ids)"
            print(f"hwemu: warning: {warning}", file=sys.stderr)
            used = "lackey"
    else:
        used = "lackey"

    prog_arg = argv[0] if not argv[0].startswith("-") else os.path.join(".", argv[0])
    r, w = os.pipe()
    env = dict(os.environ)
    if used == "hwtrace":
        cmd = [valgrind, "-q", f"--tool={TOOL_NAME}", f"--hwtrace-fd={w}"]
        if data_only:
            cmd.append("--hwtrace-data-only=yes")
        if "VALGRIND_LIB" in env:
            env["HWEMU_SAVED_VALGRIND_LIB"] = env["VALGRIND_LIB"]
        env["VALGRIND_LIB"] = str(libdir)
        decoder = _HwtraceDecoder(data_only)
    else:
        cmd = [valgrind, "-q", "--tool=lackey", "--trace-mem=yes", f"--log-fd={w}"]
        decoder = _LackeyDecoder(data_only)
    cmd += list(valgrind_args or []) + [prog_arg] + argv[1:]

    extra = {"argv": argv, "cwd": os.getcwd(), "tool": used, "valgrind": valgrind_version(valgrind)}
    if warning:
        extra["warning"] = warning
    if data_only:
        extra["data_only"] = True
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm import tqdm

    bar = tqdm(total=None, unit=" rec", unit_scale=True, disable=not show, file=sys.stderr,
               desc="recording", leave=False)
    proc = None
    status = None
    try:
        with TraceWriter(out, source_format=f"valgrind-{used}", program=shlex.join(argv), extra=extra) as wr:
            try:
                proc = subprocess.Popen(cmd, pass_fds=(w,), env=env)
            except OSError as exc:
                raise HwemuError(f"cannot start valgrind: {exc}") from None
            finally:
                os.close(w)
                w = -1
            while True:
                data = os.read(r, READ_BYTES)
                if not data:
                    break
                chunk = decoder.feed(data)
                if chunk is not None:
                    wr.write(chunk)
                    bar.update(len(chunk))
            if isinstance(decoder, _LackeyDecoder):
                chunk = decoder.feed(b"", final=True)
                if chunk is not None:
                    wr.write(chunk)
            status = proc.wait()
            extra["exit_status"] = status
            if status != 0 and not allow_failure:
                if status < 0:
                    raise HwemuError(f"{argv[0]} was killed by signal {-status} under Valgrind; no trace "
                                     f"written (use --allow-failure to keep it)")
                raise HwemuError(f"{argv[0]} exited with status {status} under Valgrind (see its messages "
                                 f"above); no trace written (use --allow-failure to keep it)")
            if used == "hwtrace":
                if not decoder.ended and decoder.exec_count >= 0:
                    # the program replaced itself with exec; the trace ends at the exec
                    decoder.ended, decoder.end_count = True, decoder.exec_count
                    extra["ended_at_exec"] = True
                if not decoder.ended:
                    raise HwemuError("the hwtrace stream ended without its end record (Valgrind or the "
                                     "program died before exit); no trace written")
                if decoder.end_count != decoder.records:
                    raise HwemuError(f"hwtrace stream lost records ({decoder.records} received, "
                                     f"{decoder.end_count} sent); no trace written")
            if wr.records == 0:
                raise HwemuError(f"{argv[0]}: Valgrind produced no trace records (see its messages above)")
            if data_only:
                extra["trailing_insts"] = decoder.folder.trailing()
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    finally:
        bar.close()
        os.close(r)
        if w >= 0:
            os.close(w)
    return wr.meta()
