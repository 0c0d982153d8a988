"""NUMA memory policies (mm/mempolicy.c): which node a new page comes from.

Modes: ``default`` (local: the faulting CPU's node, falling back by distance), ``local``,
``preferred`` (one node, then fallback), ``preferred_many``, ``bind`` (only the given nodes,
nearest first; no fallback outside them), ``interleave`` and ``weighted_interleave``.

A policy applies per VMA (``mbind``) or per process (``set_mempolicy``); the VMA policy wins.
Interleaving of a VMA policy is by page offset in the VMA (``vm_pgoff`` + distance from the
start, Linux's ``interleave_index``) so a page always gets the same node; interleaving of a task
policy uses a per-thread rotor (``il_prev``/``il_weight``), as Linux does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwemu.errors import HwemuError

MODES = ("default", "local", "preferred", "preferred_many", "bind", "interleave",
         "weighted_interleave")

# mbind / migrate flags (include/uapi/linux/mempolicy.h)
MPOL_MF_STRICT = 1 << 0
MPOL_MF_MOVE = 1 << 1
MPOL_MF_MOVE_ALL = 1 << 2
FLAG_NAMES = {"MPOL_MF_STRICT": MPOL_MF_STRICT, "MPOL_MF_MOVE": MPOL_MF_MOVE,
              "MPOL_MF_MOVE_ALL": MPOL_MF_MOVE_ALL}


@dataclass(frozen=True)
class Mempolicy:
    mode: str = "default"
    nodes: tuple[int, ...] = ()
    weights: tuple[int, ...] = ()   # weighted_interleave: one weight per node in ``nodes``

    def __post_init__(self):
        if self.mode not in MODES:
            raise HwemuError(f"mempolicy: unknown mode {self.mode!r} (use {', '.join(MODES)})")
        if self.mode in ("default", "local"):
            if self.nodes:
                raise HwemuError(f"mempolicy {self.mode}: takes no nodes")
        elif not self.nodes:
            raise HwemuError(f"mempolicy {self.mode}: needs at least one node")
        if self.mode == "preferred" and len(self.nodes) != 1:
            raise HwemuError("mempolicy preferred: takes exactly one node")
        if len(set(self.nodes)) != len(self.nodes):
            raise HwemuError(f"mempolicy {self.mode}: node listed twice in {list(self.nodes)}")
        if self.weights and (self.mode != "weighted_interleave" or len(self.weights) != len(self.nodes)):
            raise HwemuError("mempolicy: weights need mode weighted_interleave and one weight per node")
        if any(w < 1 or w > 255 for w in self.weights):
            raise HwemuError("mempolicy: weights must be in 1..255")
        if self.weights:
            pairs = sorted(zip(self.nodes, self.weights))
            object.__setattr__(self, "nodes", tuple(n for n, _ in pairs))
            object.__setattr__(self, "weights", tuple(w for _, w in pairs))
        else:
            object.__setattr__(self, "nodes", tuple(sorted(self.nodes)))

    def check_nodes(self, num_nodes: int, where: str = "mempolicy") -> None:
        for n in self.nodes:
            if not 0 <= n < num_nodes:
                raise HwemuError(f"{where}: node {n} does not exist (nodes 0-{num_nodes - 1})")

    def node_weights(self) -> list[int]:
        return list(self.weights) if self.weights else [1] * len(self.nodes)

    def allowed(self, num_nodes: int) -> set[int]:
        """Nodes a page may sit on without violating the policy (for mbind MOVE/STRICT)."""
        if self.mode in ("bind", "interleave", "weighted_interleave"):
            return set(self.nodes)
        if self.mode == "preferred_many":
            return set(self.nodes)
        if self.mode == "preferred":
            return set(self.nodes)
        return set(range(num_nodes))

    def describe(self) -> str:
        """The policy as /proc/pid/numa_maps prints it (``bind:0-1``, ``interleave:0,2``)."""
        if self.mode == "default":
            return "default"
        if self.mode == "local":
            return "local"
        name = {"preferred": "prefer", "preferred_many": "prefer (many)",
                "weighted_interleave": "weighted interleave"}.get(self.mode, self.mode)
        return f"{name}:{_nodelist(self.nodes)}"


def _nodelist(nodes) -> str:
    nodes = sorted(nodes)
    out, i = [], 0
    while i < len(nodes):
        j = i
        while j + 1 < len(nodes) and nodes[j + 1] == nodes[j] + 1:
            j += 1
        out.append(str(nodes[i]) if i == j else f"{nodes[i]}-{nodes[j]}")
        i = j + 1
    return ",".join(out)


def parse_policy(spec, where: str) -> Mempolicy:
    """A policy from a TOML table ``{mode = "bind", nodes = [0, 1], weights = [...]}`` or a
    string ``"bind:0,1"`` / ``"default"``."""
    if isinstance(spec, str):
        mode, _, rest = spec.partition(":")
        try:
            nodes = tuple(int(x) for x in rest.split(",") if x.strip()) if rest else ()
        except ValueError:
            raise HwemuError(f"{where}: cannot parse node list in {spec!r}") from None
        spec = {"mode": mode.strip(), "nodes": list(nodes)}
    if not isinstance(spec, dict):
        raise HwemuError(f"{where}: expected a table like {{mode = \"bind\", nodes = [0]}}")
    unknown = set(spec) - {"mode", "nodes", "weights"}
    if unknown:
        raise HwemuError(f"{where}: unknown key {sorted(unknown)[0]!r} (use mode, nodes, weights)")
    mode = spec.get("mode", "default")
    nodes = spec.get("nodes", [])
    weights = spec.get("weights", [])
    if not isinstance(nodes, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in nodes):
        raise HwemuError(f"{where}.nodes: expected a list of node numbers")
    if not isinstance(weights, list) or not all(isinstance(n, int) for n in weights):
        raise HwemuError(f"{where}.weights: expected a list of integers")
    try:
        return Mempolicy(str(mode), tuple(nodes), tuple(weights))
    except HwemuError as exc:
        raise HwemuError(f"{where}: {exc}") from None


def _interleave_pick(pol: Mempolicy, ilx: int) -> int:
    """offset_il_node / weighted_interleave_nid: the node for interleave index ``ilx``."""
    weights = pol.node_weights()
    total = sum(weights)
    target = ilx % total
    for node, w in zip(pol.nodes, weights):
        if target < w:
            return node
        target -= w
    raise AssertionError("unreachable")


@dataclass
class Placement:
    """Where to allocate: the preferred node, the allowed set (None: any) and whether the
    allocation may fall back beyond the preferred node."""

    preferred: int
    nodemask: set[int] | None = None
    ilx: int | None = field(default=None)


def policy_node(pol: Mempolicy | None, cpu_node: int, hw_distance, num_nodes: int,
                vma_policy: bool, ilx: int, thread=None) -> Placement:
    """The node a fault should allocate on (policy_nodemask + policy_node of Linux)."""
    if pol is None or pol.mode in ("default", "local"):
        return Placement(cpu_node)
    if pol.mode == "preferred":
        return Placement(pol.nodes[0])
    if pol.mode == "preferred_many":
        best = min(pol.nodes, key=lambda n: (hw_distance(cpu_node, n), n))
        return Placement(best)
    if pol.mode == "bind":
        # Nearest allowed node to the faulting CPU first (zonelist of the local node filtered
        # by the nodemask).
        best = cpu_node if cpu_node in pol.nodes else min(pol.nodes, key=lambda n: (hw_distance(cpu_node, n), n))
        return Placement(best, set(pol.nodes))
    if vma_policy or thread is None:
        return Placement(_interleave_pick(pol, ilx), None, ilx)
    # Task policy: per-thread rotor (interleave_nodes / weighted_interleave_nodes).
    if pol.mode == "interleave":
        nodes = pol.nodes
        nxt = [n for n in nodes if n > thread.il_prev]
        node = nxt[0] if nxt else nodes[0]
        thread.il_prev = node
        return Placement(node)
    weights = dict(zip(pol.nodes, pol.node_weights()))
    if thread.il_weight <= 0 or thread.il_prev not in weights:
        nxt = [n for n in pol.nodes if n > thread.il_prev] if thread.il_prev in weights else []
        node = nxt[0] if nxt else pol.nodes[0]
        thread.il_prev = node
        thread.il_weight = weights[node]
    thread.il_weight -= 1
    return Placement(thread.il_prev)
