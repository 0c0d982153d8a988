"""Issue 15, "no bad file, ever": every bad input gives exit status 2, one line naming the
file, line, column or key, no traceback, and nothing at the target path."""

from __future__ import annotations

import errno
import gzip
import json
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from hwemu import fileio
from hwemu.cli import main
from hwemu.traces.format import TraceChunk, write_trace
from hwemu.traces.importers import CHAMPSIM_RECORD

ROOT = Path(__file__).resolve().parents[1]
MATMUL = ROOT / "traces" / "matmul.parquet"


@pytest.fixture
def cli(capsys):
    """``hwemu ARGS`` in process: (status, stdout, stderr)."""

    def run(*argv):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code
        out, err = capsys.readouterr()
        return status, out, err

    return run


def refused(result, *needles):
    """Exit 2 with one line on stderr (no traceback) that contains every needle."""
    status, _, err = result
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwemu"), err
    assert "Traceback" not in err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def no_leftovers(directory: Path, name: str):
    assert not (directory / name).exists()
    assert not [p for p in directory.iterdir() if p.name.startswith(f".{name}.")], \
        list(directory.iterdir())


def lackey_text(n: int) -> bytes:
    return "".join(f" L {0x10000 + 64 * i:x},8\n" for i in range(n)).encode()


def small_trace(path: Path, n: int = 2000, tid=None, addr=None) -> Path:
    kind = np.ones(n, np.uint8)
    write_trace(path, TraceChunk.from_arrays(
        kind, np.arange(n, dtype=np.uint64) * np.uint64(64) + np.uint64(0x10000000) if addr is None else addr,
        np.full(n, 8, np.uint16), tid=tid), source_format="test")
    return path


def foreign_parquet(path: Path, n: int = 100, **cols) -> Path:
    """A Parquet file with hwemu metadata written by 'another tool', with ``cols`` replaced."""
    arrays = {"kind": pa.array(np.ones(n, np.uint8)), "tid": pa.array(np.zeros(n, np.uint16)),
              "size": pa.array(np.full(n, 8, np.uint16)),
              "addr": pa.array(np.arange(n, dtype=np.uint64) * np.uint64(64) + np.uint64(0x10000)),
              "insts": pa.array(np.zeros(n, np.uint32))}
    arrays.update(cols)
    rows = len(next(iter(arrays.values())))
    meta = {"format_version": 1, "source_format": "other", "program": "", "records": rows,
            "records_by_kind": {"I": 0, "L": rows, "S": 0, "M": 0}, "threads": 1}
    pq.write_table(pa.table(arrays).replace_schema_metadata({"hwemu": json.dumps(meta)}), path)
    return path


# ------------------------------------------------------------------ truncated and corrupt input

