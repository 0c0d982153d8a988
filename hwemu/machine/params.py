"""The parameters of a machine description: every TOML key, declared once.

Each key is one :class:`hwemu.params.Param` (name, kind, unit, default, description; the
smallest value it accepts; the config attribute that holds it, ``name`` plus the unit suffix of
its kind unless ``field`` says otherwise; the compiled column it fills, if any). From these
tables come the TOML loader and its error messages and the config dataclasses
(:mod:`hwemu.machine.config`), ``hwemu machine show --params`` and ``machine dump``, the
parameter table in docs/machine.md (a test keeps it equal), and the column indices of the
per-node DRAM row (:mod:`hwemu.machine.layout`). Adding a parameter is one line here plus the
code that uses it.

Kinds are those of :mod:`hwemu.params`: ``size`` ("32KiB"), ``time`` ("13.75ns"), ``freq``
("2.1GHz"), ``bw`` ("20.8GB/s"), ``int``, ``float``, ``bool``, ``str``, ``choice`` (one of
``choices``), ``nodelist`` (list of node ids), ``table``.
"""

from __future__ import annotations

import dataclasses

from hwemu.params import Param


def _in(section: str):
    """A declarer of the keys of one TOML table: ``dram("tCL", "time", "ps", None, "...")``."""
    def declare(name: str, kind: str, unit: str, default, description: str, choices: tuple = (),
                **more) -> Param:
        return Param(name, kind, default, description, unit=unit, section=section,
                     choices=choices, **more)
    return declare


_top, _core, _prefetch, _tlb, _coherence, _uncore, _os, _dma, _parametric, _dram, _node, _link = (
    _in(s) for s in ("", "core", "prefetch", "tlb", "coherence", "uncore", "os", "dma",
                     "parametric", "dram", "node", "link"))

# the policies of the set-associative core (hwemu.cachesim.setassoc.POLICIES)
REPLACEMENT_POLICIES = ("lru", "fifo", "random", "srrip", "plru")
PAGE_POLICIES = ("open", "close")
SCHEDULERS = ("frfcfs", "fcfs")

# the keys of every [cache.NAME] table (CacheConfig)
CACHE_PARAMS: tuple[Param, ...] = (
    Param("size", "size", None, "capacity", unit="bytes", minimum=64),
    Param("ways", "int", None, "associativity", unit="ways", minimum=1),
    Param("latency", "int", None, "load-to-use latency of a hit at this level, core cycles "
          "(cumulative: the time from issue until data returns when this level hits)",
          unit="cycles", minimum=1, field="latency_cycles"),
    Param("policy", "choice", "lru", "replacement policy: lru, fifo, random (seeded by --seed), "
          "srrip (2-bit SRRIP-HP) or plru (tree pseudo-LRU; power-of-two ways)",
          choices=REPLACEMENT_POLICIES),
)
CACHES = ("l1i", "l1d", "l2", "llc")


def _cache_params(name: str, what: str) -> list[Param]:
    return [dataclasses.replace(p, section=f"cache.{name}", description=f"{what}: {p.description}")
            for p in CACHE_PARAMS]


