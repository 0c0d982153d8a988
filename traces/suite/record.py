#!/usr/bin/env python3
"""Build, run and record the study suite's workloads (docs/study.md, "Workloads").

    traces/suite/record.py NAME [NAME ...] [--scale tiny|small|full] [--out DIR] [--seed N]
    traces/suite/record.py gups --scale full --seed 10 --param hot_percent=25 --name gups-hot25
    traces/suite/record.py all --scale small
    traces/suite/record.py --list

For each workload, in DIR/work-NAME-SCALE/ (removed afterwards unless --keep):

  1. build it (gcc -O2 -pthread, the sources in traces/suite/src/) or check that the Debian
     program is installed (the package is named in the error);
  2. generate its input from the seed (the C programs generate theirs in the process from -s);
  3. run it natively once, timed;
  4. record it with `hwemu trace record --data-only` into DIR/NAME-SCALE.parquet;
  5. check the trace with `hwemu trace info --json` (records, threads and data pages within the
     workload's bounds for the scale) and that the recorded run produced the same output as the
     native one (for workloads whose output does not depend on the thread interleaving);
  6. print one JSON line (also written to DIR/NAME-SCALE.json): records, records/s of recording,
     bytes per record, native seconds, slowdown (recording / native), footprint in MiB (distinct
     4 KiB data pages), threads.

Both runs use a fixed, minimal environment (PATH=/usr/bin:/bin LC_ALL=C HOME=/nonexistent, and
HWEMU_CACHE for the recorder's tool), as traces/make_traces.sh does. hwemu is taken from $HWEMU,
else from PATH. Any failure is one line on stderr and exit status 2; no trace or JSON file is
left under its final name unless the workload passed its checks.

--param KEY=VALUE overrides one of the scale's parameters (gups: log2_words, updates) or one of
the workload's options (gups: hot_percent, hot_update_percent); the trace is then checked for its
threads and output only, since the scale's size bounds no longer apply. --name NAME writes
NAME-SCALE.parquet instead of WORKLOAD-SCALE.parquet (a suite's [variants], docs/study.md).

Scales: tiny (a second or two of recording; the tests use it), small (under about a minute each
on a 2-core machine; tens of MiB), full (hundreds of MiB to about 1 GiB; minutes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
SCALES = ("tiny", "small", "full")
MIB = 1 << 20
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class SuiteError(Exception):
    """A failure reported on one line, exit status 2."""


@dataclass
class Run:
    """What to execute for one workload at one scale, prepared in its work directory."""

    argv: list[str]                   # the output, compared between the two runs, is stdout
    stdin: Path | None = None


@dataclass
class Workload:
    name: str
    what: str
    prepare: Callable[[Path, dict, int, int], Run]    # (work dir, scale params, seed, threads) -> Run
    scales: dict[str, dict]                           # scale -> parameters, including the bounds below
    package: str | None = None                        # Debian package of the program (None: ours)
    same_output: bool = True                          # output independent of thread interleaving
    threads: tuple[int, int] | None = None            # trace tids with 4 threads (ours: exactly 5)
    options: dict = field(default_factory=dict)       # further parameters, with the program's defaults


# ---------------------------------------------------------------- inputs


def write_text(path: Path, size: int, seed: int) -> None:
    """`size` bytes of text lines of 12 words, words drawn with Zipf(1) frequencies from a
    vocabulary of 8,192 made-up words: compresses about 3:1, like prose."""
    r = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(r.choices(letters, k=r.randint(2, 10))) for _ in range(8192)]
    cum, s = [], 0.0
    for i in range(len(vocab)):
        s += 1.0 / (i + 1)
        cum.append(s)
    n = 0
    with open(path, "w") as f:
        while n < size:
            toks = r.choices(vocab, cum_weights=cum, k=120_000)
            chunk = "\n".join(" ".join(toks[i:i + 12]) for i in range(0, len(toks), 12)) + "\n"
            chunk = chunk[:size - n]
            f.write(chunk)
            n += len(chunk)


def write_records(path: Path, lines: int, seed: int) -> None:
    """`lines` lines "KEY<TAB>NAME<TAB>AMOUNT": a random 12-hex-digit key, a word, a number."""
    r = random.Random(seed)
    names = ["".join(r.choices("abcdefghijklmnopqrstuvwxyz", k=r.randint(4, 9))) for _ in range(1000)]
    with open(path, "w") as f:
        for start in range(0, lines, 65536):
            k = min(65536, lines - start)
            f.write("".join(f"{r.getrandbits(48):012x}\t{r.choice(names)}\t{r.randrange(1000000)}\n"
                            for _ in range(k)))


def sqlite_script(path: Path, rows: int, customers: int, payload: int, seed: int) -> None:
    """A script that builds an in-memory database of `rows` orders (each with a `payload`-byte
    blob, as a wide row) and `customers` customers from the seed (integer hashing in SQL, no
    random()), indexes it and queries it: full scans, an index join, a grouped aggregate."""
    a, b = 2654435761, 40503 + 2 * (seed % 1000)
    sql = f"""\
