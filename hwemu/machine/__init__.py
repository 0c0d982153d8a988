"""The NUMA machine timing model: cores, TLBs, caches, coherence, memory controllers and
interconnect (see docs/machine.md)."""

from pathlib import Path

from hwemu.jitcache import check_package

# The replay loop inlines the cache core of hwemu.cachesim: its source is part of the key.
check_package(Path(__file__).parent, (Path(__file__).parent.parent / "cachesim" / "setassoc.py",))