def test_truncated_zst_import_is_refused(tmp_path, cli):
    data = zstandard.ZstdCompressor().compress(lackey_text(100_000))
    src = tmp_path / "in.zst"
    src.write_bytes(data[: len(data) // 2])
    refused(cli("trace", "import", "-f", "lackey", src, tmp_path / "o.parquet"), "in.zst",
            "truncated")
    no_leftovers(tmp_path, "o.parquet")


@pytest.mark.parametrize("codec", ["gz", "xz", "zst"])
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_corrupt_compressed_input_is_refused(tmp_path, cli, codec, damage):
    comp = {"gz": gzip.compress, "xz": lzma.compress,
            "zst": zstandard.ZstdCompressor().compress}[codec](lackey_text(20_000))
    if damage == "truncated":
        comp = comp[: len(comp) // 2]
    else:
        rng = np.random.default_rng(1)
        comp = comp[:40] + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    src = tmp_path / f"in.{codec}"
    src.write_bytes(comp)
    refused(cli("trace", "import", "-f", "lackey", src, tmp_path / "o.parquet"), f"in.{codec}")
    no_leftovers(tmp_path, "o.parquet")


# ------------------------------------------------------------ Parquet from other writers

@pytest.mark.parametrize("col, values, needles", [
    ("size", pa.array([8] * 99 + [100_000], pa.int64()), ["column size", "row 99", "100000"]),
    ("size", pa.array([8] * 10 + [-8] + [8] * 89, pa.int64()), ["column size", "row 10", "-8"]),
    ("tid", pa.array([0] * 50 + [2**40] * 50, pa.int64()), ["column tid", "row 50"]),
    ("addr", pa.array([0x1000] * 5 + [None] + [0x1000] * 94, pa.uint64()), ["column addr", "row 5", "null"]),
    ("kind", pa.array([1] * 7 + [7] + [1] * 92, pa.uint8()), ["column kind", "row 7", "7"]),
    ("addr", pa.array([str(i) for i in range(100)]), ["column addr", "type string"]),
    ("kind", pa.array(["L"] * 100), ["column kind", "type string"]),
    ("size", pa.array([8.0] * 100), ["column size", "type double"]),
])
@pytest.mark.parametrize("command", ["info", "cachesim"])
def test_foreign_parquet_is_validated(tmp_path, cli, col, values, needles, command):
    t = foreign_parquet(tmp_path / "f.parquet", **{col: values})
    argv = ("trace", "info", t) if command == "info" else ("cachesim", t)
    refused(cli(*argv), "f.parquet", *needles)


def test_zero_row_trace_is_refused(tmp_path, cli):
    t = foreign_parquet(tmp_path / "z.parquet", n=0)
    refused(cli("trace", "info", t), "z.parquet", "no records")


def test_records_in_metadata_must_match_rows(tmp_path, cli):
    t = foreign_parquet(tmp_path / "m.parquet")
    table = pq.read_table(t)
    meta = json.loads(table.schema.metadata[b"hwemu"])
    meta["records"] = 100_000
    pq.write_table(table.replace_schema_metadata({"hwemu": json.dumps(meta)}), t)
    refused(cli("trace", "info", t), "m.parquet", "100000", "100 rows")


def test_wide_but_in_range_integer_columns_are_accepted(tmp_path, cli):
    t = foreign_parquet(tmp_path / "w.parquet", size=pa.array([8] * 100, pa.int64()),
                        addr=pa.array(list(range(4096, 4196)), pa.int64()))
    status, out, err = cli("trace", "info", t, "--json")
    assert status == 0, err
    assert json.loads(out)["records"] == 100


def test_run_refuses_addresses_the_machine_cannot_map(tmp_path, cli):
    addr = np.full(100, 0x10000000, np.uint64)
    addr[42] = np.uint64(2**63 + 4096)
    t = small_trace(tmp_path / "hi.parquet", 100, addr=addr)
    refused(cli("run", "--machine", "skx-2s", t), "hi.parquet", "column addr", "row 42",
            "0x8000000000001000")


# ------------------------------------------------------------------ writes that fail

def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_at_the_last_write_of_a_small_trace(tmp_path, cli, monkeypatch):
    """Smaller than one row group: the only write happens when the writer closes."""
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _enospc)
    src = tmp_path / "in.txt"
    src.write_bytes(lackey_text(1000))
    refused(cli("trace", "import", "-f", "lackey", src, tmp_path / "o.parquet"), "o.parquet",
            "No space left on device")
    no_leftovers(tmp_path, "o.parquet")
    refused(cli("trace", "synth", "stream", "--records", "1000", "--out", tmp_path / "s.parquet"),
            "s.parquet", "No space left on device")
    no_leftovers(tmp_path, "s.parquet")


def test_disk_full_when_the_footer_is_written(tmp_path, cli, monkeypatch):
    real = pq.ParquetWriter.close
    failed = []

    def close_fails_once(self):
        if not failed and ".s.parquet." in str(getattr(self, "where", "")):
            failed.append(1)
            _enospc()
        return real(self)

    monkeypatch.setattr(pq.ParquetWriter, "close", close_fails_once)
    refused(cli("trace", "synth", "stream", "--records", "10", "--out", tmp_path / "s.parquet"),
            "s.parquet", "No space left on device")
    no_leftovers(tmp_path, "s.parquet")


def test_disk_full_during_multi_row_group_synth(tmp_path, cli, monkeypatch):
    calls = []
    real = pq.ParquetWriter.write_table

    def second_fails(self, *a, **k):
        calls.append(1)
        if len(calls) >= 2:
            _enospc()
        return real(self, *a, **k)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", second_fails)
    out = tmp_path / "big.parquet"
    refused(cli("trace", "synth", "stream", "--records", "2200000", "--out", out),
            "big.parquet", "No space left on device")
    no_leftovers(tmp_path, "big.parquet")


def test_disk_full_during_run_stats_out(tmp_path, cli, monkeypatch):
    import pandas as pd

    t = small_trace(tmp_path / "t.parquet", 500)
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda *a, **k: _enospc())
    refused(cli("run", "--machine", "skx-2s", t, "--stats-out", tmp_path / "s.csv"),
            "s.csv", "No space left on device")
    no_leftovers(tmp_path, "s.csv")


@pytest.fixture
def readonly_dir(tmp_path, monkeypatch):
    """A directory nothing can be created in (root ignores chmod, so creating a file there is
    made to fail as on a read-only file system)."""
    d = tmp_path / "ro"
    d.mkdir()
    real = fileio.tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):
        if dir is not None and Path(dir).resolve() == d.resolve():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)
    return d


