"""The machine commands end to end: list, show, mlc, run; bad input exits 2 in one line."""

import json

import numpy as np
import pytest

from hwemu.cli import main
from hwemu.traces.format import TraceChunk, write_trace

from machine_testkit import TINY


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 20000
    addr = 0x5000000 + (rng.integers(0, 1 << 22, n) & ~7)
    kind = rng.choice([0, 1, 2, 3], n, p=[0.5, 0.3, 0.15, 0.05])
    tid = rng.integers(0, 2, n)
    p = tmp_path_factory.mktemp("t") / "t.parquet"
    write_trace(p, TraceChunk.from_arrays(kind, addr, np.full(n, 4), tid=tid), "synthetic", "test")
    return str(p)


def test_machine_list_and_show(capsys):
    code, out, _ = run(capsys, "machine", "list", "--json")
    assert code == 0 and {r["name"] for r in json.loads(out)} >= {"skx-2s", "epyc-2s"}
    code, out, _ = run(capsys, "machine", "show", str(TINY), "--json")
    d = json.loads(out)
    assert code == 0 and d["cpus"] == 4 and len(d["idle_latency_ns"]) == 2
    assert d["distances"][0][0] == 10 and d["distances"][0][1] > 10
    assert d["idle_latency_ns"][0][1] > d["idle_latency_ns"][0][0]
    code, out, _ = run(capsys, "machine", "show", "skx-2s", "--no-measure")
    assert code == 0 and "node 1 cpus: 24-47" in out and "96GiB" in out
    code, out, _ = run(capsys, "machine", "show", "--params")
    assert code == 0 and "[dram] tRCD [ps]" in out


def test_mlc_json(capsys):
    code, out, _ = run(capsys, "mlc", "--machine", str(TINY), "--idle-latency", "--json")
    d = json.loads(out)
    assert code == 0 and len(d["idle_latency_ns"]) == 2 and len(d["idle_latency_ns"][0]) == 2
    code, out, _ = run(capsys, "mlc", "-m", str(TINY), "--loaded-latency", "--cpu-node", "0",
                       "--mem-node", "1", "--delays", "400,0", "--json")
    d = json.loads(out)
    assert code == 0 and [p["delay_cycles"] for p in d["points"]] == [400, 0]
    assert d["points"][1]["latency_ns"] > d["points"][0]["latency_ns"]


def test_mlc_plot(capsys, tmp_path):
    png = tmp_path / "c.png"
    code, out, _ = run(capsys, "mlc", "-m", str(TINY), "--loaded-latency", "--delays", "0",
                       "--plot", str(png))
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"


def test_run_json_and_stats_csv(capsys, trace, tmp_path):
    csv = tmp_path / "s.csv"
    code, out, err = run(capsys, "run", "--machine", str(TINY), trace, "--cpus", "0,2", "--json",
                         "--stats-out", str(csv))
    assert code == 0, err
    s = json.loads(out)
    assert s["accesses"] == 20000 and s["threads"] == 2
    assert sum(s["served"].values()) == 20000
    assert 0 < s["p50_latency_ns"] <= s["p95_latency_ns"] <= s["p99_latency_ns"]
    assert s["faults"]["not_present"] > 0 and s["sim_time_ns"] > 0
    assert set(s["node_bandwidth_gbs"]) == {"node0", "node1"}
    import pandas as pd

    df = pd.read_csv(csv)
    assert list(df.columns) == ["component", "stat", "value", "unit"]
    assert int(df[(df.component == "machine") & (df.stat == "accesses")].value.iloc[0]) == 20000
    # deterministic
    code, out2, _ = run(capsys, "run", "--machine", str(TINY), trace, "--cpus", "0,2", "--json")
    assert json.loads(out2) == s
    code, out3, _ = run(capsys, "run", "--machine", str(TINY), trace)
    assert code == 0 and "accesses: 20,000 (instruction fetches, loads and stores)" in out3
    assert "latency (ns, every access, instruction fetches included): mean" in out3
    assert "served by:" in out3 and "{" not in out3


