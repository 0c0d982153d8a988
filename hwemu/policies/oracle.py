"""The oracle: the best static placement, computed offline from the whole trace - a bound.

Before the first record is replayed, the oracle reads the entire trace (which no real system
can do) and counts, for every 4 KiB page of every process, the accesses coming from the CPUs
of each node (a thread's node is that of the CPU it starts on). It then places every page once,
for the whole run:

* the cost of page p on node n is ``sum over CPU nodes s of accesses(p, s) * distance(s, n)``
  (ACPI SLIT distance: a proxy for the latency ratio of the machine);
* pages are taken in decreasing order of total accesses (ties: pid, address) and each goes to
  its cheapest node that still has room; a node's room is its free memory at time 0 minus its
  high watermark (``watermark_scale_factor``) and an allowance for page tables. A page nobody
  accesses from a CPU node stays under the default policy.

The decisions are applied at time 0 as per-range memory policies (``preferred``, one VMA per
run of consecutive pages with the same node), so each page is *allocated* on its node at first
touch, with the ordinary first-touch fault and no migration, no scan and no hinting fault: zero
migration cost. Combine it with the migration policy ``none`` (the default) to get the bound.

What it bounds: no placement/migration policy that keeps each page in one place can have a
lower total access cost on this trace (the greedy assignment is optimal when capacity does not
bind, and close to it when it does). A dynamic policy can beat it only when the best node of a
page changes during the run (phases, thread moves), and then only by more than its migration
costs.
"""

from __future__ import annotations

import numpy as np

from hwemu.errors import HwemuError
from hwemu.linux.mempolicy import Mempolicy
from hwemu.linux.mm import AnonVma, PAGE_SHIFT, VMA, VmaKind
from hwemu.policies.base import Param, PlacementPolicy, PolicyContext, register_policy
from hwemu.policies.tpp import compute_watermarks