PRAGMA threads = 4;
PRAGMA temp_store = MEMORY;
CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, region INTEGER);
CREATE TABLE orders(id INTEGER PRIMARY KEY, cust INTEGER, item INTEGER, qty INTEGER, price REAL,
                    note TEXT, payload BLOB);
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {customers})
INSERT INTO customer SELECT i, printf('c%08x', (i * {a} + {seed}) % 4294967296), (i * {b}) % 17 FROM s;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {rows})
INSERT INTO orders SELECT i,
    1 + ((i * {a} + {seed}) % 4294967296) % {customers},
    ((i * {b} + {seed}) % 65536) % 5000,
    1 + (i * 7 + {seed}) % 13,
    ((i * {a}) % 100000) / 100.0,
    printf('%x', (i * {a} + {seed}) % 4294967296),
    zeroblob({payload}) FROM s;
CREATE INDEX orders_cust ON orders(cust, item);
SELECT count(*), sum(qty), round(sum(qty * price), 2), sum(length(payload)) FROM orders;
SELECT c.region, count(*), round(sum(o.qty * o.price), 2) FROM customer c JOIN orders o ON o.cust = c.id
    GROUP BY c.region ORDER BY c.region;
SELECT item, count(*) AS n FROM orders GROUP BY item ORDER BY n DESC, item LIMIT 5;
SELECT count(*) FROM orders WHERE note LIKE '8%';
"""
    path.write_text(sql)


# ---------------------------------------------------------------- workloads


def build_c(src: str, work: Path) -> str:
    if shutil.which("gcc") is None:
        raise SuiteError("gcc not found on PATH (apt-get install gcc)")
    exe = work / src
    p = subprocess.run(["gcc", "-O2", "-pthread", "-o", str(exe), str(SRC / f"{src}.c"), "-lm"],
                       capture_output=True, text=True)
    if p.returncode:
        first = (p.stderr.strip().splitlines() or ["?"])[0]
        raise SuiteError(f"building {src}.c failed: {first}")
    return str(exe)


def _graph(kernel):
    def prep(work, p, seed, threads):
        return Run([build_c("graph", work), "-t", str(threads), "-s", str(seed), kernel,
                    str(p["scale"]), str(p["edgefactor"]), str(p["rounds"])])
    return prep


def _hashjoin(work, p, seed, threads):
    return Run([build_c("hashjoin", work), "-t", str(threads), "-s", str(seed), str(p["r"]), str(p["s"])])


def _kvstore(work, p, seed, threads):
    return Run([build_c("kvstore", work), "-t", str(threads), "-s", str(seed), str(p["keys"]), str(p["ops"])])


GUPS_HOT = dict(hot_percent=10, hot_update_percent=90)     # gups.c's defaults


def _gups(work, p, seed, threads):
    hot = []                          # the program's defaults unless a --param sets them
    if "hot_update_percent" in p:
        hot = [str(p.get("hot_percent", GUPS_HOT["hot_percent"])), str(p["hot_update_percent"])]
    elif "hot_percent" in p:
        hot = [str(p["hot_percent"])]
    return Run([build_c("gups", work), "-t", str(threads), "-s", str(seed), str(p["log2_words"]),
                str(p["updates"]), *hot])


def _text_input(work, p, seed):
    inp = work / "input.txt"
    write_text(inp, p["input_kib"] * 1024, seed)
    return inp


def _xz(work, p, seed, threads):
    inp = _text_input(work, p, seed)
    return Run(["xz", f"-T{threads}", f"--lzma2=preset=1,dict={p['dict']}", f"--block-size={p['block']}", "-c",
                str(inp)])


def _zstd(work, p, seed, threads):
    inp = _text_input(work, p, seed)
    return Run(["zstd", "-q", f"-T{threads}", f"-{p['level']}", f"--long={p['long']}", "-c", str(inp)])


def _pigz(work, p, seed, threads):
    inp = _text_input(work, p, seed)
    return Run(["pigz", "-p", str(threads), f"-{p['level']}", "-b", str(p["block_kib"]), "-c", str(inp)])


def _sort(work, p, seed, threads):
    inp = work / "records.tsv"
    write_records(inp, p["lines"], seed)
    return Run(["sort", f"--parallel={threads}", "-S", p["buffer"], "-T", str(work), "-t", "\t",
                "-k1,1", str(inp)])


def _sqlite(work, p, seed, threads):
    script = work / "script.sql"
    sqlite_script(script, p["rows"], p["customers"], p["payload"], seed)
    return Run(["sqlite3", "-batch", "-init", "/dev/null", ":memory:"], stdin=script)


# Bounds: records_min, data MiB [mib_min, mib_max] per scale, set around the values measured on
# Debian 12 with room for another libc or compiler (the Debian programs' full-scale bounds are
# wide: not measured).
WORKLOADS = {w.name: w for w in [
    Workload("bfs", "R-MAT graph, CSR, level-synchronous BFS (ours)", _graph("bfs"), {
        "tiny": dict(scale=12, edgefactor=16, rounds=2, records_min=5e5, mib=(0.5, 8)),
        "small": dict(scale=17, edgefactor=16, rounds=2, records_min=4e7, mib=(20, 70)),
        "full": dict(scale=21, edgefactor=16, rounds=2, records_min=5e8, mib=(300, 1100)),
    }),
    Workload("pagerank", "R-MAT graph, CSR, pull PageRank (ours)", _graph("pagerank"), {
        "tiny": dict(scale=12, edgefactor=16, rounds=3, records_min=5e5, mib=(0.5, 8)),
        "small": dict(scale=17, edgefactor=16, rounds=3, records_min=3e7, mib=(20, 70)),
        "full": dict(scale=21, edgefactor=16, rounds=3, records_min=5e8, mib=(300, 1100)),
    }),
    Workload("hashjoin", "partitioned hash join (ours)", _hashjoin, {
        "tiny": dict(r=16384, s=65536, records_min=3e5, mib=(1, 8)),
        "small": dict(r=262144, s=1048576, records_min=9e6, mib=(30, 100)),
        "full": dict(r=4194304, s=16777216, records_min=1e8, mib=(400, 1100)),
    }),
    Workload("kvstore", "open-addressing key-value store, Zipfian gets/puts (ours)", _kvstore, {
        "tiny": dict(keys=24576, ops=100000, records_min=3e5, mib=(1, 8)),
        "small": dict(keys=393216, ops=2000000, records_min=6e7, mib=(20, 65)),
        "full": dict(keys=6291456, ops=20000000, records_min=5e8, mib=(400, 1100)),
    }),
    Workload("gups", "GUPS with a hot set (ours)", _gups, {
        "tiny": dict(log2_words=18, updates=300000, records_min=3e5, mib=(1, 8)),
        "small": dict(log2_words=23, updates=16000000, records_min=3e7, mib=(60, 80)),
        "full": dict(log2_words=27, updates=100000000, records_min=2e8, mib=(900, 1200)),
    }, same_output=False, options=GUPS_HOT),
    Workload("xz", "xz -T4 on generated text (Debian)", _xz, {
        "tiny": dict(input_kib=256, dict="1MiB", block="64KiB", records_min=2e7, mib=(5, 35)),
        "small": dict(input_kib=2048, dict="8MiB", block="512KiB", records_min=1e8, mib=(25, 120)),
        "full": dict(input_kib=16384, dict="64MiB", block="4MiB", records_min=1e9, mib=(100, 1100)),
    }, package="xz-utils", threads=(2, 5)),               # main + up to 4 workers
    Workload("zstd", "zstd -T4 on generated text (Debian)", _zstd, {
        "tiny": dict(input_kib=1024, level=3, long=20, records_min=1e7, mib=(1.5, 12)),
        "small": dict(input_kib=16384, level=3, long=24, records_min=1.5e8, mib=(12, 60)),
        "full": dict(input_kib=131072, level=3, long=27, records_min=1e9, mib=(90, 400)),
    }, package="zstd", threads=(5, 8)),                   # main, 4 workers, I/O threads
    Workload("pigz", "pigz -p 4 on generated text (Debian)", _pigz, {
        "tiny": dict(input_kib=256, level=6, block_kib=64, records_min=8e6, mib=(0.8, 6)),
        "small": dict(input_kib=6144, level=6, block_kib=1024, records_min=1.5e8, mib=(4, 30)),
        "full": dict(input_kib=65536, level=6, block_kib=8192, records_min=1e9, mib=(30, 400)),
    }, package="pigz", threads=(5, 6)),                   # main, 4 compressors, writer
    Workload("sort", "coreutils sort --parallel=4 on generated records (Debian)", _sort, {
        "tiny": dict(lines=20000, buffer="64M", threads=(1, 5), records_min=9e6, mib=(0.8, 6)),
        "small": dict(lines=400000, buffer="256M", records_min=2e8, mib=(25, 100)),
        "full": dict(lines=2000000, buffer="1G", records_min=1e9, mib=(120, 1000)),
    }, package="coreutils", threads=(2, 5)),              # main + merge helpers
    Workload("sqlite", "sqlite3: build, index and query an in-memory database (Debian)", _sqlite, {
        "tiny": dict(rows=2000, customers=200, payload=1000, records_min=1e7, mib=(1, 12)),
        "small": dict(rows=20000, customers=2000, payload=1000, records_min=1e8, mib=(15, 70)),
        "full": dict(rows=300000, customers=30000, payload=1000, records_min=1e9, mib=(200, 1500)),
    }, package="sqlite3", threads=(1, 5)),                # sorter helpers only if a sort spills
]}


# ---------------------------------------------------------------- running


def hwemu_exe() -> str:
    exe = os.environ.get("HWEMU") or shutil.which("hwemu")
    if not exe:
        raise SuiteError("hwemu not found: put it on PATH or set HWEMU=/path/to/hwemu")
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        raise SuiteError(f"HWEMU={exe} is not an executable file")
    return exe


def tool_cache() -> str:
    if os.environ.get("HWEMU_CACHE"):
        return os.environ["HWEMU_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "hwemu")


def clean_env() -> dict:
    return {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent", "HWEMU_CACHE": tool_cache()}


def execute(argv: list[str], run: Run, out: Path, what: str) -> float:
    """Run argv with stdout to `out`; return wall seconds; a failure is a SuiteError."""
    stdin = open(run.stdin, "rb") if run.stdin else subprocess.DEVNULL
    try:
        with open(out, "wb") as f:
            t = time.perf_counter()
            p = subprocess.run(argv, stdin=stdin, stdout=f, stderr=subprocess.PIPE, env=clean_env())
            secs = time.perf_counter() - t
    finally:
        if run.stdin:
            stdin.close()
    if p.returncode:
        lines = p.stderr.decode(errors="replace").strip().splitlines()
        raise SuiteError(f"{what} exited with status {p.returncode}: {lines[-1] if lines else '(no message)'}")
    return secs


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def expected_threads(w: Workload, scale: str, threads: int) -> tuple[int, int]:
    """Bounds on the trace's thread ids: the main thread and `threads` workers for ours; the
    workload's (or the scale's) bounds with 4 threads for the Debian programs, else any."""
    if not w.package:
        return threads + 1, threads + 1
    if threads != 4:
        return 1, 64
    return w.scales[scale].get("threads", w.threads)


BOUNDS = ("records_min", "mib", "threads")


def parse_params(w: Workload, scale: str, items: list[str]) -> dict:
    """``--param KEY=VALUE`` overrides of the scale's parameters (or the workload's options),
    converted to the type of the value they replace; a bad one is a SuiteError."""
    known = {k: v for k, v in w.scales[scale].items() if k not in BOUNDS} | w.options
    out = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise SuiteError(f"--param {item!r}: expected KEY=VALUE")
        if key not in known:
            raise SuiteError(f"--param {key}: not a parameter of {w.name} "
                             f"(its parameters: {', '.join(sorted(known))})")
        if isinstance(known[key], int):
            try:
                value = int(text.replace("_", ""))
            except ValueError:
                raise SuiteError(f"--param {key}={text}: expected an integer") from None
            if value < 0:
                raise SuiteError(f"--param {key}={text}: must not be negative")
        else:
            value = text
        out[key] = value
    return out


def check(w: Workload, scale: str, info: dict, threads: int, sized: bool = True) -> None:
    """The trace's thread count, and (``sized``: the scale's own parameters) its records and
    footprint against the scale's bounds."""
    p = w.scales[scale]
    lo, hi = p["mib"]
    mib = info["data_pages_4k"] * 4096 / MIB
    if info["records"] < (p["records_min"] if sized else 1):
        raise SuiteError(f"{w.name}: {info['records']:,} records, expected at least {int(p['records_min']):,}")
    tlo, thi = expected_threads(w, scale, threads)
    if not tlo <= info["threads"] <= thi:
        raise SuiteError(f"{w.name}: {info['threads']} threads in the trace, expected {tlo}..{thi}")
    if sized and not lo <= mib <= hi:
        raise SuiteError(f"{w.name}: {mib:.1f} MiB of data pages, expected {lo}..{hi} MiB at scale {scale}")


