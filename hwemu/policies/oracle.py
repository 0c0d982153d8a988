"""The oracle: the best placement per phase, computed offline from the whole trace - a bound.

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

Phases (thread moves). When the schedule moves threads (``move_thread`` events), the run is
cut into phases at those times and the oracle becomes the *dynamic* offline optimum: at every
phase boundary it reads the accesses each thread will make in the coming phase (from the
record the thread has reached at that moment up to where it will be at the next boundary,
estimated from its record rate so far, or to the end of the trace), costs them from the CPU
nodes the threads run on in that phase, places the pages greedily as above (capacity: the free
memory above the high watermark plus the pages being placed), and moves every mapped page whose
node changes with a *free remap* (:func:`free_remap`): the PTEs point at a new frame on the
target node, the page's contents and flags move with it, the TLBs drop the old translation -
no protocol step, no copy traffic, no CPU time, no fault: free, perfectly timed migration.
The only effect left on the machine is physical: the old frame's lines leave the caches
(dirty ones written back), since the caches hold physical lines. Pages not yet touched at a
boundary keep the range policy set at time 0.
"""

from __future__ import annotations

import numpy as np

from hwemu.errors import HwemuError
from hwemu.linux.mempolicy import Mempolicy
from hwemu.linux.page_alloc import compute_watermarks
from hwemu.linux.mm import AnonVma, MIGRATED_FLAGS, PAGE_SHIFT, PG, PteKind, VMA, VmaKind
from hwemu.policies.base import Param, PlacementPolicy, PolicyContext


class Oracle(PlacementPolicy):
    """Offline bound: each page placed, in every phase between thread moves, on the node whose CPUs access it most (capacity-aware), moved at phase boundaries by free remaps."""

    name = "oracle"

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
        self.boundaries = sorted({ev.at_ps for ev in (ctx.schedule.events if ctx.schedule else ())
                                  if ev.action == "move_thread" and ev.at_ps > 0})
        self.remapped = 0
        self.remap_failed = 0
        ctx.stats.add("policy.oracle", "phases", len(self.boundaries) + 1, "count")
        if self.boundaries:
            if "records_done" not in ctx.extra:
                raise HwemuError("policy oracle: the schedule moves threads, which needs the "
                                 "co-simulation's per-thread progress (hwemu run --schedule)")
            self._thread_vpns = self._read_thread_vpns(ctx)
            # after the schedule's own events at the same time (the thread moves)
            for i, b in enumerate(self.boundaries):
                ctx.engine.call_at(b, self._boundary, ctx, i, priority=PRIO_AFTER_SCHEDULE)
        return None

    # -- phases: re-placement at every thread move ----------------------------------------------
    def _read_thread_vpns(self, ctx: PolicyContext) -> dict[int, np.ndarray]:
        """Every thread's accessed virtual page numbers, in trace order."""
        from hwemu.traces.format import TraceReader

        parts: dict[int, list] = {}
        limit = self.p["max_records"]
        seen = 0
        for chunk in TraceReader(ctx.trace).iter_chunks(1 << 20):
            if limit and seen >= limit:
                break
            if limit:
                chunk = chunk.slice(0, limit - seen)
            seen += len(chunk)
            vpn = chunk.addr >> np.uint64(PAGE_SHIFT)
            for t in np.unique(chunk.tid).tolist():
                parts.setdefault(int(t), []).append(vpn[chunk.tid == t])
        return {t: np.concatenate(p) for t, p in parts.items()}

    def _boundary(self, ctx: PolicyContext, i: int) -> None:
        k = ctx.kernel
        now = ctx.engine.now_ps
        done = ctx.extra["records_done"]()
        nxt = self.boundaries[i + 1] if i + 1 < len(self.boundaries) else None
        nn = ctx.num_nodes
        keys = []
        for t, vpns in self._thread_vpns.items():
            pid = ctx.tid_pid.get(t)
            if pid is None or t not in k.threads:
                continue
            lo = int(done[t]) if t < len(done) else 0
            hi = len(vpns)
            if nxt is not None and now > 0:
                hi = min(hi, lo + int(lo * (nxt - now) / now))   # its record rate so far
            if hi <= lo:
                continue
            node = ctx.cpu_node(k.thread(t).cpu)
            v = vpns[lo:hi]
            keys.append(np.stack([np.full(len(v), pid, np.uint64), v,
                                  np.full(len(v), node, np.uint64)], axis=1))
        if not keys:
            return
        uk, cnt = np.unique(np.concatenate(keys), axis=0, return_counts=True)
        # one row per folio (a huge page gathers the counts of its 4 KiB pages)
        folios: dict[int, list] = {}
        for (pid, vpn, node), c in zip(uk.tolist(), cnt.tolist()):
            page = k.follow_page(int(pid), int(vpn) << PAGE_SHIFT)
            if page is None or page.freed:
                continue
            row = folios.setdefault(page.pfn, [page, np.zeros(nn, np.int64)])
            row[1][int(node)] += c
        if not folios:
            return
        pages = [r[0] for r in folios.values()]
        counts = np.array([r[1] for r in folios.values()], np.int64)
        dist = np.array([[ctx.distance(s, n) for n in range(nn)] for s in range(nn)], np.int64)
        cost = counts @ dist
        wm = compute_watermarks(k, self.p["watermark_scale_factor"])
        room = [k.alloc.nodes[n].free_count - wm.high[n] for n in range(nn)]
        for p in pages:
            room[p.node] += p.nr_pages
        total = counts.sum(axis=1)
        order = sorted(range(len(pages)), key=lambda j: (-int(total[j]), pages[j].pfn))
        moves = []
        for j in order:
            p = pages[j]
            for n in np.argsort(cost[j], kind="stable").tolist():
                if room[n] >= p.nr_pages:
                    room[n] -= p.nr_pages
                    if n != p.node:
                        moves.append((p, n))
                    break
        # pages leaving a node first make room for those arriving: retry what did not fit
        moved = 0
        for _ in range(2):
            left = []
            for p, n in moves:
                if free_remap(ctx, p, n):
                    moved += p.nr_pages
                else:
                    left.append((p, n))
            moves = left
            if not moves:
                break
        self.remapped += moved
        ctx.stats.inc("policy.oracle", "pages_remapped", moved, "pages")
        ctx.stats.inc("policy.oracle", "remap_failed", sum(p.nr_pages for p, _ in moves), "pages")
        self.remap_failed += sum(p.nr_pages for p, _ in moves)
        if moved and ctx.record_migration is not None:
            ctx.record_migration("oracle_remap", now, moved, moved * 4096, 0)

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


