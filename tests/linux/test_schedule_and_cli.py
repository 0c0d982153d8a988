"""Schedule files (parse, validate, apply) and the linux area's commands."""

import json
from pathlib import Path

import pytest

from hwemu.cli import main
from hwemu.errors import HwemuError
from hwemu.sim.bench_migrate import parametric_hardware
from hwemu.linux.kernel import Kernel
from hwemu.linux.schedule import apply_schedule, load_schedule
from hwemu.linux.syscalls import numa_maps

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "schedule.toml"


def hw():
    return parametric_hardware("epyc-2s", mem_per_node_bytes=256 << 20)


def test_example_schedule_loads():
    s = load_schedule(EXAMPLE, hw())
    assert [p.pid for p in s.processes] == [100, 200]
    assert s.thread_for(2).cpu == 64 and s.thread_for(9) is None
    assert [e.action for e in s.events] == ["pin", "move_thread", "migrate_pages", "mbind", "move_pages"]
    assert s.events[0].args["duration_ps"] == 10_000_000_000


def test_example_schedule_runs():
    k = Kernel(hw())
    run = apply_schedule(k, load_schedule(EXAMPLE, k.hw))
    heap, shm, data, indexer = 0x7F0000000000, 0x7F1000000000, 0x7F2000000000, 0x600000000000
    for i in range(16):
        k.engine.run_process(k.access(1, heap + i * (1 << 21), True))
        k.engine.run_process(k.access(1, shm + i * 4096, True))
        k.engine.run_process(k.access(3, indexer + i * 4096, False))
        k.engine.run_process(k.access(2, data + i * 4096, True))
    # NUMA balancing rescans forever: run to a time, not until the queue is empty.
    k.engine.run_until(20_000_000_000)
    assert k.counter("linux.numa", "scans") >= 5
    log = {e["action"]: e for e in run.log}
    assert log["pin"]["pages"] == 16
    assert log["migrate_pages"]["ret"] == 0       # shared segment skipped (no MOVE_ALL)
    assert log["mbind"]["ret"] == 0
    # move_pages with MOVE_ALL hits a pinned shared page: a positive count, as Linux returns.
    assert log["move_pages"]["ret"] > 0
    rows = {r["start"]: r for r in numa_maps(k, 100)[1]}
    assert rows[heap]["nodes"] == {1: 16 * 512}
    assert rows[data]["policy"] == "bind:1" and rows[data]["nodes"] == {1: 16}
    assert k.thread(1).cpu == 65


