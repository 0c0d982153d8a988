"""Machine descriptions: presets, base overrides, validation messages naming file and key."""

import re

import pytest

from hwemu.errors import HwemuError
from hwemu.machine.config import load_machine, load_machine_text, param_rows, preset_names

from machine_testkit import TINY


def test_presets_load_with_expected_topology():
    assert {"skx-2s", "epyc-2s", "skx-2s-cxl", "skx-4s-ring"} <= set(preset_names())
    skx = load_machine("skx-2s")
    assert skx.num_cpus == 48 and skx.num_nodes == 2
    assert skx.llc.size_bytes == 33 << 20 and skx.llc.ways == 11
    assert skx.nodes[0].dram.channels == 6 and skx.nodes[0].dram.tCL_ps == 14250
    assert skx.freq_hz == 2.1e9
    cxl = load_machine("skx-2s-cxl")
    assert cxl.num_nodes == 3 and not cxl.nodes[2].has_cpus and cxl.node_cpus(2) == []
    assert cxl.nodes[2].dram.channels == 2 and cxl.nodes[2].dram.tCL_ps == 14250   # inherits [dram]
    ring = load_machine("skx-4s-ring")
    assert ring.hops()[0][2] == 2 and ring.hops()[0][1] == 1
    assert load_machine("epyc-2s").nodes[0].dram.channels == 8


def test_base_override(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('base = "skx-2s"\nname = "mine"\n[cache.llc]\nsize = "22MiB"\n')
    m = load_machine(str(f))
    assert m.name == "mine" and m.llc.size_bytes == 22 << 20 and m.l2.size_bytes == 1 << 20


@pytest.mark.parametrize("text,msg", [
    ('base = "skx-2s"\n[cache.llc]\nsize = "big"\n', "[cache.llc] size: cannot parse 'big'"),
    ('base = "skx-2s"\n[core]\nfrq = "2GHz"\n', "[core] frq: unknown key"),
    ('base = "skx-2s"\n[core]\nlfb = "ten"\n', "[core] lfb: expected an integer"),
    ('base = "skx-2s"\n[dram]\ntCL = "fast"\n', "dram tCL: cannot parse 'fast'"),
    ('base = "skx-2s"\n[dram]\npage_policy = "half"\n', "page_policy: 'half' is not one of open, close"),
    ('base = "skx-2s"\n[cache.l2]\nways = 7\n', "[cache.l2] size: 1048576 bytes is not a whole number"),
    ('base = "skx-2s"\n[cache.llc]\npolicy = "plru"\n',
     "[cache.llc] policy: tree PLRU needs a power-of-two number of ways of at most 64, not 11"),
    ('base = "skx-2s"\n[cache.l1d]\npolicy = "mru"\n', "[cache.l1d] policy: 'mru' is not one of lru, fifo, random, srrip, plru"),
    ('base = "skx-2s"\n[[link]]\nends = [0, 5]\nlatency = "1ns"\nbandwidth = "1GB/s"\n',
     "[[link]] #0 ends: expected two different node ids"),
    ('base = "skx-2s"\nsockets = 3\n', "socket 2 must have exactly one local node"),
    ('base = "skx-2s"\n[[link]]\nends=[0,1]\nlatency="1ns"\nbandwidth="1GB/s"\nheader="x"\n',
     "[[link]] #0 header: cannot parse 'x'"),
])
def test_errors_name_file_and_key(tmp_path, text, msg):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(HwemuError) as e:
        load_machine(str(f))
    assert str(f) in str(e.value)
    assert msg in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_required_and_unreachable_node():
    with pytest.raises(HwemuError, match="sockets: missing"):
        load_machine_text('name = "x"\n', "x.toml")
    text = TINY.read_text() + '\n[[node]]\nsocket = -1\nsize = "1GiB"\n'
    with pytest.raises(HwemuError, match="node 2 cannot be reached from node 0"):
        load_machine_text(text, "t.toml")


def test_unknown_machine_and_bad_toml(tmp_path):
    with pytest.raises(HwemuError, match="unknown machine 'nope'"):
        load_machine("nope")
    f = tmp_path / "broken.toml"
    f.write_text("name = [\n")
    with pytest.raises(HwemuError, match="broken.toml: not valid TOML"):
        load_machine(str(f))


def test_config_is_frozen(tiny):
    with pytest.raises(Exception):
        tiny.sockets = 4


def test_parameter_table_documents_every_key():
    rows = param_rows()
    keys = {r["key"] for r in rows}
    for k in ("[core] freq", "[cache.llc] size", "[dram] tRCD", "[[link]] bandwidth",
              "[[node]] socket", "[tlb] page_walk", "[os] fault_cost"):
        assert k in keys
    assert all(r["description"] for r in rows)


def test_docs_parameter_table_is_the_declared_one():
    """docs/machine.md's parameter table is exactly what params.py declares (after a change
    there, paste the output of hwemu.machine.config.param_table_markdown() into the page)."""
    from pathlib import Path

    from hwemu.machine.config import param_table_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "machine.md").read_text().splitlines()
    start = doc.index("| key | unit | default | description |")
    table = []
    for line in doc[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    assert "\n".join(table) == param_table_markdown()


def test_firmware_slit_distances():
    """``[[node]] distances``: the presets carry their firmware's SLIT (the OS model uses it,
    ``machine show`` prints the measured matrix beside it); rows are checked as ACPI has them."""
    from hwemu.machine.topology import describe, slit_distances

    assert slit_distances(load_machine("skx-2s")) == ((10, 21), (21, 10))
    assert slit_distances(load_machine("epyc-2s")) == ((10, 32), (32, 10))
    d = describe(load_machine("skx-2s"), measure=False)
    assert d["distances"] == [[10, 21], [21, 10]] and d["distances_source"] == "firmware"
    base = TINY.read_text()
    node = '[[node]]\nsocket = 1'
    assert node in base
    for rows, msg in (
        (("[10, 20]", None), "#1 distances: missing"),
        (("[10, 20, 30]", "[20, 10, 30]"), "#0 distances: expected 2 entries"),
        (("[12, 20]", "[20, 10]"), "#0 distances: entry 0 (the node itself) must be 10"),
        (("[10, 9]", "[9, 10]"), "#0 distances: entry 1 must be 11..254"),
        (("[10, true]", "[20, 10]"), "#0 distances: expected a list of integers"),
    ):
        text = base.replace("[[node]]\nsocket = 0", f"[[node]]\nsocket = 0\ndistances = {rows[0]}")
        if rows[1] is not None:
            text = text.replace(node, f"{node}\ndistances = {rows[1]}")
        with pytest.raises(HwemuError, match=re.escape(msg)):
            load_machine_text(text, "t.toml")
    ok = base.replace("[[node]]\nsocket = 0", "[[node]]\nsocket = 0\ndistances = [10, 17]")
    ok = ok.replace(node, f"{node}\ndistances = [17, 10]")
    assert slit_distances(load_machine_text(ok, "t.toml")) == ((10, 17), (17, 10))
