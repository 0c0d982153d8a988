"""TPP: Linux memory tiering (``numa_balancing`` mode 2, NUMA_BALANCING_MEMORY_TIERING).

Nodes with CPUs are the top tier; CPU-less nodes (CXL memory) are the slow tier. Two halves,
as Linux 6.x implements them (Maruf et al., "TPP: Transparent Page Placement for
CXL-Enabled Tiered-Memory", ASPLOS 2023, merged as the memory-tiering mode of NUMA
balancing):

* **Promotion** (kernel/sched/fair.c ``should_numa_migrate_memory``, mm/memory.c
  ``do_numa_page``). A periodic scan (``task_numa_work`` in tiering mode) turns the present
  entries of pages on slow-tier nodes into PROT_NONE hinting entries and stamps each page with
  the scan time (``folio_xchg_access_time``); top-tier pages are skipped. The next access takes
  a NUMA hinting fault; the *hint-fault latency* (fault time - scan time) says how hot the page
  is. The page is promoted to the faulting CPU's node when the target has ample free memory
  (``pgdat_free_space_enough``), or else when the latency is below the hot threshold
  (``numa_balancing_hot_threshold_ms``, adjusted automatically by
  ``numa_promotion_adjust_threshold``) and the promotion rate limit
  (``numa_balancing_promote_rate_limit_MBps``) is not exceeded in the current second. A target
  below its high watermark (``migrate_balanced_pgdat``) is not promoted to: kswapd is woken
  there to demote down to the promotion watermark, and the fault retries on a later scan.
  The faulting thread migrates the page itself (``migrate_misplaced_folio``: MIGRATE_ASYNC,
  MR_NUMA_MISPLACED, through the full protocol of hwemu.linux.migrate).
* **Demotion** (mm/vmscan.c ``shrink_folio_list`` -> ``demote_folio_list``). kswapd of a top-
  tier node runs when its free memory falls below the low watermark (checked every
  ``kswapd_check`` of simulated time, and on promotion failures), ages the node's LRU lists
  (``shrink_active_list``: active -> inactive, clearing the accessed bits;
  ``shrink_inactive_list``: a referenced inactive page is activated, an unreferenced one is a
  demotion candidate) and migrates candidates in batches of ``SWAP_CLUSTER_MAX`` to the
  nearest slow-tier node (``alloc_demote_folio``: that node first, then other slow nodes),
  MIGRATE_ASYNC, MR_DEMOTION, until free memory reaches the high watermark (the promotion
  watermark when a promotion was refused).

Watermarks follow ``__setup_per_zone_wmarks`` with ``min_free_kbytes = sqrt(16 * lowmem_kB)``
(clamped to 128 KiB .. 256 MiB) split over the nodes by size, and
``watermark_scale_factor`` (default 10 = 0.1 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Generator

from hwemu.linux.kernel import Meter
from hwemu.linux.memory_tiers import memory_tiers
from hwemu.linux.migrate import MR_NUMA_MISPLACED
from hwemu.linux.mm import HPAGE_SHIFT, PAGE_SHIFT, Page, PteKind
from hwemu.linux.page_alloc import compute_watermarks
from hwemu.linux.vmscan import SWAP_CLUSTER_MAX, demote_folio_list, kswapd
from hwemu.policies.base import HintFault, MigrationPolicy, Param, PolicyContext

NUMA_MIGRATION_ADJUST_STEPS = 16      # kernel/sched/fair.c
HINT_CYCLES = 300                     # task_numa_fault bookkeeping + numa_migrate_check
SCAN_PTE_CYCLES = 40                  # change_pte_range per entry (besides the PTE line)
MSEC_PS = 1_000_000_000


# -- scan helpers shared by the tiering policies (tpp, nomad) ------------------------------------
def first_cpu_of(ctx: PolicyContext, node: int) -> int:
    for c in range(ctx.kernel.hw.num_cpus):
        if ctx.cpu_node(c) == node:
            return c
    return 0


def mapped_pages(kernel, pid: int, kinds=(PteKind.PRESENT,), nodes=None) -> list[tuple[int, bool, object, Page]]:
    """(address, is_pmd, entry, page) of every entry of ``pid`` of the given kinds, in address
    order (THP mappings at their 2 MiB base); with ``nodes``, only pages on those nodes."""
    mm = kernel.mm(pid)
    pages = kernel.pages
    out = []
    for shift, is_pmd, table in ((HPAGE_SHIFT, True, mm.pmds), (PAGE_SHIFT, False, mm.ptes)):
        for key, e in table.items():
            if e.kind in kinds:
                page = pages.get(e.pfn)
                if page is not None and (nodes is None or page.node in nodes):
                    out.append((key << shift, is_pmd, e, page))
    out.sort(key=itemgetter(0))
    return out


def make_protnone(kernel, pid: int, entries, cpu: int) -> int:
    """``change_prot_numa`` restricted to ``entries`` ((addr, is_pmd, entry, page) tuples):
    each present entry becomes a PROT_NONE hinting entry (PTE write), then one flush of the
    changed range on the mm's CPUs. The cost occupies ``cpu``. Returns entries changed."""
    mm = kernel.mm(pid)
    m = Meter(kernel, cpu)
    changed = kernel.make_protnone(m, mm, [(addr, is_pmd, e) for addr, is_pmd, e, _page in entries
                                           if e.kind is PteKind.PRESENT], SCAN_PTE_CYCLES)
    if changed:
        m.add(kernel.hw.flush_tlb(cpu, mm.cpumask, len(changed), m.start_ps, pid, changed))
        kernel.engine.cpus.occupy(cpu, kernel.engine.now_ps, m.take())
        kernel.count("linux.numa", "protnone_entries", len(changed))
    return len(changed)


