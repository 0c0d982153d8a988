"""Memory tiers (mm/memory-tiers.c): nodes with CPUs are the top tier, CPU-less nodes (CXL
memory) the slow tier, and every top-tier node demotes to its nearest slow-tier node
(``establish_demotion_targets``)."""

from __future__ import annotations

from hwemu.linux.hw import Hardware


def memory_tiers(hw: Hardware) -> tuple[list[int], list[int], dict[int, int]]:
    """(top-tier nodes, slow-tier nodes, demotion target of every top-tier node). The target
    is the nearest CPU-less node (``establish_demotion_targets``: nearest lower tier; ties to
    the lower node id)."""
    fast = sorted({hw.cpu_node(c) for c in range(hw.num_cpus)})
    slow = [n for n in range(hw.num_nodes) if n not in set(fast)]
    target = {}
    for n in fast:
        if slow:
            target[n] = min(slow, key=lambda s: (hw.distance(n, s), s))
    return fast, slow, target


def node_is_toptier(hw: Hardware, node: int) -> bool:
    """``node_is_toptier``: the node has CPUs."""
    return any(hw.cpu_node(c) == node for c in range(hw.num_cpus))
