"""Sampling-based hot/cold page management in the style of HeMem and Memtis.

HeMem (Raybuck et al., "HeMem: Scalable Tiered Memory Management for Big Data Applications
and Real NVM", SOSP 2021) and Memtis (Lee et al., "MEMTIS: Efficient Memory Tiering with
Dynamic Page Classification and Page Size Determination", SOSP 2023) do not use page faults to
find hot pages. A PEBS event samples one memory access in every ``sample_period``; each sample
names a virtual address. Per page the policy counts sampled loads and stores:

* a page is **hot** when its sampled loads reach ``hot_read_threshold`` or its stores reach
  ``hot_write_threshold`` (HeMem's defaults: 8 and 4);
* **cooling**: when any page's count passes ``cooling_threshold`` (HeMem: 18) a global clock
  ticks, and every page's counts are halved once per tick (lazily, when the page is next
  looked at), so old accesses fade;
* every ``migrate_interval`` (HeMem: 10 ms) a migration thread, pinned to ``migrate_cpu``,
  moves hot pages to the fast tier and, when the fast node lacks room (below its high
  watermark plus the hot pages to bring in), demotes cold pages from it to the slow tier first,
  coldest first: pages with no recent sample (the oldest on the node's LRU lists) and then
  sampled pages by increasing count. At most ``migrate_budget`` bytes move per interval
  (HeMem: 10 GiB).

The fast tier is the nodes with CPUs, the slow tier the CPU-less nodes. A hot page goes to the
fast node whose CPUs took most of its samples. A hot page already on a fast node moves to
another fast node when that node's CPUs took more than ``numa_majority`` of its recent samples
(HeMem manages one socket; this extends the same rule to NUMA placement, and on a machine
without a slow tier it is a sampled alternative to NUMA balancing).

Migrations use the kernel's migrate_pages (MIGRATE_ASYNC) with all its costs; the migration
thread is OS work on ``migrate_cpu``. Samples come from the co-simulation (docs/policies.md
"Access samples"): every ``sample_period``-th trace record, which stands for a PEBS sample
(the records are memory accesses, so the period counts accesses rather than LLC misses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generator

from hwemu.errors import HwemuError
from hwemu.linux.kernel import Meter
from hwemu.linux.mm import HPAGE_SHIFT, LRU, PAGE_SHIFT, PG, Page, VmaKind
from hwemu.policies.base import AccessSamples, MigrationPolicy, Param, PolicyContext
from hwemu.linux.memory_tiers import memory_tiers
from hwemu.linux.migrate import Migrator
from hwemu.linux.page_alloc import compute_watermarks
from hwemu.linux.vmscan import DemotionAlloc

SAMPLE_CYCLES = 400       # per PEBS record: read the buffer, look up and update the page


@dataclass
class PageHeat:
    reads: int = 0
    writes: int = 0
    clock: int = 0                          # global cooling clock when last updated
    by_node: dict[int, int] = field(default_factory=dict)   # samples per accessing CPU node


class Hotness(MigrationPolicy):
    """Sampled hot/cold tiering (HeMem/Memtis): PEBS-like access samples, hot thresholds, cooling, periodic batch migration."""

    name = "hotness"

    PARAMS = (
        Param("sample_period", "int", None, "one access sample in every N memory records "
              "(default: 5003 times the schedule's time scale, at least 1; docs/policies-advanced.md)",
              linux="HeMem SAMPLE_PERIOD = 5003"),
        Param("hot_read_threshold", "int", 8, "sampled loads that make a page hot",
              linux="HeMem HOT_READ_THRESHOLD = 8"),
        Param("hot_write_threshold", "int", 4, "sampled stores that make a page hot",
              linux="HeMem HOT_WRITE_THRESHOLD = 4"),
        Param("cooling_threshold", "int", 18,
              "a page count above this ticks the cooling clock (all counts halve)",
              linux="HeMem PEBS_COOLING_THRESHOLD = 18"),
        Param("migrate_interval", "time", None, "period of the migration thread (default: "
              "10 ms at the schedule's time scale)",
              linux="HeMem PEBS_KSWAPD_INTERVAL = 10 ms"),
        Param("migrate_budget", "size", "10GiB", "bytes migrated at most per interval",
              linux="HeMem PEBS_KSWAPD_MIGRATE_RATE = 10 GiB"),
        Param("migrate_cpu", "int", -1, "CPU of the sampling/migration thread (-1: the last CPU)"),
        Param("numa_majority", "float", 0.5,
              "a hot page on a fast node moves to another fast node only when that node's CPUs "
              "took more than this share of its samples"),
        Param("min_region", "size", "0",
              "smallest anonymous mapping whose pages the policy manages: samples of other pages "
              "are read and dropped, and only managed pages are demoted (0: every page)",
              linux="HeMem manages anonymous mmaps of 1 GiB or more (interpose.c)"),
        Param("watermark_scale_factor", "int", 10,
              "free memory kept on fast nodes (their high watermark, as Linux computes it)",
              linux="vm.watermark_scale_factor = 10"),
    )

    def attach(self, ctx: PolicyContext) -> None:
        self.ctx = ctx
        self.k = ctx.kernel
        from hwemu.policies.tpp import time_scale

        _, scale = time_scale(ctx)
        self.p = dict(self.p)
        if self.p["sample_period"] is None:
            # Scaled with the run's time scale, but never below one sample in 64 records:
            # every sample costs SAMPLE_CYCLES of the migration CPU, and one sample per record
            # would make the sampling thread's work outlast the workload many times over.
            self.p["sample_period"] = max(64, round(5003 * scale))
        if self.p["migrate_interval"] is None:
            self.p["migrate_interval"] = max(1, round(10 * 10**9 * scale))
        self.sample_every = self.p["sample_period"]
        self.min_region = int(self.p["min_region"])
        self.tick_ps = self.p["migrate_interval"]
        self.fast, self.slow, self.demote_to = memory_tiers(ctx.kernel.hw)
        self.wm = compute_watermarks(self.k, self.p["watermark_scale_factor"])
        self.heat: dict[tuple[int, int], PageHeat] = {}
        self.clock = 0
        self.cpu = self.p["migrate_cpu"] if self.p["migrate_cpu"] >= 0 else self.k.hw.num_cpus - 1
        self.busy = False
        # the policy's counters live in the run's statistics (component policy.<name>)
        self.n = ctx.stats.counters(f"policy.{self.name}", (
            "samples", "samples_unmapped", "samples_unmanaged", "cooling_ticks", "intervals",
            "hot_pages", "promoted", "demoted", "numa_moved", "migrate_failed",
            "budget_exhausted"))

    # -- samples ------------------------------------------------------------------------------
    def _key(self, pid: int, vaddr: int, page: Page) -> tuple[int, int]:
        shift = HPAGE_SHIFT if page.order else PAGE_SHIFT
        return pid, (vaddr >> shift) << (shift - PAGE_SHIFT)

    def _cool(self, h: PageHeat) -> None:
        d = self.clock - h.clock
        if d:
            h.reads >>= d
            h.writes >>= d
            for n in list(h.by_node):
                h.by_node[n] >>= d
                if not h.by_node[n]:
                    del h.by_node[n]
            h.clock = self.clock

    def on_samples(self, samples: AccessSamples) -> None:
        ctx = self.ctx
        m = Meter(self.k, self.cpu)
        for i in range(len(samples)):
            self.n["samples"] += 1
            m.cycles(SAMPLE_CYCLES)
            pid = int(samples.pid[i])
            vaddr = int(samples.vaddr[i])
            page = ctx.page_at(pid, vaddr)
            if page is None:
                self.n["samples_unmapped"] += 1
                continue
            if self.min_region and not self.managed(page):
                self.n["samples_unmanaged"] += 1
                continue
            key = self._key(pid, vaddr, page)
            h = self.heat.get(key)
            if h is None:
                h = self.heat[key] = PageHeat(clock=self.clock)
            self._cool(h)
            try:
                node = ctx.cpu_node(ctx.thread_cpu(int(samples.tid[i])))
            except HwemuError:         # a trace thread the kernel does not know
                node = -1
            if node >= 0:
                h.by_node[node] = h.by_node.get(node, 0) + 1
            if bool(samples.is_write[i]):
                h.writes += 1
                top = h.writes
            else:
                h.reads += 1
                top = h.reads
            if top > self.p["cooling_threshold"]:
                self.clock += 1
                self.n["cooling_ticks"] += 1
        # the sampling thread's work occupies its CPU
        cost = m.take()
        if cost:
            self.k.engine.cpus.occupy(self.cpu, self.k.engine.now_ps, cost)

    def managed(self, page: Page) -> bool:
        """Whether ``page`` lies in an anonymous mapping of at least ``min_region`` bytes (as
        HeMem manages only the large anonymous mmaps it intercepts, not stacks or small heaps)."""
        vmas = getattr(page.mapping, "vmas", None)
        if not vmas:
            return False
        return any(v.kind is VmaKind.ANON and v.end - v.start >= self.min_region for v in vmas)

    def is_hot(self, h: PageHeat) -> bool:
        self._cool(h)
        return h.reads >= self.p["hot_read_threshold"] or h.writes >= self.p["hot_write_threshold"]

    # -- the migration thread -------------------------------------------------------------------
    def on_tick(self, now_ps: int) -> None:
        self.n["intervals"] += 1
        if self.busy:
            return
        plan = self.plan()
        if not any(plan.values()):
            return
        self.busy = True
        self.k.engine.spawn(self._migrate(plan), self.cpu, name="hotness-migrate")

    def plan(self) -> dict:
        """{"promote": {node: [pages]}, "demote": {node: [pages]}} for this interval."""
        ctx, k = self.ctx, self.k
        budget = self.p["migrate_budget"] >> PAGE_SHIFT
        promote: dict[int, list[Page]] = {}
        seen: set[int] = set()
        hot_ids: set[int] = set()
        cand = []
        for (pid, vpn), h in self.heat.items():
            if not self.is_hot(h) or not h.by_node:
                continue
            page = ctx.page_at(pid, vpn << PAGE_SHIFT)
            if page is None or id(page) in seen:
                continue
            seen.add(id(page))
            hot_ids.add(id(page))
            total = sum(h.by_node.values())
            best = max(sorted(h.by_node), key=lambda n: h.by_node[n])
            if best not in self.fast:
                continue
            if page.node in self.slow:
                target = best
            elif page.node != best and h.by_node[best] > self.p["numa_majority"] * total:
                target = best
            else:
                continue
            cand.append((-(h.reads + h.writes), pid, vpn, page, target))
        cand.sort(key=lambda t: t[:3])
        self.n["hot_pages"] = len(hot_ids)
        used = 0
        for _, _, _, page, target in cand:
            if used + page.nr_pages > budget:
                self.n["budget_exhausted"] += 1
                break
            promote.setdefault(target, []).append(page)
            used += page.nr_pages
        demote: dict[int, list[Page]] = {}
        for node, pages in promote.items():
            if node not in self.demote_to:
                continue
            need = sum(p.nr_pages for p in pages) + self.wm.high[node] - k.alloc.nodes[node].free_count
            if need <= 0:
                continue
            cold = self.coldest(node, need, hot_ids)
            demote[node] = cold
        return {"promote": promote, "demote": demote}

    def coldest(self, node: int, need: int, hot_ids: set[int]) -> list[Page]:
        """Pages of ``node`` to demote, coldest first: pages with no recent sample (in LRU
        order, oldest first), then sampled but not hot pages by increasing count."""
        k = self.k
        heat_of = {}
        for (pid, vpn), h in self.heat.items():
            page = self.ctx.page_at(pid, vpn << PAGE_SHIFT)
            if page is not None and page.node == node:
                self._cool(h)
                heat_of[id(page)] = heat_of.get(id(page), 0) + h.reads + h.writes
        unsampled, sampled = [], []
        for lst in (LRU.INACTIVE_ANON, LRU.ACTIVE_ANON, LRU.INACTIVE_FILE, LRU.ACTIVE_FILE):
            for page in k.lru[node][lst].values():
                if id(page) in hot_ids or page.is_pinned or page.test(PG.LOCKED):
                    continue
                if self.min_region and not self.managed(page):
                    continue
                c = heat_of.get(id(page), 0)
                (sampled if c else unsampled).append((c, page))
        sampled.sort(key=lambda t: t[0])
        out, n = [], 0
        for _, page in unsampled + sampled:
            if n >= need:
                break
            out.append(page)
            n += page.nr_pages
        return out

    def _migrate(self, plan: dict) -> Generator:
        ctx, k = self.ctx, self.k
        try:
            for node, pages in plan["demote"].items():
                if not pages:
                    continue
                t0 = k.engine.now_ps
                m = Meter(k, self.cpu)
                isolated = [p for p in pages if not p.freed and k.isolate_lru_page(p, m)]
                cost = m.take()
                if cost:
                    yield cost
                if not isolated:
                    continue
                nodes = sorted(self.slow, key=lambda s: (ctx.distance(node, s), s))
                mig = Migrator(k, self.cpu, DemotionAlloc(k, nodes), "async", "hotness_demotion")
                res = yield from mig.migrate_pages(isolated)
                if res.remaining:
                    yield from mig.putback(res.remaining)
                self.n["demoted"] += res.nr_succeeded
                self.n["migrate_failed"] += sum(p.nr_pages for p in res.remaining)
                if ctx.record_migration is not None and res.nr_succeeded:
                    ctx.record_migration("hotness_demotion", t0, res.nr_succeeded,
                                         res.nr_succeeded << PAGE_SHIFT, k.engine.now_ps - t0)
            for node, pages in plan["promote"].items():
                from_slow = sum(p.nr_pages for p in pages if p.node in self.slow)
                res = yield from ctx.migrate_gen(pages, node, self.cpu, "async",
                                                 "hotness_promotion")
                if res is None:
                    continue
                moved = res.nr_succeeded
                self.n["promoted" if from_slow else "numa_moved"] += moved
                self.n["migrate_failed"] += sum(p.nr_pages for p in res.remaining)
        finally:
            self.busy = False

    def finish(self, now_ps: int) -> None:
        self.ctx.stats.add(f"policy.{self.name}", "tracked_pages", len(self.heat), "count")
