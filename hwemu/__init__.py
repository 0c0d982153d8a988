"""hwemu: a hardware-accurate NUMA machine emulator.

Replays memory traces on a cycle-approximate model of a multi-socket machine, runs the Linux
page-migration protocol inside it, and reports what migration buys and what it costs.
"""

__version__ = "0.1.0"

from hwemu.errors import HwemuError  # noqa: E402

__all__ = ["HwemuError", "__version__", "Machine", "Trace", "Result", "run", "compare"]

_API = {"Machine", "Trace", "Result", "run", "compare"}


def __getattr__(name):
    # hwemu.run(...), hwemu.Machine(...) without importing pandas, numba and the models at
    # package import (hwemu.api imports them when first used).
    if name in _API:
        from hwemu import api

        return getattr(api, name)
    raise AttributeError(f"module 'hwemu' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
