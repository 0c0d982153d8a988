"""hwemu: a hardware-accurate NUMA machine emulator.

Replays memory traces on a cycle-approximate model of a multi-socket machine, runs the Linux
page-migration protocol inside it, and reports what migration buys and what it costs.
"""

__version__ = "0.1.0"

from hwemu.errors import HwemuError  # noqa: E402

__all__ = ["HwemuError", "__version__", "compare"]


def __getattr__(name):
    # hwemu.compare(...) without importing pandas, numba and the models at package import.
    if name == "compare":
        from hwemu.report.compare import compare

        return compare
    raise AttributeError(f"module 'hwemu' has no attribute {name!r}")
