"""The column layouts of the compiled model's arrays, in one place.

The numba kernels index plain int64 arrays by constant column numbers (``S.cfg[C_L2_LAT]``,
``S.dram_p[node, DP_TCL]``, ``S.ccnt[cpu, K_L2_MISS]``). Each layout below is one tuple of
names; the constants are numbered from it here, at import, into this module's globals
(``DP_TCL = 5`` ...), plus ``<PREFIX>N``, the number of columns. Modules import them by name,
so numba sees module-level ints, which it compiles in as constants. No column number is written
by hand: adding a column is adding its name to a tuple.

The per-node DRAM row starts with the columns of the ``[dram]`` parameters that declare one
(``column=`` in :mod:`hwemu.machine.params`, filled from ``DramConfig`` by
:func:`hwemu.machine.dram.dram_params`), followed by the columns that function computes.
"""

from __future__ import annotations

from hwemu.machine.params import DRAM_PARAMS, PARAMS


def _number(prefix: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Define ``names`` as 0, 1, 2, ... and ``<prefix>N`` as their count in this module."""
    assert all(n.startswith(prefix) for n in names) and len(set(names)) == len(names), names
    g = globals()
    for i, name in enumerate(names):
        assert name not in g, name
        g[name] = i
    g[prefix + "N"] = len(names)
    return names


def declared_columns(params, prefix: str) -> tuple:
    """(column number, parameter) of every parameter that declares a column of one array."""
    return tuple((globals()[p.column], p) for p in params if p.column.startswith(prefix))


# -- S.cfg: machine-wide scalars (hwemu.machine.state.build_state): the parameters that declare
# a column (``column="C_..."`` in hwemu.machine.params), then the ones computed there
CFG_COLUMNS = _number("C_", tuple(p.column for p in PARAMS if p.column.startswith("C_")) + (
    "C_NNODES",                                         # nodes
    "C_L1I_LAT", "C_L1D_LAT", "C_L2_LAT", "C_LLC_LAT",  # hit latencies in ps
    "C_STLB_LAT",                                       # STLB hit latency in ps
    "C_PPI",                                            # ps per instruction (base_cpi)
))

# -- S.dram_p: one row per node (hwemu.machine.dram.dram_params) -------------------------------
DRAM_COLUMNS = _number("DP_", tuple(p.column for p in DRAM_PARAMS if p.column.startswith("DP_")) + (
    # computed from the parameters
    "DP_ROW_LINES", "DP_IL_LINES",          # row and interleave sizes in lines
    "DP_CLOSE",                             # page_policy = "close"
    "DP_FRFCFS",                            # scheduler = "frfcfs"
    "DP_WQ_HI", "DP_WQ_LO",                 # write-queue watermarks in entries
    "DP_BUNIT", "DP_BLEN", "DP_RTRS",       # bus calendar: unit (ps), burst and rank switch (units)
    "DP_RTW",                               # read-to-write bubble of one rank (units)
    "DP_TCMD",                              # command-bus slot (ps, a calendar unit; 0: none)
    # log2 of the address-mapping divisors when a power of two, else -1 (dram.map_line
    # shifts and masks instead of dividing: same result)
    "DP_IL_SH", "DP_CH_SH", "DP_RL_SH", "DP_NBK_SH", "DP_BANKS_SH", "DP_BG_SH",
    # where the node's banks, channels, ranks and bank groups start in the flat state arrays
    "DP_BANK_BASE", "DP_CHAN_BASE", "DP_RANK_BASE", "DP_BG_BASE",
    # where the node's sections of the auxiliary state array x start
    "DP_X_BANK", "DP_X_RANK", "DP_X_BG", "DP_X_CH",
))

# -- S.dram_cnt: counters per node; the statistic each one is reported as ----------------------
DRAM_COUNTERS = (
    ("DC_READS", "reads"), ("DC_WRITES", "writes"), ("DC_ROW_HIT", "row_hits"),
    ("DC_ROW_EMPTY", "row_empty"), ("DC_ROW_CONFLICT", "row_conflicts"),
    ("DC_WAIT_PS", "bank_wait"), ("DC_HIT_FIRST", "row_hits_first"),
    ("DC_WQ_DRAINED", "writes_drained"), ("DC_WQ_IDLE", "writes_idle"),
    ("DC_WQ_FWD", "write_forwards"),
)
_number("DC_", tuple(c for c, _ in DRAM_COUNTERS))
DC_NAMES = tuple(stat for _, stat in DRAM_COUNTERS)

# -- S.ccnt: cache and TLB counters per CPU ----------------------------------------------------
CACHE_COUNTERS = (
    ("K_L1I_HIT", "l1i_hits"), ("K_L1I_MISS", "l1i_misses"),
    ("K_L1D_HIT", "l1d_hits"), ("K_L1D_MISS", "l1d_misses"),
    ("K_L2_HIT", "l2_hits"), ("K_L2_MISS", "l2_misses"),
    ("K_LLC_HIT", "llc_hits"), ("K_LLC_MISS", "llc_misses"),
    ("K_L1_WB", "l1d_writebacks"), ("K_L2_WB", "l2_writebacks"),
    ("K_SNOOP", "core_snoops"), ("K_INVAL_SENT", "invalidations_sent"),
    ("K_DTLB_MISS", "dtlb_misses"), ("K_ITLB_MISS", "itlb_misses"),
    ("K_STLB_MISS", "stlb_misses"), ("K_LLC_WB", "llc_writebacks"),
    ("K_PF_ISSUED", "l2_pf_issued"), ("K_PF_USEFUL", "l2_pf_useful"),
    ("K_PF_LATE", "l2_pf_late"), ("K_PF_LLC", "llc_pf_issued"),
    ("K_SQ_FULL", "sq_full_waits"), ("K_RT_WAIT", "remote_tracker_waits"),
    ("K_PF_DROP", "pf_dropped"),
)
_number("K_", tuple(c for c, _ in CACHE_COUNTERS))
K_NAMES = tuple(stat for _, stat in CACHE_COUNTERS)

# -- S.served: where accesses were served, per socket ------------------------------------------
SERVED_AT = (
    ("W_L1", "l1"), ("W_L2", "l2"), ("W_LLC", "llc"), ("W_REMOTE_CACHE", "remote_cache"),
    ("W_LOCAL_DRAM", "local_dram"), ("W_REMOTE_DRAM", "remote_dram"), ("W_CXL", "cxl"),
)
_number("W_", tuple(c for c, _ in SERVED_AT))
W_NAMES = tuple(name for _, name in SERVED_AT)

# -- S.ctr: machine-wide counters and flags: the L1 reference count (the stream table's time
# stamps), and whether any TLB has ever held a 2 MiB entry (until one has, a lookup of one
# cannot hit, and the replay loop skips it: host speed only)
CTR_FIELDS = _number("CT_", ("CT_STAMP", "CT_HUGE_TLB"))

# -- S.pf_tab: per CPU one row per field, one column per tracked prefetch stream -------------
STREAM_FIELDS = _number("PF_", ("PF_PAGE", "PF_LAST", "PF_DIR", "PF_CONF", "PF_FRONT", "PF_STAMP"))

# -- the out[] array the replay loop returns, and why it stopped -------------------------------
OUT_FIELDS = _number("O_", ("O_REASON", "O_THREAD", "O_VADDR", "O_KIND", "O_PTE", "O_RECORD"))
STOP_REASONS = (
    ("R_CHUNK_DONE", "chunk-done"), ("R_EVENT", "event"), ("R_FAULT", "fault"),
    ("R_STARVED", "starved"),
)
_number("R_", tuple(c for c, _ in STOP_REASONS))
REASON_NAMES = tuple(name for _, name in STOP_REASONS)

# -- S.ft_ctl: first touch inside the replay loop (hwemu.machine.core._first_touch): the
# page-table inserts the loop may still make, the slots and pages it used since Python looked
FIRST_TOUCH_FIELDS = _number("FT_", ("FT_BUDGET", "FT_NEW_SLOTS", "FT_MAPPED"))

# -- first touches the OS model lets the replay loop serve (hwemu.machine.osfault) -------------
# S.kf_ctl: on/off, the OS's time, log rows, regions, pending installs and the earliest one's
# time, and the costs of the kernel's fault path (ps) and the copy window (lines)
OS_FAULT_FIELDS = _number("KF_", (
    "KF_ON", "KF_NOW", "KF_NLOG", "KF_NREG", "KF_PENDING", "KF_NEXT_END",
    "KF_CYC_ENTRY", "KF_CYC_ALLOC", "KF_CYC_LRU", "KF_ATOMIC", "KF_WINDOW", "KF_MP_DEGREE",
    "KF_HINT", "KF_CYC_HINT", "KF_CYC_HINT_POLICY",
))
# S.kf_reg: one row per registered 2 MiB region of a process
REGION_FIELDS = _number("RG_", ("RG_PTE_TABLE", "RG_PMD_LINE", "RG_LO", "RG_HI", "RG_PLACE"))
# S.kf_resc: per node, the frame reservation's cursor, length and whether it holds every free
# frame of the node
RESERVATION_FIELDS = _number("RS_", ("RS_HEAD", "RS_COUNT", "RS_ALL"))
# S.kf_nodes: per node, where its struct pages start, its first frame and its LRU lock word
KNODE_FIELDS = _number("KN_", ("KN_MEMMAP", "KN_START_PFN", "KN_LRU_LOCK"))
# S.kf_th: per thread, the page-table entry its fault installs at KT_END (KT_KEY -1: none; a
# KT_PTE of -1 installs nothing), and the page of a fault Python is handling for it (KT_OS_KEY)
KTHREAD_FIELDS = _number("KT_", ("KT_KEY", "KT_END", "KT_PTE", "KT_OS_KEY"))
# S.kf_log: one row per fault served (KL_KIND: KIND_FIRST_TOUCH or KIND_LOCAL_HINT); KL_WHERE..
# holds where each of its KL_TOUCHES metadata accesses was served (-1 after the last), KL_PF..
# the prefetches each one set off
KL_TOUCHES = 8
KIND_FIRST_TOUCH, KIND_LOCAL_HINT = 0, 1
KLOG_FIELDS = _number("KL_", ("KL_TID", "KL_VADDR", "KL_CPU", "KL_PFN", "KL_NODE", "KL_START",
                              "KL_END", "KL_WRITE", "KL_KIND", "KL_WHERE")
                      + tuple(f"KL_WHERE_{j}" for j in range(1, KL_TOUCHES)) + ("KL_PF",)
                      + tuple(f"KL_PF_{j}" for j in range(1, KL_TOUCHES)))
KL_ROW = len(KLOG_FIELDS)