@dataclass
class _NodeProm:
    """Per-target-node promotion state (``pglist_data`` nbp_* fields)."""

    threshold_ps: int = 0            # nbp_threshold (0: use the default)
    th_start_ps: int = 0             # nbp_th_start
    th_nr_cand: int = 0              # nbp_th_nr_cand
    rl_start_ps: int = 0             # nbp_rl_start
    rl_nr_cand: int = 0              # nbp_rl_nr_cand
    nr_cand: int = 0                 # PGPROMOTE_CANDIDATE
    kswapd_running: bool = False
    promo_wanted: bool = False       # PGDAT flag: reclaim up to the promotion watermark


LINUX_SECOND_PS = 1000 * MSEC_PS


def time_scale(ctx: PolicyContext) -> tuple:
    """(NumaBalancingParams, scale) of a run: the schedule's ``[numa_balancing]`` table (or
    Linux's defaults) and its time scale, ``scan_period_min / 1 s`` (1/5000 on the demos)."""
    from hwemu.linux.numa_balancing import NumaBalancingParams

    linux = NumaBalancingParams()
    base = (ctx.schedule.numa_balancing if ctx.schedule is not None
            and getattr(ctx.schedule, "numa_balancing", None) is not None else linux)
    return base, base.scan_period_min_ps / linux.scan_period_min_ps


def resolve_time_scale(p: dict, ctx: PolicyContext) -> dict:
    """Fill the time parameters left at None (their default) from the schedule's
    ``[numa_balancing]`` table, as autonuma does: scan delay, scan period (= scan_period_min),
    scan size, threshold period (= scan_period_max); the hot threshold (Linux: 1 s, equal to
    the scan period) and the "second" of the promotion rate limit scale with the same factor.
    Returns a new dict with ``second_ps`` added."""
    base, scale = time_scale(ctx)
    q = dict(p)
    second = max(1, round(LINUX_SECOND_PS * scale))
    defaults = {"scan_delay": base.scan_delay_ps, "scan_period": base.scan_period_min_ps,
                "scan_size": base.scan_size_bytes, "hot_threshold": second,
                "threshold_period": base.scan_period_max_ps}
    for key, val in defaults.items():
        if key in q and q[key] is None:
            q[key] = int(val)
    q["second_ps"] = second
    return q


