"""A modelled machine and the interface the OS half (hwemu.linux) drives it through.

:class:`Machine` owns the state arrays, the page tables and the replay cursor. Python calls
:meth:`Machine.run` to replay the loaded chunk until it is done, an event time is reached, or an
access faults; it gets a :class:`Stop` back, handles it (maps a page, migrates, schedules), and
calls :meth:`Machine.run` again. See docs/machine.md, section "OS interface".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwemu.errors import HwemuError
from hwemu.machine.core import (FAULT_KINDS, idle_thread, replay, replay_handle,
                                replay_handle_os, replay_os)
from hwemu.machine.memops import meta_access_handle
from hwemu.machine.pagetable import PAGE_SHIFT, PTE_PRESENT, PageTables, make_pte
from hwemu.machine.stateref import CHUNK_FIELDS, TABLE_FIELDS, Handle
from hwemu.machine.config import MachineConfig, as_config
from hwemu.machine.times import NEVER as _NEVER
from hwemu.machine.times import PARKED
from hwemu.machine.state import build_state
from hwemu.machine.layout import (FT_BUDGET, FT_MAPPED, FT_NEW_SLOTS, O_KIND, O_N, O_PTE,
                                  O_THREAD, O_VADDR, R_CHUNK_DONE, R_EVENT,
                                  R_STARVED, W_NAMES)

NEVER = int(_NEVER)                   # a stop time that never comes (hwemu.machine.times)
# dtypes of the chunk arrays (kind, addr, size, insts, order) the compiled handle holds
_HANDLE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint64), np.dtype(np.uint16),
                  np.dtype(np.uint32), np.dtype(np.int64))


@dataclass(frozen=True, slots=True)
class Stop:
    """Why the replay loop returned."""

    reason: str          # "chunk-done", "event", "fault" or "starved"
    thread: int = -1     # faulting thread (fault) or the earliest thread (event)
    vaddr: int = 0       # faulting virtual address
    kind: int = 0        # record kind of the faulting access (0 I, 1 L, 2 S, 3 M)
    pte: int = 0         # the PTE found (state: not-present, migration entry, prot-none)
    fault: str = ""      # "not_present", "migration_entry" or "numa_hint"


_CHUNK_DONE = Stop("chunk-done")

_ACCESS: tuple = ()      # (memops.access_handle, hierarchy.W_NAMES), imported on first use


def _access():
    global _ACCESS
    if not _ACCESS:
        from hwemu.machine.memops import access_handle

        _ACCESS = (access_handle, tuple(W_NAMES))
    return _ACCESS


class Machine:
    """A machine (from a preset name, a TOML path or a MachineConfig) running ``threads``
    trace threads, thread ``i`` on ``cpus[i]`` (default CPU ``i``), all in process 0."""

    def __init__(self, config: MachineConfig | str, threads: int = 1, cpus=None, seed: int = 0):
        self.config = as_config(config)
        self.threads = max(1, int(threads))
        self._ncpus = self.config.num_cpus
        self._cpu_arrays = {}           # _cpu_array's arrays by CPU tuple
        self.S = build_state(self.config, self.threads, seed)
        self.pt = PageTables()
        self._out = np.zeros(O_N, np.int64)
        self._chunk = None
        # The compiled-side handle (stateref.Handle): state, page tables, chunk and ``out`` in
        # one object, so that entering the replay loop types and unboxes one argument instead
        # of ~110 arrays. Made on the first replay; ``_tables`` are the page-table arrays it
        # holds (a table replaces its arrays when it grows), ``_fast`` whether it holds the
        # loaded chunk (chunks with unusual dtypes take the general path).
        self._h = None
        self._hp = 0                    # the address of _h's payload (_handle)
        self._tables = None
        self._fast = False
        self._stops = {}
        self._first_touch = False       # first_touch_in_loop
        self._os_faults = False         # loop_fault_table: the OS model's faults in the loop
        if cpus is not None:
            cpus = list(cpus)
            if len(cpus) < self.threads:
                raise HwemuError(f"{self.threads} threads need {self.threads} CPUs, got "
                                 f"{len(cpus)} ({cpus})")
            for t in range(self.threads):
                self.move_thread(t, cpus[t])

    # ---- physical memory ------------------------------------------------------------------
    def node_frames(self, node: int) -> int:
        """Number of 4 KiB frames of ``node`` (frames are numbered 0.. per node)."""
        return int(self.S.node_size[node]) >> PAGE_SHIFT

    def phys_addr(self, node: int, frame: int) -> int:
        """Physical address of 4 KiB frame ``frame`` of ``node``."""
        if not 0 <= frame < self.node_frames(node):
            raise HwemuError(f"frame {frame} is outside node {node} ({self.node_frames(node)} frames)")
        return int(self.S.node_base[node]) + (frame << PAGE_SHIFT)

    def node_of_phys(self, pa: int) -> int:
        for n, (b, e) in enumerate(self._node_ranges()):
            if b <= pa < e:
                return n
        raise HwemuError(f"physical address {pa:#x} is not in any node")

    def _node_ranges(self) -> tuple:
        """(first, end) physical address of every node, as Python ints (read from the state
        once: node bases and sizes never change)."""
        return self._nodes_read()[1]

    def _phys_span(self) -> tuple[int, int]:
        """(first, end) of a physical range that lies wholly inside the nodes: the lowest node
        and those that follow it without a gap (all of them on every preset). An address in
        it needs no search of the nodes to be known valid."""
        return self._nodes_read()[2]

    def _nodes_read(self) -> tuple:
        """(S, the nodes' ranges, their span), made from the state ``S`` once."""
        r = self.__dict__.get("_ranges")
        if r is None or r[0] is not self.S:
            S = self.S
            ranges = tuple((int(S.node_base[n]), int(S.node_base[n]) + int(S.node_size[n]))
                           for n in range(self.config.num_nodes))
            lo, hi = min(ranges)
            for b, e in sorted(ranges)[1:]:
                if b != hi:
                    break
                hi = e
            r = self._ranges = (S, ranges, (lo, hi))
        return r

    def frame_of_phys(self, pa: int) -> tuple[int, int]:
        n = self.node_of_phys(pa)
        return n, (pa - int(self.S.node_base[n])) >> PAGE_SHIFT

    # ---- page tables ----------------------------------------------------------------------
    def map_page(self, pid: int, vaddr: int, node: int, frame: int, huge: bool = False,
                 state: int = PTE_PRESENT) -> int:
        """Map the page at ``vaddr`` to ``frame`` of ``node`` (a 2 MiB page needs a frame
        aligned to 512); returns the PTE."""
        if huge and frame % 512:
            raise HwemuError(f"frame {frame} is not 2 MiB aligned for a huge page")
        pte = make_pte(self.phys_addr(node, frame), node, huge, state)
        self.pt.set(pid, vaddr, pte)
        self._retranslate()
        return pte

    def _retranslate(self) -> None:
        # threads that translated but have not yet issued must translate again
        self.S.th_pend[self.S.th_pend == 2] = 1

    def first_touch_in_loop(self, on: bool = True) -> None:
        """Let the replay loop serve a not-present fault itself (machine-only first touch,
        :func:`hwemu.machine.core._first_touch`): the page goes to the next free frame
        (``S.ft_next``) of the faulting CPU's node. The loop still returns a fault when that
        node is full. Only ``replay.FirstTouch`` turns this on; with the OS model every fault
        goes to the OS."""
        self._first_touch = bool(on)
        self.S.ft_ctl[FT_BUDGET] = 0          # set before each replay while on

    def set_pte(self, pid: int, vaddr: int, pte: int) -> None:
        """Install a PTE (see pagetable.make_pte / pte_with_state). The caller flushes TLBs."""
        self.pt.set(pid, vaddr, pte)
        self._retranslate()

    def set_pte_keep_ad(self, pid: int, vaddr: int, pte: int) -> None:
        """:meth:`set_pte`, keeping the A and D bits of an entry of the same frame and size it
        replaces (``PageTables.set_keep_ad``). The caller flushes TLBs."""
        self.pt.set_keep_ad(pid, vaddr, pte)
        self._retranslate()

    def set_ptes_keep_ad(self, pid: int, vaddrs: list[int], ptes: list[int]) -> None:
        """:meth:`set_pte_keep_ad` of each entry, in order (``PageTables.set_many_keep_ad``).
        The caller flushes TLBs."""
        self.pt.set_many_keep_ad(pid, vaddrs, ptes)
        self._retranslate()

    def get_pte(self, pid: int, vaddr: int) -> int:
        return self.pt.get(pid, vaddr)

    def unmap_page(self, pid: int, vaddr: int, huge: bool = False) -> bool:
        self._retranslate()
        return self.pt.clear(pid, vaddr, huge)

    def flush_tlb(self, pid: int, vaddr: int, huge: bool = False, cpus=None) -> int:
        """Drop the translation of ``pid``'s page at ``vaddr`` from the TLBs of ``cpus``
        (default all); returns how many entries were dropped."""
        from hwemu.machine.tlb import tlb_flush_page_handle

        idx = self._cpu_array(range(self.config.num_cpus) if cpus is None else cpus)
        self._retranslate()
        return int(tlb_flush_page_handle(self._handle(), idx, int(pid), int(vaddr), bool(huge)))

    def warm_tlb(self, cpu: int, pid: int, vaddrs) -> None:
        """Load the translations of ``vaddrs`` into ``cpu``'s TLBs (no time passes)."""
        from hwemu.machine.tlb import tlb_translate

        t = self.pt
        for va in vaddrs:
            tlb_translate(self.S, t.t2.keys, t.t2.vals, t.t4.keys, t.t4.vals, int(cpu), int(pid),
                          int(va), False, 0)

    def flush_tlb_all(self, cpu: int) -> None:
        self.flush_tlb_cpus([cpu])

    def flush_tlb_cpus(self, cpus) -> None:
        """Full TLB flushes of every CPU in ``cpus`` (a shootdown's targets)."""
        from hwemu.machine.tlb import tlb_flush_cpus_handle

        idx = self._cpu_array(cpus)
        if idx.size:
            tlb_flush_cpus_handle(self._handle(), idx)

    def _cpu_array(self, cpus) -> np.ndarray:
        """``cpus`` as an int64 array, each checked against the machine's CPUs. The arrays of
        lists and tuples are remembered (the OS model flushes the same CPU sets over and
        over); compiled code only reads them."""
        key = None if isinstance(cpus, np.ndarray) else tuple(cpus)
        idx = self._cpu_arrays.get(key) if key is not None else None
        if idx is not None:
            return idx
        idx = np.asarray(list(key) if key is not None else cpus, np.int64)
        bad = idx[(idx < 0) | (idx >= self._ncpus)]
        if bad.size:
            self._check_cpu(int(bad[0]))        # raises
        if key is not None and len(self._cpu_arrays) < 4096:
            self._cpu_arrays[key] = idx
        return idx

    def _check_cpu(self, cpu: int) -> None:
        if not 0 <= cpu < self._ncpus:
            raise HwemuError(f"CPU {cpu} does not exist (0..{self._ncpus - 1})")

    # ---- threads --------------------------------------------------------------------------
    def _check_thread(self, tid: int) -> None:
        if not 0 <= tid < self.threads:
            raise HwemuError(f"thread {tid} does not exist (0..{self.threads - 1})")

    def move_thread(self, tid: int, cpu: int) -> None:
        """Run thread ``tid`` on ``cpu`` from now on (its caches and TLBs are those of the CPU)."""
        self._check_thread(tid)
        if not 0 <= cpu < self.config.num_cpus:
            raise HwemuError(f"CPU {cpu} does not exist (0..{self.config.num_cpus - 1})")
        self.S.th_cpu[tid] = cpu

    def thread_cpu(self, tid: int) -> int:
        return int(self.S.th_cpu[tid])

    def thread_cpus(self) -> list[int]:
        """Every thread's CPU, by thread id."""
        return self.S.th_cpu[:self.threads].tolist()

    def set_thread_pid(self, tid: int, pid: int) -> None:
        self._check_thread(tid)
        self.S.th_pid[tid] = pid

    def thread_clock(self, tid: int) -> int:
        """The thread's local clock (ps)."""
        return int(self.S.th_clock[tid])

    def clocks(self) -> np.ndarray:
        return self.S.th_clock.copy()

    def advance_thread(self, tid: int, ps: int) -> int:
        """Add ``ps`` to a thread's clock (OS work done on its CPU); returns the new clock."""
        self._check_thread(tid)
        self.S.th_clock[tid] += int(ps)
        return int(self.S.th_clock[tid])

    def set_thread_clock(self, tid: int, ps: int) -> None:
        """Set a thread's clock, e.g. to when a lock it waited on was released (never back)."""
        self._check_thread(tid)
        self.S.th_clock[tid] = max(int(self.S.th_clock[tid]), int(ps))

    def park_thread(self, tid: int) -> int:
        """The OS holds thread ``tid`` (it is inside a fault handler): it does not run until
        :meth:`wake_thread`. Returns its clock when parked."""
        self._check_thread(tid)
        c = int(self.S.th_clock[tid])
        self.S.th_clock[tid] = PARKED
        return c

    def wake_thread(self, tid: int, clock_ps: int, parked_at_ps: int) -> None:
        """Let a parked thread run again from ``clock_ps``, which may not be earlier than the
        clock it was parked at (``parked_at_ps``): a clock never moves back."""
        self._check_thread(tid)
        if int(self.S.th_clock[tid]) != PARKED:
            raise AssertionError(f"thread {tid} is not parked")
        if clock_ps < parked_at_ps:
            raise AssertionError(f"thread {tid}: clock would move back ({parked_at_ps} -> {clock_ps})")
        self.S.th_clock[tid] = int(clock_ps)

    def charge_wait(self, tid: int, ps: int) -> None:
        """Charge ``ps`` of waiting (a page under migration) to the next access of ``tid``: the
        access's latency, in the mean and the histogram, includes it."""
        self._check_thread(tid)
        if ps < 0:
            raise AssertionError("a wait cannot be negative")
        self.S.th_wait[tid] += int(ps)

    def set_dependent(self, tid: int, dependent: bool = True) -> None:
        """Make every access of ``tid`` wait for the previous one (a pointer chase)."""
        self.S.th_dep[tid] = 1 if dependent else 0

    # ---- memory traffic on behalf of a CPU ------------------------------------------------
    def copy_lines(self, cpu: int, src_phys: int, dst_phys: int, nbytes: int,
                   start_ps: int | None = None, window: int | None = None) -> int:
        """Copy ``nbytes`` from ``src_phys`` to ``dst_phys`` through the controllers and links
        on behalf of ``cpu``, starting at ``start_ps`` (default: the latest clock of the threads
        on that CPU); returns the completion time (ps)."""
        from hwemu.machine.memops import copy_handle

        if start_ps is None:
            on = [int(self.S.th_clock[t]) for t in range(self.threads) if int(self.S.th_cpu[t]) == cpu]
            start_ps = max(on) if on else 0
        self.node_of_phys(src_phys)
        self.node_of_phys(dst_phys)
        w = int(window or self.config.lfb)
        return int(copy_handle(self._handle(), int(cpu), int(src_phys), int(dst_phys),
                               int(nbytes), int(start_ps), w))

    def engine_lines(self, socket: int, phys: int, nlines: int, at_ps: int, step_ps: int = 0,
                     write: bool = False) -> np.ndarray:
        """``nlines`` consecutive lines from ``phys`` read (or written) by a device on the
        uncore of ``socket`` (a page-copy DMA engine), line ``i`` issued at ``at_ps + i *
        step_ps``, coherently and through the links and controllers. Returns, per line, the
        time its data arrived (read) or its write completed (ps, int64)."""
        from hwemu.machine.memops import engine_handle

        self.node_of_phys(phys)
        self.node_of_phys(phys + 64 * max(1, int(nlines)) - 1)
        out = np.empty(int(nlines), np.int64)
        engine_handle(self._handle(), int(socket), int(phys), int(nlines), int(at_ps),
                      int(step_ps), bool(write), out)
        return out

    def access_line(self, cpu: int, phys: int, write: bool = False, at_ps: int = 0) -> tuple[int, str]:
        """One cache-line access by ``cpu`` to physical address ``phys`` at time ``at_ps``
        (kernel metadata: struct page, PTE, lock word; an atomic is a write), through the
        caches, coherence, links and controllers. Returns (latency ps, where it was served)."""
        node = self.node_of_phys(phys)
        if not 0 <= cpu < self.config.num_cpus:
            raise HwemuError(f"CPU {cpu} does not exist (0..{self.config.num_cpus - 1})")
        at_ps = int(at_ps)
        access, names = _ACCESS or _access()
        done, where = access(self._handle(), int(cpu), node, int(phys), bool(write), at_ps)
        return int(done) - at_ps, names[where]

    def loop_fault_table(self):
        """The arrays through which the OS model lets the replay loop serve its common faults
        (:class:`hwemu.machine.osfault.LoopFaultTable`). From now on the loop is the version
        that serves them (``core.replay_os``, compiled on first use)."""
        from hwemu.machine.osfault import LoopFaultTable

        self._os_faults = True
        return LoopFaultTable(self.S)

    def meta_access(self, cpu: int, phys: int, write: bool, atomic: bool, atomic_ps: int,
                    degree: int, at_ps: int) -> tuple[int, int, int]:
        """A kernel metadata access (:func:`hwemu.machine.memops.meta_access`: the line through
        the caches, coherence, links and controllers, then the OS model's metadata streamer of
        ``degree`` lines). Returns (latency ps, where served as an index of W_NAMES,
        prefetches issued)."""
        lo, hi = self._phys_span()
        if not lo <= phys < hi:
            self.node_of_phys(phys)             # raises, or finds a node past a hole
        self._check_cpu(cpu)
        # no int()/bool() of the arguments: numba types a Python int and a numpy integer
        # alike (int64), and this is called millions of times a run by the OS model
        return meta_access_handle(self._handle(), cpu, phys, write, atomic, atomic_ps, degree,
                                  at_ps)

    def meta_access_seq(self, cpu: int, gaps, paddrs, writes, atomics, atomic_ps: int,
                        degree: int, at_ps: int) -> tuple[int, np.ndarray, np.ndarray]:
        """:meth:`meta_access` for a sequence of lines in one call: access ``i`` starts when
        access ``i - 1`` has ended, plus ``gaps[i]`` ps (the first at ``at_ps + gaps[0]``).
        Returns (total ps, gaps included; where served per access; prefetches per access)."""
        from hwemu.machine.memops import meta_access_seq_handle

        pas = np.asarray(paddrs, np.int64)
        self._check_cpu(cpu)
        lo, hi = self._phys_span()
        if len(pas) and (pas.min() < lo or pas.max() >= hi):
            ranges = self._node_ranges()
            inside = np.zeros(len(pas), bool)
            for b, e in ranges:
                inside |= (pas >= b) & (pas < e)
            if not inside.all():
                self.node_of_phys(int(pas[np.flatnonzero(~inside)[0]]))   # raises
        flags = np.asarray(writes, np.int64) | (np.asarray(atomics, np.int64) << 1)
        where = np.empty(len(pas), np.int64)
        npf = np.empty(len(pas), np.int64)
        total = meta_access_seq_handle(self._handle(), int(cpu), np.asarray(gaps, np.int64),
                                       pas, flags, int(atomic_ps), int(degree), int(at_ps),
                                       where, npf)
        return int(total), where, npf

    def node_start_pfn(self, node: int) -> int:
        """First physical frame number (4 KiB) of ``node``."""
        return int(self.S.node_base[node]) >> PAGE_SHIFT

    def drop_lines(self, phys: int, nbytes: int, at_ps: int = 0) -> int:
        """Invalidate a physical range in every cache (modified lines are written back)."""
        from hwemu.machine.memops import drop_lines_handle

        return int(drop_lines_handle(self._handle(), int(phys), int(nbytes), int(at_ps)))

    # ---- replay ---------------------------------------------------------------------------
    def load_chunk(self, chunk, more=None) -> None:
        """Give the replay loop a chunk of trace records (a TraceChunk). ``more[t]`` true: thread
        ``t`` has records beyond this chunk, so no other thread may run past its clock once it
        has used up its records here (the run stops with reason "starved" instead)."""
        n = len(chunk)
        tid = chunk.tid
        if n and int(tid.max()) >= self.threads:
            raise HwemuError(f"trace record has thread id {int(tid.max())} but the run has "
                             f"{self.threads} thread(s)")
        counts = np.zeros(self.threads, np.int64)
        if n and int(tid.min()) == int(tid.max()):
            order = np.arange(n, dtype=np.int64)         # one thread: records in order
            counts[int(tid[0])] = n
        elif n:
            order = np.argsort(tid, kind="stable").astype(np.int64)
            counts[:] = np.bincount(tid, minlength=self.threads)
        ends = np.cumsum(counts)
        self.S.th_pos[:] = ends - counts
        self.S.th_end[:] = ends
        self.S.th_more[:] = 0 if more is None else np.asarray(more, bool)[: self.threads]
        # Writeable arrays (a copy of the read-only ones Arrow hands out): the compiled
        # handle's fields are typed writeable, and only then does the replay take the fast entry.
        self._chunk = tuple(np.require(a, requirements=("C", "W"))
                            for a in (chunk.kind, chunk.addr, chunk.size, chunk.insts)) + (order,)
        self._chunk_tid = np.ascontiguousarray(chunk.tid)
        self._fast = all(a.dtype == d and a.flags.writeable
                         for a, d in zip(self._chunk, _HANDLE_DTYPES))
        if self._fast:
            self._handle()
            self._h.set(**dict(zip(CHUNK_FIELDS, self._chunk)))

    def _handle(self) -> int:
        """The compiled handle, made on first use, with its page-table arrays brought up to
        date (a table replaces its arrays when it grows), as the address its compiled users
        take (``stateref.Handle.address``; the machine keeps the handle itself in ``_h``)."""
        t = self.pt
        t2, t4 = t.t2, t.t4
        o = self._tables
        if o is not None and t2.keys is o[0] and t2.vals is o[1] and t4.keys is o[2] \
                and t4.vals is o[3]:
            return self._hp
        tabs = (t2.keys, t2.vals, t4.keys, t4.vals)
        if self._h is None:
            empty = tuple(np.zeros(0, d) for d in _HANDLE_DTYPES)
            self._h = Handle(self.S, *tabs, *empty, self._out)
            self._hp = self._h.address
        else:
            self._h.set(**dict(zip(TABLE_FIELDS, tabs)))
        self._tables = tabs
        return self._hp

    def leftover(self):
        """The records of the loaded chunk not replayed yet, in trace order (a TraceChunk); a
        record a thread has started (waiting at a horizon or blocked in a fault) counts as not
        replayed, and the thread resumes it where it stopped."""
        from hwemu.traces.format import TraceChunk

        if self._chunk is None:
            return TraceChunk.empty()
        kind, addr, size, insts, order = self._chunk
        S = self.S
        parts = [order[int(S.th_pos[t]):int(S.th_end[t])] for t in range(self.threads)
                 if S.th_pos[t] < S.th_end[t]]
        idx = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        return TraceChunk(kind=kind[idx], tid=self._chunk_tid[idx], size=size[idx],
                          addr=addr[idx], insts=insts[idx])

    def run(self, stop_ps: int | None = None) -> Stop:
        """Replay the loaded chunk until done, until every runnable thread has reached
        ``stop_ps``, or until an access faults."""
        if self._chunk is None:
            return _CHUNK_DONE
        stop = NEVER if stop_ps is None else int(stop_ps)
        in_loop = self._first_touch or self._os_faults
        if in_loop:
            # the page-table inserts the loop may make before the 4 KiB table must grow
            self.S.ft_ctl[FT_BUDGET] = self.pt.t4.room()
        if self._fast:
            r = (replay_handle_os if self._os_faults else replay_handle)(self._handle(), stop)
        else:
            kind, addr, size, insts, order = self._chunk
            t = self.pt
            r = (replay_os if self._os_faults else replay)(
                self.S, t.t2.keys, t.t2.vals, t.t4.keys, t.t4.vals, kind, addr, size, insts,
                order, stop, self._out)
        if in_loop:
            ft = self.S.ft_ctl
            if ft[FT_MAPPED]:
                self.pt.t4.counted(int(ft[FT_NEW_SLOTS]), int(ft[FT_MAPPED]))
                ft[FT_NEW_SLOTS] = ft[FT_MAPPED] = 0
        o = self._out
        if r == R_CHUNK_DONE:
            self._chunk = None
            return _CHUNK_DONE
        if r == R_EVENT or r == R_STARVED:
            return self._stop(r, int(o[O_THREAD]))
        pte = int(o[O_PTE])
        st = pte & 3
        return Stop("fault", thread=int(o[O_THREAD]), vaddr=int(o[O_VADDR]), kind=int(o[O_KIND]),
                    pte=pte, fault=FAULT_KINDS[0 if st == 0 else st - 1])

    def idle_stop(self, stop_ps: int | None) -> Stop | None:
        """The ``event`` stop :meth:`run` with ``stop_ps`` would return at once, having done
        nothing (every runnable thread is at or past ``stop_ps``, no fault the loop serves
        ends by then), found without entering the loop; None if the loop would do anything
        (then call :meth:`run`)."""
        if self._chunk is None or stop_ps is None or not self._fast:
            return None
        th = int(idle_thread(self._handle(), int(stop_ps)))
        return None if th < 0 else self._stop(R_EVENT, th)

    def _stop(self, r: int, th: int) -> Stop:
        """The ``event`` (``r`` R_EVENT) or ``starved`` stop of thread ``th``. Stops are
        immutable: one per (reason, thread) is kept and handed out again (creating a frozen
        dataclass costs about a microsecond per crossing)."""
        key = (r, th)
        st = self._stops.get(key)
        if st is None:
            st = self._stops[key] = Stop("event" if r == R_EVENT else "starved", thread=th)
        return st

    def sim_time_ps(self) -> int:
        return int(self.S.th_clock.max())
