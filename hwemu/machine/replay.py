"""Timing replay of a trace on a machine: the library behind ``hwemu run``.

:func:`run_trace` streams a trace in chunks through :class:`~hwemu.machine.system.Machine`,
handles faults with a page allocator (first touch by default), calls an optional event hook at
scheduled times, and returns the run's :class:`~hwemu.stats.Stats` and a summary derived from
them. The OS half (hwemu.linux) supplies its own fault handler and event hook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from hwemu.errors import HwemuError
from hwemu.machine.core import FAULT_KINDS, hist_edges_ps
from hwemu.machine.config import MachineConfig, as_config
from hwemu.machine.pagetable import PTE_PRESENT, pte_with_state
from hwemu.machine.driver import StopHandler, replay
from hwemu.machine.system import Machine, Stop
from hwemu.stats import Stats
from hwemu.machine.layout import DC_N, DC_NAMES, DC_READS, DC_WRITES, K_NAMES, W_NAMES

CHUNK_RECORDS = 1 << 20
# A starved thread's next records may lie far ahead in the file (a recorder that serialises
# threads writes long runs of one thread). The feeder reads ahead until they come, holding at
# most this many records back; beyond it the other threads go on without waiting.
MAX_HELD_RECORDS = 32 << 20


def _concat(parts):
    from hwemu.traces.format import COLUMNS, TraceChunk

    if len(parts) == 1:
        return parts[0]
    return TraceChunk(**{c: np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS})


class ThreadStreams:
    """Each thread's records, in order, read from the row groups that hold them: one cursor
    per thread, so a thread whose next records lie far ahead in the file (a recorder that
    serialises threads wrote the others' long runs in between) gets them without the records
    in between being held in memory. A row group is decoded once and split by thread; it stays
    decoded while some thread's cursor is in it (at most one group per thread).

    ``take(t, n)`` returns up to ``n`` next records of thread ``t`` (a list of chunks);
    ``remaining[t]`` counts the records of ``t`` not yet taken."""

    def __init__(self, reader, threads: int, counts: np.ndarray | None = None):
        self.reader = reader
        self.counts = reader.group_thread_counts(threads) if counts is None else counts
        self.threads = self.counts.shape[1]
        self.remaining = self.counts.sum(axis=0)
        self.group = np.zeros(self.threads, np.int64)    # the group each cursor is in
        self.offset = np.zeros(self.threads, np.int64)   # records of t taken from it
        self._split: dict[int, list] = {}
        self.groups_decoded = 0

    def _parts(self, g: int) -> list:
        from hwemu.traces.format import COLUMNS, TraceChunk

        parts = self._split.get(g)
        if parts is None:
            chunk = self.reader.read_group(g)
            self.groups_decoded += 1
            tid = np.minimum(chunk.tid, self.threads - 1)
            order = np.argsort(tid, kind="stable")
            bounds = np.searchsorted(tid[order], np.arange(self.threads + 1))
            whole = TraceChunk(**{c: getattr(chunk, c)[order] for c in COLUMNS})
            parts = [whole.slice(int(bounds[t]), int(bounds[t + 1]))
                     for t in range(self.threads)]
            self._split[g] = parts
        return parts

    def take(self, t: int, n: int) -> list:
        out = []
        while n > 0 and self.remaining[t] > 0:
            g = int(self.group[t])
            if self.counts[g, t] == self.offset[t]:       # nothing (left) of t here
                self.group[t] += 1
                self.offset[t] = 0
                continue
            part = self._parts(g)[t]
            lo = int(self.offset[t])
            k = min(n, len(part) - lo)
            out.append(part.slice(lo, lo + k))
            self.offset[t] += k
            self.remaining[t] -= k
            n -= k
        live = {int(self.group[u]) for u in range(self.threads) if self.remaining[u] > 0}
        for g in [g for g in self._split if g not in live]:
            del self._split[g]
        return out


class Feeder:
    """Feeds trace chunks to a machine so that threads stay in step however the trace orders
    them.

    Each thread's records keep their order, but a trace may hold long runs of one thread
    (Valgrind runs one thread at a time). Replaying chunk after chunk, a thread with no records
    left in the current chunk would stand still while the others run on, and its next
    records would then meet queues and banks booked far in its future. So each chunk is loaded
    with ``more[t]`` = thread ``t`` has records beyond it (from per-thread record counts); when
    the earliest thread runs out (a "starved" stop) the records not yet replayed are loaded
    again together with the next chunk of the file. Only when the records held back that way
    exceed ``max_held`` are the threads let go without waiting (``waits_given_up`` counts it).
    """

    streams = None          # ThreadStreams of a StreamFeeder

    def __init__(self, chunks, totals: np.ndarray | None = None,
                 max_held: int = MAX_HELD_RECORDS):
        self._it = iter(chunks)
        self.totals = None if totals is None else np.asarray(totals, np.int64)
        self.loaded = None if totals is None else np.zeros(len(self.totals), np.int64)
        self.max_held = int(max_held)
        self.waits_given_up = 0
        self.refills = 0

    def next(self, leftover=None):
        """The next (chunk, more) to load, with ``leftover`` (the records of the previous chunk
        not replayed) first; None at the end of the trace."""
        parts = [leftover] if leftover is not None and len(leftover) else []
        if parts:
            self.refills += 1
        new = next(self._it, None)
        if new is not None and len(new):
            parts.append(new)
            if self.loaded is not None:
                self.loaded += np.bincount(np.minimum(new.tid, len(self.loaded) - 1),
                                           minlength=len(self.loaded))
        if not parts:
            return None
        chunk = _concat(parts)
        if self.totals is None or new is None:
            more = None
        elif len(chunk) > self.max_held:
            self.waits_given_up += 1
            more = None
        else:
            more = self.loaded < self.totals
        return chunk, more

    def add_stats(self, stats) -> None:
        """The feeder's statistics (``trace.feed``): refills, waits given up."""
        stats.add("trace.feed", "refills", self.refills, "chunks")
        stats.add("trace.feed", "waits_given_up", self.waits_given_up, "chunks")

    def drive(self, m: Machine, handler: "StopHandler", progress=None) -> None:
        """Load every chunk into ``m`` (``handler.load``) and replay it (:func:`replay`); a
        chunk that stopped starved leaves its unreplayed records to go first into the next."""
        leftover = None
        while (got := self.next(leftover)) is not None:
            chunk, more = got
            handler.load(m, chunk, more)
            leftover = m.leftover() if replay(m, handler) == "starved" else None
            if progress is not None:
                progress.update(len(chunk) - (len(leftover) if leftover is not None else 0))


class StreamFeeder(Feeder):
    """A :class:`Feeder` that reads each thread's records through its own cursor
    (:class:`ThreadStreams`) instead of in file order: every thread with less than half a
    batch left in the leftover gets its next records, up to a batch (``batch`` records in all,
    shared by the threads). Nothing is held back, so nothing is given up."""

    def __init__(self, streams: ThreadStreams, batch: int = CHUNK_RECORDS):
        super().__init__(())
        self.streams = streams
        self.batch = max(1 << 16, int(batch) // max(1, streams.threads))

    def next(self, leftover=None):
        parts = [leftover] if leftover is not None and len(leftover) else []
        if parts:
            self.refills += 1
        st = self.streams
        pending = (np.bincount(np.minimum(parts[0].tid, st.threads - 1), minlength=st.threads)
                   if parts else np.zeros(st.threads, np.int64))
        for t in range(st.threads):
            if pending[t] < self.batch // 2 and st.remaining[t] > 0:
                parts.extend(st.take(t, self.batch - int(pending[t])))
        if not parts:
            return None
        more = st.remaining > 0
        return _concat(parts), (more if more.any() else None)

    def add_stats(self, stats) -> None:
        """As a Feeder's, plus the row groups decoded (a group holding several threads'
        records in a cursor's way may be decoded again later)."""
        super().add_stats(stats)
        stats.add("trace.feed", "groups_decoded", self.streams.groups_decoded, "groups")


def runs_far_apart(counts: np.ndarray, limit: int) -> bool:
    """Whether some thread's records lie more than ``limit`` records apart in the file (or
    start more than ``limit`` records in): ``counts`` is records per (row group, thread),
    as TraceReader.group_thread_counts gives them."""
    start = np.concatenate([[0], np.cumsum(counts.sum(axis=1))])
    for t in range(counts.shape[1]):
        g = np.flatnonzero(counts[:, t])
        if not len(g):
            continue
        gaps = start[g[1:]] - start[g[:-1] + 1]
        if start[g[0]] > limit or (len(gaps) and int(gaps.max()) > limit):
            return True
    return False


def feeder_for(reader, threads: int, chunk_records: int = CHUNK_RECORDS,
               chunks=None) -> "Feeder":
    """The feeder of a trace: in file order (``chunks``, default the reader's chunks decoded
    ahead), holding back at most MAX_HELD_RECORDS for a starved thread. A multi-threaded trace
    with more records than that, in which some thread's records lie more than half of that
    apart (a recorder that serialises threads wrote the others' runs in between), is fed per
    thread instead (:class:`ThreadStreams`), so that its threads stay in step however far apart
    their runs are. Both read the tid column once for the per-thread counts."""
    if threads <= 1:
        counts = None
    else:
        by_group = reader.group_thread_counts(threads)
        if (reader.num_records > MAX_HELD_RECORDS
                and runs_far_apart(by_group, MAX_HELD_RECORDS // 2)):
            return StreamFeeder(ThreadStreams(reader, threads, by_group), chunk_records)
        counts = by_group.sum(axis=0)
    if chunks is None:
        chunks = reader.iter_chunks_ahead(chunk_records)
    return Feeder(chunks, counts)


class FirstTouch:
    """Linux's default placement: a page is allocated on the node of the CPU that first
    touches it; when that node is full, on the nearest node with room, in the OS model's
    fallback order (``hwemu.numa.fallback_order`` over the machine's SLIT distances, measured
    once, the first time a node is full). Frames are handed out in order per node; 4 KiB
    pages.

    The common case, a free frame on the CPU's own node, is served inside the replay loop
    (``Machine.first_touch_in_loop``) with the same frame and PTE as here; the loop returns the
    fault to this handler only when the node is full or the page table must grow. Both share
    the per-node next-frame counters (``S.ft_next``)."""

    def __init__(self, machine: Machine, in_loop: bool = True):
        self.m = machine
        self.next = machine.S.ft_next
        self._order = None
        machine.first_touch_in_loop(in_loop)

    @property
    def pages(self) -> list[int]:
        """4 KiB pages placed on each node."""
        return [int(x) for x in self.next]

    @property
    def order(self) -> list[list[int]]:
        if self._order is None:
            from hwemu.machine.topology import slit_distances
            from hwemu.numa import fallback_order

            slit = slit_distances(self.m.config)
            self._order = fallback_order(self.m.config.num_nodes, lambda a, b: slit[a][b])
        return self._order

    def __call__(self, stop: Stop) -> None:
        m = self.m
        if stop.fault == "not_present":
            cpu = m.thread_cpu(stop.thread)
            home = m.config.cpu_node(cpu)
            pid = int(m.S.th_pid[stop.thread])
            # the home node first; the fallback order only when it is full
            nodes = [home] if self.next[home] < m.node_frames(home) else self.order[home]
            for node in nodes:
                frame = int(self.next[node])
                if frame < m.node_frames(node):
                    m.map_page(pid, stop.vaddr & ~0xFFF, node, frame)
                    self.next[node] = frame + 1
                    return
            raise HwemuError("out of simulated memory: every node is full")
        if stop.fault == "numa_hint":
            # no balancing policy: just make the page accessible again
            pid = int(m.S.th_pid[stop.thread])
            m.set_pte(pid, stop.vaddr, pte_with_state(stop.pte, PTE_PRESENT))
            m.flush_tlb(pid, stop.vaddr, bool(stop.pte & 4))
            return
        raise HwemuError(f"thread {stop.thread} faulted on a migration entry at {stop.vaddr:#x} "
                         "with no OS to wait for")


@dataclass
class RunResult:
    stats: Stats
    summary: dict
    machine: Machine = field(repr=False, default=None)


def parse_cpus(text: str | None, cfg: MachineConfig) -> list[int] | None:
    """``"0-3,8"`` -> [0, 1, 2, 3, 8]."""
    if text is None:
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                a, b = int(a), int(b)
                if a > b:
                    raise HwemuError(f"--cpus: {part!r} is not a range (first CPU above the last)")
                if b >= cfg.num_cpus or a < 0:  # checked before the range is built
                    bad = a if not 0 <= a < cfg.num_cpus else cfg.num_cpus
                    raise HwemuError(f"--cpus: CPU {bad} does not exist on {cfg.name} "
                                     f"(0..{cfg.num_cpus - 1})")
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise HwemuError(f"--cpus: cannot parse {part!r} (use a list like 0-3,8)") from None
    for c in out:
        if not 0 <= c < cfg.num_cpus:
            raise HwemuError(f"--cpus: CPU {c} does not exist on {cfg.name} "
                             f"(0..{cfg.num_cpus - 1})")
    if len(set(out)) != len(out):
        raise HwemuError("--cpus: a CPU is listed twice")
    return out


class _Callbacks(StopHandler):
    """A StopHandler from two functions: ``on_fault(stop)`` and ``on_event(m)`` -> next
    event time or None."""

    def __init__(self, on_fault, on_event, first_event_ps):
        self.on_fault, self.on_event, self.next_ev = on_fault, on_event, first_event_ps

    def stop_time(self) -> int | None:
        return self.next_ev

    def fault(self, m: Machine, stop: Stop) -> None:
        self.on_fault(stop)

    def event(self, m: Machine, stop: Stop, time_ps: int) -> bool:
        self.next_ev = self.on_event(m) if self.on_event else None
        return True


def run_chunks(m: Machine, chunks, on_fault: Callable[[Stop], None],
               on_event: Callable[[Machine], int | None] | None = None,
               first_event_ps: int | None = None, progress=None) -> None:
    """Replay ``chunks`` on ``m``. ``on_fault(stop)`` must resolve each fault; ``on_event(m)``
    is called when the earliest thread reaches the scheduled time and returns the next event
    time (or None)."""
    feeder = chunks if isinstance(chunks, Feeder) else Feeder(chunks)
    feeder.drive(m, _Callbacks(on_fault, on_event, first_event_ps), progress)


def _max_tid(reader) -> int:
    """Largest thread id, from the Parquet column statistics (thread ids need not be dense)."""
    md = reader._pf.metadata
    idx = reader._pf.schema_arrow.names.index("tid")
    best = 0
    for i in range(md.num_row_groups):
        st = md.row_group(i).column(idx).statistics
        if st is None or not st.has_min_max:
            return max(0, reader.meta.threads - 1)
        best = max(best, int(st.max))
    if not 0 <= best <= 0xFFFF:
        # Out of range (a foreign writer): reading the column reports the first bad row.
        reader.thread_counts(1)
    return best


def run_trace(machine: MachineConfig | str, trace_path, cpus: list[int] | None = None,
              seed: int = 0, progress: bool = False, on_fault=None, on_event=None,
              first_event_ps: int | None = None, chunk_records: int = CHUNK_RECORDS) -> RunResult:
    """Replay a native trace on ``machine`` with first-touch placement (or ``on_fault``)."""
    from tqdm import tqdm

    from hwemu.traces.format import MAX_VADDR, TraceReader

    cfg = as_config(machine)
    reader = TraceReader(trace_path, max_addr=MAX_VADDR)
    threads = max(1, reader.meta.threads, _max_tid(reader) + 1)
    if cpus is not None and len(cpus) < threads:
        raise HwemuError(f"--cpus: the trace has {threads} thread(s) but only {len(cpus)} CPU(s) "
                         "were given")
    if threads > cfg.num_cpus:
        raise HwemuError(f"the trace has {threads} threads but {cfg.name} has {cfg.num_cpus} CPUs")
    m = Machine(cfg, threads=threads, cpus=cpus, seed=seed)
    handler = on_fault or FirstTouch(m)
    with tqdm(total=reader.num_records, disable=not progress, unit="rec", unit_scale=True,
              desc="replay", leave=False) as bar:
        # the next chunk is decoded while this one replays (replay_handle runs without the GIL)
        feeder = feeder_for(reader, threads, chunk_records)
        run_chunks(m, feeder, handler, on_event, first_event_ps, bar)
    stats = machine_stats(m)
    feeder.add_stats(stats)
    return RunResult(stats, summarize(stats, m), m)


def _percentile_ps(hist: np.ndarray, q: float) -> float:
    total = int(hist.sum())
    if total == 0:
        return 0.0
    edges = hist_edges_ps()
    cum = np.cumsum(hist)
    b = int(np.searchsorted(cum, q * total, side="left"))
    return float(edges[b] + edges[b + 1]) / 2.0


def machine_stats(m: Machine) -> Stats:
    """Every counter of the model as one Stats collection (component paths as in docs)."""
    S, cfg = m.S, m.config
    st = Stats()
    acc = int(S.th_acc.sum())
    st.add("machine", "accesses", acc, "accesses")
    st.add("machine", "latency_sum", int(S.th_lat_sum.sum()), "ps")
    for q in (50, 95, 99):
        st.add("machine", f"latency_p{q}", _percentile_ps(S.hist, q / 100), "ps")
    st.add("machine", "sim_time", m.sim_time_ps(), "ps")
    for t in range(m.threads):
        comp = f"thread{t}"
        st.add(comp, "cpu", int(S.th_cpu[t]), "cpu")
        st.add(comp, "accesses", int(S.th_acc[t]), "accesses")
        st.add(comp, "latency_sum", int(S.th_lat_sum[t]), "ps")
        st.add(comp, "instructions", int(S.th_insts[t]), "instructions")
        st.add(comp, "clock", int(S.th_clock[t]), "ps")
        for k, name in enumerate(FAULT_KINDS):
            st.add(comp, f"faults_{name}", int(S.faults[t, k]), "faults")
    for s in range(cfg.sockets):
        node = cfg.socket_node(s)
        for w, name in enumerate(W_NAMES):
            st.add(f"node{node}.socket{s}", f"served_{name}", int(S.served[s, w]), "accesses")
    active = np.nonzero(S.ccnt.sum(axis=1))[0]
    for cpu in active.tolist():
        node = cfg.cpu_node(cpu)
        for k, name in enumerate(K_NAMES):
            v = int(S.ccnt[cpu, k])
            if v:
                st.add(f"node{node}.cpu{cpu}", name, v, "events")
    for n in cfg.nodes:
        comp = f"node{n.id}.mc"
        for k in range(DC_N):
            unit = "ps" if DC_NAMES[k] == "bank_wait" else "requests"
            st.add(comp, DC_NAMES[k], int(S.dram_cnt[n.id, k]), unit)
        st.add(comp, "bytes_read", int(S.dram_cnt[n.id, DC_READS]) * 64, "bytes")
        st.add(comp, "bytes_written", int(S.dram_cnt[n.id, DC_WRITES]) * 64, "bytes")
    for l in cfg.links:
        for c, (a, b) in ((2 * l.id, (l.a, l.b)), (2 * l.id + 1, (l.b, l.a))):
            st.add(f"link.{l.name}.{a}->{b}", "bytes", int(S.chan_bytes[c]), "bytes")
    return st


def summarize(stats: Stats, m: Machine) -> dict:
    """The numbers ``hwemu run`` prints, all derived from ``stats``."""
    df = stats.to_frame()
    cfg = m.config

    def get(comp, stat):
        return stats.get(comp, stat, 0)

    acc = get("machine", "accesses")
    t_ps = get("machine", "sim_time")
    secs = t_ps * 1e-12
    served = {}
    for name in W_NAMES:
        served[name] = int(df[(df.stat == f"served_{name}")]["value"].sum())
    node_bw = {}
    for n in cfg.nodes:
        rd = get(f"node{n.id}.mc", "bytes_read")
        wr = get(f"node{n.id}.mc", "bytes_written")
        node_bw[n.name] = {"read_gbs": round(rd / secs / 1e9, 3) if secs else 0.0,
                           "write_gbs": round(wr / secs / 1e9, 3) if secs else 0.0}
    link_bw = {}
    for l in cfg.links:
        for a, b in ((l.a, l.b), (l.b, l.a)):
            by = get(f"link.{l.name}.{a}->{b}", "bytes")
            link_bw[f"{l.name} {a}->{b}"] = round(by / secs / 1e9, 3) if secs else 0.0
    faults = {k: int(df[df.stat == f"faults_{k}"]["value"].sum()) for k in FAULT_KINDS}
    return {
        "machine": cfg.name,
        "threads": m.threads,
        "accesses": int(acc),
        "mean_latency_ns": round(get("machine", "latency_sum") / acc / 1000, 3) if acc else 0.0,
        "p50_latency_ns": round(get("machine", "latency_p50") / 1000, 3),
        "p95_latency_ns": round(get("machine", "latency_p95") / 1000, 3),
        "p99_latency_ns": round(get("machine", "latency_p99") / 1000, 3),
        "served": served,
        "node_bandwidth_gbs": node_bw,
        "link_bandwidth_gbs": link_bw,
        "faults": faults,
        "sim_time_ns": round(t_ps / 1000, 3),
    }
