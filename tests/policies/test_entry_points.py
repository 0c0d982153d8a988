"""A policy from another package, found through the ``hwemu.policies`` entry-point group.

The example package docs/examples/example-policy is made visible the way pip installs it: a
``*.dist-info`` directory with ``entry_points.txt`` on the import path, read by
importlib.metadata. The CLI then runs it by name in a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "example-policy"


def _install_like_pip(site: Path, entry: str = "remote-sampler = hwemu_example_policy:RemoteSampler") -> dict:
    dist = site / "hwemu_example_policy-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hwemu-example-policy\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(f"[hwemu.policies]\n{entry}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(EXAMPLE), str(ROOT)])
    return env


def _hwemu(env, *args):
    return subprocess.run([sys.executable, "-m", "hwemu", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_entry_point_policy_listed_and_runs(tmp_path):
    env = _install_like_pip(tmp_path / "site")
    r = _hwemu(env, "policies", "--json")
    assert r.returncode == 0, r.stderr
    pols = {p["name"]: p for p in json.loads(r.stdout)}
    assert pols["remote-sampler"]["family"] == "migration"
    assert [p["name"] for p in pols["remote-sampler"]["params"]] == ["period", "budget"]
    # the numa_move demo: four threads moved to the other socket, away from their memory
    demo = ROOT / "traces" / "demo"
    r = _hwemu(env, "run", "--machine", str(demo / "skx-2s-demo.toml"),
               str(demo / "numa_move.parquet"), "--schedule", str(demo / "numa_move.toml"),
               "--policy", "remote-sampler", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["policy"] == "remote-sampler"
    assert out["pages_migrated"] > 0
    assert {m["kind"] for m in out["migrations"]} == {"remote-sampler"}


def test_broken_entry_point_is_one_line(tmp_path):
    env = _install_like_pip(tmp_path / "site", "broken = no_such_module:Nothing")
    r = _hwemu(env, "policies")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "entry point 'no_such_module:Nothing'" in r.stderr


def test_in_process_name_clash_is_refused():
    from hwemu.errors import HwemuError
    from hwemu.policies import MigrationPolicy, register_policy

    class Clash(MigrationPolicy):
        """A second 'tpp'."""

    with pytest.raises(HwemuError, match="defined twice"):
        register_policy("tpp")(Clash)
