"""Placement policies: where a page goes when it is first touched.

Each maps onto a Linux task memory policy (set_mempolicy, hwemu.linux.mempolicy) given to
every process of the run that does not set its own in the schedule. The kernel's allocator
executes it, with Linux's fallback: ``first-touch`` and ``preferred`` fall back to the nearest
node with free memory (by SLIT distance) when the chosen node is full; ``interleave`` uses the
next node of its set; ``bind`` never leaves its nodes (as Linux: the allocation fails, which
the run reports as out of memory).
"""

from __future__ import annotations

from hwemu.errors import HwemuError
from hwemu.linux.mempolicy import Mempolicy
from hwemu.policies.base import Param, PlacementPolicy


def _check(nodes, ctx, name):
    for n in nodes:
        if not 0 <= n < ctx.num_nodes:
            raise HwemuError(f"policy {name}: nodes: node {n} does not exist "
                             f"(nodes 0-{ctx.num_nodes - 1})")


class FirstTouchPlacement(PlacementPolicy):
    """Linux default (MPOL_DEFAULT): the node of the CPU that first touches the page."""

    name = "first-touch"

    def mempolicy(self, ctx):
        return None


class InterleavePlacement(PlacementPolicy):
    """MPOL_INTERLEAVE: pages round-robin over the nodes (per-thread rotor, as Linux)."""

    name = "interleave"

    PARAMS = (Param("nodes", "nodes", None, "nodes to interleave over (default: every node)",
                    linux="numactl --interleave=all"),)

    def mempolicy(self, ctx):
        nodes = self.p["nodes"] or tuple(range(ctx.num_nodes))
        _check(nodes, ctx, self.name)
        if len(nodes) == 1:
            return Mempolicy("bind", tuple(nodes))
        return Mempolicy("interleave", tuple(nodes))


class BindPlacement(PlacementPolicy):
    """MPOL_BIND: only the given nodes, nearest first; no fallback outside them."""

    name = "bind"

    PARAMS = (Param("nodes", "nodes", (0,), "allowed nodes", linux="numactl --membind"),)

    def mempolicy(self, ctx):
        _check(self.p["nodes"], ctx, self.name)
        return Mempolicy("bind", tuple(self.p["nodes"]))


class PreferredPlacement(PlacementPolicy):
    """MPOL_PREFERRED: one node first, then the nearest nodes with free memory."""

    name = "preferred"

    PARAMS = (Param("node", "int", 0, "the preferred node", linux="numactl --preferred"),)

    def mempolicy(self, ctx):
        _check((self.p["node"],), ctx, self.name)
        return Mempolicy("preferred", (self.p["node"],))
