"""Per-node physical frame allocators with fallback ordered by distance (the zonelist).

Each node's frames are split into 2 MiB blocks (order 9). An order-9 request takes a whole free
block; an order-0 request takes the lowest free frame of a partly used block, or splits the
lowest free block (a two-level buddy allocator: deterministic, lowest address first). Freeing
the last used frame of a block makes the block whole again.

The first frames of every node are reserved for the kernel: the node's ``struct page`` array
(memmap, 64 bytes per frame, on the node itself as Linux places it) and a small slab area for
locks, VMAs, anon_vmas and page-cache roots.
"""

from __future__ import annotations

import bisect
import math
from itertools import chain, islice
from dataclasses import dataclass

from sortedcontainers import SortedSet

from hwemu.linux.hw import Hardware, PAGE_SHIFT
from hwemu.numa import fallback_order
from hwemu.linux.mm import HPAGE_NR

STRUCT_PAGE_BYTES = 64
SLAB_FRAMES = 64


class NodeAllocator:
    """Frames of one node. ``capacity`` counts allocatable frames (after the reserve)."""

    def __init__(self, node: int, start_pfn: int, frames: int):
        self.node = node
        self.start_pfn = start_pfn
        self.frames = frames
        memmap_frames = -(-frames * STRUCT_PAGE_BYTES // 4096)
        self.reserved = memmap_frames + SLAB_FRAMES
        if self.reserved >= frames:
            raise ValueError(f"node {node}: {frames} frames cannot hold its own memmap")
        self.memmap_paddr = start_pfn << PAGE_SHIFT
        self.slab_paddr = (start_pfn + memmap_frames) << PAGE_SHIFT
        self.slab_bytes = SLAB_FRAMES * 4096
        self._slab_next = 0
        first = start_pfn + self.reserved
        end = start_pfn + frames
        self.capacity = end - first
        self.free_count = self.capacity
        self.gen = 0                     # allocations and frees so far (peek stays valid)
        # Blocks are identified by their first pfn (aligned to 512 frames globally).
        self._whole = SortedSet()        # completely free, complete blocks
        # block -> its free frames, ascending (a plain list: at most 512, and peek iterates
        # them in C)
        self._partial: dict[int, list[int]] = {}
        self._partial_order = SortedSet()  # blocks with some free frames, not whole
        self._used_in_block: dict[int, int] = {}
        blk = (first // HPAGE_NR) * HPAGE_NR
        while blk < end:
            lo, hi = max(blk, first), min(blk + HPAGE_NR, end)
            if lo == blk and hi == blk + HPAGE_NR:
                self._whole.add(blk)
            else:
                self._partial[blk] = list(range(lo, hi))
                self._partial_order.add(blk)
            self._used_in_block[blk] = 0
            blk += HPAGE_NR

    def peek(self, k: int) -> list[int]:
        """The next ``k`` (or fewer, if the node has fewer free) frames that order-0
        allocations would return, in that order, without allocating them."""
        part = self._partial
        out = list(islice(chain.from_iterable(map(part.__getitem__, self._partial_order)), k))
        if len(out) == k:
            return out
        for blk in self._whole:
            out.extend(range(blk, min(blk + HPAGE_NR, blk + k - len(out))))
            if len(out) == k:
                return out
        return out

    def slab_alloc(self, nbytes: int = 64) -> int:
        """A kernel object address in this node's slab area (cycles through it)."""
        nbytes = -(-nbytes // 64) * 64
        if self._slab_next + nbytes > self.slab_bytes:
            self._slab_next = 0
        addr = self.slab_paddr + self._slab_next
        self._slab_next += nbytes
        return addr

    def struct_page_paddr(self, pfn: int) -> int:
        return self.memmap_paddr + (pfn - self.start_pfn) * STRUCT_PAGE_BYTES

    def alloc(self, order: int) -> int | None:
        self.gen += 1
        if order == 0:
            if self._partial_order:
                blk = self._partial_order[0]
                frames = self._partial[blk]
                pfn = frames.pop(0)
                if not frames:
                    del self._partial[blk]
                    self._partial_order.discard(blk)
            elif self._whole:
                blk = self._whole.pop(0)
                frames = list(range(blk + 1, blk + HPAGE_NR))
                self._partial[blk] = frames
                self._partial_order.add(blk)
                pfn = blk
            else:
                return None
            self._used_in_block[blk] += 1
            self.free_count -= 1
            return pfn
        if order == 9:
            if not self._whole:
                return None
            blk = self._whole.pop(0)
            self._used_in_block[blk] = HPAGE_NR
            self.free_count -= HPAGE_NR
            return blk
        raise ValueError(f"unsupported order {order}")

    def free(self, pfn: int, order: int) -> None:
        self.gen += 1
        blk = (pfn // HPAGE_NR) * HPAGE_NR
        if order == 9:
            assert self._used_in_block[blk] == HPAGE_NR, "freeing a block that is not whole"
            self._used_in_block[blk] = 0
            self._whole.add(blk)
            self.free_count += HPAGE_NR
            return
        frames = self._partial.get(blk)
        if frames is None:
            frames = self._partial[blk] = []
            self._partial_order.add(blk)
        i = bisect.bisect_left(frames, pfn)
        assert i == len(frames) or frames[i] != pfn, f"double free of pfn {pfn}"
        frames.insert(i, pfn)
        self._used_in_block[blk] -= 1
        self.free_count += 1
        if self._used_in_block[blk] == 0 and len(frames) == HPAGE_NR:
            del self._partial[blk]
            self._partial_order.discard(blk)
            self._whole.add(blk)

    def free_huge_blocks(self) -> int:
        return len(self._whole)


class PageAllocator:
    """All nodes' allocators plus the distance-ordered fallback lists (zonelists)."""

    def __init__(self, hw: Hardware):
        self.hw = hw
        self.nodes = [NodeAllocator(n, hw.node_start_pfn(n), hw.node_frames(n))
                      for n in range(hw.num_nodes)]
        self.zonelists = fallback_order(hw.num_nodes, hw.distance)

    def node_of_pfn(self, pfn: int) -> int:
        for a in self.nodes:
            if a.start_pfn <= pfn < a.start_pfn + a.frames:
                return a.node
        raise ValueError(f"pfn {pfn} is outside every node")

    def struct_page_paddr(self, pfn: int) -> int:
        return self.nodes[self.node_of_pfn(pfn)].struct_page_paddr(pfn)

    def alloc(self, order: int, preferred: int, nodemask: set[int] | None = None,
              thisnode: bool = False) -> tuple[int, int] | None:
        """(pfn, node) or None. ``thisnode`` (__GFP_THISNODE): no fallback."""
        order_nodes = [preferred] if thisnode else self.zonelists[preferred]
        for n in order_nodes:
            if nodemask is not None and n not in nodemask:
                continue
            pfn = self.nodes[n].alloc(order)
            if pfn is not None:
                return pfn, n
        return None

    def free(self, pfn: int, order: int) -> None:
        self.nodes[self.node_of_pfn(pfn)].free(pfn, order)


# -- watermarks (mm/page_alloc.c __setup_per_zone_wmarks) -------------------------------------
@dataclass
class Watermarks:
    """Per-node watermarks in frames (``zone->_watermark[]``)."""

    min: list[int]
    low: list[int]
    high: list[int]
    promo: list[int]


def compute_watermarks(kernel, scale_factor: int, min_free_bytes: int | None = None) -> Watermarks:
    """``__setup_per_zone_wmarks`` over the allocatable frames of every node. Without
    ``min_free_bytes`` Linux's ``calculate_min_free_kbytes`` is used:
    ``int_sqrt(lowmem_kbytes * 16)`` clamped to [128, 262144] KiB."""
    nodes = kernel.alloc.nodes
    managed = [n.capacity for n in nodes]
    total = sum(managed)
    if min_free_bytes is None:
        kb = math.isqrt(total * 4 * 16)
        kb = min(max(kb, 128), 262144)
        min_free_pages = kb // 4
    else:
        min_free_pages = min_free_bytes >> PAGE_SHIFT
    wm = Watermarks([], [], [], [])
    for m in managed:
        mn = min_free_pages * m // total if total else 0
        tmp = max(mn >> 2, m * scale_factor // 10000)
        wm.min.append(mn)
        wm.low.append(mn + tmp)
        wm.high.append(mn + 2 * tmp)
        wm.promo.append(mn + 3 * tmp)
    return wm
