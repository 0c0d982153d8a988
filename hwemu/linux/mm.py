"""Address spaces, VMAs, page tables and struct page, as Linux keeps them.

* :class:`Page` is a folio head (``struct page`` of an order-0 page or of a 2 MiB THP): flags,
  ``refcount`` (``_refcount``), ``mapcount`` (logical number of page-table mappings, i.e.
  ``_mapcount + 1``), ``pincount`` (large folios), ``mapping`` + ``index``, the LRU list it is
  on, ``last_cpupid``, the page lock's wait queue, and the page *contents*: one value per
  4 KiB sub-page, written by every store (the no-lost-write check compares them).
* :class:`Pte` is one page-table entry: ``NONE``, ``PRESENT(pfn)``, ``MIGRATION(pfn)`` (a
  migration swap entry, keeping the write permission) or ``PROTNONE(pfn)`` (a NUMA hinting
  entry). 2 MiB mappings live in the PMD table (:attr:`MM.pmds`).
* :class:`VMA` is anonymous private, anonymous shared (shmem: backed by an
  :class:`AddressSpace`) or file-backed (an :class:`AddressSpace` of a named file).
* :class:`AddressSpace` is a file's page cache: a dict-backed xarray ``index -> Page`` with a
  lock (``xa_lock``) and the list of VMAs mapping it (``i_mmap``).
* :class:`AnonVma` links the anonymous pages of a VMA to it for the reverse map.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from dataclasses import dataclass, field
from operator import attrgetter

from sortedcontainers import SortedSet

from hwemu.engine import WaitQueue
from hwemu.linux.hw import PAGE_SHIFT, PAGE_SIZE

HPAGE_SHIFT = 21
HPAGE_SIZE = 1 << HPAGE_SHIFT
HPAGE_NR = HPAGE_SIZE // PAGE_SIZE  # 512
GUP_PIN_COUNTING_BIAS = 1024        # include/linux/mm.h


class PG:
    """Page flags (include/linux/page-flags.h), the subset the model uses. Plain ints, not an
    ``enum.IntFlag``: each operator on a flag enum makes a new member in Python, about a
    microsecond, and the kernel model tests and sets page flags millions of times a run."""

    LOCKED = 1 << 0
    WRITEBACK = 1 << 1
    REFERENCED = 1 << 2
    UPTODATE = 1 << 3
    DIRTY = 1 << 4
    LRU = 1 << 5
    HEAD = 1 << 6
    ACTIVE = 1 << 7
    SWAPBACKED = 1 << 8
    UNEVICTABLE = 1 << 9
    MLOCKED = 1 << 10
    PRIVATE = 1 << 11
    YOUNG = 1 << 12       # page_idle young bit
    RECLAIM = 1 << 13     # writeback requested (queued) while the page was busy

    @classmethod
    def names(cls, flags: int) -> str:
        """``flags`` as names joined by ``|`` (``0`` for none), for messages."""
        out = [n for n, v in vars(cls).items() if n.isupper() and flags & v]
        return "|".join(out) or "0"


# Flags folio_migrate_flags() carries over to the new page (step 13).
MIGRATED_FLAGS = (PG.REFERENCED | PG.UPTODATE | PG.ACTIVE | PG.UNEVICTABLE | PG.MLOCKED
                  | PG.DIRTY | PG.YOUNG | PG.RECLAIM)


class LRU(enum.Enum):
    INACTIVE_ANON = "inactive_anon"
    ACTIVE_ANON = "active_anon"
    INACTIVE_FILE = "inactive_file"
    ACTIVE_FILE = "active_file"
    UNEVICTABLE = "unevictable"


#: no page flag set
NO_FLAGS = 0


class Page:
    """A folio head: ``nr_pages`` is 1 or 512 (a PMD-mappable THP)."""

    __slots__ = ("pfn", "node", "order", "flags", "refcount", "mapcount", "pincount",
                 "mapping", "index", "lru", "last_cpupid", "data", "_lock_wait",
                 "_writeback_wait", "lock_owner", "freed", "writeback_end_ps")

    def __init__(self, pfn: int, node: int, order: int = 0):
        self.pfn = pfn
        self.node = node
        self.order = order
        self.flags = NO_FLAGS
        self.refcount = 1          # the allocation reference
        self.mapcount = 0
        self.pincount = 0
        self.mapping: AddressSpace | AnonVma | None = None
        self.index = 0
        self.lru: LRU | None = None
        self.last_cpupid = -1
        self.data = [0] * (1 << order)
        # the wait queues are made when first used (few pages are ever locked or written
        # back; a GiB footprint has a quarter of a million pages)
        self._lock_wait: WaitQueue | None = None
        self._writeback_wait: WaitQueue | None = None
        self.lock_owner: object | None = None
        self.freed = False
        self.writeback_end_ps: int | None = None

    @property
    def lock_wait(self) -> WaitQueue:
        """Who sleeps on the page lock (folio_wait_bit PG_locked)."""
        q = self._lock_wait
        if q is None:
            q = self._lock_wait = WaitQueue(f"page_lock:{self.pfn}")
        return q

    @property
    def writeback_wait(self) -> WaitQueue:
        """Who sleeps until writeback ends (folio_wait_writeback)."""
        q = self._writeback_wait
        if q is None:
            q = self._writeback_wait = WaitQueue(f"writeback:{self.pfn}")
        return q

    @property
    def nr_pages(self) -> int:
        return 1 << self.order

    @property
    def size_bytes(self) -> int:
        return PAGE_SIZE << self.order

    @property
    def paddr(self) -> int:
        return self.pfn << PAGE_SHIFT

    @property
    def is_anon(self) -> bool:
        return isinstance(self.mapping, AnonVma)

    @property
    def file_mapping(self) -> "AddressSpace | None":
        return self.mapping if isinstance(self.mapping, AddressSpace) else None

    def test(self, flag: int) -> bool:
        """Whether flag ``flag`` (a :class:`PG` value) is set."""
        return self.flags & flag != 0

    def set(self, flag: int) -> None:
        self.flags |= flag

    def clear(self, flag: int) -> None:
        self.flags &= ~flag

    @property
    def is_pinned(self) -> bool:
        """folio_maybe_dma_pinned()."""
        if self.order:
            return self.pincount > 0
        return self.refcount >= GUP_PIN_COUNTING_BIAS

    def __repr__(self) -> str:
        kind = "anon" if self.is_anon else ("file" if self.mapping else "none")
        return (f"Page(pfn={self.pfn}, node={self.node}, order={self.order}, {kind}, "
                f"flags={PG.names(self.flags)}, ref={self.refcount}, map={self.mapcount})")


class PteKind(enum.Enum):
    NONE = "none"
    PRESENT = "present"
    MIGRATION = "migration"
    PROTNONE = "protnone"


@dataclass(slots=True)
class Pte:
    kind: PteKind
    pfn: int = -1
    writable: bool = True
    young: bool = False
    dirty: bool = False

    @property
    def present(self) -> bool:
        return self.kind is PteKind.PRESENT


class VmaKind(enum.Enum):
    ANON = "anon"        # anonymous private
    SHARED = "shared"    # anonymous shared (shmem)
    FILE = "file"        # file-backed, through a page cache


class AddressSpace:
    """A file's (or shmem segment's) page cache: ``pages`` is the xarray, ``lock`` its xa_lock."""

    def __init__(self, name: str, swapbacked: bool, kaddr: int, nr_pages: int | None = None):
        self.name = name
        self.swapbacked = swapbacked   # shmem
        self.pages: dict[int, Page] = {}
        self.i_mmap: list[VMA] = []
        self.kaddr = kaddr             # physical address of the xa_lock / xarray root line
        self.nr_pages = nr_pages       # file size in pages (None: grows on demand)
        self.lock_holder: object | None = None
        self.lock_wait = WaitQueue(f"xa_lock:{name}")
        self.has_migrate_folio = True  # a_ops->migrate_folio (filemap_migrate_folio)

    def slot_paddr(self, index: int) -> int:
        # xarray leaf node holding slot ``index``: 64 slots per node, 576-byte nodes.
        return self.kaddr + 64 + (index // 64) * 576 + (index % 64) * 8

    def __repr__(self) -> str:
        return f"AddressSpace({self.name!r}, pages={len(self.pages)})"


class AnonVma:
    def __init__(self, kaddr: int):
        self.vmas: list[VMA] = []
        self.kaddr = kaddr             # rwsem line


# Changes that can take pages out of an anonymous region the replay loop serves first touches
# in (hwemu.machine.osfault): a VMA that shrinks or changes kind, policy or THP, a task policy
# or VMA list that changes. Counted so that the region list is rebuilt; growth is not counted
# (a region is only added to, by hwemu.sim.loopfaults, after a fault in it).
_LAYOUT = [0]
_VMA_SHRINK = {"start": lambda old, new: new > old, "end": lambda old, new: new < old}
_VMA_FIELDS = {"kind", "file", "pgoff", "policy", "thp", "mm"}


def layout_generation() -> int:
    """How many such changes were made so far (by any process of any kernel)."""
    return _LAYOUT[0]


@dataclass(eq=False)
class VMA:
    mm: "MM"
    start: int
    end: int
    kind: VmaKind
    file: AddressSpace | None = None
    pgoff: int = 0                     # file offset of ``start``, in pages
    policy: object | None = None       # hwemu.linux.mempolicy.Mempolicy (mbind)
    thp: bool = False                  # MADV_HUGEPAGE / THP always
    anon_vma: AnonVma | None = None
    kaddr: int = 0
    name: str = ""

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def linear_index(self, addr: int) -> int:
        """Page index in the backing object (file offset, or the anon linear page index)."""
        if self.kind is VmaKind.ANON:
            return addr >> PAGE_SHIFT
        return self.pgoff + ((addr - self.start) >> PAGE_SHIFT)

    def addr_of_index(self, index: int) -> int | None:
        if self.kind is VmaKind.ANON:
            addr = index << PAGE_SHIFT
        else:
            addr = self.start + ((index - self.pgoff) << PAGE_SHIFT)
        return addr if self.contains(addr) else None

    def __repr__(self) -> str:
        return f"VMA(pid={self.mm.pid}, {self.start:#x}-{self.end:#x}, {self.kind.value})"

    def __setattr__(self, name, value):
        d = self.__dict__
        if name in d and (name in _VMA_FIELDS
                          or (name in _VMA_SHRINK and _VMA_SHRINK[name](d[name], value))):
            _LAYOUT[0] += 1
        object.__setattr__(self, name, value)


@dataclass(eq=False)
class Thread:
    tid: int
    mm: "MM"
    cpu: int
    il_prev: int = -1        # interleave state of the task policy
    il_weight: int = 0
    syscall: object = None   # the engine Process of the system call the thread is inside
    pending_syscalls: list = field(default_factory=list)   # calls issued while inside one


_VMA_START = attrgetter("start")     # find_vma's key: a C-level getter, no Python call


@dataclass(eq=False)
class MM:
    """mm_struct: VMAs, page tables (PTEs and PMDs) and the task memory policy."""

    pid: int
    name: str = ""
    vmas: list[VMA] = field(default_factory=list)     # sorted by start
    ptes: dict[int, Pte] = field(default_factory=dict)  # vpn -> Pte
    pmds: dict[int, Pte] = field(default_factory=dict)  # huge page number -> Pte (2 MiB)
    # the vpns of the present PTEs, in order, made by the first NUMA scan (present_index) and
    # from then on kept by Kernel.notify_pte / notify_ptes, which every change of an entry
    # goes through: a scan takes its next run from here without walking the table
    present: SortedSet | None = None
    pte_tables: dict[int, int] = field(default_factory=dict)  # vaddr>>21 -> pfn of PTE table
    pmd_tables: dict[int, int] = field(default_factory=dict)  # vaddr>>30 -> pfn of PMD table
    policy: object | None = None        # task mempolicy (set_mempolicy)
    threads: dict[int, Thread] = field(default_factory=dict)
    thp: bool = False                  # THP for new anonymous VMAs
    auto_vma: bool = True              # faults outside every VMA create an anonymous VMA
    kaddr: int = 0

    def __setattr__(self, name, value):
        if name in ("vmas", "policy") and name in self.__dict__:
            _LAYOUT[0] += 1
        object.__setattr__(self, name, value)

    def find_vma(self, addr: int) -> VMA | None:
        """The VMA containing ``addr``, or None (a binary search of :attr:`vmas`, which are
        sorted by start and never overlap)."""
        vmas = self.vmas
        i = bisect_right(vmas, addr, key=_VMA_START) - 1
        if i >= 0:
            v = vmas[i]
            if addr < v.end:
                return v
        return None

    def insert_vma(self, vma: VMA) -> None:
        for v in self.vmas:
            if vma.start < v.end and v.start < vma.end:
                raise ValueError(f"{vma!r} overlaps {v!r}")
        self.vmas.append(vma)
        self.vmas.sort(key=lambda v: v.start)

    @property
    def cpumask(self) -> set[int]:
        """mm_cpumask: the CPUs currently running this address space (x86 clears a CPU's bit
        when it switches to another mm)."""
        return {t.cpu for t in self.threads.values()}

    def lookup(self, addr: int) -> tuple[Pte | None, bool]:
        """(entry, is_pmd) mapping ``addr``: the PMD entry of a 2 MiB mapping or the PTE."""
        pmd = self.pmds.get(addr >> HPAGE_SHIFT)
        if pmd is not None and pmd.kind is not PteKind.NONE:
            return pmd, True
        return self.ptes.get(addr >> PAGE_SHIFT), False

    def present_index(self) -> SortedSet:
        """:attr:`present`, made from the PTEs on first use."""
        if self.present is None:
            self.present = SortedSet(vpn for vpn, e in self.ptes.items()
                                     if e.kind is PteKind.PRESENT)
        return self.present

    def keep_present(self, items) -> None:
        """Bring :attr:`present`, once made, up to date with the changed entries ``items``
        ((addr, is_pmd, entry or None), each as it is now)."""
        present = self.present
        if present is None:
            return
        gone = []
        for addr, is_pmd, entry in items:
            if not is_pmd:
                if entry is not None and entry.kind is PteKind.PRESENT:
                    present.add(addr >> PAGE_SHIFT)
                else:
                    gone.append(addr >> PAGE_SHIFT)
        if len(gone) > 1:
            # a scan's run of present entries is a run of the index: cut out at once
            i = present.bisect_left(gone[0])
            if present[i:i + len(gone)] == gone:
                del present[i:i + len(gone)]
                return
        for vpn in gone:
            present.discard(vpn)

    def pte_paddr(self, addr: int, is_pmd: bool) -> int | None:
        if is_pmd:
            t = self.pmd_tables.get(addr >> 30)
            return None if t is None else (t << PAGE_SHIFT) + ((addr >> HPAGE_SHIFT) & 511) * 8
        t = self.pte_tables.get(addr >> HPAGE_SHIFT)
        return None if t is None else (t << PAGE_SHIFT) + ((addr >> PAGE_SHIFT) & 511) * 8
