"""The parameter table of a machine description: every key, its kind, unit and meaning.

This table drives the TOML loader (:mod:`hwemu.machine.config`), ``hwemu machine show`` and
the parameter table in docs/machine.md, so the three never disagree.

Kinds: ``size`` ("32KiB"), ``time`` ("13.75ns"), ``freq`` ("2.1GHz"), ``bw`` ("20.8GB/s"),
``int``, ``float``, ``bool``, ``str``, ``choice`` (one of ``choices``), ``nodelist`` (list of node ids).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Param:
    section: str
    key: str
    kind: str
    unit: str
    default: object
    description: str
    choices: tuple = ()


# the policies of the set-associative core (hwemu.cachesim.setassoc.POLICIES)
REPLACEMENT_POLICIES = ("lru", "fifo", "random", "srrip", "plru")
PAGE_POLICIES = ("open", "close")
SCHEDULERS = ("frfcfs", "fcfs")

_CACHE = (
    ("size", "size", "bytes", None, "capacity"),
    ("ways", "int", "ways", None, "associativity"),
    ("latency", "int", "cycles", None, "load-to-use latency of a hit at this level, core cycles "
     "(cumulative: the time from issue until data returns when this level hits)"),
    ("policy", "choice", "", "lru", "replacement policy: lru, fifo, random (seeded by --seed), "
     "srrip (2-bit SRRIP-HP) or plru (tree pseudo-LRU; power-of-two ways)"),
)


def _cache_params(section: str, what: str, defaults: dict) -> list[Param]:
    out = []
    for key, kind, unit, default, desc in _CACHE:
        out.append(Param(section, key, kind, unit, defaults.get(key, default), f"{what}: {desc}",
                         REPLACEMENT_POLICIES if key == "policy" else ()))
    return out


PARAMS: tuple[Param, ...] = tuple([
    Param("", "name", "str", "", None, "machine name shown in reports"),
    Param("", "description", "str", "", "", "one-line description of the machine"),
    Param("", "sockets", "int", "sockets", None, "number of CPU sockets (each has one local memory node)"),
    Param("core", "cores_per_socket", "int", "cores", None, "cores per socket (one hardware thread each)"),
    Param("core", "freq", "freq", "Hz", None, "core clock"),
    Param("core", "base_cpi", "float", "cycles/inst", 0.5,
          "cycles per instruction when no miss stalls the core (the non-memory work of a record)"),
    Param("core", "lfb", "int", "entries", 10,
          "line-fill buffers: L1D misses a core keeps outstanding; a further miss waits for one"),
    Param("core", "rob", "int", "insts", 224,
          "reorder-buffer window: the core stalls when its oldest outstanding load miss is this many "
          "instructions old"),
    Param("core", "superqueue", "int", "entries", 0,
          "L2 superqueue: L2 misses (demand and L2 prefetches) a core keeps outstanding; a demand "
          "L2 miss waits for a free entry, a prefetch that finds none goes to the LLC only "
          "(0 = as many entries as line-fill buffers)"),
    *_cache_params("cache.l1i", "private L1 instruction cache", {}),
    *_cache_params("cache.l1d", "private L1 data cache", {}),
    *_cache_params("cache.l2", "private L2 cache", {}),
    *_cache_params("cache.llc", "shared last-level cache of a socket (inclusive of the private caches; "
                   "its core-valid bits act as the snoop filter)", {}),
    Param("prefetch", "enable", "bool", "", False,
          "L2 stream prefetcher on (true) or off; it watches the L1 misses reaching L2 and "
          "fetches lines ahead of ascending or descending streams within a 4 KiB page"),
    Param("prefetch", "streams", "int", "streams", 32,
          "streams tracked per core (one per 4 KiB page, least recently used replaced)"),
    Param("prefetch", "distance", "int", "lines", 20,
          "how far ahead of the latest demand access a stream prefetches"),
    Param("prefetch", "degree", "int", "lines", 2,
          "prefetches a trained stream may issue per L2 lookup"),
    Param("tlb", "l1i_entries", "int", "entries", 128, "L1 instruction TLB entries (4 KiB pages)"),
    Param("tlb", "l1i_ways", "int", "ways", 8, "L1 instruction TLB associativity"),
    Param("tlb", "l1d_4k_entries", "int", "entries", 64, "L1 data TLB entries for 4 KiB pages"),
    Param("tlb", "l1d_4k_ways", "int", "ways", 4, "L1 data TLB associativity, 4 KiB pages"),
    Param("tlb", "l1d_2m_entries", "int", "entries", 32, "L1 data TLB entries for 2 MiB pages"),
    Param("tlb", "l1d_2m_ways", "int", "ways", 4, "L1 data TLB associativity, 2 MiB pages"),
    Param("tlb", "stlb_entries", "int", "entries", 1536, "second-level TLB entries (4 KiB and 2 MiB)"),
    Param("tlb", "stlb_ways", "int", "ways", 12, "second-level TLB associativity"),
    Param("tlb", "stlb_latency", "int", "cycles", 9, "extra latency of an L1 TLB miss that hits the STLB"),
    Param("tlb", "page_walk", "time", "ps", "20ns", "extra latency of a page walk after an STLB miss"),
    Param("coherence", "core_snoop", "time", "ps", "10ns",
          "extra latency when an LLC hit must fetch or invalidate a modified line in another core "
          "of the same socket"),
    Param("uncore", "mesh_latency", "time", "ps", "0ns",
          "one-way on-die latency between the LLC and the socket's interconnect ports"),
    Param("uncore", "remote_trackers", "int", "entries", 0,
          "home-agent tracker entries a remote home node preallocates to each core: reads of that "
          "node's memory (demand and prefetch) a core may have outstanding; a demand read waits "
          "for the first to free, a prefetch that finds none is dropped (0 = unbounded)"),
    Param("os", "fault_cost", "time", "ps", "1us",
          "time a page fault (not-present, migration entry or NUMA hinting) adds to the faulting "
          "thread before the OS handler runs"),
    # Kernel-side hardware costs the timing model does not simulate itself (used by the OS
    # model's adapter, hwemu.sim.hardware). Defaults: 2-socket AMD EPYC 7763; sources in
    # docs/migration.md "MachineHardware".
    Param("os", "tlb_flush_page", "time", "ps", "100ns",
          "local INVLPG of one page (kernel TLB maintenance)"),
    Param("os", "tlb_flush_all", "time", "ps", "250ns",
          "local full TLB flush (CR3 write plus refill)"),
    Param("os", "tlb_single_page_ceiling", "int", "pages", 33,
          "a flush of more pages than this is a full flush (Linux x86 tlb_single_page_flush_ceiling)"),
    Param("os", "ipi_send", "time", "ps", "50ns",
          "sending one IPI to one destination CPU (x2APIC ICR write)"),
    Param("os", "ipi_rtt_same_socket", "time", "ps", "1.2us",
          "IPI round trip (send, remote handler, acknowledgement) to a CPU of the same socket"),
    Param("os", "ipi_rtt_per_hop", "time", "ps", "1.3us",
          "added to the IPI round trip per interconnect hop between the two sockets"),
    Param("os", "atomic_cycles", "int", "cycles", 20,
          "extra cycles of a locked read-modify-write (lock cmpxchg, xadd) in kernel code"),
    Param("os", "copy_prefetch_lines", "int", "lines", 6,
          "lines a kernel page copy or clear keeps in flight beyond the line-fill buffers (the "
          "L2 streamer running ahead of copy_page/clear_page)"),
    Param("os", "metadata_prefetch_degree", "int", "lines", 4,
          "lines the L2 streamer keeps ahead of a kernel metadata stream (struct pages, PTEs of "
          "consecutive pages), within a 4 KiB page; 0 disables (ignored when [prefetch] enable "
          "is true: the machine's own prefetcher sees those accesses)"),
    # Page-copy DMA engines (rtl/page_copy_dma.v; time from its RTL-calibrated cycle model,
    # hwemu.dma.model). Used by migrations in runs with copy = dma (docs/dma.md, "In runs").
    Param("dma", "engines", "int", "engines", 0,
          "page-copy DMA engines per socket (0 = none: every page copy runs on a CPU)"),
    Param("dma", "data_width", "size", "bytes/beat", "32B",
          "AXI data width, bytes per beat: 8B, 16B or 32B (DATA_WIDTH 64, 128, 256)"),
    Param("dma", "burst_len", "int", "beats", 64, "MAX_BURST_LEN: beats per AXI burst (1-256)"),
    Param("dma", "outstanding", "int", "bursts", 16, "MAX_OUTSTANDING: read bursts in flight"),
    Param("dma", "write_outstanding", "int", "bursts", 16,
          "MAX_WRITE_OUTSTANDING: write bursts awaiting their response"),
    Param("dma", "fifo_depth", "int", "beats", 0,
          "FIFO_DEPTH: read-data buffer (0 = the RTL default, outstanding + 1 bursts)"),
    Param("dma", "clock", "freq", "Hz", "1GHz", "engine clock"),
    Param("dma", "interrupt", "time", "ps", "1us",
          "completion interrupt and wake-up of the waiting migration task"),
    # The few calibrated numbers of the parametric OS-cost model (hwemu.linux.hw
    # ParametricHardware, `hwemu bench migrate --hw parametric`), which times kernel steps
    # without the timing model. Topology comes from the machine; TLB, IPI and locked-RMW costs
    # from [os]. Defaults: 2-socket AMD EPYC 7763; sources in docs/migration.md "Calibration".
    Param("parametric", "freq", "freq", "Hz", "2.45GHz",
          "core clock the parametric model runs kernel code at"),
    Param("parametric", "remote_distance", "int", "", 32,
          "ACPI SLIT distance between two sockets as the firmware reports it (10 = local)"),
    Param("parametric", "mem_latency_local", "time", "ps", "110ns",
          "idle latency of a cache-line miss served by the local node's DRAM"),
    Param("parametric", "mem_latency_remote", "time", "ps", "190ns",
          "idle latency of a cache-line miss served by another socket's DRAM"),
    Param("parametric", "cache_lines", "int", "lines", 8192,
          "per-CPU cache of kernel metadata lines (an L2's worth)"),
    Param("parametric", "hit_cycles", "int", "cycles", 12,
          "hit latency of that cache"),
    Param("parametric", "copy_bw_local", "bw", "B/s", "14GB/s",
          "single-thread copy_page() bandwidth within a node"),
    Param("parametric", "copy_bw_remote", "bw", "B/s", "11.1GB/s",
          "single-thread copy_page() bandwidth across the socket link"),
    Param("parametric", "copy_startup", "time", "ps", "0ns",
          "fixed start-up time of one page copy"),
    Param("parametric", "fill_bw", "bw", "B/s", "20GB/s",
          "single-thread clear_page() bandwidth"),
])

DRAM_PARAMS: tuple[Param, ...] = (
    Param("dram", "type", "str", "", "", "memory type, for display (e.g. DDR4-2666)"),
    Param("dram", "channels", "int", "channels", None, "memory channels of the node"),
    Param("dram", "ranks", "int", "ranks", 2, "ranks per channel"),
    Param("dram", "banks", "int", "banks", 16, "banks per rank"),
    Param("dram", "row", "size", "bytes", "8KiB", "row (page) size of a rank"),
    Param("dram", "interleave", "size", "bytes", "256B", "channel interleave granularity"),
    Param("dram", "tCL", "time", "ps", None, "CAS latency: read command to first data"),
    Param("dram", "tCWL", "time", "ps", None, "CAS write latency: write command to first data"),
    Param("dram", "tRCD", "time", "ps", None, "activate to read/write command"),
    Param("dram", "tRP", "time", "ps", None, "precharge to activate"),
    Param("dram", "tRAS", "time", "ps", None, "activate to precharge"),
    Param("dram", "tBURST", "time", "ps", None, "data bus time of one 64-byte burst (BL8)"),
    Param("dram", "tWR", "time", "ps", "15ns", "write recovery: end of write data to precharge"),
    Param("dram", "tREFI", "time", "ps", "7.8us", "refresh interval of a rank"),
    Param("dram", "tRFC", "time", "ps", "350ns", "refresh cycle time (rank busy per refresh)"),
    Param("dram", "page_policy", "choice", "", "open", "row-buffer policy: open (keep row open) or "
          "close (precharge after each access)", PAGE_POLICIES),
    Param("dram", "bank_groups", "int", "groups", 1,
          "bank groups per rank (DDR4: 4 for x4/x8 devices); banks must be a multiple. Bank b is in "
          "group b mod bank_groups"),
    Param("dram", "tCCD_L", "time", "ps", "0ns",
          "column command to column command in the same bank group (0 = not modelled), applied "
          "rounded up to whole bursts; across groups the spacing is tCCD_S = tBURST, enforced by "
          "the bus calendar"),
    Param("dram", "tRRD_S", "time", "ps", "0ns", "ACT to ACT of one rank, different bank groups (0 = not modelled)"),
    Param("dram", "tRRD_L", "time", "ps", "0ns", "ACT to ACT of one rank, same bank group (0 = not modelled)"),
    Param("dram", "tFAW", "time", "ps", "0ns",
          "four-activate window: at most four ACTs per rank in any tFAW (0 = not modelled)"),
    Param("dram", "tRTP", "time", "ps", "0ns", "read command to precharge of the same bank"),
    Param("dram", "tWTR_S", "time", "ps", "0ns",
          "end of write data to a read command of the same rank, different bank group"),
    Param("dram", "tWTR_L", "time", "ps", "0ns",
          "end of write data to a read command of the same rank, same bank group"),
    Param("dram", "tRTRS", "time", "ps", "0ns",
          "rank-to-rank switch: idle data-bus time between bursts of different ranks of a channel "
          "(0 = none; otherwise the bus calendar counts in tBURST/4 units, one tCK of a BL8 burst, "
          "instead of whole bursts)"),
    Param("dram", "scheduler", "choice", "", "frfcfs",
          "frfcfs: a row hit may be served ahead of an already scheduled row switch of its bank "
          "(first ready, first come first served); fcfs: strictly in arrival order per bank", SCHEDULERS),
    Param("dram", "write_queue", "int", "entries", 0,
          "write queue entries per channel; writes are posted there and drained in batches (0 = "
          "no write queue: a write is scheduled when it arrives, like a read)"),
    Param("dram", "write_high", "float", "fraction", 0.8,
          "high watermark (fraction of write_queue): reaching it starts a write drain that blocks reads"),
    Param("dram", "write_low", "float", "fraction", 0.2,
          "low watermark (fraction of write_queue): a drain stops when the queue is down to it"),
    Param("dram", "mc_latency", "time", "ps", None,
          "one-way latency between the node's fabric entry (LLC or link port) and its memory "
          "controller, including controller pipeline"),
)

NODE_PARAMS: tuple[Param, ...] = (
    Param("node", "name", "str", "", "", "node name (default nodeN)"),
    Param("node", "socket", "int", "socket", -1, "socket whose CPUs are local to this node; -1 = "
          "CPU-less node (e.g. CXL memory)"),
    Param("node", "size", "size", "bytes", None, "memory capacity of the node"),
    Param("node", "dram", "table", "", {}, "overrides of [dram] keys for this node"),
    Param("node", "remote_trackers", "int", "entries", -1,
          "tracker entries this node, as a remote home, preallocates to each core (-1 = "
          "[uncore] remote_trackers, 0 = unbounded)"),
)

LINK_PARAMS: tuple[Param, ...] = (
    Param("link", "ends", "nodelist", "nodes", None, "the two node ids this link connects"),
    Param("link", "name", "str", "", "", "link name (default linkI)"),
    Param("link", "latency", "time", "ps", None, "one-way latency of a message, excluding serialisation"),
    Param("link", "bandwidth", "bw", "B/s", None, "bandwidth per direction"),
    Param("link", "header", "size", "bytes", "16B", "bytes a message adds on the wire (a request is "
          "one header; a data message carries 64 bytes plus a header)"),
)


def all_params() -> tuple[Param, ...]:
    return PARAMS + DRAM_PARAMS + NODE_PARAMS + LINK_PARAMS
