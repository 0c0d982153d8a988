"""Parsing of quantities with units, done once when a config or option is read.

Inside hwemu, time is an integer count of picoseconds, sizes are integer bytes and
frequencies are floats in hertz. These helpers turn strings such as ``"32KiB"``,
``"13.75ns"`` or ``"2.1GHz"`` into those, and raise :class:`HwemuError` naming ``where``
(a file and key, or an option) when a string does not parse.
"""

from __future__ import annotations

import math
import re

from hwemu.errors import HwemuError

# ----------------------------------------------------------------------------------- limits
# What hwemu refuses up front rather than trying to allocate: the models keep state per cache
# line, per CPU and per page, so an absurd size would otherwise run the host out of memory.

#: Largest cache (per cache) the models simulate: 1 GiB is 16 Mi lines of state.
MAX_CACHE_BYTES = 1 << 30
#: Most cache all the caches of one machine may hold together (private caches count once per
#: core): 4 GiB is 64 Mi lines of state.
MAX_MACHINE_CACHE_BYTES = 1 << 32
#: Most CPUs a machine, a --cpus list or a schedule may name.
MAX_CPUS = 4096
#: Most pages one command or schedule event may fault in, move or pin (64 GiB of 4 KiB pages).
MAX_PAGES = 1 << 24


def check_max(value: int, limit: int, where: str, what: str = "value") -> int:
    """``value`` if it is at most ``limit``, else a HwemuError naming ``where``."""
    if value > limit:
        raise HwemuError(f"{where}: {what} {value} is more than hwemu can model (at most {limit})")
    return value

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
    """(value, unit) of ``text``; the value is a finite float (inf, nan and numbers too large
    for a float, such as 1e400, are refused here, once for every quantity)."""
    if isinstance(text, bool):
        raise HwemuError(f"{where}: expected a {what}, got {text!r}")
    if isinstance(text, int):
        if abs(text) > 1 << 100:
            raise HwemuError(f"{where}: {text} is too large")
        return float(text), ""
    if isinstance(text, float):
        value, unit = text, ""
    elif isinstance(text, str):
        m = _RE.match(text)
        if not m:
            raise HwemuError(f"{where}: cannot parse {text!r} as a {what}")
        exp = m.group(2)
        if exp and abs(int(exp)) > 400:
            raise HwemuError(f"{where}: {text!r} is out of range")
        value = float(m.group(1) + (("e" + exp) if exp else ""))
        unit = m.group(3)
    else:
        raise HwemuError(f"{where}: expected a {what}, got {text!r}")
    if not math.isfinite(value):
        raise HwemuError(f"{where}: {text!r} is not a finite number")
    return value, unit


def parse_number(text, where: str = "number", minimum: float | None = None,
                 maximum: float | None = None) -> float:
    """A finite float from a string or number (no unit), within [minimum, maximum] if given."""
    value, unit = _split(text, where, "number")
    if unit:
        raise HwemuError(f"{where}: cannot parse {text!r} as a number")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "-inf" if minimum is None else f"{minimum:g}"
        hi = "inf" if maximum is None else f"{maximum:g}"
        raise HwemuError(f"{where}: {text!r} is outside [{lo}, {hi}]")
    return value


def parse_size(text, where: str = "size") -> int:
    """Bytes from ``"32KiB"``, ``"1MiB"``, ``"64"`` or an int. Binary K/M/G when no ``i``/``B``."""
    value, unit = _split(text, where, "size such as 32KiB")
    if unit not in _SIZE_UNITS:
        raise HwemuError(f"{where}: unknown size unit {unit!r} in {text!r} (use B, KiB, MiB, GiB)")
    result = value * _SIZE_UNITS[unit]
    if not math.isfinite(result) or result >= 2.0**64:
        raise HwemuError(f"{where}: {text!r} is larger than a 64-bit address space")
    if result != int(result) or result < 0:
        raise HwemuError(f"{where}: {text!r} is not a whole, non-negative number of bytes")
    if isinstance(text, int):
        return text
    return int(result)


def parse_time_ps(text, where: str = "time") -> int:
    """Integer picoseconds from ``"13.75ns"``, ``"1.2us"``, ``"500ps"``. A bare number is ps."""
    value, unit = _split(text, where, "time such as 13.75ns")
    unit = unit or "ps"
    if unit not in _TIME_UNITS_PS:
        raise HwemuError(f"{where}: unknown time unit {unit!r} in {text!r} (use ps, ns, us, ms, s)")
    if value < 0:
        raise HwemuError(f"{where}: time {text!r} is negative")
    ps = value * _TIME_UNITS_PS[unit]
    if ps >= 2.0**62:
        raise HwemuError(f"{where}: time {text!r} is too long (at most about 53 days)")
    if isinstance(text, int):
        return text
    return int(round(ps))


def parse_freq_hz(text, where: str = "frequency") -> float:
    """Hertz from ``"2.1GHz"``, ``"800MHz"``. A bare number is Hz."""
    value, unit = _split(text, where, "frequency such as 2.1GHz")
    unit = unit or "Hz"
    if unit not in _FREQ_UNITS:
        raise HwemuError(f"{where}: unknown frequency unit {unit!r} in {text!r} (use Hz, MHz, GHz)")
    if value <= 0:
        raise HwemuError(f"{where}: frequency {text!r} must be positive")
    hz = value * _FREQ_UNITS[unit]
    if not 1.0 <= hz <= 1e15:
        raise HwemuError(f"{where}: frequency {text!r} is outside 1Hz..1PHz")
    return hz


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
    bps = value * _BW_UNITS[unit]
    if not math.isfinite(bps) or bps > 1e18:
        raise HwemuError(f"{where}: bandwidth {text!r} is too large")
    return bps


def format_size(n: int) -> str:
    """``32768`` -> ``"32KiB"``; exact binary units where they divide, else bytes."""
    for unit, mult in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n and n % mult == 0:
            return f"{n // mult}{unit}"
    return f"{n}B"


def format_bytes(nbytes) -> str:
    """A size for people: ``839227`` -> ``"819.6 KiB (839,227 bytes)"``, ``4096`` ->
    ``"4 KiB"``, ``100`` -> ``"100 bytes"`` (binary units; the exact count when rounded)."""
    n = int(nbytes)
    for unit, mult in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= mult:
            if n % mult == 0:
                return f"{n // mult:,} {unit}"
            return f"{n / mult:,.1f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


def ps_to_ns(ps) -> float:
    return ps / 1000.0



def format_time_ns(ns) -> str:
    """A time for people: ``1.234e9`` -> ``"1.23 s"``, ``489_000`` -> ``"489 us"`` (three
    significant digits, the largest unit the time reaches, down to ns)."""
    ns = float(ns)
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"