def _output_commands(t, target):
    return {
        "import": ("trace", "import", "-f", "lackey", t.with_suffix(".txt"), target),
        "synth": ("trace", "synth", "stream", "--records", "10", "--out", target),
        "run": ("run", "--machine", "skx-2s", t, "--stats-out", target),
        "mlc": ("mlc", "--machine", "skx-2s", "--loaded-latency", "--plot", target),
    }


@pytest.mark.parametrize("command", ["import", "synth", "run", "mlc"])
def test_read_only_output_directory(tmp_path, cli, readonly_dir, command):
    t = small_trace(tmp_path / "t.parquet", 10)
    t.with_suffix(".txt").write_bytes(lackey_text(10))
    target = readonly_dir / "out.x"
    refused(cli(*_output_commands(t, target)[command]), "out.x", "Read-only file system")
    assert list(readonly_dir.iterdir()) == []


@pytest.mark.parametrize("command", ["import", "synth", "run", "mlc"])
def test_output_path_is_a_directory(tmp_path, cli, command):
    t = small_trace(tmp_path / "t.parquet", 10)
    t.with_suffix(".txt").write_bytes(lackey_text(10))
    target = tmp_path / "adir"
    target.mkdir()
    refused(cli(*_output_commands(t, target)[command]), "adir", "is a directory")
    assert list(target.iterdir()) == []


