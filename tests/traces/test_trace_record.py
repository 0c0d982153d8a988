"""Recording real programs under Valgrind: the hwtrace tool against cachegrind and lackey."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from hwemu.errors import HwemuError
from hwemu.traces.format import TraceReader
from hwemu.traces.record import record_trace

pytestmark = pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")

SINGLE = r"""
#include <stdio.h>
#include <string.h>
static long a[4096], b[4096];
static long shared;
int main(int argc, char **argv) {
    long s = 0;
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 4096; i++) { a[i] += i * r; s += a[i]; }
    memcpy(b, a, sizeof a);                            /* vector loads/stores */
    for (int i = 0; i < 100; i++)
        __atomic_fetch_add(&shared, i, __ATOMIC_SEQ_CST);   /* lock xadd: read+write */
    long expect = 0;
    __atomic_compare_exchange_n(&shared, &expect, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); /* CAS */
    printf("%ld %ld\n", s, b[77]);
    return argc > 1 ? atoi(argv[1]) : 0;
}
"""

THREADED = r"""
#include <pthread.h>
#include <stdio.h>
static pthread_barrier_t bar;
static long data[4][1024];
static void *work(void *p) {
    long id = (long)p;
    pthread_barrier_wait(&bar);
    for (int i = 0; i < 1024; i++) data[id][i] = i + id;
    return NULL;
}
int main(void) {
    pthread_t t[3];
    pthread_barrier_init(&bar, NULL, 3);
    for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("%ld\n", data[2][5]);
    return 0;
}
"""


@pytest.fixture(autouse=True)
def _cache(tool_cache, monkeypatch):
    monkeypatch.setenv("HWEMU_CACHE", str(tool_cache))


@pytest.fixture(scope="module")
def single(tmp_path_factory, compile_c):
    d = tmp_path_factory.mktemp("prog")
    return compile_c(SINGLE.replace("#include <string.h>", "#include <string.h>\n#include <stdlib.h>"),
                     d / "single")


@pytest.fixture(scope="module")
def threaded(tmp_path_factory, compile_c):
    d = tmp_path_factory.mktemp("prog")
    return compile_c(THREADED, d / "threaded", "-pthread")


def _cachegrind_totals(argv, tmp_path):
    out = tmp_path / "cg.out"
    subprocess.run(["valgrind", "-q", "--tool=cachegrind", "--cache-sim=yes",
                    f"--cachegrind-out-file={out}", *argv], check=True, env=dict(os.environ))
    # Same environment and stdout as the recorded run: the C library's start-up code reads
    # the environment and stdout's type, and its instruction count changes with them. (env is
    # passed explicitly because the C-level environment of this process may hold variables,
    # e.g. LINES/COLUMNS exported by readline, that os.environ does not show.)
    events = summary = None
    for line in out.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            summary = [int(x) for x in line.split()[1:]]
    return dict(zip(events, summary))


def test_hwtrace_counts_exactly_what_cachegrind_counts(single, tmp_path):
    meta = record_trace([single], tmp_path / "t.parquet", tool="hwtrace", progress=False)
    cg = _cachegrind_totals([single], tmp_path)
    k = meta.records_by_kind
    assert k["I"] == cg["Ir"]
    assert k["L"] + k["M"] == cg["Dr"]   # cachegrind counts a modify as one data read
    assert k["S"] == cg["Dw"]
    assert k["M"] > 100                  # the atomics and a[i] += ... really are modifies
    assert meta.threads == 1
    assert meta.extra["exit_status"] == 0 and meta.extra["argv"] == [single]
    assert meta.extra["cwd"] == os.getcwd() and meta.extra["tool"] == "hwtrace"


def test_hwtrace_and_lackey_give_the_same_records(single, tmp_path):
    record_trace([single], tmp_path / "h.parquet", tool="hwtrace", progress=False)
    meta = record_trace([single], tmp_path / "l.parquet", tool="lackey", progress=False)
    assert meta.extra["tool"] == "lackey" and meta.source_format == "valgrind-lackey"
    h = TraceReader(tmp_path / "h.parquet").read_all()
    lk = TraceReader(tmp_path / "l.parquet").read_all()
    assert len(h) == len(lk) > 100_000
    assert np.array_equal(h.kind, lk.kind)
    assert np.array_equal(h.size, lk.size)
    ifetch = h.kind == 0
    assert np.array_equal(h.addr[ifetch], lk.addr[ifetch])
    # The dynamic linker indexes a table with the kernel's AT_RANDOM bytes, which differ from
    # run to run: a handful of data addresses may differ, nothing else.
    assert np.count_nonzero(h.addr != lk.addr) <= 8


def test_sizes_are_not_clamped(single, tmp_path):
    record_trace([single], tmp_path / "t.parquet", tool="hwtrace", progress=False)
    ch = TraceReader(tmp_path / "t.parquet").read_all()
    data = ch.size[ch.kind != 0]
    assert data.max() >= 16          # SSE/AVX copies in memcpy
    assert set(ch.size[ch.kind == 0].tolist()) <= set(range(1, 17))


def test_multithreaded_program_has_several_tids(threaded, tmp_path, run_cli):
    status, out, err = run_cli("trace", "record", "--json", "--out", tmp_path / "t.parquet", "--", threaded)
    assert status == 0, err
    meta = json.loads(out[out.index("{"):])
    assert meta["threads"] == 4
    ch = TraceReader(tmp_path / "t.parquet").read_all()
    assert sorted(np.unique(ch.tid).tolist()) == [0, 1, 2, 3]
    for tid in (1, 2, 3):  # each worker stores its 1024-element row from its own thread
        stores = ch.addr[(ch.tid == tid) & (ch.kind == 2)]
        assert len(stores) >= 1024


def test_nonzero_exit_is_an_error_and_leaves_no_output(single, tmp_path, run_cli):
    out = tmp_path / "t.parquet"
    status, _, err = run_cli("trace", "record", "--out", out, "--", single, "3")
    assert status == 2
    assert "exited with status 3" in err and err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
    status, _, err = run_cli("trace", "record", "--allow-failure", "--out", out, "--", single, "3")
    assert status == 0, err
    assert TraceReader(out).meta.extra["exit_status"] == 3
    assert TraceReader(out).meta.extra["argv"] == [single, "3"]


def test_program_errors(tmp_path, run_cli):
    out = tmp_path / "t.parquet"
    status, _, err = run_cli("trace", "record", "--out", out, "--", "no-such-program-xyz")
    assert status == 2 and "no-such-program-xyz: program not found" in err
    noexec = tmp_path / "script"
    noexec.write_text("#!/bin/sh\n")
    status, _, err = run_cli("trace", "record", "--out", out, "--", noexec)
    assert status == 2 and "not executable" in err
    status, _, err = run_cli("trace", "record", "--out", out)
    assert status == 2 and "no program given" in err
    assert not out.exists()


def test_valgrind_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HwemuError, match="valgrind is not installed"):
        record_trace(["/bin/true"], tmp_path / "t.parquet")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_build_tool_cli(run_cli, tool_cache):
    status, out, err = run_cli("trace", "build-tool", "--json")
    assert status == 0, err
    path = json.loads(out)["valgrind_lib"]
    assert path.startswith(str(tool_cache))
    assert os.access(os.path.join(path, "hwtrace-amd64-linux.bin"), os.X_OK)


FORKER = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
static long arr[1000];
int main(int argc, char **argv) {
    pid_t p = fork();
    if (p == 0) { for (int i = 0; i < 1000; i++) arr[i] = i; _exit(0); }
    int st;
    waitpid(p, &st, 0);
    if (argc > 1) execl("/bin/true", "true", (char *)0);
    return 0;
}
"""


