"""Results table (derived columns exact), cell files, and the report directory."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from report_fakes import fake_runner, make_result

from hwemu.errors import HwemuError
from hwemu.report.cells import CellData, CellSpec, load_cell, save_cell
from hwemu.report.compare import compare, plan_cells
from hwemu.report.table import break_even_ns, json_rows, results_table, to_markdown


def cell(policy, trace="t/matmul.parquet", machine="skx-2s", seed=0, params=None):
    spec = CellSpec.make(trace, machine, policy, seed, None, params)
    return CellData.from_result(spec, make_result(machine, trace, policy, seed, params))


def test_break_even_formula():
    # saved 20 ns/access, 1e6 accesses in 2e6 ns -> 10 ns saved per ns of run
    assert break_even_ns(1000.0, 100.0, 120.0, 1e6, 2e6) == pytest.approx(100.0)
    assert break_even_ns(0.0, 100.0, 120.0, 1e6, 2e6) == 0.0
    assert math.isnan(break_even_ns(1000.0, 120.0, 120.0, 1e6, 2e6))   # nothing saved
    assert math.isnan(break_even_ns(1000.0, 130.0, 120.0, 1e6, 2e6))   # worse
    assert math.isnan(break_even_ns(1000.0, 100.0, 120.0, 0, 2e6))


def test_derived_columns_exact():
    df = results_table([cell("oracle"), cell("none"), cell("autonuma")])
    assert list(df["policy"]) == ["none", "autonuma", "oracle"]      # baseline first
    none, auto, orc = (df.iloc[i] for i in range(3))
    assert none["latency_reduction_pct"] == 0.0 and none["speedup"] == 1.0
    assert math.isnan(none["break_even_ns"])
    assert auto["latency_reduction_pct"] == pytest.approx(100 * (120 - 96) / 120)
    # autonuma: 200 pages, 1e6 ns migrating, sim 2e6*96/120 + 1e5 = 1.7e6 ns
    assert auto["sim_time_ns"] == pytest.approx(1.7e6)
    assert auto["speedup"] == pytest.approx(2e6 / 1.7e6)
    assert auto["break_even_ns"] == pytest.approx(1e6 / (24 * 1e6 / 1.7e6))
    assert orc["latency_reduction_pct"] == pytest.approx(100 * 40 / 120)
    assert df["pages_migrated"].dtype == "int64"
    assert list(df.columns[:4]) == ["trace", "machine", "policy", "seed"]


def test_baseline_matches_seed_and_params():
    cells = [cell(p, seed=s, params={"bias": b}) for p in ("none", "tpp") for s in (0, 1)
             for b in (0, 5)]
    df = results_table(cells)
    assert "param.bias" in df.columns
    tpp = df[df.policy == "tpp"]
    # each tpp row is compared with the none row of the same seed and bias: same shift cancels
    for _, r in tpp.iterrows():
        base = 120.0 + r["param.bias"] + 0.5 * r["seed"]
        mean = 110.0 + r["param.bias"] + 0.5 * r["seed"]
        assert r["latency_reduction_pct"] == pytest.approx(100 * (base - mean) / base)


def test_baseline_ignores_policy_own_params():
    # the none cell has only the shared parameter; tpp has the shared one plus its own
    cells = [cell("none", params={"bias": 5}), cell("none", params={"bias": 0}),
             cell("tpp", params={"bias": 5, "extra": 1})]
    df = results_table(cells)
    r = df[df.policy == "tpp"].iloc[0]
    assert r["latency_reduction_pct"] == pytest.approx(100 * 10 / 125)


def test_compare_params_go_to_listed_policies_only():
    seen = []

    def runner(machine, trace, policy, schedule=None, seed=0, params=None):
        seen.append((policy, params))
        return fake_runner(machine, trace, policy, schedule, seed, params)

    compare(machines=["m"], traces=["a.parquet"], policies=["tpp", "autonuma"],
            params={"scan_size": "64MiB", "autonuma": {"scan_period_min": "1ms"}}, runner=runner)
    assert sorted(seen, key=str) == sorted([
        ("none", None), ("tpp", {"scan_size": "64MiB"}),
        ("autonuma", {"scan_period_min": "1ms", "scan_size": "64MiB"})], key=str)


@pytest.mark.parametrize("policies, params, words", [
    (["tpp", "lru"], None, "unknown policy 'lru'"),
    (["tpp"], {"tpp": {"scan_period_min": "1ms"}}, "unknown parameter 'scan_period_min'"),
    (["autonuma"], {"scan_size": "lots"}, "scan_size"),
])
def test_compare_checks_policies_before_running(policies, params, words):
    with pytest.raises(HwemuError, match=words):
        compare(machines=["m"], traces=["a.parquet"], policies=policies, params=params)


def test_missing_baseline_gives_nan():
    df = results_table([cell("tpp")])
    assert math.isnan(df.iloc[0]["latency_reduction_pct"]) and math.isnan(df.iloc[0]["speedup"])


def test_plan_adds_none_once():
    specs = plan_cells(["m"], ["a.parquet"], ["tpp", "autonuma", "tpp"])
    assert [s.policy for s in specs] == ["none", "autonuma", "tpp"]
    specs = plan_cells(["m"], ["a.parquet"], ["none", "tpp"])
    assert [s.policy for s in specs] == ["none", "tpp"]


def test_cell_id_is_stable_and_distinguishes():
    a = CellSpec.make("traces/matmul.parquet", "skx-2s", "tpp", 0, None, {"x": 1})
    assert a.cell_id == CellSpec.make("traces/matmul.parquet", "skx-2s", "tpp", 0, None,
                                      {"x": 1}).cell_id
    # a fixed value: the hash must not depend on the Python process (no hash randomisation)
    code = ("from hwemu.report.cells import CellSpec;"
            "print(CellSpec.make('traces/matmul.parquet','skx-2s','tpp',0,None,{'x':1}).cell_id)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert other == a.cell_id and len(a.cell_id) == 16
    ids = {CellSpec.make("t", "m", "tpp", s, sch, p).cell_id
           for s in (0, 1) for sch in (None, "s.toml") for p in ({}, {"x": 1}, {"x": 1.0},
                                                                 {"x": "1"})}
    assert len(ids) == 16      # seed, schedule, and param value and type all count


def test_cell_file_roundtrip_and_bytes(tmp_path):
    c = cell("autonuma", params={"bias": 2})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    p1 = save_cell(tmp_path / "a", c)
    p2 = save_cell(tmp_path / "b", c)
    assert p1.read_bytes() == p2.read_bytes()
    back = load_cell(p1)
    # the file's paths are relative to the report directory; they come back joined to it,
    # and the cell keeps its identity
    assert back.spec.cell_id == c.spec.cell_id
    assert back.spec.trace == str(Path.cwd() / c.spec.trace)
    assert back.spec.policy == c.spec.policy and back.spec.params == c.spec.params
    assert load_cell(p1, c.spec).spec == c.spec
    assert back.summary["mean_latency_ns"] == c.summary["mean_latency_ns"]
    pd.testing.assert_frame_equal(back.timeline, c.timeline)
    pd.testing.assert_frame_equal(back.steps, c.steps)
    assert list(tmp_path.glob("a/.*")) == []            # no temporary left behind


def test_load_cell_rejects_garbage(tmp_path):
    p = tmp_path / "x.zip"
    p.write_bytes(b"not a zip")
    with pytest.raises(HwemuError, match="x.zip"):
        load_cell(p)


def test_runner_result_checked():
    class Bad:
        summary = {"mean_latency_ns": 1.0}
        timeline = pd.DataFrame({"time_ns": [0]})
    with pytest.raises(TypeError, match="timeline frame lacks"):
        CellData.from_result(CellSpec.make("t", "m", "none"), Bad())


def _compare(out):
    return compare(machines=["skx-2s"], traces=["t/matmul.parquet", "t/sort.parquet"],
                   policies=["autonuma", "tpp", "oracle"], seed=0, out=out, runner=fake_runner)


def test_compare_writes_identical_reports(tmp_path):
    df1 = _compare(tmp_path / "r1")
    df2 = _compare(tmp_path / "r2")
    pd.testing.assert_frame_equal(df1, df2)
    assert len(df1) == 8                                   # 2 traces x (none + 3)
    names = sorted(p.relative_to(tmp_path / "r1").as_posix()
                   for p in (tmp_path / "r1").rglob("*") if p.is_file())
    assert "results.csv" in names and "results.md" in names and "report.html" in names
    assert sum(n.startswith("figures/") for n in names) == 8     # 4 per workload
    assert [n for n in names if n.startswith("machines/")] == ["machines/skx-2s.toml"]
    assert sum(n.startswith("stats/") for n in names) == 8
    assert sum(n.startswith("cells/") for n in names) == 8
    for n in names:                                        # every file, byte for byte
        assert (tmp_path / "r1" / n).read_bytes() == (tmp_path / "r2" / n).read_bytes(), n
    html = (tmp_path / "r1" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 8 and "src=\"figures/" not in html
    # the headline figure comes first in each workload's section
    section = html.split("<h2>matmul on skx-2s</h2>")[1]
    assert section.index("headline-matmul-skx-2s.png") < section.index("latency-matmul")
    md = (tmp_path / "r1" / "results.md").read_text().splitlines()
    assert md[0].startswith("| trace | machine | policy | mean ns")
    assert "| matmul | skx-2s | autonuma | 96.00 |" in "\n".join(md)
    csv = pd.read_csv(tmp_path / "r1" / "results.csv")
    assert list(csv["policy"][:4]) == ["none", "autonuma", "tpp", "oracle"]
    st = pd.read_parquet(tmp_path / "r1" / "stats" / f"{csv['cell'][1]}.parquet")
    assert list(st.columns) == ["cell", "trace", "machine", "policy", "seed",
                                "component", "stat", "value", "unit"]
    assert set(st["policy"]) == {"autonuma"}


def test_report_changes_with_inputs(tmp_path):
    _compare(tmp_path / "r1")
    compare(machines=["skx-2s"], traces=["t/matmul.parquet", "t/sort.parquet"],
            policies=["autonuma", "tpp", "oracle"], seed=1, out=tmp_path / "r2",
            runner=fake_runner)
    for n in ("results.csv", "results.md", "report.html", "figures/latency-matmul-skx-2s.png"):
        assert (tmp_path / "r1" / n).read_bytes() != (tmp_path / "r2" / n).read_bytes(), n


def test_json_rows_have_null_for_nan():
    rows = json_rows(results_table([cell("none"), cell("tpp")]))
    assert rows[0]["policy"] == "none" and rows[0]["break_even_ns"] is None
    json.dumps(rows)            # plain Python types only
    assert isinstance(rows[1]["pages_migrated"], int)


def test_markdown_escapes_and_formats():
    md = to_markdown(results_table([cell("none", trace="x/a|b.parquet")]))
    assert "a\\|b" in md and "n/a" in md


def test_compare_needs_a_trace():
    with pytest.raises(HwemuError, match="no trace"):
        compare(machines=["skx-2s"], policies=["tpp"], runner=fake_runner)


def test_compare_out_is_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(HwemuError, match="not a directory"):
        compare(machines=["m"], traces=["a.parquet"], policies=["tpp"], out=f,
                runner=fake_runner)


def test_rewrite_into_same_dir_drops_stale_figures_and_stats(tmp_path):
    _compare(tmp_path / "r")
    compare(machines=["skx-2s"], traces=["t/gzip.parquet"], policies=["tpp"],
            out=tmp_path / "r", runner=fake_runner)
    figs = sorted(p.name for p in (tmp_path / "r" / "figures").iterdir())
    assert figs == ["headline-gzip-skx-2s.png", "latency-gzip-skx-2s.png",
                    "placement-gzip-skx-2s.png", "steps-gzip-skx-2s.png"]
    assert len(list((tmp_path / "r" / "stats").iterdir())) == 2
    assert len(list((tmp_path / "r" / "cells").iterdir())) == 10   # cells are kept
    assert len(pd.read_csv(tmp_path / "r" / "results.csv")) == 2


def test_answer_first_summary_and_compact_table():
    """compare's terminal output: a ranked summary per workload, and a table within 100
    columns in human units (the full table stays in results.md / results.csv)."""
    import pandas as pd

    from hwemu.report.table import compact_table, summary_lines

    df = pd.DataFrame([
        {"trace": "t", "machine": "m", "policy": "none", "seed": 0, "mean_latency_ns": 100.0,
         "latency_reduction_pct": 0.0, "p99_latency_ns": 300.0, "remote_share": 0.9,
         "cxl_share": 0.0, "pages_migrated": 0, "migration_time_ns": 0.0,
         "interconnect_bytes": 5.0e7, "sim_time_ns": 6.0e6, "speedup": 1.0},
        {"trace": "t", "machine": "m", "policy": "slow", "seed": 0, "mean_latency_ns": 95.0,
         "latency_reduction_pct": 5.0, "p99_latency_ns": 290.0, "remote_share": 0.5,
         "cxl_share": 0.0, "pages_migrated": 10, "migration_time_ns": 2.0e6,
         "interconnect_bytes": 4.0e7, "sim_time_ns": 1.2e7, "speedup": 0.5},
        {"trace": "t", "machine": "m", "policy": "fast", "seed": 0, "mean_latency_ns": 80.0,
         "latency_reduction_pct": 20.0, "p99_latency_ns": 250.0, "remote_share": 0.1,
         "cxl_share": 0.0, "pages_migrated": 768, "migration_time_ns": 1.19e6,
         "interconnect_bytes": 9.0e6, "sim_time_ns": 5.0e6, "speedup": 1.2},
    ])
    lines = summary_lines(df)
    assert lines[0] == "t on m: 100.0 ns mean access latency without migration"
    assert lines[1] == "  fast         -20.0% -> 80.0 ns; 768 pages moved, 1.19 ms migrating; runtime x0.83"
    assert lines[2].startswith("  slow          -5.0% -> 95.0 ns; 10 pages moved, 2 ms migrating; runtime x2.00")
    table = compact_table(df).splitlines()
    assert max(len(l) for l in table) <= 100
    assert table[0].split() == ["trace", "policy", "mean", "ns", "vs", "none", "p99", "ns",
                                "remote", "CXL", "moved", "migrating", "link", "runtime"]
    assert table[4].split() == ["t", "fast", "80.0", "-20.0%", "250", "10%", "0%", "768",
                                "1.19", "ms", "9", "MB", "5", "ms"]


def test_one_colour_per_policy_everywhere_and_named_nodes():
    """A policy has one colour in every figure; nodes are named with their kind."""
    from types import SimpleNamespace

    from hwemu.report.figures import node_labels, policy_color

    assert policy_color("autonuma") == policy_color("interleave+autonuma") == "#2ca02c"
    assert policy_color("none") != policy_color("tpp")
    assert policy_color("my-own") == policy_color("my-own")            # stable for any name
    cell = SimpleNamespace(spec=SimpleNamespace(machine="skx-2s-cxl"))
    assert node_labels([cell], [0, 2]) == {0: "node 0 (socket 0)", 2: "node 2 (CXL)"}


def test_identical_runs_share_one_latency_line():
    """Runs with the same latency over time (here: two cells of one policy and seed) are one
    line labelled with both names, not two lines hiding each other."""
    from hwemu.report.figures import latency_figure, same_timelines

    cells = [cell("none"), cell("autonuma"), cell("none", params={"other": 1})]
    got = same_timelines(cells, ["none", "autonuma", "none b"])
    assert got == [(0, ["none", "none b"]), (1, ["autonuma"])]
    assert latency_figure(cells, "t", ["none", "autonuma", "none b"])[:4] == b"\x89PNG"


def test_param_swept_over_three_values_gets_its_figure(tmp_path):
    from hwemu.report.figures import numeric_params
    from hwemu.report.writer import write_report

    sweep = [cell("none")] + [cell(p, params={"time_compression": c, "bias": -c / 1000})
                              for p in ("autonuma", "tpp") for c in (1, 100, 5000)]
    assert numeric_params(sweep) == ["bias", "time_compression"]
    # two values, or a value that is not a number, make no sweep figure
    assert numeric_params([cell("none")] + [cell("tpp", params={"time_compression": c})
                                            for c in (1, 10)]) == []
    assert numeric_params([cell("tpp", params={"window": w}) for w in ("1us", "2us", "3us")]) == []
    write_report(tmp_path / "r", sweep)
    figs = sorted(p.name for p in (tmp_path / "r" / "figures").iterdir())
    assert "param-time_compression-matmul-skx-2s.png" in figs
    assert "param-bias-matmul-skx-2s.png" in figs and len(figs) == 6
    html = (tmp_path / "r" / "report.html").read_text()
    assert "policies as time_compression varies" not in html         # that is the PNG's title
    assert "param-time_compression-matmul-skx-2s.png: Each policy as time_compression" in html
    write_report(tmp_path / "r2", sweep)
    for f in figs:
        assert ((tmp_path / "r" / "figures" / f).read_bytes()
                == (tmp_path / "r2" / "figures" / f).read_bytes()), f


def test_policy_own_params_share_the_baseline_workload_and_are_named():
    """A policy run at several values of its own parameter (a suite's [params.autonuma]) is
    one workload with one baseline: the summary and the compact table name each run by its
    parameter, in numeric order (10 before 100 before 1000)."""
    from hwemu.report.table import compact_table, summary_lines

    cells = [cell("none")] + [cell("autonuma", params={"time_compression": c})
                              for c in (1000, 5000, 10, 100)]
    df = results_table(cells)
    assert list(df["param.time_compression"].iloc[1:]) == [10, 100, 1000, 5000]
    lines = summary_lines(df)
    assert lines[0] == "matmul on skx-2s: 120.0 ns mean access latency without migration"
    assert len(lines) == 5 and "no 'none' baseline" not in "\n".join(lines)
    assert lines[1].startswith("  autonuma time_compression=10 ")
    assert lines[4].startswith("  autonuma time_compression=5000 ")
    rows = compact_table(df).splitlines()[2:]
    assert [r.split()[1:3] for r in rows] == [["none", "120.0"]] + [
        ["autonuma", f"time_compression={c}"] for c in (10, 100, 1000, 5000)]
    # a shared (run) parameter still makes one workload per value
    two = [cell(p, params={"bias": b}) for p in ("none", "tpp") for b in (0, 5)]
    assert sum(not l.startswith("  ") for l in summary_lines(results_table(two))) == 2