PARAMS: tuple[Param, ...] = tuple([
    _top("name", "str", "", None, "machine name shown in reports"),
    _top("description", "str", "", "", "one-line description of the machine"),
    _top("sockets", "int", "sockets", None, "number of CPU sockets (each has one local memory node)",
         minimum=1, column="C_SOCKETS"),
    _core("cores_per_socket", "int", "cores", None, "cores per socket (one hardware thread each)",
          minimum=1, column="C_CPS"),
    _core("freq", "freq", "Hz", None, "core clock"),
    _core("base_cpi", "float", "cycles/inst", 0.5,
          "cycles per instruction when no miss stalls the core (the non-memory work of a record)"),
    _core("lfb", "int", "entries", 10,
          "line-fill buffers: L1D misses a core keeps outstanding; a further miss waits for one",
          minimum=1),
    _core("rob", "int", "insts", 224,
          "reorder-buffer window: the core stalls when its oldest outstanding load miss is this many "
          "instructions old", minimum=1, column="C_ROB"),
    _core("superqueue", "int", "entries", 0,
          "L2 superqueue: L2 misses (demand and L2 prefetches) a core keeps outstanding; a demand "
          "L2 miss waits for a free entry, a prefetch that finds none goes to the LLC only "
          "(0 = as many entries as line-fill buffers)", minimum=0, column="C_SQ"),
    *_cache_params("l1i", "private L1 instruction cache"),
    *_cache_params("l1d", "private L1 data cache"),
    *_cache_params("l2", "private L2 cache"),
    *_cache_params("llc", "shared last-level cache of a socket (inclusive of the private caches; "
                   "its core-valid bits act as the snoop filter)"),
    _prefetch("enable", "bool", "", False,
              "L2 stream prefetcher on (true) or off; it watches the L1 misses reaching L2 and "
              "fetches lines ahead of ascending or descending streams within a 4 KiB page", column="C_PF_ON"),
    _prefetch("streams", "int", "streams", 32,
              "streams tracked per core (one per 4 KiB page, least recently used replaced)",
              minimum=1, column="C_PF_STREAMS"),
    _prefetch("distance", "int", "lines", 20,
              "how far ahead of the latest demand access a stream prefetches", minimum=1, column="C_PF_DIST"),
    _prefetch("degree", "int", "lines", 2,
              "prefetches a trained stream may issue per L2 lookup", minimum=1, column="C_PF_DEG"),
    _tlb("l1i_entries", "int", "entries", 128, "L1 instruction TLB entries (4 KiB pages)"),
    _tlb("l1i_ways", "int", "ways", 8, "L1 instruction TLB associativity"),
    _tlb("l1d_4k_entries", "int", "entries", 64, "L1 data TLB entries for 4 KiB pages"),
    _tlb("l1d_4k_ways", "int", "ways", 4, "L1 data TLB associativity, 4 KiB pages"),
    _tlb("l1d_2m_entries", "int", "entries", 32, "L1 data TLB entries for 2 MiB pages"),
    _tlb("l1d_2m_ways", "int", "ways", 4, "L1 data TLB associativity, 2 MiB pages"),
    _tlb("stlb_entries", "int", "entries", 1536, "second-level TLB entries (4 KiB and 2 MiB)"),
    _tlb("stlb_ways", "int", "ways", 12, "second-level TLB associativity"),
    _tlb("stlb_latency", "int", "cycles", 9, "extra latency of an L1 TLB miss that hits the STLB",
         field="stlb_latency_cycles"),
    _tlb("page_walk", "time", "ps", "20ns", "extra latency of a page walk after an STLB miss", column="C_WALK"),
    _coherence("core_snoop", "time", "ps", "10ns",
               "extra latency when an LLC hit must fetch or invalidate a modified line in another core "
               "of the same socket", column="C_SNOOP"),
    _uncore("mesh_latency", "time", "ps", "0ns",
            "one-way on-die latency between the LLC and the socket's interconnect ports", column="C_MESH"),
    _uncore("remote_trackers", "int", "entries", 0,
            "home-agent tracker entries a remote home node preallocates to each core: reads of that "
            "node's memory (demand and prefetch) a core may have outstanding; a demand read waits "
            "for the first to free, a prefetch that finds none is dropped (0 = unbounded)",
            minimum=0),
    _os("fault_cost", "time", "ps", "1us",
        "time a page fault (not-present, migration entry or NUMA hinting) adds to the faulting "
        "thread before the OS handler runs", column="C_FAULT"),
    # Kernel-side hardware costs the timing model does not simulate itself (used by the OS
    # model's adapter, hwemu.sim.hardware). Defaults: 2-socket AMD EPYC 7763; sources in
    # docs/migration.md "MachineHardware".
    _os("tlb_flush_page", "time", "ps", "100ns",
        "local INVLPG of one page (kernel TLB maintenance)", minimum=1),
    _os("tlb_flush_all", "time", "ps", "250ns",
        "local full TLB flush (CR3 write plus refill)", minimum=1),
    _os("tlb_single_page_ceiling", "int", "pages", 33,
        "a flush of more pages than this is a full flush (Linux x86 tlb_single_page_flush_ceiling)",
        minimum=1),
    _os("ipi_send", "time", "ps", "50ns",
        "sending one IPI to one destination CPU (x2APIC ICR write)", minimum=0),
    _os("ipi_rtt_same_socket", "time", "ps", "1.2us",
        "IPI round trip (send, remote handler, acknowledgement) to a CPU of the same socket",
        minimum=1),
    _os("ipi_rtt_per_hop", "time", "ps", "1.3us",
        "added to the IPI round trip per interconnect hop between the two sockets", minimum=0),
    _os("atomic_cycles", "int", "cycles", 20,
        "extra cycles of a locked read-modify-write (lock cmpxchg, xadd) in kernel code",
        minimum=0),
    _os("copy_prefetch_lines", "int", "lines", 2,
        "lines a kernel page copy or clear keeps in flight beyond the line-fill buffers (the "
        "L2 streamer running ahead of copy_page/clear_page)", minimum=0),
    _os("metadata_prefetch_degree", "int", "lines", 4,
        "lines the L2 streamer keeps ahead of a kernel metadata stream (struct pages, PTEs of "
        "consecutive pages), within a 4 KiB page; 0 disables (ignored when [prefetch] enable "
        "is true: the machine's own prefetcher sees those accesses)", minimum=0),
    # Page-copy DMA engines (rtl/page_copy_dma.v; time from its RTL-calibrated cycle model,
    # hwemu.dma.model). Used by migrations in runs with copy = dma (docs/dma.md, "In runs").
    _dma("engines", "int", "engines", 0,
         "page-copy DMA engines per socket (0 = none: every page copy runs on a CPU)",
         minimum=0),
    _dma("data_width", "size", "bytes/beat", "32B",
         "AXI data width, bytes per beat: 8B, 16B or 32B (DATA_WIDTH 64, 128, 256)"),
    _dma("burst_len", "int", "beats", 64, "MAX_BURST_LEN: beats per AXI burst (1-256)",
         minimum=1),
    _dma("outstanding", "int", "bursts", 16, "MAX_OUTSTANDING: read bursts in flight",
         minimum=1),
    _dma("write_outstanding", "int", "bursts", 16,
         "MAX_WRITE_OUTSTANDING: write bursts awaiting their response", minimum=1),
    _dma("fifo_depth", "int", "beats", 0,
         "FIFO_DEPTH: read-data buffer (0 = the RTL default, outstanding + 1 bursts)",
         minimum=0),
    _dma("clock", "freq", "Hz", "1GHz", "engine clock"),
    _dma("interrupt", "time", "ps", "1us",
         "completion interrupt and wake-up of the waiting migration task", minimum=0),
    # The few calibrated numbers of the parametric OS-cost model (hwemu.linux.hw
    # ParametricHardware, `hwemu bench migrate --hw parametric`), which times kernel steps
    # without the timing model. Topology comes from the machine; TLB, IPI and locked-RMW costs
    # from [os]. Defaults: 2-socket AMD EPYC 7763; sources in docs/migration.md "Calibration".
    _parametric("freq", "freq", "Hz", "2.45GHz",
                "core clock the parametric model runs kernel code at"),
    _parametric("remote_distance", "int", "", 32,
                "ACPI SLIT distance between two sockets as the firmware reports it (10 = local)"),
    _parametric("mem_latency_local", "time", "ps", "110ns",
                "idle latency of a cache-line miss served by the local node's DRAM", minimum=1),
    _parametric("mem_latency_remote", "time", "ps", "190ns",
                "idle latency of a cache-line miss served by another socket's DRAM", minimum=1),
    _parametric("cache_lines", "int", "lines", 8192,
                "per-CPU cache of kernel metadata lines (an L2's worth)", minimum=1),
    _parametric("hit_cycles", "int", "cycles", 12,
                "hit latency of that cache", minimum=0),
    _parametric("copy_bw_local", "bw", "B/s", "14GB/s",
                "single-thread copy_page() bandwidth within a node"),
    _parametric("copy_bw_remote", "bw", "B/s", "11.1GB/s",
                "single-thread copy_page() bandwidth across the socket link"),
    _parametric("copy_startup", "time", "ps", "0ns",
                "fixed start-up time of one page copy", minimum=0),
    _parametric("fill_bw", "bw", "B/s", "20GB/s",
                "single-thread clear_page() bandwidth"),
])