def test_fork_and_exec(tmp_path, compile_c):
    prog = compile_c(FORKER, tmp_path / "forker")
    meta = record_trace([prog], tmp_path / "f.parquet", progress=False)
    assert "ended_at_exec" not in meta.extra
    ch = TraceReader(tmp_path / "f.parquet").read_all()
    # the child's 1000 stores into arr are not in the parent's trace: no run of 1000
    # consecutive 8-byte stores with a stride of 8 anywhere
    st = ch.addr[(ch.kind == 2) & (ch.size == 8)].astype(np.int64)
    runs = np.diff(st) == 8
    longest = max((len(r) for r in "".join("1" if x else "0" for x in runs).split("0")), default=0)
    assert longest < 500
    meta = record_trace([prog, "exec"], tmp_path / "e.parquet", progress=False)
    assert meta.extra["ended_at_exec"] is True and meta.records > 10_000


def test_killed_program_is_an_error(tmp_path, run_cli):
    out = tmp_path / "k.parquet"
    status, _, err = run_cli("trace", "record", "--out", out, "--", "/bin/sh", "-c", "kill -9 $$")
    assert status == 2 and "killed by signal 9" in err
    assert not out.exists()


def test_auto_falls_back_to_lackey(tmp_path, monkeypatch, capsys):
    from hwemu.traces import record

    def broken(**kw):
        raise HwemuError("no compiler")

    monkeypatch.setattr(record, "build_tool", broken)
    meta = record_trace(["/bin/true"], tmp_path / "t.parquet", tool="auto", progress=False)
    assert meta.extra["tool"] == "lackey" and "no compiler" in meta.extra["warning"]
    assert "recording with lackey" in capsys.readouterr().err
    with pytest.raises(HwemuError, match="no compiler"):
        record_trace(["/bin/true"], tmp_path / "u.parquet", tool="hwtrace", progress=False)


