"""Automatic NUMA balancing (kernel/sched/fair.c task_numa_work, mm/memory.c do_numa_page,
mm/migrate.c migrate_misplaced_folio), the policy Linux ships.

* A periodic scan (per process, on the CPU of its first thread) turns the present entries of
  the next ``scan_size`` bytes of address space into PROT_NONE hinting entries
  (``change_prot_numa``), wrapping around at the end.
* The next access takes a NUMA hinting fault. The fault records the faulting CPU and thread in
  the page (``last_cpupid``) and, if the page is misplaced (policy node: the faulting CPU's
  node), decides with the two-stage filter of ``should_numa_migrate_memory``: migrate right
  away on the first faults of a task and on private faults, otherwise only if the previous
  recorded fault came from the same node. The faulting task then migrates the page itself
  (``migrate_misplaced_folio``: isolate, MIGRATE_ASYNC, reason MR_NUMA_MISPLACED, no THP split,
  the target node only, and only while it has free memory above a watermark).
* The scan period adapts to how local the faults were (``update_task_scan_period``): with 7 in
  10 or more faults local it grows, otherwise it shrinks, between ``scan_period_min`` and
  ``scan_period_max``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwemu.linux.mempolicy import Mempolicy
from hwemu.linux.mm import HPAGE_SHIFT, PAGE_SHIFT, Page, PteKind

NUMA_PERIOD_SLOTS = 10
NUMA_PERIOD_THRESHOLD = 7
HINT_CYCLES = 300          # task_numa_fault bookkeeping + numa_migrate_check


@dataclass
class NumaBalancingParams:
    """Linux defaults (kernel/sched/fair.c sysctl_numa_balancing_*)."""

    scan_delay_ps: int = 1_000_000_000_000         # 1000 ms before the first scan
    scan_period_min_ps: int = 1_000_000_000_000    # 1000 ms
    scan_period_max_ps: int = 60_000_000_000_000   # 60 s
    scan_size_bytes: int = 256 << 20               # 256 MB per scan
    min_free_frames: int = 256                     # watermark kept free on the target node


def compressed(base: "NumaBalancingParams | None", factor: float) -> NumaBalancingParams:
    """Linux's NUMA-balancing times (scan delay 1 s, minimum period 1 s, maximum period 60 s)
    divided by ``factor`` (the run parameter ``time_compression``, docs/policies.md "Time
    scale"), with the scan size and free-page reserve of ``base`` (a schedule's
    ``[numa_balancing]`` table; Linux's when None). ``factor`` 1 is Linux's own timing."""
    base = base if base is not None else NumaBalancingParams()
    linux = NumaBalancingParams()

    def scaled(ps: int) -> int:
        return max(1, round(ps / factor))

    return NumaBalancingParams(scan_delay_ps=scaled(linux.scan_delay_ps),
                               scan_period_min_ps=scaled(linux.scan_period_min_ps),
                               scan_period_max_ps=scaled(linux.scan_period_max_ps),
                               scan_size_bytes=base.scan_size_bytes,
                               min_free_frames=base.min_free_frames)


@dataclass
class _TaskState:
    scan_period_ps: int
    scan_offset: int = 0
    scan_seq: int = 0
    faults_local: int = 0
    faults_remote: int = 0
    migrated: int = 0
    event: object | None = None


class NumaBalancing:
    def __init__(self, kernel, params: NumaBalancingParams | None = None, install: bool = True):
        """``install``: become the kernel's hinting-fault handler (Linux's own NUMA balancing);
        a policy that dispatches the faults itself (the ``autonuma`` policy) passes False."""
        self.k = kernel
        self.p = params or NumaBalancingParams()
        self.tasks: dict[int, _TaskState] = {}
        if install:
            kernel.set_numa_hint_handler(self)

    # -- scanning -------------------------------------------------------------------------
    def start(self, pid: int) -> None:
        st = _TaskState(self.p.scan_period_min_ps)
        self.tasks[pid] = st
        st.event = self.k.engine.call_at(self.k.engine.now_ps + self.p.scan_delay_ps,
                                         self._scan, pid)

    def stop(self, pid: int) -> None:
        st = self.tasks.pop(pid, None)
        if st is not None and st.event is not None:
            st.event.cancel()

    def _scan(self, pid: int) -> None:
        st = self.tasks.get(pid)
        if st is None:
            return
        k = self.k
        mm = k.mm(pid)
        self._update_period(st)
        cpu = next(iter(mm.threads.values())).cpu if mm.threads else 0
        budget = self.p.scan_size_bytes >> PAGE_SHIFT
        end = max((v.end for v in mm.vmas), default=0)
        start = st.scan_offset
        # The present entries at or after the scan offset, in address order, taken up to the
        # budget.
        PRESENT = PteKind.PRESENT
        huge = [key << HPAGE_SHIFT for key, e in mm.pmds.items()
                if e.kind is PRESENT and key << HPAGE_SHIFT >= start]
        if not huge:
            # 4 KiB pages only (a present PMD at or after the offset would be in huge): the
            # next ``budget`` present PTEs (the index mm.present) are all the present entries
            # of their range
            index = mm.present_index()
            i = index.bisect_left(-(-start >> PAGE_SHIFT))
            taken = index[i:i + budget]
            all_taken = len(taken) == len(index) - i
            if taken:
                ptes = mm.ptes
                k.change_prot_numa_entries(pid, [(vpn << PAGE_SHIFT, False, ptes[vpn])
                                                 for vpn in taken], cpu)
            last = ((taken[-1] << PAGE_SHIFT) + 1) if taken else start
        else:
            todo = sorted(huge + [key << PAGE_SHIFT for key, e in mm.ptes.items()
                                  if e.kind is PRESENT and key << PAGE_SHIFT >= start])
            pmds, hmask = mm.pmds, (1 << HPAGE_SHIFT) - 1
            taken, pages, last = [], 0, start
            for a in todo:
                nr = 512 if a & hmask == 0 and (e := pmds.get(a >> HPAGE_SHIFT)) is not None \
                    and e.kind is PRESENT else 1
                if pages + nr > budget:
                    break
                taken.append(a)
                pages += nr
                last = a + 1
            if taken:
                k.change_prot_numa(pid, taken[0], taken[-1] + 1, cpu)
            all_taken = len(taken) == len(todo)
        if not taken or last >= end or all_taken:
            st.scan_offset = 0
            st.scan_seq += 1
        else:
            st.scan_offset = last
        k.count("linux.numa", "scans")
        st.event = k.engine.call_at(k.engine.now_ps + st.scan_period_ps, self._scan, pid)

    def _update_period(self, st: _TaskState) -> None:
        total = st.faults_local + st.faults_remote
        if total:
            ratio = st.faults_local * NUMA_PERIOD_SLOTS // total
            slot = -(-st.scan_period_ps // NUMA_PERIOD_SLOTS)
            if ratio >= NUMA_PERIOD_THRESHOLD:
                diff = max(ratio - NUMA_PERIOD_THRESHOLD, 1) * slot
            else:
                diff = -(NUMA_PERIOD_THRESHOLD - ratio) * slot
            st.scan_period_ps = min(self.p.scan_period_max_ps,
                                    max(self.p.scan_period_min_ps, st.scan_period_ps + diff))
        st.faults_local = st.faults_remote = 0

    # -- the hinting fault --------------------------------------------------------------------
    def should_migrate(self, page: Page, thread, dst_node: int) -> bool:
        """should_numa_migrate_memory: record this CPU/thread, apply the two-stage filter."""
        this = (thread.cpu << 16) | (thread.tid & 0xFFFF)
        last = page.last_cpupid
        page.last_cpupid = this
        st = self.tasks.get(thread.mm.pid)
        unset = last < 0
        same_task = not unset and (last & 0xFFFF) == (thread.tid & 0xFFFF)
        if (st is None or st.scan_seq <= 4) and (unset or same_task):
            return True
        if not unset and self.k.hw.cpu_node(last >> 16) != dst_node:
            return False
        return True

    def local_fault(self, thread, page: Page) -> None:
        """What :meth:`hinting_fault` records of a fault on a page on the faulting CPU's node
        (it never migrates): the task's local fault count (its cost is the caller's)."""
        st = self.tasks.get(thread.mm.pid)
        if st is not None:
            st.faults_local += page.nr_pages

    def hinting_fault(self, thread, page: Page, meter):
        """Called by the fault handler on a PROT_NONE entry (the entry is still PROT_NONE).
        A generator: returns True if the page was migrated (the entry then maps the new page)."""
        from hwemu.linux.migrate import MR_NUMA_MISPLACED, Migrator, alloc_on_node

        k = self.k
        meter.cycles(HINT_CYCLES)
        node = k.hw.cpu_node(thread.cpu)
        st = self.tasks.get(thread.mm.pid)
        if st is not None:
            if page.node == node:
                st.faults_local += page.nr_pages
            else:
                st.faults_remote += page.nr_pages
        pol = thread.mm.policy
        if isinstance(pol, Mempolicy) and pol.mode not in ("default", "local"):
            return False                      # only MPOL_F_MOF policies migrate on fault
        if page.node == node or not self.should_migrate(page, thread, node):
            return False
        # migrate_misplaced_folio_prepare
        if k.alloc.nodes[node].free_count - page.nr_pages < self.p.min_free_frames:
            k.count("linux.numa", "migrate_skipped_low_memory")
            return False
        if page.mapcount > 1 and page.file_mapping is not None:
            return False
        if not k.isolate_lru_page(page, meter):
            return False
        yield meter.take()
        mig = Migrator(k, thread.cpu, alloc_on_node(k, node), "async", MR_NUMA_MISPLACED)
        res = yield from mig.migrate_pages([page])
        if res.remaining:
            yield from mig.putback(res.remaining)
            k.count("linux.numa", "migrate_failed")
            return False
        k.count("linux.numa", "pages_migrated", res.nr_succeeded)
        if st is not None:
            st.migrated += res.nr_succeeded
        return True
