"""`hwemu bench migrate --hw machine`: move_pages timed on the machine model, calibrated."""

from __future__ import annotations

import json

import pytest

from hwemu.cli import main


@pytest.mark.parametrize("machine", ["skx-2s", "epyc-2s"])
def test_bench_machine_4k_and_2m(machine, capsys):
    assert main(["bench", "migrate", "--hw", "machine", "--machine", machine,
                 "--pages", "256", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["hw"] == "machine" and r["pages_moved"] == 256
    # published: ~1.2 us/page, 3.3-3.5 GB/s, copy ~1/4 (docs/experiments.md, Calibration)
    assert 1.0 < r["us_per_page"] < 1.6
    assert 2.6 < r["gbps"] < 4.0
    assert 0.2 < r["copy_fraction"] < 0.45
    total = sum(v["total_ps"] for v in r["steps"].values())
    assert total == pytest.approx(r["elapsed_ps"], rel=0.01)
    assert main(["bench", "migrate", "--hw", "machine", "--machine", machine,
                 "--page-size", "2MiB", "--pages", "2", "--json"]) == 0
    h = json.loads(capsys.readouterr().out)
    assert 9.5 < h["gbps"] < 13.5 and h["copy_fraction"] > 0.95


def test_bench_machine_errors(capsys):
    assert main(["bench", "migrate", "--hw", "machine", "--machine", "nosuch"]) == 2
    assert "nosuch" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["bench", "migrate", "--hw", "gpu"])
    assert e.value.code == 2