# ---------------------------------------------------------------------------- --data-only

ARITH = r"""
#include <stdio.h>
#include <string.h>
static long a[4096], b[4096];
int main(void) {
    unsigned long x = 1;
    for (int i = 0; i < 100000; i++)      /* registers only: 300k instructions, no data record */
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 4096; i++) a[i] += i * r + (long)(x & 1);
    memcpy(b, a, sizeof a);
    for (int i = 0; i < 100; i++) __atomic_fetch_add(&a[i], 1, __ATOMIC_SEQ_CST);
    printf("%lu %ld\n", x, b[7]);
    return 0;
}
"""


@pytest.fixture(scope="module")
def arith(tmp_path_factory, compile_c):
    return compile_c(ARITH, tmp_path_factory.mktemp("prog") / "arith")


def _instructions(ch, meta) -> dict:
    """Instructions per tid: I records + insts + the metadata's trailing_insts."""
    trailing = (meta.extra or {}).get("trailing_insts") or {}
    return {int(t): int(np.count_nonzero((ch.tid == t) & (ch.kind == 0)))
            + int(ch.insts[ch.tid == t].sum(dtype=np.uint64)) + int(trailing.get(str(int(t)), 0))
            for t in np.unique(ch.tid)}


def test_data_only_keeps_data_records_instructions_and_d_side(arith, tmp_path):
    from hwemu.cachesim import simulate
    from hwemu.traces.fold import convert_data_only

    fm = record_trace([arith], tmp_path / "f.parquet", tool="hwtrace", progress=False)
    dm = record_trace([arith], tmp_path / "d.parquet", tool="hwtrace", progress=False, data_only=True)
    f = TraceReader(tmp_path / "f.parquet").read_all()
    d = TraceReader(tmp_path / "d.parquet").read_all()
    assert dm.records_by_kind["I"] == 0 and dm.extra["data_only"] is True
    assert "data_only" not in fm.extra
    # the same data records, in the same order
    fd = f.kind != 0
    assert len(d) == int(fd.sum()) > 10_000
    for col in ("kind", "size", "tid"):
        assert np.array_equal(getattr(f, col)[fd], getattr(d, col))
    assert np.count_nonzero(f.addr[fd] != d.addr) <= 8     # AT_RANDOM: see above
    # every instruction counted, on the right record: the tool's counts equal the full trace's
    # I records folded into the next data record
    assert _instructions(d, dm) == _instructions(f, fm) == {0: fm.records_by_kind["I"]}
    assert d.insts.max() >= 300_000          # the register-only loop: a count record
    convert_data_only(tmp_path / "f.parquet", tmp_path / "c.parquet")
    c = TraceReader(tmp_path / "c.parquet")
    assert np.array_equal(c.read_all().insts, d.insts)
    assert c.meta.extra["trailing_insts"] == dm.extra["trailing_insts"]
    # and cachegrind's Ir; the same D-side counters
    cg = _cachegrind_totals([arith], tmp_path)
    assert _instructions(d, dm)[0] == cg["Ir"]
    rf, rd = simulate(tmp_path / "f.parquet"), simulate(tmp_path / "d.parquet")
    for k in ("Ir", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw"):
        assert rd[k] == rf[k], k
    assert rd["I1mr"] == rd["ILmr"] == 0


def test_data_only_with_lackey_folds_i_lines(arith, tmp_path):
    record_trace([arith], tmp_path / "h.parquet", tool="hwtrace", progress=False, data_only=True)
    meta = record_trace([arith], tmp_path / "l.parquet", tool="lackey", progress=False, data_only=True)
    assert meta.extra["tool"] == "lackey" and meta.records_by_kind["I"] == 0
    h = TraceReader(tmp_path / "h.parquet").read_all()
    lk = TraceReader(tmp_path / "l.parquet").read_all()
    assert np.array_equal(h.kind, lk.kind) and np.array_equal(h.insts, lk.insts)
    assert meta.extra["trailing_insts"] == TraceReader(tmp_path / "h.parquet").meta.extra["trailing_insts"]


def test_data_only_threads_keep_their_counts(threaded, tmp_path, run_cli):
    status, out, err = run_cli("trace", "record", "--data-only", "--json", "--out", tmp_path / "t.parquet",
                               "--", threaded)
    assert status == 0, err
    meta = json.loads(out[out.index("{"):])
    assert meta["threads"] == 4 and meta["records_by_kind"]["I"] == 0
    ch = TraceReader(tmp_path / "t.parquet").read_all()
    cg = _cachegrind_totals([threaded], tmp_path)
    # Valgrind's scheduling may differ between the two runs, the total barely: compare loosely
    total = sum(_instructions(ch, TraceReader(tmp_path / "t.parquet").meta).values())
    assert abs(total - cg["Ir"]) <= cg["Ir"] // 100
    for tid in (1, 2, 3):
        assert np.count_nonzero((ch.tid == tid) & (ch.kind == 2)) >= 1024
        assert ch.insts[ch.tid == tid].sum() > 1024 * 3


def test_convert_data_only_cli_and_bad_input(tmp_path, run_cli, capsys):
    from hwemu.traces.format import TraceChunk, write_trace

    src = tmp_path / "in.parquet"
    # two threads, I records before, between and after the data records
    kind = np.array([0, 0, 1, 0, 0, 2, 0, 0, 0, 3, 0], np.uint8)
    tid = np.array([0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1], np.uint16)
    write_trace(src, TraceChunk.from_arrays(kind, np.arange(11, dtype=np.uint64) * 64 + 4096,
                                            np.full(11, 4, np.uint16), tid=tid), source_format="csv",
                row_group_size=4)   # counts carried across chunks
    status, out, err = run_cli("trace", "convert", "--data-only", "--json", src, tmp_path / "o.parquet")
    assert status == 0, err
    assert json.loads(out)["extra"]["trailing_insts"] == {"1": 3}
    o = TraceReader(tmp_path / "o.parquet").read_all()
    assert o.kind.tolist() == [1, 2, 3] and o.tid.tolist() == [0, 1, 0]
    assert o.insts.tolist() == [1, 2, 2]       # tid 0: I L | I I M; tid 1: I I S | I I I (trailing)
    status, out, err = run_cli("trace", "info", "--json", tmp_path / "o.parquet")
    assert json.loads(out)["instructions"] == 8
    for argv in (("convert", "--data-only", tmp_path / "nope.parquet", tmp_path / "x.parquet"),
                 ("convert", "--data-only", src, tmp_path / "no-dir" / "x.parquet")):
        status, _, err = run_cli("trace", *argv)
        assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        run_cli("trace", "convert", src, tmp_path / "x.parquet")
    assert exc.value.code == 2 and "--data-only" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