@register_policy("oracle")
class Oracle(PlacementPolicy):
    """Offline bound: every page placed at time 0 on the node whose CPUs access it most (capacity-aware), zero migration cost."""

    PARAMS = (
        Param("watermark_scale_factor", "int", 10,
              "memory kept free on each node: its high watermark, as Linux computes it",
              linux="vm.watermark_scale_factor = 10"),
        Param("max_records", "int", 0, "read at most this many trace records (0: all)"),
    )

    def mempolicy(self, ctx: PolicyContext):
        self.plan = self.compute(ctx)
        self.apply(ctx, self.plan)
        nodes = np.zeros(ctx.num_nodes, np.int64)
        for _, _, n in self.plan:
            nodes[n] += 1
        ctx.stats.add("policy.oracle", "pages_planned", len(self.plan), "pages")
        for n in range(ctx.num_nodes):
            ctx.stats.add(f"policy.oracle.node{n}", "pages_planned", int(nodes[n]), "pages")
        ctx.stats.add("policy.oracle", "vmas", self.vmas_made, "count")
        ctx.stats.add("policy.oracle", "planned_cost", self.cost, "accesses*distance")
        return None

    # -- the offline analysis ------------------------------------------------------------------
    def count(self, ctx: PolicyContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pid, vpn, counts[pages x nodes]) of the accesses in the trace."""
        from hwemu.traces.format import TraceReader

        if ctx.trace is None:
            raise HwemuError("policy oracle: needs the trace (it reads it ahead of the run)")
        k = ctx.kernel
        reader = TraceReader(ctx.trace)
        nn = ctx.num_nodes
        tid_node: dict[int, int] = {}
        for tid in ctx.tid_pid:
            try:
                tid_node[tid] = ctx.cpu_node(k.thread(tid).cpu)
            except HwemuError:
                pass
        if not tid_node:
            raise HwemuError("policy oracle: no thread of the trace runs on a CPU")
        size = max(max(tid_node), max(ctx.tid_pid)) + 1
        node_of = np.full(size, -1, np.int64)
        pid_of = np.full(size, -1, np.int64)
        for t, n in tid_node.items():
            node_of[t] = n
        for t, p in ctx.tid_pid.items():
            pid_of[t] = p
        keys_all = []
        limit = self.p["max_records"]
        seen = 0
        for chunk in reader.iter_chunks(1 << 20):
            if limit and seen >= limit:
                break
            if limit:
                chunk = chunk.slice(0, limit - seen)
            seen += len(chunk)
            tid = chunk.tid.astype(np.int64)
            ok = tid < size
            tid, addr = tid[ok], chunk.addr[ok]
            node = node_of[tid]
            pid = pid_of[tid]
            ok = (node >= 0) & (pid >= 0)
            vpn = (addr[ok] >> np.uint64(PAGE_SHIFT)).astype(np.uint64)
            # count per (pid, vpn, node) in this chunk; summed over chunks below
            keys = np.stack([pid[ok].astype(np.uint64), vpn, node[ok].astype(np.uint64)], axis=1)
            uk, cnt = np.unique(keys, axis=0, return_counts=True)
            keys_all.append((uk, cnt))
        if not keys_all:
            return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros((0, nn), np.int64)
        uk = np.concatenate([a for a, _ in keys_all])
        cnt = np.concatenate([c for _, c in keys_all])
        pages, inv = np.unique(uk[:, :2], axis=0, return_inverse=True)
        counts = np.zeros((len(pages), nn), np.int64)
        np.add.at(counts, (inv.ravel(), uk[:, 2].astype(np.int64)), cnt)
        return pages[:, 0].astype(np.int64), pages[:, 1], counts

    def compute(self, ctx: PolicyContext) -> list[tuple[int, int, int]]:
        """[(pid, vpn, node)] for every page the trace touches, in (pid, vpn) order."""
        pid, vpn, counts = self.count(ctx)
        nn = ctx.num_nodes
        dist = np.array([[ctx.distance(s, n) for n in range(nn)] for s in range(nn)], np.int64)
        cost = counts @ dist                                   # [pages x target nodes]
        k = ctx.kernel
        wm = compute_watermarks(k, self.p["watermark_scale_factor"])
        # page tables: one 4 KiB table per 512 pages (+ upper levels) on the faulting CPU's node
        pt = len(vpn) // 512 + 4
        room = [max(0, k.alloc.nodes[n].free_count - wm.high[n] - pt) for n in range(nn)]
        total = counts.sum(axis=1)
        order = np.lexsort((vpn, pid, -total))
        choice = np.full(len(vpn), -1, np.int64)
        self.cost = 0
        for i in order:
            for n in np.argsort(cost[i], kind="stable"):
                if room[n] > 0:
                    room[n] -= 1
                    choice[i] = n
                    self.cost += int(cost[i, n])
                    break
        return [(int(pid[i]), int(vpn[i]), int(choice[i])) for i in range(len(vpn)) if choice[i] >= 0]

    # -- applying it: per-range memory policies -------------------------------------------------
    def apply(self, ctx: PolicyContext, plan: list[tuple[int, int, int]]) -> None:
        from hwemu.linux.syscalls import _split_vma

        k = ctx.kernel
        self.vmas_made = 0
        by_pid: dict[int, list[tuple[int, int]]] = {}
        for pid, vpn, node in plan:
            by_pid.setdefault(pid, []).append((vpn, node))
        for pid, items in by_pid.items():
            mm = k.mm(pid)
            items.sort()
            # runs of the same node, in address order
            runs = []
            for vpn, node in items:
                if runs and runs[-1][2] == node and runs[-1][1] == vpn:
                    runs[-1][1] = vpn + 1
                elif runs and runs[-1][2] == node and not mm.vmas:
                    runs[-1][1] = vpn + 1                     # untouched gap: same policy
                else:
                    runs.append([vpn, vpn + 1, node])
            if not mm.vmas:
                # No mappings yet (the usual case: anonymous memory the trace touches): one
                # VMA per run, each run extended to the start of the next.
                new = []
                for i, (lo, hi, node) in enumerate(runs):
                    end = runs[i + 1][0] if i + 1 < len(runs) else hi
                    vma = VMA(mm=mm, start=lo << PAGE_SHIFT, end=end << PAGE_SHIFT,
                              kind=VmaKind.ANON, policy=Mempolicy("preferred", (node,)),
                              thp=mm.thp, kaddr=k.alloc.nodes[0].slab_alloc(192), name="[oracle]")
                    vma.anon_vma = AnonVma(k.alloc.nodes[0].slab_alloc(64))
                    vma.anon_vma.vmas.append(vma)
                    new.append(vma)
                mm.vmas = sorted(new, key=lambda v: v.start)
                self.vmas_made += len(new)
                continue
            for lo, hi, node in runs:
                self._set_range(k, mm, pid, lo << PAGE_SHIFT, hi << PAGE_SHIFT,
                                Mempolicy("preferred", (node,)), _split_vma)

    def _set_range(self, k, mm, pid, start, end, pol, split) -> None:
        """Give [start, end) the policy: split the VMAs at its edges, map the holes."""
        a = start
        while a < end:
            v = mm.find_vma(a)
            if v is None:
                nxt = min((x.start for x in mm.vmas if x.start > a), default=end)
                hi = min(end, nxt)
                k.mmap(pid, a, hi - a, VmaKind.ANON, policy=pol, name="[oracle]")
                self.vmas_made += 1
                a = hi
                continue
            if v.start < a:
                v = split(k, v, a)
            if v.end > end:
                split(k, v, end)
            v.policy = pol
            a = v.end