def record_one(w: Workload, scale: str, outdir: Path, seed: int, threads: int, keep: bool,
               params: dict | None = None, name: str | None = None) -> dict:
    """Record ``w`` at ``scale`` into OUTDIR/NAME-SCALE.parquet (NAME: ``name`` or the
    workload's), with ``params`` overriding the scale's parameters; return the JSON row."""
    params = params or {}
    stem = f"{name or w.name}-{scale}"
    if w.package:
        prog = {"xz-utils": "xz", "coreutils": "sort"}.get(w.package, w.package)
        if shutil.which(prog, path="/usr/bin:/bin") is None:
            raise SuiteError(f"{w.name}: {prog} not found in /usr/bin (apt-get install {w.package})")
    work = outdir / f"work-{stem}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        run = w.prepare(work, w.scales[scale] | params, seed, threads)
        native_out, rec_out = work / "native.out", work / "recorded.out"
        native = execute(run.argv, run, native_out, f"{w.name} (native)")

        trace = outdir / f"{stem}.parquet"
        tmp_trace = outdir / f".{trace.name}.{os.getpid()}.tmp.parquet"
        hw = hwemu_exe()
        try:
            recording = execute([hw, "trace", "record", "--data-only", "--out", str(tmp_trace), "--", *run.argv],
                                run, rec_out, f"{w.name} (recording)")
            t = time.perf_counter()
            p = subprocess.run([hw, "trace", "info", "--json", str(tmp_trace)], capture_output=True, text=True,
                               env=clean_env())
            info_s = time.perf_counter() - t
            if p.returncode:
                raise SuiteError(f"{w.name}: trace info failed: {p.stderr.strip()}")
            info = json.loads(p.stdout)
            check(w, scale, info, threads, sized=not params)
            if w.same_output and digest(native_out) != digest(rec_out):
                raise SuiteError(f"{w.name}: the recorded run's output differs from the native run's")
            os.replace(tmp_trace, trace)
        finally:
            tmp_trace.unlink(missing_ok=True)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)

    records = info["records"]
    row = {
        "workload": w.name, "scale": scale, "seed": seed, "params": params, "trace": str(trace),
        "program": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(run.argv)),
        "records": records, "instructions": info["instructions"], "threads": info["threads"],
        "footprint_mib": round(info["data_pages_4k"] * 4096 / MIB, 1),
        "bytes_on_disk": info["bytes_on_disk"], "bytes_per_record": round(info["bytes_on_disk"] / records, 3),
        "native_s": round(native, 3), "record_s": round(recording, 2),
        "records_per_s": round(records / recording), "slowdown": round(recording / native, 1),
        "info_s": round(info_s, 2),
    }
    write_atomic(outdir / f"{stem}.json", json.dumps(row) + "\n")
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"workloads, or 'all': {', '.join(WORKLOADS)}")
    ap.add_argument("--scale", choices=SCALES, default="small", help="input size (default small)")
    ap.add_argument("--out", default="suite-traces", help="directory for traces and JSON (default ./suite-traces)")
    ap.add_argument("--seed", type=int, default=1, help="input seed (default 1)")
    ap.add_argument("--threads", type=int, default=4, help="worker threads (default 4)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="override one of the scale's parameters or the workload's options "
                         "(repeatable; one workload only; the scale's size bounds are then not checked)")
    ap.add_argument("--name", help="trace file name NAME-SCALE.parquet instead of WORKLOAD-SCALE "
                                   "(one workload only)")
    ap.add_argument("--keep", action="store_true", help="keep the work directories (builds, inputs, outputs)")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = ap.parse_args(argv)
    if args.list:
        for w in WORKLOADS.values():
            print(f"{w.name:9s} {w.what}" + (f"  [apt: {w.package}]" if w.package else ""))
        return 0
    try:
        names = list(WORKLOADS) if args.names == ["all"] else args.names
        if not names:
            raise SuiteError("name at least one workload, or 'all' (--list shows them)")
        for n in names:
            if n not in WORKLOADS:
                raise SuiteError(f"unknown workload {n!r} (choose from {', '.join(WORKLOADS)}, or all)")
        if (args.param or args.name) and len(names) != 1:
            raise SuiteError("--param and --name need exactly one workload")
        if args.name is not None and not NAME_RE.fullmatch(args.name):
            raise SuiteError(f"--name {args.name!r}: use letters, digits, '_', '-' and '.', "
                             "starting with a letter or digit")
        params = parse_params(WORKLOADS[names[0]], args.scale, args.param) if args.param else {}
        if not 1 <= args.threads <= 64:
            raise SuiteError(f"--threads must be in 1..64, got {args.threads}")
        if args.seed < 0:
            raise SuiteError(f"--seed must be non-negative, got {args.seed}")
        if shutil.which("valgrind", path="/usr/bin:/bin") is None:
            raise SuiteError("valgrind not found in /usr/bin (apt-get install valgrind)")
        hwemu_exe()
        outdir = Path(args.out)
        outdir.mkdir(parents=True, exist_ok=True)
        for n in names:
            row = record_one(WORKLOADS[n], args.scale, outdir, args.seed, args.threads, args.keep,
                             params, args.name)
            print(json.dumps(row), flush=True)
    except SuiteError as e:
        print(f"record.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("record.py: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"record.py: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