@pytest.mark.parametrize("argv,msg", [
    (["run", "--machine", "nope", "x.parquet"], "unknown machine 'nope'"),
    (["run", "--machine", "skx-2s", "/no/such.parquet"], "no such trace file"),
    (["run", "--machine", "skx-2s", "--cpus", "0-99", "x"], "--cpus: CPU 48 does not exist"),
    (["run", "--machine", "skx-2s", "--cpus", "a", "x"], "--cpus: cannot parse 'a'"),
    (["mlc", "--machine", "skx-2s", "--loaded-latency", "--mem-node", "5"], "--mem-node 5"),
    (["mlc", "--machine", "skx-2s", "--loaded-latency", "--delays", "x"], "--delays"),
    (["machine", "show"], "give a preset name"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, msg):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_cpu_count_and_stats_out_dir(capsys, trace, tmp_path):
    code, _, err = run(capsys, "run", "-m", str(TINY), trace, "--cpus", "0")
    assert code == 2 and "2 thread(s) but only 1 CPU" in err
    code, _, err = run(capsys, "run", "-m", str(TINY), trace, "--stats-out", "/no/dir/s.csv")
    assert code == 2 and "does not exist" in err


def test_run_error_leaves_no_output(capsys, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    out = tmp_path / "s.csv"
    code, _, err = run(capsys, "run", "-m", str(TINY), str(bad), "--stats-out", str(out))
    assert code == 2 and not out.exists() and not list(tmp_path.glob(".s.csv*"))


def test_help_has_examples(capsys):
    for cmd in (["run"], ["mlc"], ["machine", "show"], ["machine", "list"]):
        with pytest.raises(SystemExit):
            main(cmd + ["--help"])
        out, _ = capsys.readouterr()
        assert "example" in out


@pytest.mark.parametrize("cmd", [["run"], ["mlc"], ["policies"]])
def test_help_is_wrapped(monkeypatch, capsys, cmd):
    """Prose wrapped to the terminal (at most 100 columns), examples kept as written."""
    monkeypatch.setenv("COLUMNS", "120")
    with pytest.raises(SystemExit):
        main(cmd + ["--help"])
    out, _ = capsys.readouterr()
    assert max(len(line) for line in out.splitlines()) <= 100, out
    assert "\n\n" in out.split("options:")[0]                  # paragraphs stay paragraphs


@pytest.mark.parametrize("preset", ["skx-2s", "skx-2s-cxl", "skx-4s-ring", "epyc-2s"])
def test_machine_dump_round_trips(capsys, tmp_path, preset):
    """`machine dump NAME > my.toml` gives one self-contained file that loads as the same
    machine (its base chain merged in)."""
    import dataclasses

    from hwemu.machine.config import load_machine

    code, out, err = run(capsys, "machine", "dump", preset)
    assert code == 0 and err == "" and "\nbase =" not in out
    f = tmp_path / "my.toml"
    f.write_text(out)
    a, b = load_machine(str(f)), load_machine(preset)
    assert dataclasses.replace(a, source=b.source) == b
    code, out2, _ = run(capsys, "machine", "dump", preset, "--out", str(tmp_path / "o.toml"))
    assert code == 0 and out2 == "" and (tmp_path / "o.toml").read_text() == out


def test_machine_params_with_the_machines_values(capsys, tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('base = "skx-2s"\nname = "mine"\n[cache.llc]\nsize = "11MiB"\n')
    code, out, _ = run(capsys, "machine", "show", str(f), "--params", "--json")
    rows = {r["key"]: r for r in json.loads(out)}
    assert rows["[cache.llc] size"]["value"] == "11MiB" and rows["[cache.llc] size"]["source"] == "set"
    assert rows["[core] lfb"]["value"] == 12                      # inherited from skx-2s
    assert rows["[os] ipi_rtt_per_hop"]["value"] == "1us"
    assert rows["[tlb] page_walk"]["source"] in ("set", "default")
    assert rows["[[node]] #1 dram.tCL"]["source"] == "[dram]"
    code, out, _ = run(capsys, "machine", "show", "skx-2s", "--params")
    assert "[core] lfb [entries] = 12\n" in out and "[parametric] remote_distance = 21\n" in out


def _fake_sysfs(root, nodes, caches):
    for nid, (cpus, kb, dist) in nodes.items():
        d = root / "devices" / "system" / "node" / f"node{nid}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cpus + "\n")
        (d / "meminfo").write_text(f"Node {nid} MemTotal:       {kb} kB\nNode {nid} MemFree: 1 kB\n")
        (d / "distance").write_text(dist + "\n")
    for i, (level, kind, size, ways) in enumerate(caches):
        c = root / "devices" / "system" / "cpu" / "cpu0" / "cache" / f"index{i}"
        c.mkdir(parents=True)
        for f, v in (("level", level), ("type", kind), ("size", size),
                     ("ways_of_associativity", ways), ("coherency_line_size", 64)):
            (c / f).write_text(f"{v}\n")


def test_machine_from_host_reads_sysfs(capsys, tmp_path):
    """`machine from-host` turns sysfs into a machine that loads: nodes with CPUs become
    sockets, a CPU-less node is attached to its nearest socket, caches and clock are the
    host's, and the rest is the base preset's, marked as placeholders."""
    from hwemu.machine.config import load_machine

    sysfs, proc = tmp_path / "sys", tmp_path / "proc"
    _fake_sysfs(sysfs, {0: ("0-3", 8 << 20, "10 21 14"), 1: ("4-7", 8 << 20, "21 10 24"),
                        2: ("", 16 << 20, "14 24 10")},
                [(1, "Data", "32K", 8), (1, "Instruction", "32K", 8), (2, "Unified", "1024K", 16),
                 (3, "Unified", "11264K", 11)])
    proc.mkdir()
    (proc / "cpuinfo").write_text("processor\t: 0\ncpu MHz\t\t: 2100.000\n")
    out = tmp_path / "host.toml"
    code, _, err = run(capsys, "machine", "from-host", "--sysfs", str(sysfs), "--procfs",
                       str(proc), "--out", str(out))
    assert code == 0 and err == ""
    text = out.read_text()
    assert "PLACEHOLDERS TO CALIBRATE" in text and "10 21 14; 21 10 24; 14 24 10" in text
    cfg = load_machine(str(out))
    assert (cfg.sockets, cfg.cores_per_socket, cfg.num_nodes) == (2, 4, 3)
    assert cfg.freq_hz == 2.1e9 and cfg.llc.size_bytes == 11 << 20 and cfg.llc.ways == 11
    assert [n.socket for n in cfg.nodes] == [0, 1, -1]
    assert cfg.nodes[2].size_bytes == 16 << 30
    assert sorted((l.a, l.b) for l in cfg.links) == [(0, 1), (0, 2)]     # CXL node near node 0
    from hwemu.machine.topology import slit_distances

    # the firmware's SLIT is the machine's: the OS model uses it as Linux does
    assert slit_distances(cfg) == ((10, 21, 14), (21, 10, 24), (14, 24, 10))


@pytest.mark.parametrize("argv,hint", [
    (["comapre"], "did you mean 'compare'?"),
    (["machine", "shwo"], "did you mean 'show'?"),
    (["run", "--machine", "skx-2s", "t.parquet", "--polcy", "x"], "did you mean --policy?"),
])
def test_typos_get_a_did_you_mean(capsys, argv, hint):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and hint in err