def test_real_full_tmpfs(tmp_path, cli):
    """The same with a real full disk, where we may mount a small tmpfs (root)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs",
                                            str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        refused(cli("trace", "synth", "random", "--records", "300000", "--out", mnt / "r.parquet"),
                "r.parquet", "No space left on device")
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# --------------------------------------------------------------- interrupted writes, temp files

def test_sigterm_removes_the_temporary_file(tmp_path):
    out = tmp_path / "big.parquet"
    p = subprocess.Popen([sys.executable, "-m", "hwemu", "trace", "synth", "random", "--records",
                          "200M", "--out", str(out)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not [f for f in tmp_path.iterdir() if f.name.startswith(".big")]:
        time.sleep(0.05)
    assert [f for f in tmp_path.iterdir() if f.name.startswith(".big")], "no temp file appeared"
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_files_are_cleaned_by_the_next_write(tmp_path):
    host = fileio._host()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale_dead = tmp_path / f".t.parquet.hwemu-{host}-{dead.pid}-abc123.tmp"
    stale_old = tmp_path / f".t.parquet.hwemu-otherhost-{os.getpid()}-abc124.tmp"
    live = tmp_path / f".t.parquet.hwemu-{host}-{os.getppid()}-abc125.tmp"
    foreign = tmp_path / ".t.parquet.someone-else.tmp"
    other_target = tmp_path / f".u.parquet.hwemu-{host}-{dead.pid}-abc126.tmp"
    for p in (stale_dead, stale_old, live, foreign, other_target):
        p.write_bytes(b"x")
    old = time.time() - fileio.STALE_SECONDS - 60
    os.utime(stale_old, (old, old))
    small_trace(tmp_path / "t.parquet", 10)
    assert not stale_dead.exists() and not stale_old.exists()
    assert live.exists() and foreign.exists() and other_target.exists()


# ------------------------------------------------------------------ TOML input

@pytest.mark.parametrize("command", [
    ("machine", "show", "--no-measure", "{f}"),
    ("schedule", "check", "{f}"),
    ("sweep", "{f}", "--out", "{d}/out"),
])
def test_non_utf8_toml(tmp_path, cli, command):
    f = tmp_path / "bad.toml"
    f.write_bytes(b'# ok\nname = "caf\xe9"\n')
    argv = [a.format(f=f, d=tmp_path) for a in command]
    refused(cli(*argv), "bad.toml:2:", "UTF-8")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ numbers

@pytest.mark.parametrize("argv, needles", [
    (("trace", "synth", "stream", "--footprint", "1e400", "--out", "{d}/s.parquet"), ["--footprint", "1e400"]),
    (("trace", "synth", "stream", "--footprint", "inf", "--out", "{d}/s.parquet"), ["--footprint"]),
    (("run", "-m", "skx-2s", "{t}", "--policy", "autonuma", "--window", "1e400us"), ["--window", "1e400"]),
    (("run", "-m", "skx-2s", "{t}", "--policy", "autonuma", "--window", "nan"), ["--window"]),
    (("dma", "cost", "--clock", "1e400GHz"), ["--clock", "1e400"]),
    (("trace", "synth", "stream", "--seed", "-1", "--records", "10", "--out", "{d}/s.parquet"), ["--seed"]),
])
def test_infinite_and_out_of_range_numbers(tmp_path, cli, argv, needles):
    t = small_trace(tmp_path / "t.parquet", 10)
    refused(cli(*[a.format(d=tmp_path, t=t) for a in argv]), *needles)
    assert not (tmp_path / "s.parquet").exists()


def test_infinite_sizes_and_times_in_toml(tmp_path, cli):
    m = tmp_path / "m.toml"
    m.write_text('base = "skx-2s"\n[cache.llc]\nsize = "1e400KiB"\n')
    refused(cli("machine", "show", "--no-measure", m), "m.toml", "[cache.llc] size")
    s = tmp_path / "s.toml"
    s.write_text('[[process]]\npid = 1\n[[thread]]\ntid = 0\npid = 1\ncpu = 0\n'
                 '[[event]]\nat = "1e400us"\naction = "move_thread"\ntid = 0\ncpu = 1\n')
    refused(cli("schedule", "check", s), "s.toml", "event[0].at")


# ------------------------------------------------------------------ absurd sizes

def test_absurd_sizes_are_refused_up_front(tmp_path, cli):
    t = small_trace(tmp_path / "t.parquet", 10)
    refused(cli("cachesim", t, "--LL", "1099511627776,16,64"), "--LL", "at most")
    m = tmp_path / "big.toml"
    m.write_text('base = "skx-2s"\n[cache.llc]\nsize = "64TiB"\n')
    refused(cli("machine", "show", "--no-measure", m), "big.toml", "[cache.llc] size", "at most")
    m.write_text('base = "skx-2s"\n[cache.l1d]\nsize = "1GiB"\nways = 1\n')  # x 48 cores
    refused(cli("machine", "show", "--no-measure", m), "big.toml", "total cache", "at most")
    refused(cli("run", "--machine", "skx-2s", t, "--cpus", "0-99999999999"), "--cpus")
    s = tmp_path / "s.toml"
    s.write_text('[[process]]\npid = 1\n[[thread]]\ntid = 0\npid = 1\ncpu = 0\n'
                 '[[event]]\nat = "1us"\naction = "move_pages"\ntid = 0\npid = 1\n'
                 'addr = "0x10000000"\npages = 1000000000000\nnode = 1\n')
    refused(cli("schedule", "check", s), "s.toml", "event[0].pages", "at most")
    refused(cli("bench", "migrate", "--pages", str(10**14)), "--pages", "at most")
    refused(cli("trace", "synth", "chase", "--footprint", "1TiB", "--out", tmp_path / "c.parquet"),
            "--footprint")


# ------------------------------------------------------------------ schedules

@pytest.mark.parametrize("text, key", [
    ("thread = 5\n", "thread"),
    ("event = 5\n", "event"),
    ("process = 5\n", "process"),
    ("[[process]]\npid = 1\nmmap = 5\n", "process[0].mmap"),
    ("[[process]]\npid = 1\nmmap = [5]\n", "process[0].mmap[0]"),
])
def test_schedule_number_where_an_array_is_expected(tmp_path, cli, text, key):
    s = tmp_path / "s.toml"
    s.write_text(text)
    refused(cli("schedule", "check", s), "s.toml", key)


def test_schedule_check_given_a_directory(tmp_path, cli):
    refused(cli("schedule", "check", tmp_path), str(tmp_path), "is a directory")


def test_missing_base_preset_names_the_file_and_key(tmp_path, cli):
    m = tmp_path / "m.toml"
    m.write_text('base = "no-such-preset"\n')
    refused(cli("machine", "show", "--no-measure", m), "m.toml", "base", "no-such-preset")


def test_manual_policy_needs_a_schedule(tmp_path, cli):
    t = small_trace(tmp_path / "t.parquet", 10)
    refused(cli("run", "-m", "skx-2s", t, "--policy", "manual"), "--policy", "--schedule")


def test_schedule_warnings_thread_not_in_trace_and_late_events(tmp_path, cli):
    t = small_trace(tmp_path / "t.parquet", 2000)
    s = tmp_path / "s.toml"
    s.write_text('[[process]]\npid = 1\n'
                 '[[thread]]\ntid = 0\npid = 1\ncpu = 0\n'
                 '[[thread]]\ntid = 5\npid = 1\ncpu = 1\n'
                 '[[event]]\nat = "1s"\naction = "move_thread"\ntid = 0\ncpu = 2\n')
    status, _, err = cli("run", "-m", "skx-2s", t, "--schedule", s, "--json")
    assert status == 0, err
    warnings = [l for l in err.splitlines() if l.startswith("hwemu: warning:")]
    assert any("tid = 5" in w and "s.toml" in w for w in warnings), err
    assert any("event[0]" in w and "after the trace ends" in w for w in warnings), err


# ------------------------------------------------------------------ sweeps and compare

@pytest.mark.parametrize("value", ['["12 parsecs"]', '["0us"]', '["1e400us"]'])
def test_sweep_params_are_checked_before_it_runs(tmp_path, cli, value):
    f = tmp_path / "sw.toml"
    f.write_text(f'machines = ["skx-2s"]\ntraces = ["{MATMUL}"]\npolicies = ["autonuma"]\n'
                 f'[params]\nwindow = {value}\n')
    refused(cli("sweep", f, "--out", tmp_path / "out", "--quiet"), "sw.toml", "params.window")
    assert not (tmp_path / "out").exists()


def test_compare_param_window_names_the_option(tmp_path, cli):
    refused(cli("compare", "--trace", MATMUL, "--policy", "autonuma", "--param",
                "window=12 parsecs", "--out", tmp_path / "o", "--quiet"), "--param window")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ ChampSim plausibility

def test_random_bytes_do_not_import_as_champsim(tmp_path, cli):
    src = tmp_path / "noise.bin"
    src.write_bytes(np.random.default_rng(3).integers(0, 256, 64 * 500, dtype=np.uint8).tobytes())
    line = refused(cli("trace", "import", "-f", "champsim", src, tmp_path / "o.parquet"),
                   "noise.bin", "implausible", "of the first 500")
    assert "ChampSim" in line
    no_leftovers(tmp_path, "o.parquet")


def test_a_few_implausible_champsim_records_warn(tmp_path, cli):
    r = np.zeros(1000, CHAMPSIM_RECORD)
    r["ip"] = 0x401000 + 4 * np.arange(1000)
    r["source_memory"][:, 0] = 0x7000
    r["ip"][17] = 0
    src = tmp_path / "t.champsim"
    src.write_bytes(r.tobytes())
    status, _, err = cli("trace", "import", "-f", "champsim", src, tmp_path / "o.parquet")
    assert status == 0, err
    assert "hwemu: warning:" in err and "1 of the first 1,000" in err and "record 17" in err


@pytest.mark.parametrize("value", ["0.5", "fast", "nan"])
def test_run_param_time_compression_is_checked(tmp_path, cli, value):
    refused(cli("run", "-m", "skx-2s", MATMUL, "--policy", "autonuma", "--param",
                f"time_compression={value}"), "--param time_compression", "a number >= 1")


def test_sweep_policy_table_checks_run_params(tmp_path, cli):
    f = tmp_path / "sw.toml"
    f.write_text(f'machines = ["skx-2s"]\ntraces = ["{MATMUL}"]\npolicies = ["autonuma"]\n'
                 f'[params.autonuma]\ntime_compression = [100, 0]\n')
    refused(cli("sweep", f, "--out", tmp_path / "out", "--quiet"), "sw.toml",
            "params.autonuma.time_compression", "a number >= 1")
    assert not (tmp_path / "out").exists()