class Tpp(MigrationPolicy):
    """Linux memory tiering (TPP): promote hot CXL pages on hinting faults, demote cold pages in reclaim."""

    name = "tpp"

    PARAMS = (
        Param("scan_delay", "time", None, "time before the first scan of a process (default: "
              "the schedule's [numa_balancing] scan_delay, else Linux's 1 s)",
              linux="numa_balancing_scan_delay_ms = 1000"),
        Param("scan_period", "time", None, "time between two scans of a process's slow-tier "
              "pages (default: the schedule's scan_period_min, else 1 s)",
              linux="numa_balancing_scan_period_min_ms = 1000"),
        Param("scan_size", "size", None, "slow-tier memory made PROT_NONE per scan (default: "
              "the schedule's scan_size, else 256 MiB)",
              linux="numa_balancing_scan_size_mb = 256"),
        Param("hot_threshold", "time", None,
              "a page whose hint-fault latency (fault - scan time) is below this is hot "
              "(default: 1 s at the schedule's time scale, docs/policies-advanced.md)",
              linux="numa_balancing_hot_threshold_ms = 1000"),
        Param("promote_rate_limit_MBps", "int", 65536,
              "promotion candidates allowed per second (at the run's time scale) per target "
              "node, MB/s",
              linux="numa_balancing_promote_rate_limit_MBps = 65536"),
        Param("adjust_threshold", "bool", True,
              "adjust the hot threshold every scan_period_max so candidates match the rate limit",
              linux="numa_promotion_adjust_threshold (always on)"),
        Param("threshold_period", "time", None, "period of the threshold adjustment (default: "
              "the schedule's scan_period_max, else 60 s)",
              linux="numa_balancing_scan_period_max_ms = 60000"),
        Param("demotion", "bool", True, "demote cold pages to the slow tier in reclaim",
              linux="/sys/kernel/mm/numa/demotion_enabled"),
        Param("watermark_scale_factor", "int", 10, "kswapd watermark distance, in 1/10000 of the node",
              linux="vm.watermark_scale_factor = 10"),
        Param("min_free", "size", None,
              "min_free_kbytes for the whole machine (default: Linux's sqrt(16 * memory in KiB))",
              linux="vm.min_free_kbytes (calculate_min_free_kbytes)"),
        Param("kswapd_check", "time", "1ms",
              "how often free memory of top-tier nodes is compared with the low watermark"),
        Param("reclaim_batch", "int", SWAP_CLUSTER_MAX, "folios demoted per migrate_pages call",
              linux="SWAP_CLUSTER_MAX = 32"),
    )

    def attach(self, ctx: PolicyContext) -> None:
        self.ctx = ctx
        self.k = ctx.kernel
        self.p = p = resolve_time_scale(self.p, ctx)
        self.second_ps = p["second_ps"]
        self.fast, self.slow, self.demote_to = memory_tiers(ctx.kernel.hw)
        self.wm = compute_watermarks(self.k, p["watermark_scale_factor"], p["min_free"])
        self.prom = {n: _NodeProm() for n in range(ctx.num_nodes)}
        self.scan_time: dict[int, int] = {}      # pfn -> last scan time (ps)
        self.scan_offset: dict[int, int] = {}
        # the policy's counters live in the run's statistics (component policy.<name>)
        self.n = ctx.stats.counters(f"policy.{self.name}", (
            "scans", "hint_faults", "promote_candidates", "promoted", "promote_failed",
            "rate_limited", "not_hot", "low_memory", "kswapd_runs", "demoted", "demote_failed",
            "activated", "deactivated", "free_space_promotions"))
        self.tick_ps = None
        if not self.slow:
            return                                 # no tiers: memory tiering does nothing
        for pid in ctx.pids:
            self.scan_offset[pid] = 0
            ctx.call_at(ctx.now_ps() + p["scan_delay"], self._scan, pid)
        if p["demotion"]:
            ctx.call_at(ctx.now_ps() + p["kswapd_check"], self._check_watermarks)

    # -- promotion: scan --------------------------------------------------------------------
    def _scan(self, pid: int) -> None:
        k = self.k
        if pid not in k.mms:
            return
        mm = k.mm(pid)
        cpu = next(iter(mm.threads.values())).cpu if mm.threads else 0
        budget = self.p["scan_size"] >> PAGE_SHIFT
        ents = mapped_pages(k, pid, nodes=set(self.slow))
        start = self.scan_offset.get(pid, 0)
        todo = [t for t in ents if t[0] >= start]
        taken, pages = [], 0
        for t in todo:
            if pages + t[3].nr_pages > budget:
                break
            taken.append(t)
            pages += t[3].nr_pages
        now = k.engine.now_ps
        for t in taken:
            self.scan_time[t[3].pfn] = now           # folio_xchg_access_time
        make_protnone(k, pid, taken, cpu)
        self.scan_offset[pid] = 0 if len(taken) == len(todo) else taken[-1][0] + 1
        self.n["scans"] += 1
        k.count("linux.numa", "scans")
        self.ctx.call_at(now + self.p["scan_period"], self._scan, pid)

    # -- promotion: the hinting fault ---------------------------------------------------------
    def free_space_enough(self, node: int) -> bool:
        """``pgdat_free_space_enough``: free above high watermark + max(1 GiB, node/16)."""
        a = self.k.alloc.nodes[node]
        enough = max((1 << 30) >> PAGE_SHIFT, a.capacity >> 4)
        return a.free_count > self.wm.high[node] + enough

    def balanced(self, node: int, nr: int) -> bool:
        """``migrate_balanced_pgdat``: the target stays above its high watermark."""
        return self.k.alloc.nodes[node].free_count - nr >= self.wm.high[node]

    def _adjust_threshold(self, st: _NodeProm, now: int, rate_limit: int, ref_th: int) -> None:
        period = self.p["threshold_period"]
        if now - st.th_start_ps > period:
            st.th_start_ps = now
            ref_cand = rate_limit * period // self.second_ps
            diff = st.nr_cand - st.th_nr_cand
            unit = ref_th * 2 // NUMA_MIGRATION_ADJUST_STEPS
            th = st.threshold_ps or ref_th
            if diff > ref_cand * 11 // 10:
                th = max(th - unit, unit)
            elif diff < ref_cand * 9 // 10:
                th = min(th + unit, ref_th * 2)
            st.th_nr_cand = st.nr_cand
            st.threshold_ps = th

    def _rate_limited(self, st: _NodeProm, now: int, rate_limit: int, nr: int) -> bool:
        """``numa_promotion_rate_limit``: candidates counted per 1 s window (at the run's
        time scale: ``second_ps``)."""
        st.nr_cand += nr
        if now - st.rl_start_ps > self.second_ps:
            st.rl_start_ps = now
            st.rl_nr_cand = st.nr_cand
        return st.nr_cand - st.rl_nr_cand >= rate_limit

    def should_promote(self, page: Page, dst: int, now: int) -> bool:
        """The memory-tiering branch of ``should_numa_migrate_memory``."""
        st = self.prom[dst]
        if self.free_space_enough(dst):
            st.threshold_ps = 0                       # workload changed: reset
            self.n["free_space_promotions"] += 1
            return True
        def_th = self.p["hot_threshold"]
        rate_limit = (self.p["promote_rate_limit_MBps"] << 20) >> PAGE_SHIFT   # pages/s
        if self.p["adjust_threshold"]:
            self._adjust_threshold(st, now, rate_limit, def_th)
        th = st.threshold_ps or def_th
        scanned = self.scan_time.get(page.pfn)
        latency = now - scanned if scanned is not None else None
        if latency is None or latency >= th:
            self.n["not_hot"] += 1
            return False
        if self._rate_limited(st, now, rate_limit, page.nr_pages):
            self.n["rate_limited"] += 1
            return False
        return True

    def on_hint_fault(self, fault: HintFault) -> Generator:
        k = self.k
        page = fault.page
        fault.meter.cycles(HINT_CYCLES)
        self.n["hint_faults"] += 1
        dst = fault.cpu_node
        if page.node not in self.slow or dst not in self.fast:
            return False
        now = k.engine.now_ps
        if not self.should_promote(page, dst, now):
            return False
        self.n["promote_candidates"] += 1
        # migrate_misplaced_folio_prepare: the target must stay balanced; else wake kswapd
        # there to demote down to the promotion watermark.
        if not self.balanced(dst, page.nr_pages):
            self.n["low_memory"] += 1
            if self.p["demotion"] and dst in self.demote_to:
                self.prom[dst].promo_wanted = True
                self.wake_kswapd(dst)
            return False
        if page.mapcount > 1 and page.file_mapping is not None:
            return False
        ok = yield from self.promote(fault, page, dst)
        return ok

    def promote(self, fault: HintFault, page: Page, dst: int) -> Generator:
        """``migrate_misplaced_folio`` by the faulting thread (the fault waits for it)."""
        yield fault.meter.take()
        res = yield from self.ctx.migrate_gen([page], dst, fault.cpu, "async", MR_NUMA_MISPLACED)
        ok = res is not None and res.nr_succeeded > 0
        self.n["promoted" if ok else "promote_failed"] += 1
        if ok:
            self.scan_time.pop(page.pfn, None)
            self.k.count("linux.numa", "pgpromote_success", res.nr_succeeded)
        return ok

    # -- demotion: kswapd ---------------------------------------------------------------------
    def _check_watermarks(self) -> None:
        for n in self.fast:
            if self.k.alloc.nodes[n].free_count < self.wm.low[n]:
                self.wake_kswapd(n)
        self.ctx.call_at(self.ctx.now_ps() + self.p["kswapd_check"], self._check_watermarks)

    def wake_kswapd(self, node: int):
        """Start kswapd on ``node`` unless it runs: a process on a CPU of the node that runs
        no application thread (``ctx.idle_cpu``; kswapd is a per-node kernel thread the
        scheduler places on an idle CPU of its node when there is one)."""
        st = self.prom[node]
        if st.kswapd_running or node not in self.demote_to or not self.p["demotion"]:
            return None
        st.kswapd_running = True
        cpu = self.ctx.idle_cpu(node)
        return self.ctx.engine.spawn(self._kswapd(node, cpu), cpu, name=f"kswapd{node}")

    def reclaim_goal(self, node: int) -> int:
        st = self.prom[node]
        return self.wm.promo[node] if st.promo_wanted else self.wm.high[node]

    def _kswapd(self, node: int, cpu: int) -> Generator:
        st = self.prom[node]
        try:
            yield from kswapd(self.k, node, cpu, lambda: self.reclaim_goal(node),
                              self.p["reclaim_batch"], self.demote, self.n)
        finally:
            st.kswapd_running = False
            st.promo_wanted = False

    def demote_nodes(self, node: int) -> list[int]:
        first = self.demote_to[node]
        rest = sorted((s for s in self.slow if s != first), key=lambda s: (self.ctx.distance(node, s), s))
        return [first] + rest

    def demote(self, pages: list[Page], node: int, cpu: int) -> Generator:
        """``demote_folio_list``: MIGRATE_ASYNC, MR_DEMOTION. Returns base pages moved."""
        return (yield from demote_folio_list(self.k, pages, self.demote_nodes(node), cpu,
                                             self.n, self.ctx.record_migration))

    # -- end ------------------------------------------------------------------------------------
    def finish(self, now_ps: int) -> None:
        comp = f"policy.{self.name}"
        for node, st in self.prom.items():
            if node in self.fast and self.slow:
                self.ctx.stats.add(f"{comp}.node{node}", "hot_threshold",
                                   st.threshold_ps or self.p["hot_threshold"], "ps")