DRAM_PARAMS: tuple[Param, ...] = (
    _dram("type", "str", "", "", "memory type, for display (e.g. DDR4-2666)"),
    _dram("channels", "int", "channels", None, "memory channels of the node",
          minimum=1, column="DP_CH"),
    _dram("ranks", "int", "ranks", 2, "ranks per channel", minimum=1, column="DP_RANKS"),
    _dram("banks", "int", "banks", 16, "banks per rank", minimum=1, column="DP_BANKS"),
    _dram("row", "size", "bytes", "8KiB", "row (page) size of a rank", minimum=64),
    _dram("interleave", "size", "bytes", "256B", "channel interleave granularity", minimum=64),
    _dram("tCL", "time", "ps", None, "CAS latency: read command to first data",
          minimum=1, column="DP_TCL"),
    _dram("tCWL", "time", "ps", None, "CAS write latency: write command to first data",
          minimum=1, column="DP_TCWL"),
    _dram("tRCD", "time", "ps", None, "activate to read/write command",
          minimum=1, column="DP_TRCD"),
    _dram("tRP", "time", "ps", None, "precharge to activate", minimum=1, column="DP_TRP"),
    _dram("tRAS", "time", "ps", None, "activate to precharge", minimum=1, column="DP_TRAS"),
    _dram("tBURST", "time", "ps", None, "data bus time of one 64-byte burst (BL8)",
          minimum=1, column="DP_TBURST"),
    _dram("tWR", "time", "ps", "15ns", "write recovery: end of write data to precharge",
          column="DP_TWR"),
    _dram("tREFI", "time", "ps", "7.8us", "refresh interval of a rank",
          minimum=1, column="DP_TREFI"),
    _dram("tRFC", "time", "ps", "350ns", "refresh cycle time (rank busy per refresh)",
          column="DP_TRFC"),
    _dram("page_policy", "choice", "", "open", "row-buffer policy: open (keep row open) or "
          "close (precharge after each access)", PAGE_POLICIES),
    _dram("bank_groups", "int", "groups", 1,
          "bank groups per rank (DDR4: 4 for x4/x8 devices); banks must be a multiple. Bank b is in "
          "group b mod bank_groups", minimum=1, column="DP_BG"),
    _dram("tCCD_L", "time", "ps", "0ns",
          "column command to column command in the same bank group (0 = not modelled), applied "
          "rounded up to whole bursts; across groups the spacing is tCCD_S = tBURST, enforced by "
          "the bus calendar", column="DP_TCCDL"),
    _dram("tRRD_S", "time", "ps", "0ns", "ACT to ACT of one rank, different bank groups (0 = not modelled)",
          column="DP_TRRDS"),
    _dram("tRRD_L", "time", "ps", "0ns", "ACT to ACT of one rank, same bank group (0 = not modelled)",
          column="DP_TRRDL"),
    _dram("tFAW", "time", "ps", "0ns",
          "four-activate window: at most four ACTs per rank in any tFAW (0 = not modelled)",
          column="DP_TFAW"),
    _dram("tRTP", "time", "ps", "0ns", "read command to precharge of the same bank",
          column="DP_TRTP"),
    _dram("tWTR_S", "time", "ps", "0ns",
          "end of write data to a read command of the same rank, different bank group",
          column="DP_TWTRS"),
    _dram("tWTR_L", "time", "ps", "0ns",
          "end of write data to a read command of the same rank, same bank group",
          column="DP_TWTRL"),
    _dram("tRTRS", "time", "ps", "0ns",
          "rank-to-rank switch: idle data-bus time between bursts of different ranks of a channel "
          "(0 = none; otherwise the bus calendar counts in tBURST/4 units, one tCK of a BL8 burst, "
          "instead of whole bursts)"),
    _dram("tRPRE", "time", "ps", "0ns",
          "read preamble: with tRTRS, the idle data-bus time between a read burst and a following "
          "write burst of the same rank (the read-to-write turnaround tRTW = tCL + tBURST - tCWL + "
          "tRPRE + tRTRS between their commands, JESD79-4; 0 with tRTRS 0 = none)"),
    _dram("tCMD", "time", "ps", "0ns",
          "command-bus slot: each channel takes one command (PRE, ACT, RD or WR) per tCMD, one "
          "tCK = tBURST/4 (0 = command bus not modelled)"),
    _dram("scheduler", "choice", "", "frfcfs",
          "frfcfs: a row hit may be served ahead of an already scheduled row switch of its bank "
          "(first ready, first come first served); fcfs: strictly in arrival order per bank", SCHEDULERS),
    _dram("write_queue", "int", "entries", 0,
          "write queue entries per channel; writes are posted there and drained in batches (0 = "
          "no write queue: a write is scheduled when it arrives, like a read)",
          minimum=0, column="DP_WQ"),
    _dram("write_high", "float", "fraction", 0.8,
          "high watermark (fraction of write_queue): reaching it starts a write drain that blocks reads"),
    _dram("write_low", "float", "fraction", 0.2,
          "low watermark (fraction of write_queue): a drain stops when the queue is down to it"),
    _dram("mc_latency", "time", "ps", None,
          "one-way latency between the node's fabric entry (LLC or link port) and its memory "
          "controller, including controller pipeline", column="DP_MC_LAT"),
)