PRIO_AFTER_SCHEDULE = 3        # engine priority: after schedule events (2) at the same time


class _FreeMeter:
    """A Meter that charges nothing and touches nothing (for the oracle's free remap)."""

    ps = 0

    def cycles(self, n): pass
    def touch(self, paddr, write=False, atomic=False): pass
    def page(self, page, write=False, atomic=False): pass
    def add(self, ps): pass
    def take(self): return 0


def free_remap(ctx: PolicyContext, page, node: int) -> bool:
    """Move the anonymous folio ``page`` to ``node`` at no cost: every PTE that maps it is
    pointed at a new frame on ``node`` (its kind - present or PROT_NONE - kept), the contents
    model (``page.data``), flags and NUMA state move with it, the machine's TLBs drop the old
    translation, the old frame is freed. No protocol step, no copy traffic, no CPU time.
    False (nothing changed) when the folio is busy (locked, under writeback or migration,
    isolated, pinned, file-backed) or ``node`` has no free frame."""
    from hwemu.linux.rmap import page_mappings

    k = ctx.kernel
    if (page.freed or page.node == node or page.file_mapping is not None or page.lru is None
            or page.test(PG.LOCKED) or page.test(PG.WRITEBACK)
            or page.refcount != page.mapcount or page.mapcount == 0):
        return False
    maps = page_mappings(page, kinds=(PteKind.PRESENT, PteKind.PROTNONE))
    if len(maps) != page.mapcount:
        return False                       # some mapping is a migration entry: busy
    new = k.alloc_page(page.order, node, thisnode=True)
    if new is None:
        return False
    new.index = page.index
    new.mapping = page.mapping
    if page.test(PG.SWAPBACKED):
        new.set(PG.SWAPBACKED)
    new.flags |= page.flags & MIGRATED_FLAGS
    new.last_cpupid = page.last_cpupid
    new.data = list(page.data)
    m = ctx.machine
    for mp in maps:
        mp.entry.pfn = new.pfn
        k.notify_pte(mp.mm, mp.addr, mp.is_pmd, mp.entry)
        m.flush_tlb(mp.mm.pid, mp.addr, mp.is_pmd)
        new.refcount += 1
        new.mapcount += 1
        page.mapcount -= 1
    free = _FreeMeter()
    k._lru_remove(page)
    k.lru_add(new, free)
    k.folio_put(new)                       # the allocation reference
    k.folio_put(page, page.refcount)       # the mappings' references: the old frame is freed
    return True
