"""One declared parameter: a key of a machine description or a parameter of a policy.

Every parameter is declared once, as a :class:`Param`: its name, kind, unit, default and a
one-line description (and, where it has them, the choices it allows, the smallest value it
accepts, the attribute of the config object that holds it, the column of a compiled table it
fills and the Linux default it corresponds to). Everything else is derived from the
declaration: the machine TOML loader and its errors, the config dataclasses
(:func:`config_class`), ``hwemu machine show --params``, the table in docs/machine.md, the
compiled column indices, and the policy listings and parsers.

Kinds and what a value becomes: ``size`` ("32KiB" -> int bytes), ``time`` ("13.75ns" -> int
ps), ``freq`` ("2.1GHz" -> float Hz), ``bw`` ("20.8GB/s" -> float B/s), ``int``, ``float``,
``bool``, ``str``, ``choice`` (one of ``choices``), ``nodelist`` (a TOML list of node ids),
``nodes`` (node ids from "0,1", an int or a list; policies), ``table`` (a TOML table).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hwemu.errors import HwemuError
from hwemu.units import parse_bandwidth_bps, parse_freq_hz, parse_size, parse_time_ps

KINDS = ("size", "time", "freq", "bw", "int", "float", "bool", "str", "choice", "nodelist",
         "intlist", "nodes", "table")

# the config attribute of a quantity carries its unit: [dram] tCL -> DramConfig.tCL_ps
ATTRIBUTE_SUFFIX = {"time": "_ps", "size": "_bytes", "freq": "_hz", "bw": "_bps"}
_PYTHON_TYPE = {"size": int, "time": int, "freq": float, "bw": float, "int": int, "float": float,
                "bool": bool, "str": str, "choice": str, "nodelist": list, "intlist": list,
                "nodes": tuple,
                "table": dict}
_QUANTITY = {"size": parse_size, "time": parse_time_ps, "freq": parse_freq_hz,
             "bw": parse_bandwidth_bps}


@dataclass(frozen=True, slots=True)
class Param:
    """One documented parameter.

    ``name``: the TOML key or policy parameter name. ``kind``: see the module docstring.
    ``default``: as written in TOML or on the command line (None = required, or no value).
    ``unit``: the unit of the parsed value, for listings. ``section``: the TOML table of a
    machine key ("dram", "cache.l1d"; "" = top level). ``choices``: the allowed values of a
    ``choice`` (or ``str``) parameter. ``minimum``: the smallest accepted value, checked when a
    machine file is read. ``field``: the attribute of the config object that holds the value
    (default: ``name`` plus the unit suffix of its kind, ``tCL`` -> ``tCL_ps``). ``column``:
    the name of the compiled column the value fills (``DP_TCL``), if any. ``linux``: the Linux
    default the parameter corresponds to (text), if any.
    """

    name: str
    kind: str
    default: Any
    description: str
    unit: str = ""
    section: str = ""
    choices: tuple = ()
    minimum: int | None = None
    field: str = ""
    column: str = ""
    linux: str = ""

    @property
    def attribute(self) -> str:
        """The config attribute holding the parsed value."""
        return self.field or self.name + ATTRIBUTE_SUFFIX.get(self.kind, "")

    @property
    def toml_key(self) -> str:
        """How listings name the key: ``[dram] tCL``, ``[[node]] size``, ``sockets``."""
        if self.section in ("node", "link"):
            return f"[[{self.section}]] {self.name}"
        return f"[{self.section}] {self.name}" if self.section else self.name

    # -- values as written in a TOML file ------------------------------------------------------

    def read(self, raw: Any, where: str) -> Any:
        """The value of ``raw`` as a TOML file gives it (typed as written: numbers as numbers,
        quantities as strings with units), checked against the kind, the choices and the
        minimum; errors are one line starting with ``where`` (file, table and key)."""
        kind = self.kind
        if kind in _QUANTITY:
            value = _QUANTITY[kind](raw, where)
        elif kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise HwemuError(f"{where}: expected an integer, got {raw!r}")
            value = raw
        elif kind == "float":
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise HwemuError(f"{where}: expected a number, got {raw!r}")
            value = float(raw)
        elif kind == "bool":
            if not isinstance(raw, bool):
                raise HwemuError(f"{where}: expected true or false, got {raw!r}")
            value = raw
        elif kind == "str":
            if not isinstance(raw, str):
                raise HwemuError(f"{where}: expected a string, got {raw!r}")
            value = raw
        elif kind == "choice":
            if raw not in self.choices:
                raise HwemuError(f"{where}: {raw!r} is not one of {', '.join(self.choices)}")
            value = raw
        elif kind == "table":
            if not isinstance(raw, dict):
                raise HwemuError(f"{where}: expected a table")
            value = raw
        elif kind in ("intlist", "nodelist"):
            if not (isinstance(raw, list) and all(isinstance(x, int) and not isinstance(x, bool)
                                                  for x in raw)):
                what = "integers" if kind == "intlist" else "node ids"
                raise HwemuError(f"{where}: expected a list of {what}, got {raw!r}")
            value = raw
        else:
            value = self.parse(raw, where)
        if self.minimum is not None and value < self.minimum:
            raise HwemuError(f"{where}: must be at least {self.minimum}, got {value}")
        return value

    # -- values given as text (command line) or as Python values -------------------------------

    def parse(self, value: Any, where: str) -> Any:
        """The value of ``value``, given as text ("10us", "4MiB", "true", "0,1") or as a
        Python value; errors are one line ``where: name: problem``."""
        k = self.kind
        try:
            if value is None:
                return None
            if k in _QUANTITY:
                if k in ("time", "size") and isinstance(value, int) and not isinstance(value, bool):
                    return value
                return _QUANTITY[k](str(value))
            if k == "int":
                if isinstance(value, bool):
                    raise ValueError
                return int(value)
            if k == "float":
                return float(value)
            if k == "bool":
                if isinstance(value, bool):
                    return value
                s = str(value).lower()
                if s in ("1", "true", "yes", "on"):
                    return True
                if s in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if k in ("nodes", "nodelist"):
                if isinstance(value, int):
                    return (value,)
                if isinstance(value, str):
                    parts = [p for p in value.replace(" ", "").split(",") if p]
                    return tuple(int(p) for p in parts)
                return tuple(int(v) for v in value)
            s = str(value)
            if self.choices and s not in self.choices:
                raise HwemuError(f"{where}: {self.name}: {s!r} is not one of "
                                 f"{', '.join(self.choices)}")
            return s
        except HwemuError as e:
            if str(e).startswith(where):
                raise
            raise HwemuError(f"{where}: {self.name}: {e}") from None
        except (ValueError, TypeError):
            raise HwemuError(f"{where}: {self.name}: cannot parse {value!r} as {k}") from None


def config_class(name: str, params, module: str, doc: str = "", base: type | None = None,
                 extra: tuple = ()) -> type:
    """A frozen, slotted, keyword-only dataclass with one field per parameter, named by
    :attr:`Param.attribute` and typed by its kind. A parameter with a default has it as the
    field's default, parsed (``"15ns"`` -> 15000); the others are required, as are the
    ``extra`` fields ((name, type) pairs: what is not a parameter). ``base`` may add methods
    and properties (it must declare ``__slots__ = ()``)."""
    fields = list(extra)
    for p in params:
        spec = (p.attribute, _PYTHON_TYPE[p.kind])
        if p.default is not None:
            value = p.read(p.default, f"{name}.{p.attribute}")
            spec += (dataclasses.field(default=value),)
        fields.append(spec)
    cls = dataclasses.make_dataclass(name, fields, bases=(base,) if base else (), frozen=True,
                                     slots=True, kw_only=True)
    cls.__module__ = module
    cls.__doc__ = doc or cls.__doc__
    return cls
