"""Acceptance: replaying a recorded trace gives exactly cachegrind's nine counters.

Each program is run once under cachegrind per geometry and once under the trace recorder, with
the same argv, environment, cwd, stdin and stdout. The recorder is the project's own
(``hwemu.traces.record.record_trace``) when present, and Valgrind's lackey tool in any case.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from hwemu.cachesim import simulate
from hwemu.cachesim.sim import EVENTS

from . import cgref

pytestmark = pytest.mark.skipif(cgref.VALGRIND is None, reason="valgrind is not installed")

GEOMETRIES = {
    "skx": dict(I1="32768,8,64", D1="32768,8,64", LL="8388608,16,64"),
    "small-mixed-lines": dict(I1="4096,2,32", D1="8192,4,64", LL="65536,4,64"),
    "direct-mapped-ll128": dict(I1="16384,4,64", D1="4096,1,64", LL="262144,8,128"),
}

ARRAY_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define N 96
static double a[N][N], b[N][N], c[N][N];
struct __attribute__((packed)) rec { char tag; long v; };   /* unaligned 8-byte fields */
int main(int argc, char **argv) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) { a[i][j] = i + j; b[i][j] = i - j; }
    for (int i = 0; i < N; i++)              /* column walk of b: conflict misses */
        for (int k = 0; k < N; k++)
            for (int j = 0; j < N; j++)
                c[i][j] += a[i][k] * b[k][j];
    struct rec *r = malloc(4096 * sizeof *r);
    for (int i = 0; i < 4096; i++) { r[i].tag = (char)i; r[i].v = i; }
    long s = 0;
    for (int rep = 0; rep < 4; rep++)
        for (int i = 0; i < 4096; i += 3) { r[i].v += rep; s += r[i].v; }   /* modifies */
    char *buf = malloc(1 << 16);
    memset(buf, 1, 1 << 16);
    memmove(buf + 3, buf, (1 << 16) - 3);
    printf("%f %ld %d\n", c[N / 2][N / 3], s, buf[12345]);
    free(buf); free(r);
    return 0;
}
"""

THREADS_C = r"""
#include <pthread.h>
#include <stdio.h>
#define N (1 << 15)
static long data[4][N];
static void *work(void *p) {
    long *d = p, s = 0;
    for (int r = 0; r < 6; r++)
        for (int i = 0; i < N; i += 5) { d[i] += i ^ r; s += d[i]; }
    return (void *)s;
}
int main(void) {
    pthread_t t[3]; long tot = 0; void *ret;
    for (int i = 0; i < 3; i++) pthread_create(&t[i], 0, work, data[i]);
    tot += (long)work(data[3]);
    for (int i = 0; i < 3; i++) { pthread_join(t[i], &ret); tot += (long)ret; }
    printf("%ld\n", tot);
    return 0;
}
"""

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray").split()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The programs' cwd (inputs only) and a separate scratch dir for logs and outputs."""
    root = tmp_path_factory.mktemp("cgref")
    cwd = root / "cwd"
    scratch = root / "scratch"
    cwd.mkdir()
    scratch.mkdir()
    lines = [f"{WORDS[(i * 7) % len(WORDS)]} {i * 7919 % 1000}" for i in range(3000)]
    (cwd / "words.txt").write_text("\n".join(lines) + "\n")
    (cwd / "array.c").write_text(ARRAY_C)
    gcc = shutil.which("gcc")
    (cwd / "threads.c").write_text(THREADS_C)
    if gcc:
        subprocess.run([gcc, "-O2", "-o", str(cwd / "array"), str(cwd / "array.c")], check=True)
        subprocess.run([gcc, "-O2", "-pthread", "-o", str(cwd / "threads"), str(cwd / "threads.c")],
                       check=True)
    return cwd, scratch


PROGRAMS = {
    "true": ["/bin/true"],
    "ls": ["/bin/ls", "-l", "/usr"],
    # -S fixes sort's buffer size: by default it is sized from the memory free at start-up,
    # which changes the instruction count by a few between two runs on a busy machine.
    "sort": ["/usr/bin/sort", "-S", "1M", "-k2,2n", "words.txt"],
    "gzip": ["/bin/gzip", "-c", "-6", "words.txt"],
    "array-O2": ["./array"],
}


def _recorders():
    out = [pytest.param("lackey", id="lackey")]
    out.append(pytest.param("hwemu", id="hwemu-recorder",
                            marks=pytest.mark.skipif(cgref.project_recorder() is None,
                                                     reason="hwemu.traces.record not available")))
    return out


_trace_cache: dict = {}


def _trace(recorder, name, argv, cwd, scratch):
    key = (recorder, name)
    if key not in _trace_cache:
        if recorder == "lackey":
            _trace_cache[key] = cgref.lackey_trace(argv, cwd, tmp=scratch)
        else:
            out = scratch / f"{name}.parquet"
            cgref.record_with_project(argv, out, cwd)
            _trace_cache[key] = out
    return _trace_cache[key]


@pytest.mark.parametrize("recorder", _recorders())
@pytest.mark.parametrize("prog", list(PROGRAMS))
def test_counts_equal_cachegrind(workdir, recorder, prog):
    cwd, scratch = workdir
    argv = PROGRAMS[prog]
    if argv[0].startswith("./") and not (cwd / argv[0][2:]).exists():
        pytest.skip("gcc not available")
    trace = _trace(recorder, prog, argv, cwd, scratch)
    for gname, geo in GEOMETRIES.items():
        ref = cgref.cachegrind_counts(argv, cwd, tmp=scratch, **geo)
        got = simulate(trace, **geo)
        mine = {e: got[e] for e in EVENTS}
        assert mine == ref, f"{prog} [{gname}]: hwemu {mine} != cachegrind {ref}"


def test_threaded_program_close_to_cachegrind(workdir):
    """Valgrind serialises threads, but where it switches between them depends on when futex
    waits return, so two runs of a threaded program (even two cachegrind runs) differ a little
    (six cachegrind runs of this program: Ir within 180, D1mr within 76, D1mw 492..520). Exact
    equality is not defined here; require agreement within about twice that spread: 96 events
    + 0.5% (about 1% of D1mr)."""
    cwd, scratch = workdir
    if not (cwd / "threads").exists():
        pytest.skip("gcc not available")
    recorder = "hwemu" if cgref.project_recorder() is not None else "lackey"
    argv = ["./threads"]
    trace = _trace(recorder, "threads", argv, cwd, scratch)
    geo = GEOMETRIES["skx"]
    ref = cgref.cachegrind_counts(argv, cwd, tmp=scratch, **geo)
    got = simulate(trace, **geo)
    assert got["D1mr"] > 10_000            # the program does miss: the comparison means something
    for e in EVENTS:
        assert abs(got[e] - ref[e]) <= 96 + ref[e] // 200, f"{e}: hwemu {got[e]} cachegrind {ref[e]}"
