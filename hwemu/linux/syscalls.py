"""System calls that place and move pages: move_pages, migrate_pages, mbind,
set_mempolicy, and /proc/<pid>/numa_maps.

Each call is a generator (run as a process on the calling CPU, see :func:`run_syscall`) that
returns the value Linux returns: 0, a positive count of pages not migrated, or ``-errno``.
``move_pages`` also fills a status array exactly as ``do_pages_move``/``do_pages_stat`` do:
an entry gets the node of the page or a negative errno when the kernel stores one; entries
the kernel never stores (pages of a batch that failed to migrate, and every page after it:
the call stops there) keep the value the caller passed in (``status_init``). The reason each
page did not move is reported separately (``MovePagesResult.reasons``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Generator

from hwemu.errors import HwemuError
from hwemu.linux.kernel import Kernel, Meter
from hwemu.linux.mempolicy import (
    MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT, Mempolicy, policy_node,
)
from hwemu.linux.migrate import (
    EACCES, EBUSY, EFAULT, EINVAL, EIO, ENODEV, ENOENT, ERRNO_NAMES, MR_MEMPOLICY_MBIND,
    MR_SYSCALL, MigrateResult, Migrator, alloc_on_node,
)
from hwemu.linux.mm import HPAGE_SHIFT, PAGE_SHIFT, PAGE_SIZE, PG, Page, PteKind, VMA, VmaKind
from hwemu.linux.migrate import STEP_CYCLES

NUMA_NO_NODE = -1


def errno_name(value) -> str:
    if isinstance(value, int) and value < 0:
        return "-" + ERRNO_NAMES.get(-value, str(-value))
    return str(value)


@dataclass
class MovePagesResult:
    ret: int
    status: list
    reasons: dict[int, str] = field(default_factory=dict)   # index -> why it did not move
    migrations: list[MigrateResult] = field(default_factory=list)
    elapsed_ps: int = 0


def run_syscall(kernel: Kernel, gen: Generator, cpu: int, name: str = "syscall"):
    """Run a syscall generator as a process on ``cpu`` until it returns (other due events run
    meanwhile). Returns its value; ``elapsed_ps`` is set on results that have it."""
    proc = kernel.engine.spawn(gen, cpu, name=name)
    value = kernel.engine.run_process(proc)
    if hasattr(value, "elapsed_ps"):
        value.elapsed_ps = proc.end_ps - proc.start_ps
    return value


def _entry_cost(kernel: Kernel, cpu: int) -> Generator:
    m = Meter(kernel, cpu)
    m.cycles(STEP_CYCLES["syscall"])
    cost = m.take()
    yield cost
    kernel.charge_step("syscall", cost)


def _lookup(kernel: Kernel, m: Meter, mm, addr: int):
    """vma_lookup + folio walk: (err, page). err: -EFAULT (no VMA), -ENOENT (not present)."""
    m.cycles(STEP_CYCLES["lookup"])
    m.touch(mm.kaddr)
    vma = mm.find_vma(addr)
    if vma is None:
        return -EFAULT, None
    m.touch(vma.kaddr)
    entry, is_pmd = mm.lookup(addr)
    kernel.walk_cost(m, mm, addr, is_pmd)
    if entry is None or entry.kind in (PteKind.NONE, PteKind.MIGRATION):
        return -ENOENT, None
    page = kernel.pages[entry.pfn]
    m.page(page)
    return 0, page


# -- move_pages ------------------------------------------------------------------------------
def move_pages(kernel: Kernel, cpu: int, pid: int, pages: list[int], nodes: list[int] | None,
               flags: int = 0, status_init=None) -> Generator:
    """move_pages(2). ``pages`` are virtual addresses; ``nodes`` None = query only."""
    yield from _entry_cost(kernel, cpu)
    status = [status_init] * len(pages)
    result = MovePagesResult(0, status)
    if flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        result.ret = -EINVAL
        return result
    if pid not in kernel.mms:
        result.ret = -3  # -ESRCH
        return result
    mm = kernel.mms[pid]
    if nodes is None:
        m = Meter(kernel, cpu)
        for i, addr in enumerate(pages):
            err, page = _lookup(kernel, m, mm, addr)
            status[i] = err if err else page.node
        cost = m.take()
        yield cost
        kernel.charge_step("lookup", cost, calls=0)
        return result
    if len(nodes) != len(pages):
        raise HwemuError(f"move_pages: {len(pages)} pages but {len(nodes)} nodes")
    kernel.count("linux.syscall", "move_pages_calls")
    migrate_all = bool(flags & MPOL_MF_MOVE_ALL)
    nr = len(pages)
    pagelist: list[Page] = []
    idx_of: dict[int, int] = {}
    current_node = NUMA_NO_NODE
    start = 0

    def move_and_store(node: int, i: int) -> Generator:
        """move_pages_and_store_status for pages[start:i]."""
        if not pagelist:
            return 0
        mig = Migrator(kernel, cpu, alloc_on_node(kernel, node), "sync", MR_SYSCALL)
        # frames of each large folio: the pieces of a split THP report under its address
        spans = [(p.pfn, p.pfn + p.nr_pages, idx_of.get(id(p))) for p in pagelist if p.order]
        res = yield from mig.migrate_pages(list(pagelist))
        result.migrations.append(res)
        pieces_left: dict[int, int] = {}
        for p in res.remaining:
            j = idx_of.get(id(p))
            if j is not None:
                result.reasons[j] = res.reasons.get(p.pfn, "not migrated")
                continue
            for lo, hi, jj in spans:
                if jj is not None and lo <= p.pfn < hi:
                    pieces_left[jj] = pieces_left.get(jj, 0) + 1
        for j, n in pieces_left.items():
            result.reasons[j] = f"ENOMEM: THP split, {n} of 512 pieces not moved"
        if res.remaining:
            yield from mig.putback(res.remaining)
        pagelist.clear()
        idx_of.clear()
        err = res.rc
        if err:
            if err > 0:
                err += nr - i
            return err
        for j in range(start, i):
            status[j] = node
        return 0

    err = 0
    i = 0
    aborted = False
    while i < nr:
        addr, node = pages[i], nodes[i]
        if not isinstance(node, int) or node < 0 or node >= kernel.hw.num_nodes:
            err = -ENODEV
            break
        if current_node == NUMA_NO_NODE:
            current_node, start = node, i
        elif node != current_node:
            err = yield from move_and_store(current_node, i)
            if err:
                aborted = True
                break
            start, current_node = i, node
        # add_folio_for_migration
        m = Meter(kernel, cpu)
        e, page = _lookup(kernel, m, mm, addr)
        if not e:
            if page.node == current_node:
                e = 0
            elif page.mapcount > 1 and not migrate_all:
                e = -EACCES
            else:
                m.cycles(STEP_CYCLES["isolate"])
                if kernel.isolate_lru_page(page, m):
                    e = 1
                    pagelist.append(page)
                    idx_of[id(page)] = i
                else:
                    e = -EBUSY
        cost = m.take()
        yield cost
        kernel.charge_step("lookup", cost, calls=0)
        if e > 0:
            i += 1
            continue
        status[i] = e if e else current_node
        if e:
            result.reasons[i] = errno_name(e)
        err = yield from move_and_store(current_node, i)
        if err:
            if err > 0:
                err -= 1
            aborted = True
            break
        current_node = NUMA_NO_NODE
        i += 1
    if not aborted:
        err1 = yield from move_and_store(current_node, i)
        if err >= 0:
            err = err1
    result.ret = err
    return result


# -- migrate_pages ---------------------------------------------------------------------------
def _queue_pages(kernel: Kernel, m: Meter, mm, vmas, want, flags: int) -> tuple[list[Page], int]:
    """queue_pages_range: isolate every page whose node satisfies ``want(node)``; shared pages
    only with MPOL_MF_MOVE_ALL (skipping them is not a failure). Returns (pages, nr_failed)."""
    out, seen, failed = [], set(), 0
    for vma in vmas:
        lo, hi = vma.start, vma.end
        for key in sorted(k for k in mm.pmds if lo <= (k << HPAGE_SHIFT) < hi):
            e = mm.pmds[key]
            if e.kind not in (PteKind.PRESENT, PteKind.PROTNONE):
                continue
            failed += _queue_one(kernel, m, kernel.pages[e.pfn], want, flags, out, seen)
        for vpn in sorted(k for k in mm.ptes if lo >> PAGE_SHIFT <= k < hi >> PAGE_SHIFT):
            e = mm.ptes[vpn]
            if e.kind not in (PteKind.PRESENT, PteKind.PROTNONE):
                continue
            m.cycles(20)
            failed += _queue_one(kernel, m, kernel.pages[e.pfn], want, flags, out, seen)
    return out, failed


def _queue_one(kernel, m, page: Page, want, flags, out, seen) -> int:
    if id(page) in seen or not want(page.node):
        return 0
    seen.add(id(page))
    if (flags & MPOL_MF_MOVE_ALL) or page.mapcount <= 1:
        m.cycles(STEP_CYCLES["isolate"])
        if kernel.isolate_lru_page(page, m):
            out.append(page)
            return 0
        return 1
    return 0


def _node_remap(s: int, frm: list[int], to: list[int]) -> int:
    """node_remap: the node of ``to`` at the position (modulo its size) of ``s`` in ``frm``."""
    return to[sorted(frm).index(s) % len(to)]


def migrate_pages(kernel: Kernel, cpu: int, pid: int, old_nodes: list[int], new_nodes: list[int],
                  move_all: bool = False) -> Generator:
    """migrate_pages(2). ``move_all``: the caller has CAP_SYS_NICE (Linux then uses
    MPOL_MF_MOVE_ALL, moving pages shared with other processes too)."""
    yield from _entry_cost(kernel, cpu)
    if pid not in kernel.mms:
        return -3
    for n in list(old_nodes) + list(new_nodes):
        if not 0 <= n < kernel.hw.num_nodes:
            return -EINVAL
    kernel.count("linux.syscall", "migrate_pages_calls")
    mm = kernel.mms[pid]
    frm, to = sorted(set(old_nodes)), sorted(set(new_nodes))
    if not frm or not to:
        return 0
    flags = MPOL_MF_MOVE_ALL if move_all else MPOL_MF_MOVE
    tmp = list(frm)
    busy = 0
    while tmp:
        source, dest = None, 0
        for s in tmp:
            if len(frm) != len(to) and s in to:
                continue
            d = _node_remap(s, frm, to)
            if s == d:
                continue
            source, dest = s, d
            if d not in tmp:
                break
        if source is None:
            break
        tmp.remove(source)
        # migrate_to_node
        m = Meter(kernel, cpu)
        pagelist, nr_failed = _queue_pages(kernel, m, mm, list(mm.vmas), lambda n, s=source: n == s, flags)
        cost = m.take()
        yield cost
        kernel.charge_step("isolate", cost, calls=0)
        err = 0
        if pagelist:
            mig = Migrator(kernel, cpu, alloc_on_node(kernel, dest), "sync", MR_SYSCALL)
            res = yield from mig.migrate_pages(pagelist)
            err = res.rc
            if res.remaining:
                yield from mig.putback(res.remaining)
        if err >= 0:
            err += nr_failed
        if err > 0:
            busy += err
        if err < 0:
            return err
    return busy


# -- mbind / set_mempolicy -------------------------------------------------------------------
def _split_vma(kernel: Kernel, vma: VMA, addr: int) -> VMA:
    """Split ``vma`` at ``addr``; returns the upper part (sharing anon_vma / file)."""
    mm = vma.mm
    upper = VMA(mm=mm, start=addr, end=vma.end, kind=vma.kind, file=vma.file,
                pgoff=vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT), policy=vma.policy,
                thp=vma.thp, anon_vma=vma.anon_vma, kaddr=kernel.alloc.nodes[0].slab_alloc(192),
                name=vma.name)
    vma.end = addr
    mm.vmas.append(upper)
    mm.vmas.sort(key=lambda v: v.start)
    if vma.anon_vma is not None:
        vma.anon_vma.vmas.append(upper)
    if vma.file is not None:
        vma.file.i_mmap.append(upper)
    return upper


def mbind(kernel: Kernel, cpu: int, pid: int, addr: int, length: int, policy: Mempolicy,
          flags: int = 0) -> Generator:
    """mbind(2): set ``policy`` on [addr, addr+length) (splitting VMAs at the edges) and, with
    MPOL_MF_MOVE / MPOL_MF_MOVE_ALL, migrate the pages that violate it. MPOL_MF_STRICT: -EIO if
    a page could not be placed."""
    yield from _entry_cost(kernel, cpu)
    if pid not in kernel.mms:
        return -3
    if flags & ~(MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        return -EINVAL
    if addr % PAGE_SIZE:
        return -EINVAL
    for n in policy.nodes:
        if not 0 <= n < kernel.hw.num_nodes:
            return -EINVAL
    length = -(-length // PAGE_SIZE) * PAGE_SIZE
    end = addr + length
    if end == addr:
        return 0
    mm = kernel.mms[pid]
    kernel.count("linux.syscall", "mbind_calls")
    # Every page of the range must be mapped by some VMA (-EFAULT otherwise).
    a = addr
    while a < end:
        v = mm.find_vma(a)
        if v is None:
            return -EFAULT
        a = v.end
    if policy.mode == "default":
        flags &= ~MPOL_MF_STRICT
    allowed = policy.allowed(kernel.hw.num_nodes)
    # Split at the edges, then collect the VMAs of the range.
    v = mm.find_vma(addr)
    if v.start < addr:
        _split_vma(kernel, v, addr)
    v = mm.find_vma(end - 1)
    if v.end > end:
        _split_vma(kernel, v, end)
    vmas = [v for v in mm.vmas if addr <= v.start and v.end <= end]
    m = Meter(kernel, cpu)
    pagelist, nr_failed = [], 0
    if flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL | MPOL_MF_STRICT):
        qflags = flags if flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) else 0
        want = lambda n: n not in allowed  # noqa: E731 (MPOL_MF_INVERT)
        if qflags:
            pagelist, nr_failed = _queue_pages(kernel, m, mm, vmas, want, qflags)
        else:
            # STRICT alone: any misplaced page is a failure.
            for vma in vmas:
                for vpn, e in mm.ptes.items():
                    if vma.start >> PAGE_SHIFT <= vpn < vma.end >> PAGE_SHIFT and \
                            e.kind is PteKind.PRESENT and want(kernel.pages[e.pfn].node):
                        nr_failed += 1
                for key, e in mm.pmds.items():
                    if vma.start <= (key << HPAGE_SHIFT) < vma.end and \
                            e.kind is PteKind.PRESENT and want(kernel.pages[e.pfn].node):
                        nr_failed += 1
    for vma in vmas:
        vma.policy = None if policy.mode == "default" else policy
        m.touch(vma.kaddr, write=True)
    cost = m.take()
    yield cost
    kernel.charge_step("isolate", cost, calls=0)
    if pagelist:
        def get_new(src: Page) -> Page | None:
            # alloc_migration_target_by_mpol: the policy's node for the page's address.
            addrs = [a for vma in vmas for a in [vma.addr_of_index(src.index)] if a is not None]
            where = addrs[0] if addrs else addr
            vma = mm.find_vma(where)
            shift = PAGE_SHIFT + src.order
            ilx = (where >> shift) if vma.kind is VmaKind.ANON else \
                (vma.pgoff >> src.order) + ((where - vma.start) >> shift)
            place = policy_node(policy, kernel.hw.cpu_node(cpu), kernel.hw.distance,
                                kernel.hw.num_nodes, True, ilx)
            mask = place.nodemask if place.nodemask is not None else (
                set(policy.nodes) if policy.mode in ("interleave", "weighted_interleave") else None)
            if src.order:
                return kernel.alloc_page(src.order, place.preferred, mask, thisnode=True)
            return kernel.alloc_page(0, place.preferred, mask)
        mig = Migrator(kernel, cpu, get_new, "sync", MR_MEMPOLICY_MBIND)
        res = yield from mig.migrate_pages(pagelist)
        nr_failed += (res.rc != 0)
        if res.remaining:
            yield from mig.putback(res.remaining)
    if nr_failed and (flags & MPOL_MF_STRICT):
        return -EIO
    return 0


def set_mempolicy(kernel: Kernel, pid: int, policy: Mempolicy) -> int:
    mm = kernel.mm(pid)
    policy.check_nodes(kernel.hw.num_nodes, "set_mempolicy")
    mm.policy = None if policy.mode == "default" else policy
    return 0


# -- /proc/<pid>/numa_maps -------------------------------------------------------------------
def _keys_in(keys: list[int], lo: int, hi: int) -> list[int]:
    """The keys ``k`` of the sorted list ``keys`` with ``lo <= k < hi``."""
    return keys[bisect.bisect_left(keys, lo):bisect.bisect_left(keys, hi)]


def numa_maps(kernel: Kernel, pid: int) -> tuple[str, list[dict]]:
    """(text as /proc/<pid>/numa_maps prints it, one dict per VMA)."""
    mm = kernel.mm(pid)
    lines, rows = [], []
    # the mapped huge and 4 KiB pages in address order, once: each VMA takes its slice
    pmd_keys, pte_keys = sorted(mm.pmds), sorted(mm.ptes)
    for vma in mm.vmas:
        pol = vma.policy or mm.policy
        desc = pol.describe() if pol is not None else "default"
        md = {"pages": 0, "anon": 0, "dirty": 0, "mapcount_max": 0, "active": 0,
              "writeback": 0, "nodes": {}}

        def gather(page: Page, entry, nr: int):
            md["pages"] += nr
            if page.is_anon:
                md["anon"] += nr
            if entry.dirty or page.test(PG.DIRTY):
                md["dirty"] += nr
            md["mapcount_max"] = max(md["mapcount_max"], page.mapcount)
            if page.test(PG.ACTIVE) or page.test(PG.UNEVICTABLE):
                md["active"] += nr
            if page.test(PG.WRITEBACK):
                md["writeback"] += nr
            md["nodes"][page.node] = md["nodes"].get(page.node, 0) + nr

        # huge-page keys k with start <= k << 21 < end
        for key in _keys_in(pmd_keys, -(-vma.start >> HPAGE_SHIFT), -(-vma.end >> HPAGE_SHIFT)):
            e = mm.pmds[key]
            if e.kind in (PteKind.PRESENT, PteKind.PROTNONE):
                gather(kernel.pages[e.pfn], e, 512)
        for vpn in _keys_in(pte_keys, vma.start >> PAGE_SHIFT, vma.end >> PAGE_SHIFT):
            e = mm.ptes[vpn]
            if e.kind in (PteKind.PRESENT, PteKind.PROTNONE):
                gather(kernel.pages[e.pfn], e, 1)
        text = f"{vma.start:08x} {desc}"
        if vma.kind is VmaKind.FILE:
            text += f" file={vma.file.name}"
        elif vma.kind is VmaKind.SHARED:
            # Linux prints the shmem file: a POSIX shm object under /dev/shm, or the
            # deleted /dev/zero of a MAP_SHARED|MAP_ANONYMOUS mapping (no "shared" token)
            name = vma.file.name if vma.file is not None else ""
            text += (f" file=/dev/shm/{name[4:]}" if name.startswith("shm:")
                     else " file=/dev/zero\\040(deleted)")
        if md["pages"]:
            if md["anon"]:
                text += f" anon={md['anon']}"
            if md["dirty"]:
                text += f" dirty={md['dirty']}"
            if md["pages"] != md["anon"] and md["pages"] != md["dirty"]:
                text += f" mapped={md['pages']}"
            if md["mapcount_max"] > 1:
                text += f" mapmax={md['mapcount_max']}"
            if md["active"] < md["pages"]:
                text += f" active={md['active']}"
            if md["writeback"]:
                text += f" writeback={md['writeback']}"
            for n in sorted(md["nodes"]):
                text += f" N{n}={md['nodes'][n]}"
            text += " kernelpagesize_kB=4"
        lines.append(text)
        rows.append({"start": vma.start, "end": vma.end, "policy": desc, "kind": vma.kind.value,
                     "file": vma.file.name if vma.file else None, "pages": md["pages"],
                     "anon": md["anon"], "dirty": md["dirty"], "mapmax": md["mapcount_max"],
                     "active": md["active"], "writeback": md["writeback"],
                     "nodes": dict(sorted(md["nodes"].items()))})
    return "\n".join(lines) + ("\n" if lines else ""), rows
