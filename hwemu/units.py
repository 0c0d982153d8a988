"""Parsing of quantities with units, done once when a config or option is read.

Inside hwemu, time is an integer count of picoseconds, sizes are integer bytes and
frequencies are floats in hertz. These helpers turn strings such as ``"32KiB"``,
``"13.75ns"`` or ``"2.1GHz"`` into those, and raise :class:`HwemuError` naming ``where``
(a file and key, or an option) when a string does not parse.
"""

from __future__ import annotations

import re

from hwemu.errors import HwemuError

_NUM = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?"

_SIZE_UNITS = {
    "": 1, "b": 1, "B": 1,
    "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
    "KB": 1000, "kB": 1000, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "K": 1 << 10, "k": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
}
_TIME_UNITS_PS = {"ps": 1, "ns": 1000, "us": 10**6, "ms": 10**9, "s": 10**12}
_FREQ_UNITS = {"Hz": 1.0, "kHz": 1e3, "KHz": 1e3, "MHz": 1e6, "GHz": 1e9}
_BW_UNITS = {"B/s": 1.0, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12,
             "KiB/s": 2.0**10, "MiB/s": 2.0**20, "GiB/s": 2.0**30, "GT/s": None}

_RE = re.compile(r"^\s*" + _NUM + r"\s*([A-Za-z/]*)\s*$")


def _split(text, where: str, what: str):
    if isinstance(text, bool):
        raise HwemuError(f"{where}: expected a {what}, got {text!r}")
    if isinstance(text, (int, float)):
        return float(text), ""
    m = _RE.match(str(text))
    if not m:
        raise HwemuError(f"{where}: cannot parse {text!r} as a {what}")
    value = float(m.group(1) + (("e" + m.group(2)) if m.group(2) else ""))
    return value, m.group(3)


def parse_size(text, where: str = "size") -> int:
    """Bytes from ``"32KiB"``, ``"1MiB"``, ``"64"`` or an int. Binary K/M/G when no ``i``/``B``."""
    value, unit = _split(text, where, "size such as 32KiB")
    if unit not in _SIZE_UNITS:
        raise HwemuError(f"{where}: unknown size unit {unit!r} in {text!r} (use B, KiB, MiB, GiB)")
    result = value * _SIZE_UNITS[unit]
    if result != int(result) or result < 0:
        raise HwemuError(f"{where}: {text!r} is not a whole, non-negative number of bytes")
    return int(result)


def parse_time_ps(text, where: str = "time") -> int:
    """Integer picoseconds from ``"13.75ns"``, ``"1.2us"``, ``"500ps"``. A bare number is ps."""
    value, unit = _split(text, where, "time such as 13.75ns")
    unit = unit or "ps"
    if unit not in _TIME_UNITS_PS:
        raise HwemuError(f"{where}: unknown time unit {unit!r} in {text!r} (use ps, ns, us, ms, s)")
    if value < 0:
        raise HwemuError(f"{where}: time {text!r} is negative")
    return int(round(value * _TIME_UNITS_PS[unit]))


def parse_freq_hz(text, where: str = "frequency") -> float:
    """Hertz from ``"2.1GHz"``, ``"800MHz"``. A bare number is Hz."""
    value, unit = _split(text, where, "frequency such as 2.1GHz")
    unit = unit or "Hz"
    if unit not in _FREQ_UNITS:
        raise HwemuError(f"{where}: unknown frequency unit {unit!r} in {text!r} (use Hz, MHz, GHz)")
    if value <= 0:
        raise HwemuError(f"{where}: frequency {text!r} must be positive")
    return value * _FREQ_UNITS[unit]


def period_ps(freq_hz: float) -> float:
    """Clock period in picoseconds (float; callers round where they accumulate)."""
    return 1e12 / freq_hz


def parse_bandwidth_bps(text, where: str = "bandwidth") -> float:
    """Bytes per second from ``"20.8GB/s"`` or ``"10GiB/s"``. A bare number is B/s."""
    value, unit = _split(text, where, "bandwidth such as 20.8GB/s")
    unit = unit or "B/s"
    if unit not in _BW_UNITS or _BW_UNITS[unit] is None:
        raise HwemuError(f"{where}: unknown bandwidth unit {unit!r} in {text!r} (use B/s, MB/s, GB/s, GiB/s)")
    if value <= 0:
        raise HwemuError(f"{where}: bandwidth {text!r} must be positive")
    return value * _BW_UNITS[unit]


def format_size(n: int) -> str:
    """``32768`` -> ``"32KiB"``; exact binary units where they divide, else bytes."""
    for unit, mult in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n and n % mult == 0:
            return f"{n // mult}{unit}"
    return f"{n}B"


def ps_to_ns(ps) -> float:
    return ps / 1000.0