NODE_PARAMS: tuple[Param, ...] = (
    _node("name", "str", "", "", "node name (default nodeN)"),
    _node("socket", "int", "socket", -1, "socket whose CPUs are local to this node; -1 = "
          "CPU-less node (e.g. CXL memory)"),
    _node("size", "size", "bytes", None, "memory capacity of the node", minimum=1 << 21),
    _node("dram", "table", "", {}, "overrides of [dram] keys for this node"),
    _node("distances", "intlist", "SLIT", [],
          "this node's row of the firmware's ACPI SLIT: its distance to every node, in node order "
          "(10 = local, as numactl --hardware prints them); the OS model orders fallback and "
          "demotion by them. Empty on every node: derived from the model's idle latencies"),
    _node("remote_trackers", "int", "entries", -1,
          "tracker entries this node, as a remote home, preallocates to each core (-1 = "
          "[uncore] remote_trackers, 0 = unbounded)", minimum=-1),
)

LINK_PARAMS: tuple[Param, ...] = (
    _link("ends", "nodelist", "nodes", None, "the two node ids this link connects"),
    _link("name", "str", "", "", "link name (default linkI)"),
    _link("latency", "time", "ps", None, "one-way latency of a message, excluding serialisation"),
    _link("bandwidth", "bw", "B/s", None, "bandwidth per direction"),
    _link("header", "size", "bytes", "16B", "bytes a message adds on the wire (a request is "
          "one header; a data message carries 64 bytes plus a header)"),
)


def all_params() -> tuple[Param, ...]:
    return PARAMS + DRAM_PARAMS + NODE_PARAMS + LINK_PARAMS
