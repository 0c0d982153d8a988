"""The declared parameters and the compiled columns they fill: one declaration each."""

from __future__ import annotations

import dataclasses

from hwemu.machine import layout
from hwemu.machine.config import (CacheConfig, DramConfig, MachineConfig, OsCosts, ParametricCosts,
                                  PrefetchConfig, TlbConfig, load_machine, section_params)
from hwemu.machine.dram import dram_params
from hwemu.machine.params import CACHE_PARAMS, DRAM_PARAMS, PARAMS, all_params
from hwemu.machine.state import build_state
from hwemu.params import KINDS, Param


def test_every_declaration_is_well_formed():
    for p in all_params():
        assert p.kind in KINDS, p
        assert p.description, p
        assert (p.kind == "choice") == bool(p.choices), p


def test_config_classes_have_one_field_per_declared_key():
    def names(cls):
        return [f.name for f in dataclasses.fields(cls)]

    assert names(DramConfig) == [p.attribute for p in DRAM_PARAMS]
    assert names(CacheConfig) == [p.attribute for p in CACHE_PARAMS]
    for cls, table in ((OsCosts, "os"), (ParametricCosts, "parametric"),
                       (PrefetchConfig, "prefetch"), (TlbConfig, "tlb")):
        assert names(cls) == [p.attribute for p in section_params(table)]
    machine = set(names(MachineConfig))
    for table in ("", "core", "coherence", "uncore"):
        assert {p.attribute for p in section_params(table)} <= machine
    assert DramConfig.__dataclass_fields__["tCL_ps"].type is int


def test_columns_are_numbered_once_from_their_names():
    for names in (layout.CFG_COLUMNS, layout.DRAM_COLUMNS):
        assert [getattr(layout, n) for n in names] == list(range(len(names)))
    assert layout.DP_N == len(layout.DRAM_COLUMNS) and layout.C_N == len(layout.CFG_COLUMNS)
    assert layout.K_N == len(layout.K_NAMES) and layout.DC_N == len(layout.DC_NAMES)
    declared = [p.column for p in PARAMS + DRAM_PARAMS if p.column]
    assert len(declared) == len(set(declared))


def test_declared_columns_hold_the_parameter_values():
    cfg = load_machine("skx-2s-cxl")
    p = dram_params(cfg.nodes)
    for column, param in layout.declared_columns(DRAM_PARAMS, "DP_"):
        for n in cfg.nodes:
            assert p[n.id, column] == getattr(n.dram, param.attribute)
    assert p[0, layout.DP_TCL] == cfg.nodes[0].dram.tCL_ps == 14250
    S = build_state(cfg)
    for column, param in layout.declared_columns(PARAMS, "C_"):
        assert S.cfg[column] == int(getattr(cfg.section(param.section), param.attribute))
    assert S.cfg[layout.C_FAULT] == cfg.os.fault_cost_ps


def test_policies_declare_their_parameters_with_the_same_class():
    from hwemu.policies import Param as PolicyParam

    assert PolicyParam is Param
    p = Param("delay", "time", "100us", "d")
    assert p.parse("10us", "policy x") == 10_000_000
    assert Param("tCL", "time", None, "t", section="dram").read("13.75ns", "f: [dram] tCL") == 13750
