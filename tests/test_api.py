"""The Python API (hwemu.Machine, Trace, run, compare): docs/python.md runs as written, and
the objects behave as documented."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import hwemu
from hwemu.errors import HwemuError

ROOT = Path(__file__).resolve().parent.parent


def test_docs_walkthrough_runs(capsys):
    """Every ```python block of docs/python.md, in order, in one namespace, from the root."""
    text = (ROOT / "docs" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    ns: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for i, code in enumerate(blocks):
            exec(compile(code, f"docs/python.md block {i + 1}", "exec"), ns)
    finally:
        os.chdir(cwd)
    assert ns["moved"].summary["pages_migrated"] > 0
    assert ns["table"].latency_reduction_pct.iloc[1] > 0


def test_machine_overrides_are_validated_and_named():
    with pytest.raises(HwemuError, match=r"\[cache.llc\] size"):
        hwemu.Machine("skx-2s", {"cache.llc.size": "8MiB"})      # not a whole number of sets
    m = hwemu.Machine("skx-2s", {"core": {"lfb": 10}})
    assert m.config.lfb == 10 and "lfb" in m.to_toml()
    again = hwemu.Machine(m.path())                                  # the file loads back
    assert again.config.lfb == 10 and again.name == m.name


def test_trace_from_dataframe_and_errors():
    import pandas as pd

    df = pd.DataFrame({"kind": [1, 2, 1], "addr": [0x1000, 0x2000, 0x3000]})
    t = hwemu.Trace.from_dataframe(df)
    back = t.to_dataframe()
    assert back.addr.tolist() == [0x1000, 0x2000, 0x3000] and back["size"].tolist() == [8] * 3
    with pytest.raises(HwemuError, match="missing column 'addr'"):
        hwemu.Trace.from_dataframe(pd.DataFrame({"kind": [1]}))
    with pytest.raises(HwemuError, match="kind must be 0-3"):
        hwemu.Trace.from_arrays(kind=[1, 9], addr=[0, 64])


def test_html_views():
    m = hwemu.Machine("skx-2s-cxl")
    h = m._repr_html_()
    assert "<table>" in h and "cxl0" in h and "(none)" in h      # the CPU-less node
    t = hwemu.Trace(ROOT / "traces" / "sort.parquet")
    assert "sort.parquet" in t._repr_html_()
    r = hwemu.run("skx-2s", t)
    assert "mean latency" in r._repr_html_()


def test_run_needs_a_trace_file():
    with pytest.raises(HwemuError, match="no such trace file"):
        hwemu.run("skx-2s", "nope.parquet")
