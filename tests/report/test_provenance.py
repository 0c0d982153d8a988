"""Provenance of reports and cell files: version, command, date (UTC), machines and seeds; paths
in cell.json relative to the report directory; results.csv without any of it."""

import json
import re
import zipfile
from pathlib import Path

import pytest

from report_fakes import fake_runner

import hwemu
from hwemu.errors import HwemuError
from hwemu.machine.config import load_machine
from hwemu.report.cells import load_cell
from hwemu.report.compare import compare
from hwemu.report.sweep import run_sweep

TRACES = ["t/matmul.parquet"]


def _cell_json(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("cell.json"))


def test_cell_json_and_report_carry_provenance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    out = tmp_path / "deep" / "out"
    compare(machines=["skx-2s"], traces=[str(tmp_path / "t" / "matmul.parquet")],
            policies=["tpp"], seed=3, out=out, runner=fake_runner,
            command="hwemu compare --trace t/matmul.parquet --seed 3 --out deep/out")
    cells = sorted((out / "cells").glob("*.zip"))
    assert len(cells) == 2
    for p in cells:
        meta = _cell_json(p)
        prov = meta["provenance"]
        assert prov["hwemu_version"] == hwemu.__version__
        assert prov["command"] == "hwemu compare --trace t/matmul.parquet --seed 3 --out deep/out"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["date_utc"])
        assert prov["seed"] == 3
        assert prov["machine_file"] == "machines/skx-2s.toml"
        # every path in cell.json is relative to the report directory
        assert meta["spec"]["trace"] == "../../t/matmul.parquet"
        assert "/tmp" not in json.dumps(meta) and str(tmp_path) not in json.dumps(meta)
        back = load_cell(p)
        assert back.spec.trace == str(tmp_path / "t" / "matmul.parquet")
        assert back.spec.cell_id == meta["cell_id"] == p.stem
    # the dumped machine is the machine
    dumped = load_machine(str(out / "machines" / "skx-2s.toml"))
    assert dumped.nodes == load_machine("skx-2s").nodes
    html = (out / "report.html").read_text()
    assert '<h2 id="provenance">Provenance</h2>' in html
    assert f"<code>{hwemu.__version__}</code>" in html
    assert 'href="machines/skx-2s.toml"' in html and "--seed 3" in html
    md = (out / "results.md").read_text()
    assert "Provenance:" in md and "- seeds: `3`" in md
    assert "- machine skx-2s: `machines/skx-2s.toml`" in md
    csv = (out / "results.csv").read_text()
    assert "Provenance" not in csv and hwemu.__version__ not in csv


def test_source_date_epoch_fixes_the_date(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    compare(machines=["skx-2s"], traces=TRACES, policies=["tpp"], out=tmp_path / "o",
            runner=fake_runner, command="hwemu compare")
    meta = _cell_json(next((tmp_path / "o" / "cells").glob("*.zip")))
    assert meta["provenance"]["date_utc"] == "1970-01-01T00:00:00Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(HwemuError, match="SOURCE_DATE_EPOCH"):
        compare(machines=["skx-2s"], traces=TRACES, policies=["tpp"], out=tmp_path / "p",
                runner=fake_runner)
    assert not (tmp_path / "p").exists()                # refused before writing anything


def test_only_provenance_differs_between_commands(tmp_path):
    """Two runs with different command lines: results.csv, figures and stats are the same
    bytes; report.html and results.md differ only in the provenance."""
    for name in ("a", "b"):
        compare(machines=["skx-2s"], traces=TRACES, policies=["tpp", "oracle"],
                out=tmp_path / name, runner=fake_runner, command=f"hwemu compare --out {name}")
    files = sorted(p.relative_to(tmp_path / "a").as_posix()
                   for p in (tmp_path / "a").rglob("*") if p.is_file())
    for f in files:
        a, b = (tmp_path / "a" / f).read_bytes(), (tmp_path / "b" / f).read_bytes()
        if f.endswith((".csv", ".png", ".parquet", ".toml")):
            assert a == b, f
        elif f in ("report.html", "results.md"):
            assert a.replace(b"--out a", b"--out b") == b, f


def test_sweep_cells_carry_the_sweeps_provenance(tmp_path):
    (tmp_path / "t").mkdir()
    sweep = tmp_path / "s.toml"
    sweep.write_text('machines = ["skx-2s"]\ntraces = ["t/matmul.parquet"]\n'
                     'policies = ["tpp"]\nseeds = [0, 1]\n')
    run_sweep(sweep, tmp_path / "out", workers=1, runner=fake_runner,
              command="hwemu sweep s.toml --out out")
    for p in (tmp_path / "out" / "cells").glob("*.zip"):
        meta = _cell_json(p)
        assert meta["provenance"]["command"] == "hwemu sweep s.toml --out out"
        assert meta["spec"]["trace"] == "../t/matmul.parquet"   # relative to out/, not s.toml
    md = (tmp_path / "out" / "results.md").read_text()
    assert "- seeds: `0, 1`" in md
