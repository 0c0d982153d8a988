"""NUMA topology rules shared by the hardware model and the OS model.

``fallback_order`` is the one definition of where an allocation goes when its node is full:
Linux's zonelist, the other nodes by SLIT distance, ties to the lower node id
(``build_zonelists`` / ``find_next_best_node``). The OS model's page allocator
(``hwemu.linux.page_alloc``) and the machine-only first-touch handler
(``hwemu.machine.replay.FirstTouch``) both use it, with the machine's SLIT distances.
"""

from __future__ import annotations

from typing import Callable


def fallback_order(num_nodes: int, distance: Callable[[int, int], int]) -> list[list[int]]:
    """For every node, all nodes nearest first: ``sorted by (distance(n, m), m)``."""
    return [sorted(range(num_nodes), key=lambda m, n=n: (distance(n, m), m))
            for n in range(num_nodes)]
