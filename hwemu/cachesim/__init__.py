"""Cache simulation: the set-associative core and the cachegrind-exact replay.

* :mod:`hwemu.cachesim.setassoc` - compiled set-associative cache primitives (write-back,
  write-allocate, pluggable replacement, invalidation, probing, per-line MESI state) that the
  machine model calls from its own numba loops.
* :mod:`hwemu.cachesim.sim` - ``simulate(trace, I1=..., D1=..., LL=...)``: replay a trace
  through an I1/D1/LL hierarchy with exactly cachegrind's semantics.

The names below are imported lazily so that ``import hwemu.cachesim`` stays cheap.
"""

__all__ = ["simulate", "CachegrindSim", "CacheGeometry", "EVENTS"]


def __getattr__(name):
    if name in ("simulate", "CachegrindSim", "EVENTS"):
        from hwemu.cachesim import sim

        return getattr(sim, name)
    if name == "CacheGeometry":
        from hwemu.cachesim.setassoc import CacheGeometry

        return CacheGeometry
    raise AttributeError(f"module 'hwemu.cachesim' has no attribute {name!r}")