BAD = [
    ("[[process]]\nname = 'x'\n", "process[0].pid: missing"),
    ("[[process]]\npid = 1\ncolour = 3\n", "process[0].colour: unknown key"),
    ("[[process]]\npid = 1\n[[thread]]\ntid = 1\npid = 1\ncpu = 999\n", "thread[0].cpu: cpu 999 does not exist"),
    ("[[process]]\npid = 1\n[[thread]]\ntid = 1\npid = 2\ncpu = 0\n", "thread[0].pid: no [[process]] with pid 2"),
    ("[[process]]\npid = 1\npolicy = {mode='bind', nodes=[5]}\n", "process[0].policy: node 5 does not exist"),
    ("[[process]]\npid = 1\n[[process.mmap]]\nstart = '0x1000'\nsize = '8KiB'\n"
     "[[process.mmap]]\nstart = '0x2000'\nsize = '4KiB'\n", "process[0].mmap[1].start: overlaps"),
    ("[[process]]\npid = 1\n[[process.mmap]]\nstart = '0x1001'\nsize = '4KiB'\n", "not 4KiB aligned"),
    ("[[process]]\npid = 1\n[[thread]]\ntid = 1\npid = 1\ncpu = 0\n[[event]]\nat = '1 parsec'\n"
     "action = 'move_thread'\ntid = 1\ncpu = 1\n", "event[0].at"),
    ("[[process]]\npid = 1\n[[thread]]\ntid = 1\npid = 1\ncpu = 0\n[[event]]\nat = '1ms'\n"
     "action = 'move_pages'\ntid = 1\npid = 1\naddr = 4096\npages = 2\nnodes = [1]\n",
     "event[0].nodes: 1 nodes for 2 pages"),
    ("[[process]]\npid = 1\n[[thread]]\ntid = 1\npid = 1\ncpu = 0\n[[event]]\nat = '1ms'\n"
     "action = 'mbind'\ntid = 1\npid = 1\naddr = 4096\nsize = '4KiB'\npolicy = 'bind:0'\n"
     "flags = ['MPOL_MF_FAST']\n", "event[0].flags: unknown flag 'MPOL_MF_FAST'"),
    ("[[event]]\nat = '1ms'\naction = 'teleport'\n", "event[0].action: must be one of"),
    ("[[process]\n", "not valid TOML"),
    ("[numa_balancing]\nscan_period_min = '2s'\nscan_period_max = '1s'\n",
     "numa_balancing.scan_period_max: needs 0 < scan_period_min <= scan_period_max"),
    ("[numa_balancing]\nscan_rate = '2s'\n", "numa_balancing.scan_rate: unknown key"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_schedules_name_file_and_key(tmp_path, text, message):
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(HwemuError) as exc:
        load_schedule(f, hw())
    assert str(exc.value).startswith(f"{f}: ")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_schedule_check_cli(tmp_path, capsys):
    assert main(["schedule", "check", str(EXAMPLE), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["processes"] == [100, 200]
    bad = tmp_path / "bad.toml"
    bad.write_text("[[process]]\npid = 0\n")
    assert main(["schedule", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "process[0].pid: must be >= 1" in err
    assert main(["schedule", "check", str(tmp_path / "missing.toml")]) == 2


def test_schedule_check_text_is_words_not_reprs(capsys):
    assert main(["schedule", "check", str(EXAMPLE), "--machine", "epyc-2s"]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "{}[]'"), out           # no Python dict or list reprs
    assert "Mempolicy(" not in out
    assert "  process 100 (db): 2 threads, 3 mappings\n" in out
    assert "    thread 2 on CPU 64\n" in out
    assert "at     8 ms  mbind: tid 2, pid 100, addr 0x7f2000000000, size 8 MiB, policy bind 1" in out
    assert "nodes 1 (x32)" in out and "duration 10 ms" in out


def test_bench_migrate_json_4k(capsys):
    assert main(["bench", "migrate", "--page-size", "4KiB", "--pages", "1024", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["ret"] == 0 and r["pages_moved"] == 1024
    # Calibration (docs/migration.md): ~1.2 us and ~3.3-3.5 GB/s per 4 KiB page, copy ~1/4-1/3.
    assert 1.0 < r["us_per_page"] < 1.45
    assert 2.8 < r["gbps"] < 4.0
    assert 0.2 < r["copy_fraction"] < 0.35
    assert abs(r["copy_fraction"] - r["steps"]["12_copy"]["fraction"]) < 1e-12
    total = sum(v["total_ps"] for v in r["steps"].values())
    assert total == pytest.approx(r["elapsed_ps"], rel=0.01)   # the steps account for the time


def test_bench_migrate_thp_batching_and_dma(capsys):
    assert main(["bench", "migrate", "--page-size", "2MiB", "--pages", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert 10.0 < r["gbps"] < 12.0 and r["copy_fraction"] > 0.95
    assert main(["bench", "migrate", "--page-size", "2MiB", "--pages", "4", "--copy", "dma", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["gbps"] > 2 * r["gbps"]                  # DMA helps huge pages a lot
    assert main(["bench", "migrate", "--pages", "512", "--copy", "dma", "--json"]) == 0
    d4 = json.loads(capsys.readouterr().out)
    assert main(["bench", "migrate", "--pages", "512", "--json"]) == 0
    c4 = json.loads(capsys.readouterr().out)
    assert d4["us_per_page"] > 0.9 * c4["us_per_page"]  # ... and 4 KiB pages little or not at all
    # Batching the TLB shootdowns removes ~all IPIs and multiplies the page rate.
    assert main(["bench", "migrate", "--pages", "512", "--threads", "2", "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert main(["bench", "migrate", "--pages", "512", "--threads", "2", "--no-tlb-batch", "--json"]) == 0
    nb = json.loads(capsys.readouterr().out)
    assert nb["tlb_ipis"] == 512 and b["tlb_ipis"] == 1
    assert nb["us_per_page"] / b["us_per_page"] > 2.5


def test_bench_migrate_text_and_errors(capsys):
    assert main(["bench", "migrate", "--pages", "8"]) == 0
    out = capsys.readouterr().out
    assert "throughput" in out and "12_copy" in out
    assert main(["bench", "migrate", "--page-size", "3KiB"]) == 2
    assert "--page-size" in capsys.readouterr().err
    assert main(["bench", "migrate", "--pages", "0"]) == 2
    assert main(["bench", "migrate", "--machine", "vax"]) == 2
    assert "unknown machine" in capsys.readouterr().err


def test_bench_is_deterministic():
    from hwemu.sim.bench_migrate import run_bench
    a = run_bench(300, 4096, threads=3)
    b = run_bench(300, 4096, threads=3)
    assert a == b


def test_schedule_lock_page_and_move_pages_query(tmp_path):
    """A ``lock_page`` event holds page locks for a time (another kernel path: the migration
    waits for them); ``move_pages`` with ``query = true`` is the nodes == NULL form, which
    reports where each page is. Each call's per-page failure reasons are in the log."""
    f = tmp_path / "s.toml"
    f.write_text("""
[[process]]
pid = 1
[[thread]]
tid = 1
pid = 1
cpu = 0
[[event]]
at = "10us"
action = "lock_page"
pid = 1
addr = "0x7f0000000000"
pages = 2
duration = "50us"
[[event]]
at = "20us"
action = "move_pages"
tid = 1
pid = 1
addr = "0x7f0000000000"
pages = 4
node = 1
[[event]]
at = "200us"
action = "move_pages"
tid = 1
pid = 1
addr = "0x7f0000000000"
pages = 5
query = true
""")
    k = Kernel(hw())
    run = apply_schedule(k, load_schedule(f, k.hw))
    heap = 0x7F0000000000
    k.mmap(1, heap, 1 << 20, "anon")
    for i in range(4):
        k.engine.run_process(k.access(1, heap + i * 4096, True))
    k.engine.run_until(1_000_000_000)
    log = [e for e in run.log if e["action"] in ("lock_page", "move_pages")]
    assert log[0]["action"] == "lock_page" and log[0]["pages"] == 2
    move, query = log[1], log[2]
    # the sync passes waited for the locks (held from 10 us to 60 us), then all moved
    assert move["ret"] == 0 and move["status"] == [1, 1, 1, 1] and move["reasons"] == {}
    assert move["start_ps"] + move["elapsed_ps"] > 60_000_000
    assert query["ret"] == 0 and query["status"] == [1, 1, 1, 1, -2]     # -ENOENT: not present
