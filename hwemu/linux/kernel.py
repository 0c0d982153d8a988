"""The OS state of one simulated machine and its fault paths.

:class:`Kernel` holds the hardware interface, the engine (simulated time, per-CPU busy time),
the page allocator, every process (:class:`~hwemu.linux.mm.MM`), file and page, the per-node
LRU lists and the statistics. It implements the paths other modules build on: page faults
(first touch by policy, migration-entry waits, NUMA hinting faults), LRU isolation and
putback, page lock and writeback, pins (get_user_pages / pin_user_pages), and user accesses
that read and write page contents.

Every path charges its cost through a :class:`Meter`: kernel-code cycles plus the cache lines
it touches at their physical addresses (struct page in the memmap of the page's node, PTEs in
page-table frames, locks in the node's slab area), all timed by the hardware interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator

from hwemu.engine import Engine, Process, Sleep
from hwemu.errors import HwemuError
from hwemu.linux.hw import Hardware, PAGE_SHIFT, PAGE_SIZE
from hwemu.linux.mempolicy import Mempolicy, policy_node
from hwemu.linux.mm import (
    AddressSpace, AnonVma, GUP_PIN_COUNTING_BIAS, HPAGE_NR, HPAGE_SHIFT, HPAGE_SIZE, LRU, MM,
    NO_FLAGS, PG, Page, Pte, PteKind, Thread, VMA, VmaKind,
)
from hwemu.linux.page_alloc import PageAllocator
from hwemu.stats import Stats

# Kernel-code path lengths of the fault handler, in core cycles (instructions at IPC ~1 on the
# paths measured by perf on x86 servers; see docs/migration.md "Calibration").
FAULT_CYCLES = {
    "entry_exit": 600,        # exception entry, handle_mm_fault dispatch, iret
    "anon_page": 350,         # do_anonymous_page: alloc, rmap add, set_pte
    "file_page": 450,         # filemap_fault + finish_fault
    "migration_wait": 200,    # migration_entry_wait_on_locked: lookup, wait set-up
    "numa_hint": 400,         # do_numa_page: restore PTE, record cpupid
    "alloc": 250,             # __alloc_pages fast path (per-cpu list)
    "lru_add": 120,           # folio_add_lru via the per-cpu batch
    "gup_page": 150,          # get_user_pages per page
}


# flags of a new anonymous page (do_anonymous_page), and once it is on its LRU list
_NEW_ANON = PG.SWAPBACKED | PG.UPTODATE
_NEW_ANON_ON_LRU = _NEW_ANON | PG.LRU


class Meter:
    """Accumulates the cost of one kernel step on one CPU, starting at ``start_ps``."""

    __slots__ = ("k", "cpu", "start_ps", "ps", "lines")

    def __init__(self, kernel: "Kernel", cpu: int, start_ps: int | None = None):
        self.k = kernel
        self.cpu = cpu
        self.start_ps = kernel.engine.now_ps if start_ps is None else start_ps
        self.ps = 0
        self.lines = 0

    def cycles(self, n: int) -> None:
        self.ps += self.k.hw.cycles_ps(self.cpu, n)

    def touch(self, paddr: int, write: bool = False, atomic: bool = False) -> None:
        self.ps += self.k.hw.mem_access_ps(self.cpu, paddr, write, atomic, self.start_ps + self.ps)
        self.lines += 1

    def touch_seq(self, gaps: list, paddrs: list, writes: list, atomics: list) -> None:
        """:meth:`touch` of ``paddrs[i]`` after ``gaps[i]`` ps more, for each ``i`` in order,
        in one call when the hardware offers ``mem_access_seq_ps`` (the same times)."""
        seq = getattr(self.k.hw, "mem_access_seq_ps", None)
        if seq is not None:
            self.ps += seq(self.cpu, gaps, paddrs, writes, atomics, self.start_ps + self.ps)
            self.lines += len(paddrs)
            return
        for g, pa, w, a in zip(gaps, paddrs, writes, atomics):
            self.ps += g
            self.touch(pa, w, a)

    def page(self, page: Page, write: bool = False, atomic: bool = False) -> None:
        """Touch the struct page of ``page`` (in the memmap of its node)."""
        self.touch(self.k.alloc.nodes[page.node].struct_page_paddr(page.pfn), write, atomic)

    def add(self, ps: int) -> None:
        self.ps += int(ps)

    def take(self) -> int:
        ps, self.ps = self.ps, 0
        self.start_ps += ps
        return ps


@dataclass
class FaultResult:
    latency_ps: int
    pfn: int
    kind: str          # "anon", "file", "huge", "migration_wait", "numa_hint", "none"
    waited_ps: int = 0


class OutOfMemory(HwemuError):
    pass


@dataclass
class StepCost:
    """Time spent in one step of the migration protocol, over a run (typed: never parsed from
    a counter name)."""

    step: str
    time_ps: int = 0
    calls: int = 0


class KernelObserver:
    """Hooks for a machine model that keeps its own copy of the page tables and caches.

    ``pte_changed`` is called after every change of a page-table entry (install, migration
    entry, restore, PROT_NONE, THP split: the PMD becomes ``NONE`` and 512 PTEs appear) with
    the entry's new kind and the physical address and node of the page it points at (-1 for
    ``NONE``). ``page_freed`` is called when a frame returns to the allocator (its lines may be
    dropped from the caches). Subclass and override; the defaults do nothing."""

    #: it keeps a copy of the page tables (the machine's): the replay loop's own first touches
    #: are already in it (hwemu.machine.osfault)
    mirrors_page_tables = False
    #: it may learn of a first touch the replay loop served when the loop returns, rather than
    #: at the fault's end (it keeps counts, it starts no OS work): False turns that path off
    loop_faults_ok = False

    def pte_changed(self, pid: int, vaddr: int, huge: bool, kind: PteKind, paddr: int,
                    node: int) -> None:
        pass

    def ptes_changed(self, pid: int, changes: list) -> None:
        """Several entries of ``pid`` changed at once (one NUMA scan): ``changes`` holds
        ``(vaddr, huge, kind, paddr, node)`` tuples, in the order they changed. By default,
        :meth:`pte_changed` for each."""
        if type(self).pte_changed is KernelObserver.pte_changed:
            return                              # it ignores changes
        for vaddr, huge, kind, paddr, node in changes:
            self.pte_changed(pid, vaddr, huge, kind, paddr, node)

    def page_freed(self, paddr: int, nbytes: int) -> None:
        pass

    def thread_entered_kernel(self, tid: int) -> None:
        """Thread ``tid`` entered a system call: it runs no user code until
        :meth:`thread_left_kernel`."""

    def thread_left_kernel(self, tid: int, at_ps: int) -> None:
        """Thread ``tid`` returned to user space at ``at_ps``."""


class Kernel:
    def __init__(self, hw: Hardware, engine: Engine | None = None, tlb_batch: bool = True,
                 copy_engine=None):
        from hwemu.linux.copy import CpuCopyEngine

        self.hw = hw
        self.engine = engine or Engine(hw.num_cpus)
        self.alloc = PageAllocator(hw)
        self.tlb_batch = tlb_batch
        self.copy_engine = copy_engine or CpuCopyEngine()
        self.pages: dict[int, Page] = {}
        # (mm, vaddr >> 21) of every PTE table made and every automatic VMA made or grown, for
        # the regions the replay loop serves first touches in (hwemu.sim.loopfaults, which
        # empties it)
        self.new_regions: list[tuple[MM, int]] = []
        # frames held by the pages of self.pages, per node (node_usage); kept by _new_page,
        # free_page and the THP split (hwemu.linux.migrate), the only places that change them
        self._node_frames: list[int] = [0] * hw.num_nodes
        self.mms: dict[int, MM] = {}
        self.threads: dict[int, Thread] = {}
        # counts the threads added and moved (add_thread, move_thread): a reader of the
        # threads' CPUs can tell that none changed
        self.thread_moves = 0
        self.files: dict[str, AddressSpace] = {}
        self.lru: list[dict[LRU, dict[int, Page]]] = [
            {l: {} for l in LRU} for _ in range(hw.num_nodes)]
        # counts every change of the LRU lists (_lru_insert, _lru_remove, loop_fault_start),
        # so that a reader of the tails can tell that they are unchanged
        self.lru_gen = 0
        self.lru_lock = [a.slab_alloc(64) for a in self.alloc.nodes]
        # Every counter of the OS model (component, name, value, unit); typed records beside
        # it for what callers read back: the cost of each protocol step, failures by reason.
        self.stats = Stats()
        self.step_costs: dict[str, StepCost] = {}
        self._step_keys: dict[str, tuple[str, str]] = {}     # charge_step's counter names
        self.failed_by_reason: dict[str, int] = {}
        self._store_seq = 0
        # Duration of one page's writeback I/O started by the model (step 15): a 4 KiB write
        # to an NVMe SSD, ~20-50 us (vendor data sheets; see docs/migration.md).
        self.writeback_io_ps = 30_000_000
        # the NUMA hinting-fault handler (hwemu.linux.numa_balancing.NumaBalancing, or the
        # co-simulation's dispatcher to a policy); set only by set_numa_hint_handler
        self.numa_balancing = None
        self.observers: list[KernelObserver] = []
        self.on_migrated = None        # optional callable(nr_pages) after each folio moves
        # When a list: every user load/store appends (time_ps, tid, addr, is_write, value) at
        # the instant it reads or writes the page (for checking and debugging).
        self.access_log: list | None = None

    def set_numa_hint_handler(self, handler) -> None:
        """Install what handles NUMA hinting faults (``hinting_fault(thread, page, meter)``, a
        generator returning True if it migrated the page): the one writer of
        :attr:`numa_balancing`."""
        self.numa_balancing = handler

    # -- statistics -------------------------------------------------------------------------
    def count(self, component: str, stat: str, value=1, unit: str = "count") -> None:
        """Add ``value`` to the counter ``component``/``stat`` of :attr:`stats`."""
        self.stats.inc(component, stat, value, unit)

    def counter(self, component: str, stat: str) -> int:
        """The current value of a counter (0 if never counted)."""
        return self.stats.get(component, stat, 0)

    def charge_step(self, step: str, elapsed_ps: int, calls: int = 1) -> None:
        """Account one execution of protocol step ``step`` (hwemu.linux.migrate.STEP_ORDER)."""
        rec = self.step_costs.get(step)
        if rec is None:
            rec = self.step_costs[step] = StepCost(step)
            self._step_keys[step] = (f"{step}_time", f"{step}_calls")
        rec.time_ps += elapsed_ps
        rec.calls += calls
        keys = self._step_keys[step]
        self.count("linux.migrate.steps", keys[0], elapsed_ps, "ps")
        if calls:
            self.count("linux.migrate.steps", keys[1], calls)

    def count_failure(self, reason: str, pages: int) -> None:
        """Base pages a migration gave up on, by reason (the errno part: EAGAIN, EBUSY ...)."""
        self.failed_by_reason[reason] = self.failed_by_reason.get(reason, 0) + pages
        self.count("linux.migrate", "pages_failed", pages)
        self.count("linux.migrate", f"failed_{reason}", pages)

    def collect_stats(self) -> Stats:
        """Every counter of the OS model (the :attr:`stats` collection itself)."""
        return self.stats

    # -- processes, threads, VMAs, files ------------------------------------------------------
    def create_process(self, pid: int, name: str = "", thp: bool = False,
                       policy: Mempolicy | None = None, auto_vma: bool = True) -> MM:
        if pid in self.mms:
            raise HwemuError(f"process {pid} already exists")
        if policy is not None:
            policy.check_nodes(self.hw.num_nodes, f"process {pid} policy")
        mm = MM(pid=pid, name=name or f"pid{pid}", policy=policy, thp=thp, auto_vma=auto_vma,
                kaddr=self.alloc.nodes[0].slab_alloc(128))
        self.mms[pid] = mm
        return mm

    def mm(self, pid: int) -> MM:
        mm = self.mms.get(pid)
        if mm is None:
            raise HwemuError(f"no process with pid {pid}")
        return mm

    def add_thread(self, pid: int, tid: int, cpu: int) -> Thread:
        mm = self.mm(pid)
        if tid in self.threads:
            raise HwemuError(f"thread {tid} already exists")
        self.hw.cpu_node(cpu)
        t = Thread(tid=tid, mm=mm, cpu=cpu)
        mm.threads[tid] = t
        self.threads[tid] = t
        self.thread_moves += 1
        return t

    def move_thread(self, tid: int, cpu: int) -> None:
        self.hw.cpu_node(cpu)
        self.thread(tid).cpu = cpu
        self.thread_moves += 1

    def thread_syscall(self, tid: int, make_gen, name: str, on_return=None) -> Process | None:
        """Thread ``tid`` makes a system call: ``make_gen(cpu)`` is its body, run as a process
        on the thread's CPU. The thread is inside the kernel until the call returns (observers
        hear ``thread_entered_kernel`` / ``thread_left_kernel``), so it replays no accesses and
        takes no faults meanwhile; a call it issues while still inside one starts when that
        one returns, as a thread's calls do. ``on_return(process)`` runs when it returns.
        Returns the process, or None when the call waits for an earlier one."""
        t = self.thread(tid)
        if t.syscall is not None:
            t.pending_syscalls.append((make_gen, name, on_return))
            return None
        for ob in self.observers:
            ob.thread_entered_kernel(tid)
        return self._start_syscall(t, make_gen, name, on_return)

    def _start_syscall(self, t, make_gen, name, on_return) -> Process:
        proc = self.engine.spawn(make_gen(t.cpu), t.cpu, name=name)
        t.syscall = proc

        def returned(p):
            t.syscall = None
            if on_return is not None:
                on_return(p)
            if t.pending_syscalls:
                self._start_syscall(t, *t.pending_syscalls.pop(0))
                return
            for ob in self.observers:
                ob.thread_left_kernel(t.tid, p.end_ps)
        proc.on_done.append(returned)
        return proc

    def thread(self, tid: int) -> Thread:
        t = self.threads.get(tid)
        if t is None:
            raise HwemuError(f"no thread with tid {tid}")
        return t

    def open_file(self, name: str, shmem: bool = False, nr_pages: int | None = None) -> AddressSpace:
        f = self.files.get(name)
        if f is None:
            f = AddressSpace(name, swapbacked=shmem, kaddr=self.alloc.nodes[0].slab_alloc(1024),
                             nr_pages=nr_pages)
            self.files[name] = f
        return f

    def mmap(self, pid: int, start: int, size: int, kind: VmaKind | str, file: str | None = None,
             offset: int = 0, thp: bool | None = None, policy: Mempolicy | None = None,
             name: str = "") -> VMA:
        mm = self.mm(pid)
        kind = VmaKind(kind) if isinstance(kind, str) else kind
        if start % PAGE_SIZE or size % PAGE_SIZE or size <= 0:
            raise HwemuError(f"mmap {start:#x}+{size}: start and size must be page aligned and size > 0")
        if offset % PAGE_SIZE:
            raise HwemuError(f"mmap {start:#x}: file offset {offset} is not page aligned")
        if policy is not None:
            policy.check_nodes(self.hw.num_nodes, f"mmap {start:#x} policy")
        vma = VMA(mm=mm, start=start, end=start + size, kind=kind, pgoff=offset >> PAGE_SHIFT,
                  policy=policy, thp=(mm.thp if thp is None else thp) and kind is VmaKind.ANON,
                  kaddr=self.alloc.nodes[0].slab_alloc(192), name=name)
        if kind is VmaKind.ANON:
            vma.anon_vma = AnonVma(self.alloc.nodes[0].slab_alloc(64))
            vma.anon_vma.vmas.append(vma)
        else:
            fname = file if kind is VmaKind.FILE else (file or f"shmem:{pid}:{start:#x}")
            if not fname:
                raise HwemuError(f"mmap {start:#x}: a file mapping needs a file name")
            vma.file = self.open_file(fname, shmem=(kind is VmaKind.SHARED))
            vma.file.i_mmap.append(vma)
        try:
            mm.insert_vma(vma)
        except ValueError as exc:
            raise HwemuError(f"mmap: {exc}") from None
        return vma

    def _auto_vma(self, mm: MM, addr: int) -> VMA | None:
        if not mm.auto_vma:
            return None
        lo = addr & ~(HPAGE_SIZE - 1)
        hi = lo + HPAGE_SIZE
        for v in mm.vmas:
            if v.end <= addr and v.end > lo:
                lo = v.end
            if v.start > addr and v.start < hi:
                hi = v.start
        self.new_regions.append((mm, addr >> HPAGE_SHIFT))
        prev = mm.find_vma(lo - 1) if lo else None
        if prev is not None and prev.name == "[auto]" and prev.end == lo:
            prev.end = hi
            return prev
        vma = VMA(mm=mm, start=lo, end=hi, kind=VmaKind.ANON, thp=mm.thp, name="[auto]",
                  kaddr=self.alloc.nodes[0].slab_alloc(192))
        vma.anon_vma = AnonVma(self.alloc.nodes[0].slab_alloc(64))
        vma.anon_vma.vmas.append(vma)
        mm.insert_vma(vma)
        return vma

    def notify_pte(self, mm: MM, addr: int, is_pmd: bool, entry: Pte | None,
                   mirrored: bool = False) -> None:
        """Tell the observers that an entry changed; ``mirrored``: the machine's page table
        already holds it (the replay loop installed it), so observers that mirror the page
        tables (``mirrors_page_tables``) are not told. Every change of an entry comes here
        (or to :meth:`notify_ptes`), which also keeps the mm's index of present PTEs
        (:meth:`MM.keep_present`)."""
        if mm.present is not None:
            mm.keep_present(((addr, is_pmd, entry),))
        if not self.observers:
            return
        change = self._pte_change(addr, is_pmd, entry)
        for ob in self.observers:
            if not (mirrored and ob.mirrors_page_tables):
                ob.pte_changed(mm.pid, *change)

    def _pte_change(self, addr: int, is_pmd: bool, entry: Pte | None) -> tuple:
        """What observers are told of an entry: (page base, is_pmd, kind, paddr, node)."""
        base = addr & ~((HPAGE_SIZE if is_pmd else PAGE_SIZE) - 1)
        if entry is None or entry.kind is PteKind.NONE:
            return base, is_pmd, PteKind.NONE, -1, -1
        page = self.pages.get(entry.pfn)
        node = page.node if page is not None else self.alloc.node_of_pfn(entry.pfn)
        return base, is_pmd, entry.kind, entry.pfn << PAGE_SHIFT, node

    def notify_ptes(self, mm: MM, items: list) -> None:
        """:meth:`notify_pte` for entries ``items`` ((addr, is_pmd, entry)), each observer
        told of all of them in one ``ptes_changed`` call."""
        mm.keep_present(items)
        if not self.observers or not items:
            return
        changes = [self._pte_change(addr, is_pmd, entry) for addr, is_pmd, entry in items]
        for ob in self.observers:
            ob.ptes_changed(mm.pid, changes)

    # -- pages --------------------------------------------------------------------------------
    def _new_page(self, pfn: int, node: int, order: int) -> Page:
        page = Page(pfn, node, order)
        if order:
            page.set(PG.HEAD)
        assert pfn not in self.pages
        self.pages[pfn] = page
        self._node_frames[node] += 1 << order
        return page

    def alloc_page(self, order: int, preferred: int, nodemask: set[int] | None = None,
                   thisnode: bool = False, cpu: int | None = None) -> Page | None:
        got = self.alloc.alloc(order, preferred, nodemask, thisnode)
        if got is None:
            return None
        self._numastat(got[1], preferred, order, cpu)
        return self._new_page(got[0], got[1], order)

    def _numastat(self, node: int, preferred: int, order: int, cpu: int | None) -> None:
        """zone_statistics (mm/page_alloc.c), in pages: numa_hit on the node that served an
        allocation it was preferred for, numa_miss on a node that served one preferred
        elsewhere and numa_foreign on that preferred node; local_node / other_node by the
        node of the allocating CPU (allocations made for a CPU: page faults)."""
        nr = 1 << order
        if node == preferred or preferred < 0:
            self.count(f"node{node}.numastat", "numa_hit", nr, "pages")
        else:
            self.count(f"node{node}.numastat", "numa_miss", nr, "pages")
            self.count(f"node{preferred}.numastat", "numa_foreign", nr, "pages")
        if cpu is not None:
            local = node == self.hw.cpu_node(cpu)
            self.count(f"node{node}.numastat", "local_node" if local else "other_node", nr,
                       "pages")

    def free_page(self, page: Page) -> None:
        assert page.refcount == 0, f"freeing {page!r} with references"
        assert page.mapcount == 0, f"freeing mapped {page!r}"
        assert page.lru is None
        page.freed = True
        page.flags = NO_FLAGS
        del self.pages[page.pfn]
        self._node_frames[page.node] -= 1 << page.order
        self.alloc.free(page.pfn, page.order)
        for ob in self.observers:
            ob.page_freed(page.paddr, page.size_bytes)

    def folio_put(self, page: Page, n: int = 1) -> None:
        page.refcount -= n
        assert page.refcount >= 0, f"refcount underflow on {page!r}"
        if page.refcount == 0:
            if page.lru is not None:
                self._lru_remove(page)
            self.free_page(page)

    def page_of(self, pfn: int) -> Page:
        return self.pages[pfn]

    def _lru_list(self, page: Page) -> LRU:
        if page.test(PG.UNEVICTABLE):
            return LRU.UNEVICTABLE
        anon = page.test(PG.SWAPBACKED)
        active = page.test(PG.ACTIVE)
        if anon:
            return LRU.ACTIVE_ANON if active else LRU.INACTIVE_ANON
        return LRU.ACTIVE_FILE if active else LRU.INACTIVE_FILE

    def _lru_remove(self, page: Page) -> None:
        del self.lru[page.node][page.lru][page.pfn]
        self.lru_gen += 1
        page.lru = None
        page.clear(PG.LRU)

    def lru_add(self, page: Page, meter: Meter) -> None:
        """folio_add_lru: onto the node's list (PG_lru set); costs the lruvec lock and the
        list neighbours' struct pages."""
        assert page.lru is None and not page.test(PG.LRU)
        meter.cycles(FAULT_CYCLES["lru_add"])
        meter.touch(self.lru_lock[page.node], atomic=True)
        bucket = self.lru[page.node][self._lru_list(page)]
        if bucket:
            meter.page(self.pages[next(reversed(bucket))], write=True)
        meter.page(page, write=True)
        self._lru_insert(page)

    def _lru_insert(self, page: Page) -> None:
        """The list update of :meth:`lru_add` (its costs are the caller's)."""
        lst = self._lru_list(page)
        self.lru[page.node][lst][page.pfn] = page
        self.lru_gen += 1
        page.lru = lst
        page.set(PG.LRU)

    def lru_tail(self, node: int, lst: LRU) -> int:
        """The pfn of the page last added to ``node``'s list ``lst`` (-1: the list is empty)."""
        bucket = self.lru[node][lst]
        return next(reversed(bucket)) if bucket else -1

    def isolate_lru_page(self, page: Page, meter: Meter) -> bool:
        """folio_isolate_lru: take the page off its LRU list with a reference. False when the
        page is not on an LRU list (already isolated, being freed)."""
        meter.page(page, atomic=True)          # TestClearPageLRU
        if not page.test(PG.LRU):
            return False
        meter.touch(self.lru_lock[page.node], atomic=True)
        page.refcount += 1                     # folio_get
        self._lru_remove(page)
        return True

    def putback_lru_page(self, page: Page, meter: Meter) -> None:
        """folio_putback_lru: back on the LRU and drop the isolation reference."""
        self.lru_add(page, meter)
        meter.page(page, atomic=True)
        self.folio_put(page)

    # -- page lock / writeback ----------------------------------------------------------------
    def trylock_page(self, page: Page, owner: object) -> bool:
        if page.test(PG.LOCKED):
            return False
        page.set(PG.LOCKED)
        page.lock_owner = owner
        return True

    def lock_page(self, page: Page, owner: object) -> Generator:
        """folio_lock: sleep on the page lock until it is free (a generator for processes)."""
        while page.test(PG.LOCKED):
            yield page.lock_wait
        page.set(PG.LOCKED)
        page.lock_owner = owner

    def unlock_page(self, page: Page) -> None:
        assert page.test(PG.LOCKED), f"unlocking unlocked {page!r}"
        page.clear(PG.LOCKED)
        page.lock_owner = None
        page.lock_wait.wake(self.engine)

    def hold_page_lock(self, page: Page, duration_ps: int, owner: object = "holder") -> Process:
        """Another kernel path (e.g. a read-ahead I/O) holds the page lock for a while."""
        page.refcount += 1                      # whoever locks a page holds a reference

        def proc():
            yield from self.lock_page(page, owner)
            yield Sleep(duration_ps)
            self.unlock_page(page)
            self.folio_put(page)
        return self.engine.spawn(proc(), None, name=f"lock:{page.pfn}")

    def start_writeback(self, page: Page, duration_ps: int) -> None:
        """The page is under writeback I/O for ``duration_ps`` (PG_writeback; a reference is
        not taken, as in Linux)."""
        page.set(PG.WRITEBACK)
        page.clear(PG.DIRTY)
        end = self.engine.now_ps + int(duration_ps)
        page.writeback_end_ps = end

        def finish(p=page):
            if p.test(PG.WRITEBACK) and p.writeback_end_ps == end:
                p.clear(PG.WRITEBACK)
                p.writeback_end_ps = None
                p.writeback_wait.wake(self.engine)
        self.engine.call_at(end, finish)

    def wait_on_writeback(self, page: Page) -> Generator:
        while page.test(PG.WRITEBACK):
            yield page.writeback_wait

    # -- address translation ------------------------------------------------------------------
    def entry_page(self, mm: MM, addr: int) -> tuple[Pte | None, bool, Page | None]:
        entry, is_pmd = mm.lookup(addr)
        if entry is None or entry.kind is PteKind.NONE:
            return entry, is_pmd, None
        return entry, is_pmd, self.pages.get(entry.pfn)

    def follow_page(self, pid: int, addr: int) -> Page | None:
        """The page mapped at ``addr`` (present or NUMA-hinting entry), else None."""
        entry, _, page = self.entry_page(self.mm(pid), addr)
        if entry is None or entry.kind in (PteKind.NONE, PteKind.MIGRATION):
            return None
        return page

    def _subindex(self, page: Page, mm: MM, addr: int, is_pmd: bool) -> int:
        return ((addr >> PAGE_SHIFT) & (HPAGE_NR - 1)) if is_pmd else 0

    def _ensure_table(self, mm: MM, addr: int, is_pmd: bool, meter: Meter, cpu: int) -> None:
        """Allocate the page-table page for ``addr`` on the faulting CPU's node if missing."""
        node = self.hw.cpu_node(cpu)
        tables, key = (mm.pmd_tables, addr >> 30) if is_pmd else (mm.pte_tables, addr >> HPAGE_SHIFT)
        if key not in tables:
            if not is_pmd:
                self.new_regions.append((mm, key))
            got = self.alloc.alloc(0, node)
            if got is None:
                raise OutOfMemory(f"out of memory allocating a page table for pid {mm.pid}")
            tables[key] = got[0]
            meter.cycles(FAULT_CYCLES["alloc"])
            meter.add(self.hw.fill_ps(cpu, got[0] << PAGE_SHIFT, PAGE_SIZE, meter.start_ps + meter.ps))
        if not is_pmd and (addr >> 30) not in mm.pmd_tables:
            self._ensure_table(mm, addr, True, meter, cpu)

    def walk_cost(self, meter: Meter, mm: MM, addr: int, is_pmd: bool, write: bool = False) -> None:
        """Page-table walk to the entry: the PMD line, then the PTE line (write: atomic)."""
        for pa, w in self.walk_lines(mm, addr, is_pmd, write):
            meter.touch(pa, write=w, atomic=w)

    @staticmethod
    def walk_lines(mm: MM, addr: int, is_pmd: bool, write: bool) -> list[tuple[int, bool]]:
        """The lines :meth:`walk_cost` touches, in order: (physical address, written with an
        atomic update)."""
        out = []
        pmd_line = mm.pte_paddr(addr, True)
        if pmd_line is not None:
            out.append((pmd_line, write and is_pmd))
        if not is_pmd:
            pte_line = mm.pte_paddr(addr, False)
            if pte_line is not None:
                out.append((pte_line, write))
        return out

    # -- faults -------------------------------------------------------------------------------
    def policy_for(self, vma: VMA) -> tuple[Mempolicy | None, bool]:
        if vma.policy is not None:
            return vma.policy, True
        return vma.mm.policy, False

    def alloc_for_fault(self, vma: VMA, addr: int, thread: Thread | None, cpu: int,
                        order: int) -> Page | None:
        pol, is_vma = self.policy_for(vma)
        shift = PAGE_SHIFT + order
        ilx = (vma.pgoff >> order) + ((addr - vma.start) >> shift)
        if vma.kind is VmaKind.ANON:
            ilx = (addr >> shift)
        place = policy_node(pol, self.hw.cpu_node(cpu), self.hw.distance, self.hw.num_nodes,
                            is_vma, ilx, thread)
        if order:
            # THP: only the policy's node, no fallback (GFP_TRANSHUGE_LIGHT | __GFP_THISNODE).
            return self.alloc_page(order, place.preferred, place.nodemask, thisnode=True, cpu=cpu)
        return self.alloc_page(0, place.preferred, place.nodemask, cpu=cpu)

    def fault(self, tid: int, addr: int, write: bool) -> Process:
        """Handle a fault of thread ``tid`` at ``addr`` as a process on the thread's CPU.
        Its value is a :class:`FaultResult`; latency includes any wait for a page lock."""
        t = self.thread(tid)
        return self.engine.spawn(self._fault_proc(t, addr, write), t.cpu, name=f"fault:{tid}:{addr:#x}")

    def fault_process(self, tid: int, addr: int, write: bool) -> Process:
        """The process :meth:`fault` would start, not scheduled: a caller that knows nothing
        else is due on the engine before its steps end runs them itself (``Process._resume``
        and ``EventQueue.step``, as the engine would; hwemu.sim.cosim)."""
        t = self.thread(tid)
        return Process(self.engine, self._fault_proc(t, addr, write), t.cpu,
                       name=f"fault:{tid}:{addr:#x}")

    def _fault_proc(self, t: Thread, addr: int, write: bool) -> Generator:
        start = self.engine.now_ps
        mm = t.mm
        waited = 0
        kind = "none"
        while True:
            cpu = t.cpu
            m = Meter(self, cpu)
            m.cycles(FAULT_CYCLES["entry_exit"])
            vma = mm.find_vma(addr) or self._auto_vma(mm, addr)
            if vma is None:
                raise HwemuError(f"pid {mm.pid}: access to {addr:#x} outside every mapping (SIGSEGV)")
            entry, is_pmd, page = self.entry_page(mm, addr)
            self.walk_cost(m, mm, addr, is_pmd)
            if entry is None or entry.kind is PteKind.NONE:
                if vma.kind is VmaKind.ANON:
                    kind, pending = self._do_anonymous(t, vma, addr, write, m)
                    yield m.take()
                    self._map_new_anon(*pending)
                    break
                res = yield from self._do_file_fault(t, vma, addr, write, m)
                if res is None:
                    continue
                kind = res
                yield m.take()
                break
            if entry.kind is PteKind.MIGRATION:
                m.cycles(FAULT_CYCLES["migration_wait"])
                self.count("linux.fault", "migration_entry_faults")
                yield m.take()
                old = self.pages.get(entry.pfn)
                if old is not None and old.test(PG.LOCKED):
                    t0 = self.engine.now_ps
                    yield old.lock_wait
                    waited += self.engine.now_ps - t0
                kind = "migration_wait"
                entry, is_pmd, page = self.entry_page(mm, addr)
                if entry is not None and entry.kind is PteKind.PRESENT:
                    break     # the access is retried and goes through
                continue      # fault again (migration entry again, or gone)
            if entry.kind is PteKind.PROTNONE:
                m.cycles(FAULT_CYCLES["numa_hint"])
                self.walk_cost(m, mm, addr, is_pmd, write=True)
                m.page(page, atomic=True)
                if page.node == self.hw.cpu_node(t.cpu):    # /proc/vmstat numa_hint_faults_local
                    self.count("linux.fault", "numa_hint_faults_local")
                migrated = False
                if self.numa_balancing is not None:
                    migrated = yield from self.numa_balancing.hinting_fault(t, page, m)
                else:
                    page.last_cpupid = (t.cpu << 16) | (t.tid & 0xFFFF)
                if not migrated:
                    entry, is_pmd, page = self.entry_page(mm, addr)
                    if entry is not None and entry.kind is PteKind.PROTNONE:
                        entry.kind = PteKind.PRESENT
                        entry.young = True              # do_numa_page: pte_mkyoung
                        self.notify_pte(mm, addr, is_pmd, entry)
                kind = "numa_hint"
                yield m.take()
                break
            # Present: a spurious fault (another thread resolved it meanwhile).
            yield m.take()
            kind = kind if kind != "none" else "spurious"
            break
        return self._fault_done(mm, addr, start, kind, waited)

    def _fault_done(self, mm: MM, addr: int, start: int, kind: str, waited: int) -> FaultResult:
        lat = self._count_fault(start, kind, waited)
        entry, is_pmd, page = self.entry_page(mm, addr)
        return FaultResult(lat, page.pfn if page else -1, kind, waited)

    def _count_fault(self, start: int, kind: str, waited: int) -> int:
        """Count a fault of ``kind`` that started at ``start`` and ends now; its latency."""
        lat = self.engine.now_ps - start
        self.count("linux.fault", f"{kind}_faults")
        self.count("linux.fault", "fault_time", lat, "ps")
        self.count("linux.fault", "fault_wait_time", waited, "ps")
        return lat

    # -- first touches the replay loop served (hwemu.machine.osfault, hwemu.sim.loopfaults) --
    def loop_fault_start(self, tid: int, addr: int, pfn: int) -> tuple[MM, Page]:
        """The state changes of the first step of an anonymous first touch the replay loop
        served (its costs were charged there): the page allocated by the policy (it must be
        frame ``pfn``, the one the loop took from the allocator's reservation), set up, on the
        LRU."""
        t = self.threads[tid]
        mm = t.mm
        vma = mm.find_vma(addr)
        page = self.alloc_for_fault(vma, addr, t, t.cpu, 0)
        if page is None or page.pfn != pfn:
            raise AssertionError(f"fault at {addr:#x}: the allocator gave "
                                 f"{None if page is None else page.pfn}, the loop took {pfn}")
        # _init_anon and _lru_insert for a new anonymous page (inactive anon list), inline
        page.mapping = vma.anon_vma
        page.index = addr >> PAGE_SHIFT
        page.flags = _NEW_ANON_ON_LRU
        page.mapcount = 1
        self.lru[page.node][LRU.INACTIVE_ANON][page.pfn] = page
        self.lru_gen += 1
        page.lru = LRU.INACTIVE_ANON
        return mm, page

    def loop_hint_start(self, tid: int, addr: int, pfn: int) -> tuple[MM, Page]:
        """The state changes of a local NUMA hinting fault the replay loop served (the page,
        frame ``pfn``, is on the faulting CPU's node; its costs were charged there): counted
        local, recorded by the hinting-fault handler (``local_hint``), the entry present
        again (the loop has set the machine's)."""
        t = self.threads[tid]
        mm = t.mm
        entry, is_pmd, page = self.entry_page(mm, addr)
        if entry is None or entry.kind is not PteKind.PROTNONE or is_pmd or page.pfn != pfn \
                or page.node != self.hw.cpu_node(t.cpu):
            raise AssertionError(f"hinting fault at {addr:#x}: the loop found a local "
                                 f"PROT_NONE entry of frame {pfn}, the kernel has {entry}")
        self.count("linux.fault", "numa_hint_faults_local")
        self.numa_balancing.local_hint(t, page)
        entry.kind = PteKind.PRESENT
        entry.young = True                      # do_numa_page: pte_mkyoung
        self.notify_pte(mm, addr, False, entry, True)
        return mm, page

    def loop_fault_end(self, mm: MM, addr: int, page: Page, write: bool, start: int,
                       mirrored: bool, hint: bool = False) -> FaultResult | None:
        """The last step of such a fault, at its end: a first touch's entry set
        (``mirrored``: the loop has installed it in the machine already), the fault counted.
        Returns the fault's result for its handler process (``mirrored`` False); a fault the
        loop ended itself (``mirrored``) has none to return."""
        kind = "numa_hint" if hint else "anon"
        if not hint:
            self._map_new_anon(mm, addr, False, page, write, mirrored)
        if mirrored:
            self._count_fault(start, kind, 0)
            return None
        return self._fault_done(mm, addr, start, kind, 0)

    def loop_fault_process(self, tid: int, mm: MM, addr: int, page: Page, write: bool,
                           start: int, hint: bool = False) -> Process:
        """A fault the loop served that has not ended: the handler process at its last step,
        for the engine to resume at the end (the caller schedules it)."""
        def last_step():
            return self.loop_fault_end(mm, addr, page, write, start, False, hint)
            yield       # a generator: the engine resumes it once

        proc = Process(self.engine, last_step(), self.threads[tid].cpu,
                       name=f"fault:{tid}:{addr:#x}")
        proc.start_ps = start
        return proc

    def _do_anonymous(self, t: Thread, vma: VMA, addr: int, write: bool, m: Meter) -> str:
        mm = vma.mm
        cpu = t.cpu
        haddr = addr & ~(HPAGE_SIZE - 1)
        if (vma.thp and haddr >= vma.start and haddr + HPAGE_SIZE <= vma.end
                and (addr >> HPAGE_SHIFT) not in mm.pte_tables):
            page = self.alloc_for_fault(vma, haddr, t, cpu, 9)
            if page is not None:
                self._ensure_table(mm, haddr, True, m, cpu)
                m.cycles(FAULT_CYCLES["alloc"] + FAULT_CYCLES["anon_page"])
                m.add(self.hw.fill_ps(cpu, page.paddr, HPAGE_SIZE, m.start_ps + m.ps))
                self._init_anon(page, vma, haddr)
                self.walk_cost(m, mm, haddr, True, write=True)
                m.page(page, write=True)
                self.lru_add(page, m)
                self.count("linux.fault", "thp_allocated")
                # set_pmd_at comes after the clear: mapped when the fault's time has passed
                return "huge", (mm, haddr, True, page, write)
            self.count("linux.fault", "thp_fallback")
        page = self.alloc_for_fault(vma, addr, t, cpu, 0)
        if page is None:
            raise OutOfMemory(f"pid {mm.pid}: out of memory faulting {addr:#x} (policy allows no free node)")
        self._ensure_table(mm, addr, False, m, cpu)
        m.cycles(FAULT_CYCLES["alloc"] + FAULT_CYCLES["anon_page"])
        m.add(self.hw.fill_ps(cpu, page.paddr, PAGE_SIZE, m.start_ps + m.ps))
        self._init_anon(page, vma, addr & ~(PAGE_SIZE - 1))
        self.walk_cost(m, mm, addr, False, write=True)
        m.page(page, write=True)
        self.lru_add(page, m)
        # set_pte_at comes after clear_page: mapped when the fault's time has passed
        return "anon", (mm, addr, False, page, write)

    def _map_new_anon(self, mm: MM, addr: int, huge: bool, page: Page, write: bool,
                      mirrored: bool = False) -> bool:
        """The end of do_anonymous_page: under the page-table lock, install the cleared page
        unless another thread's fault installed one meanwhile (``!pte_none``: the new page is
        released and the access retried). Returns True if this page was mapped."""
        table = mm.pmds if huge else mm.ptes
        key = addr >> (HPAGE_SHIFT if huge else PAGE_SHIFT)
        old = table.get(key)
        raced = old is not None and old.kind is not PteKind.NONE
        pmd = mm.pmds.get(addr >> HPAGE_SHIFT)
        if not huge and not raced and pmd is not None and pmd.kind is not PteKind.NONE:
            raced = True        # a THP was installed over the range meanwhile
        if huge and not raced and (addr >> HPAGE_SHIFT) in mm.pte_tables:
            raced = True        # 4 KiB pages were mapped in the range meanwhile
        if raced:
            self.count("linux.fault", "anon_fault_raced")
            page.mapcount = 0
            self.folio_put(page)
            return False
        table[key] = Pte(PteKind.PRESENT, page.pfn, True, True, write)
        self.notify_pte(mm, addr, huge, table[key], mirrored)
        return True

    def _init_anon(self, page: Page, vma: VMA, addr: int) -> None:
        page.mapping = vma.anon_vma
        page.index = addr >> PAGE_SHIFT
        page.set(_NEW_ANON)
        page.mapcount = 1          # refcount 1 from allocation becomes the mapping's reference

    def _do_file_fault(self, t: Thread, vma: VMA, addr: int, write: bool, m: Meter) -> Generator:
        """filemap_fault / shmem_fault + finish_fault. Returns the fault kind, or None when the
        lookup must be redone (the page moved or was locked meanwhile)."""
        mm = vma.mm
        f = vma.file
        index = vma.linear_index(addr)
        cpu = t.cpu
        m.cycles(FAULT_CYCLES["file_page"])
        # Look-ups through the mapping spin on its lock while a migration holds it.
        if f.lock_holder is not None:
            yield m.take()
            t0 = self.engine.now_ps
            yield f.lock_wait
            spin = self.engine.now_ps - t0
            self.engine.cpus.occupy(cpu, t0, spin)        # spinning keeps the CPU busy
            self.count("linux.fault", "mapping_lock_spin_time", spin, "ps")
            return None
        m.touch(f.slot_paddr(index))
        page = f.pages.get(index)
        if page is None:
            page = self.alloc_for_fault(vma, addr, t, cpu, 0)
            if page is None:
                raise OutOfMemory(f"pid {mm.pid}: out of memory faulting {addr:#x}")
            m.cycles(FAULT_CYCLES["alloc"])
            m.add(self.hw.fill_ps(cpu, page.paddr, PAGE_SIZE, m.start_ps + m.ps))
            page.mapping = f
            page.index = index
            page.set(PG.UPTODATE)
            if f.swapbacked:
                page.set(PG.SWAPBACKED)
            # refcount 1 (allocation) becomes the page cache's reference
            f.pages[index] = page
            m.touch(f.slot_paddr(index), write=True)
            self.lru_add(page, m)
        elif page.test(PG.LOCKED):
            # The new page of a migration (slot switched, not yet unlocked) or an I/O: sleep.
            yield m.take()
            t0 = self.engine.now_ps
            yield page.lock_wait
            self.count("linux.fault", "page_lock_wait_time", self.engine.now_ps - t0, "ps")
            return None
        self._ensure_table(mm, addr, False, m, cpu)
        mm.ptes[addr >> PAGE_SHIFT] = Pte(PteKind.PRESENT, page.pfn, True, True, write)
        self.notify_pte(mm, addr, False, mm.ptes[addr >> PAGE_SHIFT])
        page.mapcount += 1
        page.refcount += 1
        self.walk_cost(m, mm, addr, False, write=True)
        m.page(page, atomic=True)
        return "file"

    # -- NUMA hinting ---------------------------------------------------------------------------
    def change_prot_numa(self, pid: int, start: int, end: int, cpu: int = 0) -> int:
        """task_numa_work's change_prot_numa over [start, end): present entries become
        PROT_NONE hinting entries (the next access takes a NUMA hinting fault, which records
        last_cpupid and restores the entry). One flush of the range. Returns entries changed."""
        mm = self.mm(pid)
        items = []
        for table in (mm.pmds, mm.ptes):
            shift = HPAGE_SHIFT if table is mm.pmds else PAGE_SHIFT
            is_pmd = table is mm.pmds
            for key in sorted(k for k in table if start <= (k << shift) < end):
                e = table[key]
                if e.kind is PteKind.PRESENT:
                    items.append((key << shift, is_pmd, e))
        return self.change_prot_numa_entries(pid, items, cpu)

    def change_prot_numa_entries(self, pid: int, items: list, cpu: int = 0) -> int:
        """:meth:`change_prot_numa` of the present entries ``items`` ((addr, is_pmd, entry), the
        PMDs then the PTEs of the range, each in address order), found by the caller."""
        mm = self.mm(pid)
        m = Meter(self, cpu)
        changed = self.make_protnone(m, mm, items)
        n = len(changed)
        if n:
            m.add(self.hw.flush_tlb(cpu, mm.cpumask, n, m.start_ps, pid, changed))
        self.engine.cpus.occupy(cpu, self.engine.now_ps, m.take())
        self.count("linux.numa", "protnone_entries", n)
        return n

    def make_protnone(self, m: Meter, mm: MM, items: list, cycles_each: int = 0) -> list[int]:
        """Make present entries ``items`` ((addr, is_pmd, entry), in this order) PROT_NONE
        hinting entries: for each, ``cycles_each`` cycles of scan code, then the page-table
        walk that writes the entry (:meth:`walk_cost`), charged to ``m``; the observers are
        told of all of them at once (``ptes_changed``). The same times and counts as one entry
        after another, in one crossing into the hardware model. Returns their addresses."""
        gap0 = self.hw.cycles_ps(m.cpu, cycles_each) if cycles_each else 0
        gaps, paddrs, writes, atomics = [], [], [], []
        carry = 0
        for addr, is_pmd, e in items:
            e.kind = PteKind.PROTNONE
            carry += gap0
            for pa, w in self.walk_lines(mm, addr, is_pmd, True):
                gaps.append(carry)
                paddrs.append(pa)
                writes.append(w)
                atomics.append(w)
                carry = 0
        if paddrs:
            m.touch_seq(gaps, paddrs, writes, atomics)
        m.add(carry)
        self.notify_ptes(mm, items)
        return [addr for addr, _, _ in items]

    # -- user accesses ------------------------------------------------------------------------
    def access(self, tid: int, addr: int, write: bool) -> Process:
        """A load or store by thread ``tid``: faults if needed (blocking on migration entries),
        then reads or writes the page contents. Value: ``(latency_ps, value)``; a store writes
        a fresh, unique value and returns it."""
        t = self.thread(tid)
        return self.engine.spawn(self._access_proc(t, addr, write), t.cpu, name=f"access:{tid}")

    def _access_proc(self, t: Thread, addr: int, write: bool) -> Generator:
        start = self.engine.now_ps
        mm = t.mm
        while True:
            entry, is_pmd, page = self.entry_page(mm, addr)
            if entry is not None and entry.kind is PteKind.PRESENT:
                break
            yield self.fault(t.tid, addr, write)
        sub = self._subindex(page, mm, addr, is_pmd)
        if write:
            self._store_seq += 1
            page.data[sub] = self._store_seq
            entry.dirty = True
            if page.mapping is not None and not page.is_anon:
                page.set(PG.DIRTY)
        entry.young = True
        # the value stored or loaded now (another access may change the page before this one's
        # latency has passed)
        value = page.data[sub]
        if self.access_log is not None:
            self.access_log.append((self.engine.now_ps, t.tid, addr, write, value))
        cost = self.hw.mem_access_ps(t.cpu, page.paddr + sub * PAGE_SIZE, write, False,
                                     self.engine.now_ps)
        yield Sleep(cost)
        return self.engine.now_ps - start, value

    def read_now(self, pid: int, addr: int) -> int | None:
        """The value the page mapped at ``addr`` holds now, without timing (for checks)."""
        mm = self.mm(pid)
        entry, is_pmd, page = self.entry_page(mm, addr)
        if page is None:
            vma = mm.find_vma(addr)
            if vma is not None and vma.file is not None:
                page = vma.file.pages.get(vma.linear_index(addr))
                return None if page is None else page.data[0]
            return None
        return page.data[self._subindex(page, mm, addr, is_pmd)]

    # -- pins ---------------------------------------------------------------------------------
    def pin_user_pages(self, pid: int, addr: int, npages: int, kind: str = "pin") -> list[Page]:
        """get_user_pages (kind "get", +1 reference) or pin_user_pages (kind "pin",
        +GUP_PIN_COUNTING_BIAS on a small page, +1 and pincount on a large one). Pages not yet
        present are faulted in first (FOLL_WRITE). Returns the pages (one per 4 KiB page).
        Runs the engine until done: call it from outside event callbacks (use
        :meth:`pin_user_pages_gen` inside a process)."""
        mm = self.mm(pid)
        tid = next(iter(mm.threads), None)
        if tid is None:
            raise HwemuError(f"pin: pid {pid} has no thread to fault {addr:#x} in")
        proc = self.engine.spawn(self.pin_user_pages_gen(pid, addr, npages, kind),
                                 self.threads[tid].cpu, name="gup")
        return self.engine.run_process(proc)

    def pin_user_pages_gen(self, pid: int, addr: int, npages: int, kind: str = "pin") -> Generator:
        if kind not in ("pin", "get"):
            raise HwemuError(f"pin kind must be 'pin' or 'get', got {kind!r}")
        mm = self.mm(pid)
        tid = next(iter(mm.threads), None)
        out = []
        for i in range(npages):
            a = addr + i * PAGE_SIZE
            while True:
                entry, _, page = self.entry_page(mm, a)
                if entry is not None and entry.kind is PteKind.PRESENT:
                    break
                if tid is None:
                    raise HwemuError(f"pin: pid {pid} has no thread to fault {a:#x} in")
                yield self.fault(tid, a, True)
            m = Meter(self, self.threads[tid].cpu if tid is not None else 0)
            m.cycles(FAULT_CYCLES["gup_page"])
            m.page(page, atomic=True)
            self._grab(page, kind, +1)
            out.append(page)
            yield m.take()
        self.count("linux.gup", f"{kind}_pages", npages)
        return out

    def _grab(self, page: Page, kind: str, sign: int) -> None:
        if kind == "get":
            page.refcount += sign
        elif page.order:
            page.refcount += sign
            page.pincount += sign
        else:
            page.refcount += sign * GUP_PIN_COUNTING_BIAS

    def unpin_user_pages(self, pages: list[Page], kind: str = "pin") -> None:
        for p in pages:
            if kind == "get":
                self.folio_put(p)
            elif p.order:
                p.pincount -= 1
                self.folio_put(p)
            else:
                self.folio_put(p, GUP_PIN_COUNTING_BIAS)

    # -- accounting ---------------------------------------------------------------------------
    def node_usage(self) -> list[int]:
        """Frames in use per node (by pages of processes and the page cache)."""
        return list(self._node_frames)
