"""Policies by name: the built-in ones, registered explicitly here, and any other package's,
declared in the ``hwemu.policies`` entry-point group (docs/policies.md "Your own policy").

A policy class names itself with its ``name`` class attribute. Lookup order: the built-in table,
then policies registered in this process with :func:`register_policy`, then the installed
entry points (loaded on first use), so a policy shipped by another package is usable by name
from the command line, ``compare``, sweeps and Dask workers without editing hwemu.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Callable

from hwemu.errors import HwemuError
from hwemu.policies.base import MigrationPolicy, PlacementPolicy, Policy
from hwemu.policies.hotness import Hotness
from hwemu.policies.migration import AutoNuma, ManualDmaMigration, ManualMigration, NoMigration
from hwemu.policies.nomad import Nomad
from hwemu.policies.oracle import Oracle
from hwemu.policies.placement import (BindPlacement, FirstTouchPlacement, InterleavePlacement,
                                      PreferredPlacement)
from hwemu.policies.tpp import Tpp

ENTRY_POINT_GROUP = "hwemu.policies"

BUILTIN: tuple[type[Policy], ...] = (
    FirstTouchPlacement, InterleavePlacement, BindPlacement, PreferredPlacement, Oracle,
    NoMigration, ManualMigration, ManualDmaMigration, AutoNuma, Tpp, Hotness, Nomad,
)

_REGISTRY: dict[str, type[Policy]] = {}
_ENTRY_POINTS_LOADED = False


def _check(name: str, cls) -> type[Policy]:
    if not (isinstance(cls, type) and issubclass(cls, (PlacementPolicy, MigrationPolicy))):
        raise HwemuError(f"policy {name!r} must be a subclass of PlacementPolicy or "
                         f"MigrationPolicy (hwemu.policies.base), got {cls!r}")
    return cls


def _add(name: str, cls: type[Policy], origin: str) -> None:
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise HwemuError(f"policy {name!r} is defined twice ({origin} and "
                         f"{_REGISTRY[name].__module__}.{_REGISTRY[name].__qualname__})")
    _REGISTRY[name] = cls


for _cls in BUILTIN:
    _add(_cls.name, _cls, "hwemu")


def register_policy(name: str) -> Callable[[type[Policy]], type[Policy]]:
    """Class decorator: make a policy defined in this process available as ``name`` (for a
    policy in an installed package, prefer the entry point)."""
    def deco(cls: type[Policy]) -> type[Policy]:
        _check(name, cls)
        cls.name = name
        _add(name, cls, f"{cls.__module__}.{cls.__qualname__}")
        return cls
    return deco


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in _REGISTRY:
            continue
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in: say which, never a traceback
            raise HwemuError(f"policy {ep.name!r} (entry point {ep.value!r} of group "
                             f"{ENTRY_POINT_GROUP}): cannot load: {type(exc).__name__}: {exc}") from None
        _check(ep.name, cls)
        cls.name = ep.name
        _add(ep.name, cls, ep.value)


def policy_class(name: str) -> type[Policy]:
    """The class of the policy called ``name``."""
    cls = _REGISTRY.get(name)
    if cls is None:
        _load_entry_points()
        cls = _REGISTRY.get(name)
    if cls is None:
        import difflib

        close = difflib.get_close_matches(name, sorted(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise HwemuError(f"unknown policy {name!r}{hint} (known: {', '.join(sorted(_REGISTRY))})")
    return cls


def get_policy(name: str, **params) -> Policy:
    """Build the policy registered as ``name`` with ``params`` (validated)."""
    return policy_class(name)(**params)


def list_policies() -> list[dict]:
    """Every policy: name, family, description, parameters (name, kind, default, description,
    linux), and where it comes from (``hwemu`` or the defining module)."""
    _load_entry_points()
    out = []
    for name in sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].family != "placement", n)):
        cls = _REGISTRY[name]
        out.append({
            "name": name, "family": cls.family, "description": cls.description(),
            "params": [{"name": p.name, "kind": p.kind, "default": p.default,
                        "description": p.description, "linux": p.linux} for p in cls.PARAMS],
        })
    return out


def parse_policy_spec(spec: str, params: dict | None = None) -> tuple[PlacementPolicy, MigrationPolicy]:
    """``"autonuma"``, ``"interleave"``, ``"interleave+autonuma"`` -> (placement, migration).
    A missing half is ``first-touch`` / ``none``. ``params`` go to the policy that declares
    them (a key both declare goes to both; a key neither declares is an error)."""
    params = dict(params or {})
    names = [s.strip() for s in spec.split("+") if s.strip()]
    if not names or len(names) > 2:
        raise HwemuError(f"policy {spec!r}: give a policy name or placement+migration")
    classes = [policy_class(n) for n in names]
    place = [c for c in classes if issubclass(c, PlacementPolicy)]
    migr = [c for c in classes if issubclass(c, MigrationPolicy)]
    if len(place) > 1 or len(migr) > 1:
        raise HwemuError(f"policy {spec!r}: at most one placement and one migration policy")
    pc = place[0] if place else policy_class("first-touch")
    mc = migr[0] if migr else policy_class("none")
    pnames = {p.name for p in pc.PARAMS}
    mnames = {p.name for p in mc.PARAMS}
    for key in params:
        if key not in pnames and key not in mnames:
            raise HwemuError(f"policy {spec!r}: unknown parameter {key!r} (parameters: "
                             f"{', '.join(sorted(pnames | mnames)) or 'none'})")
    return (pc(**{k: v for k, v in params.items() if k in pnames}),
            mc(**{k: v for k, v in params.items() if k in mnames}))
