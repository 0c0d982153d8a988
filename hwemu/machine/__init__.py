"""The NUMA machine timing model: cores, TLBs, caches, coherence, memory controllers and
interconnect (see docs/machine.md)."""

from hwemu.machine import _jitcache

_jitcache.check()
