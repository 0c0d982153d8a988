"""Schedule files: who runs where, and what the OS is asked to do, and when.

A schedule is a TOML file (format in docs/schedule.md) with

* ``[[process]]``: a process (pid, name, THP, task memory policy), with ``[[process.mmap]]``
  mappings (anonymous private, anonymous shared, file-backed) and their policies;
* ``[[thread]]``: a thread of the trace (``tid``) belonging to a process, and its CPU;
* ``[[event]]``: things that happen at a simulated time ``at``: ``move_thread``, ``pin`` /
  ``unpin`` (get_user_pages-style references), ``writeback`` (I/O on a page),
  ``move_pages``, ``migrate_pages``, ``mbind``, ``set_mempolicy``.

:func:`load_schedule` parses and validates (errors name the file and the key);
:func:`apply_schedule` creates the processes, mappings and threads in a
:class:`~hwemu.linux.kernel.Kernel` and schedules the events on its engine. System calls run
as processes on the CPU of the calling thread; their results are logged in
:attr:`ScheduleRun.log`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwemu.errors import HwemuError
from hwemu.fileio import read_toml
from hwemu.linux.mempolicy import FLAG_NAMES, Mempolicy, parse_policy
from hwemu.linux.mm import PAGE_SIZE, VmaKind
from hwemu.units import MAX_PAGES, parse_size, parse_time_ps

ACTIONS = ("move_thread", "pin", "unpin", "writeback", "lock_page", "move_pages", "migrate_pages",
           "mbind", "set_mempolicy")

_EVENT_KEYS = {
    "move_thread": ({"tid", "cpu"}, set()),
    "pin": ({"pid", "addr"}, {"pages", "kind", "duration"}),
    "unpin": ({"pid", "addr"}, {"pages", "kind"}),
    "writeback": ({"pid", "addr"}, {"pages", "duration"}),
    "lock_page": ({"pid", "addr", "duration"}, {"pages"}),
    "move_pages": ({"tid", "pid", "addr"}, {"pages", "node", "nodes", "query", "flags"}),
    "migrate_pages": ({"tid", "pid", "from", "to"}, {"move_all"}),
    "mbind": ({"tid", "pid", "addr", "size", "policy"}, {"flags"}),
    "set_mempolicy": ({"pid", "policy"}, set()),
}


@dataclass
class MmapSpec:
    start: int
    size: int
    kind: str
    file: str | None = None
    offset: int = 0
    thp: bool | None = None
    policy: Mempolicy | None = None
    name: str = ""


@dataclass
class ProcessSpec:
    pid: int
    name: str = ""
    thp: bool = False
    policy: Mempolicy | None = None
    auto_vma: bool = True
    numa_balancing: bool = False
    mmaps: list[MmapSpec] = field(default_factory=list)


@dataclass
class ThreadSpec:
    tid: int
    pid: int
    cpu: int


@dataclass
class EventSpec:
    at_ps: int
    action: str
    args: dict[str, Any]
    where: str


@dataclass
class Schedule:
    path: str
    processes: list[ProcessSpec]
    threads: list[ThreadSpec]
    events: list[EventSpec]
    numa_balancing: object | None = None     # NumaBalancingParams of [numa_balancing]

    def thread_for(self, tid: int) -> ThreadSpec | None:
        for t in self.threads:
            if t.tid == tid:
                return t
        return None

    def summary(self) -> dict:
        return {
            "processes": [p.pid for p in self.processes],
            "mappings": sum(len(p.mmaps) for p in self.processes),
            "threads": {t.tid: {"pid": t.pid, "cpu": t.cpu} for t in self.threads},
            "events": [f"{e.at_ps / 1e6:g}us {e.action}" for e in self.events],
        }


class _Ctx:
    def __init__(self, path: str):
        self.path = path

    def err(self, key: str, msg: str) -> HwemuError:
        return HwemuError(f"{self.path}: {key}: {msg}")

    def table(self, obj, key: str) -> dict:
        if not isinstance(obj, dict):
            raise self.err(key, "expected a table")
        return obj

    def array(self, obj: dict, k: str, key: str) -> list:
        """``obj[k]`` (default empty) if it is an array of tables, as ``[[k]]`` writes."""
        v = obj.get(k, [])
        if not isinstance(v, list):
            where = f"{key}.{k}" if key else k
            toml = re.sub(r"\[[0-9]+\]", "", where)
            raise self.err(where, f"expected an array of tables ([[{toml}]]), got {v!r}")
        return v

    def keys(self, obj: dict, key: str, required: set, optional: set) -> None:
        for k in sorted(required):
            if k not in obj:
                raise self.err(f"{key}.{k}", "missing (required)")
        for k in sorted(obj):
            if k not in required and k not in optional:
                allowed = ", ".join(sorted(required | optional))
                raise self.err(f"{key}.{k}", f"unknown key (allowed: {allowed})")

    def int_(self, obj: dict, k: str, key: str, default=None, lo: int | None = 0,
             hi: int | None = None) -> int:
        v = obj.get(k, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(f"{key}.{k}", f"expected an integer, got {v!r}")
        if lo is not None and v < lo:
            raise self.err(f"{key}.{k}", f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise self.err(f"{key}.{k}", f"{v} is more than hwemu can model (at most {hi})")
        return v

    def addr(self, obj: dict, k: str, key: str) -> int:
        v = obj.get(k)
        if isinstance(v, str):
            try:
                v = int(v, 0)
            except ValueError:
                raise self.err(f"{key}.{k}", f"cannot parse address {obj.get(k)!r}") from None
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise self.err(f"{key}.{k}", f"expected an address (integer or \"0x...\" string), got {obj.get(k)!r}")
        if v >= 1 << 57:
            raise self.err(f"{key}.{k}", f"address {v:#x} is outside the 57-bit virtual address space")
        if v % PAGE_SIZE:
            raise self.err(f"{key}.{k}", f"address {v:#x} is not 4KiB aligned")
        return v

    def size(self, obj: dict, k: str, key: str, default=None) -> int:
        v = obj.get(k, default)
        n = parse_size(v, f"{self.path}: {key}.{k}")
        if n <= 0 or n % PAGE_SIZE:
            raise self.err(f"{key}.{k}", f"size {v!r} must be a positive multiple of 4KiB")
        return n

    def time(self, obj: dict, k: str, key: str) -> int:
        return parse_time_ps(obj.get(k), f"{self.path}: {key}.{k}")

    def bool_(self, obj: dict, k: str, key: str, default: bool) -> bool:
        v = obj.get(k, default)
        if not isinstance(v, bool):
            raise self.err(f"{key}.{k}", f"expected true or false, got {v!r}")
        return v

    def str_(self, obj: dict, k: str, key: str, default=None, choices=None) -> str:
        v = obj.get(k, default)
        if not isinstance(v, str):
            raise self.err(f"{key}.{k}", f"expected a string, got {v!r}")
        if choices and v not in choices:
            raise self.err(f"{key}.{k}", f"must be one of {', '.join(choices)}, got {v!r}")
        return v

    def nodes(self, obj: dict, k: str, key: str, num_nodes: int) -> list[int]:
        v = obj.get(k)
        if not isinstance(v, list) or not v or not all(isinstance(n, int) and not isinstance(n, bool) for n in v):
            raise self.err(f"{key}.{k}", f"expected a non-empty list of node numbers, got {v!r}")
        for n in v:
            if not 0 <= n < num_nodes:
                raise self.err(f"{key}.{k}", f"node {n} does not exist (nodes 0-{num_nodes - 1})")
        return v

    def policy(self, obj: dict, k: str, key: str, num_nodes: int) -> Mempolicy:
        pol = parse_policy(obj.get(k), f"{self.path}: {key}.{k}")
        pol.check_nodes(num_nodes, f"{self.path}: {key}.{k}")
        return pol

    def flags(self, obj: dict, k: str, key: str) -> int:
        v = obj.get(k, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.err(f"{key}.{k}", "expected a list of flag names")
        out = 0
        for name in v:
            if name not in FLAG_NAMES:
                raise self.err(f"{key}.{k}", f"unknown flag {name!r} (use {', '.join(FLAG_NAMES)})")
            out |= FLAG_NAMES[name]
        return out


def load_schedule(path: str | Path, hw) -> Schedule:
    path = str(path)
    p = Path(path)
    doc = read_toml(p, "schedule TOML file")
    return parse_schedule(doc, path, hw)


def parse_schedule(doc: dict, path: str, hw) -> Schedule:
    c = _Ctx(path)
    c.keys(doc, "schedule", set(), {"process", "thread", "event", "numa_balancing"})
    nb_params = None
    if "numa_balancing" in doc:
        from hwemu.linux.numa_balancing import NumaBalancingParams
        nbt = c.table(doc["numa_balancing"], "numa_balancing")
        c.keys(nbt, "numa_balancing", set(),
               {"scan_delay", "scan_period_min", "scan_period_max", "scan_size"})
        d = NumaBalancingParams()
        nb_params = NumaBalancingParams(
            scan_delay_ps=c.time(nbt, "scan_delay", "numa_balancing") if "scan_delay" in nbt else d.scan_delay_ps,
            scan_period_min_ps=c.time(nbt, "scan_period_min", "numa_balancing") if "scan_period_min" in nbt else d.scan_period_min_ps,
            scan_period_max_ps=c.time(nbt, "scan_period_max", "numa_balancing") if "scan_period_max" in nbt else d.scan_period_max_ps,
            scan_size_bytes=c.size(nbt, "scan_size", "numa_balancing") if "scan_size" in nbt else d.scan_size_bytes)
        if nb_params.scan_period_min_ps <= 0 or nb_params.scan_period_max_ps < nb_params.scan_period_min_ps:
            raise c.err("numa_balancing.scan_period_max", "needs 0 < scan_period_min <= scan_period_max")
    nn, ncpu = hw.num_nodes, hw.num_cpus
    procs: list[ProcessSpec] = []
    pids: set[int] = set()
    raw_procs = c.array(doc, "process", "")
    for i, rp in enumerate(raw_procs):
        key = f"process[{i}]"
        c.table(rp, key)
        c.keys(rp, key, {"pid"}, {"name", "thp", "policy", "auto_vma", "mmap", "numa_balancing"})
        pid = c.int_(rp, "pid", key, lo=1)
        if pid in pids:
            raise c.err(f"{key}.pid", f"pid {pid} defined twice")
        pids.add(pid)
        spec = ProcessSpec(pid=pid, name=c.str_(rp, "name", key, f"pid{pid}"),
                           thp=c.bool_(rp, "thp", key, False),
                           policy=c.policy(rp, "policy", key, nn) if "policy" in rp else None,
                           auto_vma=c.bool_(rp, "auto_vma", key, True),
                           numa_balancing=c.bool_(rp, "numa_balancing", key, False))
        ranges = []
        for j, rm in enumerate(c.array(rp, "mmap", key)):
            mkey = f"{key}.mmap[{j}]"
            c.table(rm, mkey)
            c.keys(rm, mkey, {"start", "size"}, {"kind", "file", "offset", "thp", "policy", "name"})
            kind = c.str_(rm, "kind", mkey, "anon", ("anon", "shared", "file"))
            ms = MmapSpec(start=c.addr(rm, "start", mkey), size=c.size(rm, "size", mkey), kind=kind,
                          file=c.str_(rm, "file", mkey) if "file" in rm else None,
                          offset=parse_size(rm.get("offset", 0), f"{path}: {mkey}.offset"),
                          thp=c.bool_(rm, "thp", mkey, False) if "thp" in rm else None,
                          policy=c.policy(rm, "policy", mkey, nn) if "policy" in rm else None,
                          name=c.str_(rm, "name", mkey, ""))
            if kind == "file" and not ms.file:
                raise c.err(f"{mkey}.file", "a file mapping needs a file name")
            if kind == "anon" and ms.file:
                raise c.err(f"{mkey}.file", "an anonymous private mapping has no file")
            if ms.offset % PAGE_SIZE:
                raise c.err(f"{mkey}.offset", "must be a multiple of 4KiB")
            for (s, e, k2) in ranges:
                if ms.start < e and s < ms.start + ms.size:
                    raise c.err(f"{mkey}.start", f"overlaps {k2}")
            ranges.append((ms.start, ms.start + ms.size, mkey))
            spec.mmaps.append(ms)
        procs.append(spec)
    threads: list[ThreadSpec] = []
    tids: set[int] = set()
    for i, rt in enumerate(c.array(doc, "thread", "")):
        key = f"thread[{i}]"
        c.table(rt, key)
        c.keys(rt, key, {"tid", "pid", "cpu"}, set())
        tid = c.int_(rt, "tid", key)
        if tid in tids:
            raise c.err(f"{key}.tid", f"thread {tid} defined twice")
        tids.add(tid)
        pid = c.int_(rt, "pid", key, lo=1)
        if pid not in pids:
            raise c.err(f"{key}.pid", f"no [[process]] with pid {pid}")
        cpu = c.int_(rt, "cpu", key)
        if cpu >= ncpu:
            raise c.err(f"{key}.cpu", f"cpu {cpu} does not exist (cpus 0-{ncpu - 1})")
        threads.append(ThreadSpec(tid, pid, cpu))
    events: list[EventSpec] = []
    for i, re_ in enumerate(c.array(doc, "event", "")):
        key = f"event[{i}]"
        c.table(re_, key)
        action = c.str_(re_, "action", key, None, ACTIONS) if "action" in re_ else None
        if action is None:
            raise c.err(f"{key}.action", f"missing (one of {', '.join(ACTIONS)})")
        req, opt = _EVENT_KEYS[action]
        c.keys(re_, key, req | {"at", "action"}, opt)
        at = c.time(re_, "at", key)
        a: dict[str, Any] = {}
        if "tid" in req:
            a["tid"] = c.int_(re_, "tid", key)
            if a["tid"] not in tids:
                raise c.err(f"{key}.tid", f"no [[thread]] with tid {a['tid']}")
        if "pid" in req:
            a["pid"] = c.int_(re_, "pid", key, lo=1)
            if a["pid"] not in pids:
                raise c.err(f"{key}.pid", f"no [[process]] with pid {a['pid']}")
        if action == "move_thread":
            a["cpu"] = c.int_(re_, "cpu", key)
            if a["cpu"] >= ncpu:
                raise c.err(f"{key}.cpu", f"cpu {a['cpu']} does not exist (cpus 0-{ncpu - 1})")
        if "addr" in req:
            a["addr"] = c.addr(re_, "addr", key)
        if "pages" in opt:
            a["pages"] = c.int_(re_, "pages", key, 1, lo=1, hi=MAX_PAGES)
        if action in ("pin", "unpin"):
            a["kind"] = c.str_(re_, "kind", key, "pin", ("pin", "get"))
        if action in ("pin", "writeback") and "duration" in re_:
            a["duration_ps"] = c.time(re_, "duration", key)
        if action == "writeback":
            a.setdefault("duration_ps", 30_000_000)
        if action == "lock_page":
            a["duration_ps"] = c.time(re_, "duration", key)
        if action == "move_pages":
            query = c.bool_(re_, "query", key, False)
            if query:
                if "node" in re_ or "nodes" in re_:
                    raise c.err(f"{key}.query", "the query form (nodes = NULL) takes no node or nodes")
                a["nodes"] = None
            elif ("node" in re_) == ("nodes" in re_):
                raise c.err(f"{key}.node", "give exactly one of node (all pages) or nodes (one per "
                            "page), or query = true for the query form")
            elif "node" in re_:
                n = c.int_(re_, "node", key)
                if n >= nn:
                    raise c.err(f"{key}.node", f"node {n} does not exist (nodes 0-{nn - 1})")
                a["nodes"] = [n] * a["pages"]
            else:
                a["nodes"] = c.nodes(re_, "nodes", key, nn)
                if len(a["nodes"]) != a["pages"]:
                    raise c.err(f"{key}.nodes", f"{len(a['nodes'])} nodes for {a['pages']} pages")
            a["flags"] = c.flags(re_, "flags", key)
        if action == "migrate_pages":
            a["from"] = c.nodes(re_, "from", key, nn)
            a["to"] = c.nodes(re_, "to", key, nn)
            a["move_all"] = c.bool_(re_, "move_all", key, False)
        if action == "mbind":
            a["size"] = c.size(re_, "size", key)
            a["policy"] = c.policy(re_, "policy", key, nn)
            a["flags"] = c.flags(re_, "flags", key)
        if action == "set_mempolicy":
            a["policy"] = c.policy(re_, "policy", key, nn)
        events.append(EventSpec(at, action, a, key))
    events.sort(key=lambda e: e.at_ps)     # stable: file order among equal times
    return Schedule(path, procs, threads, events, nb_params)


@dataclass
class ScheduleRun:
    schedule: Schedule
    log: list[dict] = field(default_factory=list)
    pins: dict[tuple, list] = field(default_factory=dict)


def apply_schedule(kernel, schedule: Schedule) -> ScheduleRun:
    """Create the processes, mappings and threads and put every event on the engine."""
    from hwemu.engine import Sleep
    from hwemu.linux import syscalls

    run = ScheduleRun(schedule)
    for ps in schedule.processes:
        kernel.create_process(ps.pid, ps.name, ps.thp, ps.policy, ps.auto_vma)
        for ms in ps.mmaps:
            try:
                kernel.mmap(ps.pid, ms.start, ms.size, VmaKind(ms.kind), ms.file, ms.offset,
                            ms.thp, ms.policy, ms.name)
            except HwemuError as exc:
                raise HwemuError(f"{schedule.path}: process pid {ps.pid} mmap {ms.start:#x}: {exc}") from None
    for ts in schedule.threads:
        kernel.add_thread(ts.pid, ts.tid, ts.cpu)
    balanced = [ps.pid for ps in schedule.processes if ps.numa_balancing]
    if balanced:
        from hwemu.linux.numa_balancing import NumaBalancing
        nb = kernel.numa_balancing or NumaBalancing(kernel, schedule.numa_balancing)
        for pid in balanced:
            nb.start(pid)

    def log(ev: EventSpec, **kw):
        run.log.append({"at_ps": ev.at_ps, "action": ev.action, "where": ev.where, **kw})

    def start(ev: EventSpec):
        a = ev.args
        if ev.action == "move_thread":
            kernel.move_thread(a["tid"], a["cpu"])
            log(ev, cpu=a["cpu"])
            return
        if ev.action == "set_mempolicy":
            log(ev, ret=syscalls.set_mempolicy(kernel, a["pid"], a["policy"]))
            return
        if ev.action == "lock_page":
            # another kernel path (read-ahead I/O, a racing migration) holds the page locks
            held = 0
            for i in range(a["pages"]):
                page = kernel.follow_page(a["pid"], a["addr"] + i * PAGE_SIZE)
                if page is not None:
                    kernel.hold_page_lock(page, a["duration_ps"], owner=ev.where)
                    held += 1
            log(ev, pages=held)
            return
        if ev.action in ("pin", "unpin", "writeback"):
            mm = kernel.mm(a["pid"])
            tid = next(iter(mm.threads), None)
            cpu = kernel.threads[tid].cpu if tid is not None else 0
            if ev.action == "unpin":
                pages = run.pins.pop((a["pid"], a["addr"], a["pages"], a["kind"]), None)
                if pages is None:
                    raise HwemuError(f"{schedule.path}: {ev.where}: nothing pinned at "
                                     f"{a['addr']:#x} x {a['pages']} ({a['kind']})")
                kernel.unpin_user_pages(pages, a["kind"])
                log(ev, pages=len(pages))
                return
            if ev.action == "writeback":
                def wb():
                    for i in range(a["pages"]):
                        page = kernel.follow_page(a["pid"], a["addr"] + i * PAGE_SIZE)
                        if page is not None:
                            kernel.start_writeback(page, a["duration_ps"])
                    log(ev, pages=a["pages"])
                    yield 0
                kernel.engine.spawn(wb(), cpu, name=ev.where)
                return

            def pin():
                pages = yield from kernel.pin_user_pages_gen(a["pid"], a["addr"], a["pages"], a["kind"])
                keyp = (a["pid"], a["addr"], a["pages"], a["kind"])
                run.pins[keyp] = pages
                log(ev, pages=len(pages))
                if "duration_ps" in a:
                    yield Sleep(a["duration_ps"])
                    if run.pins.pop(keyp, None) is not None:
                        kernel.unpin_user_pages(pages, a["kind"])
            kernel.engine.spawn(pin(), cpu, name=ev.where)
            return
        if ev.action == "move_pages":
            addrs = [a["addr"] + i * PAGE_SIZE for i in range(a["pages"])]

            def make(cpu, a=a, addrs=addrs):
                return syscalls.move_pages(kernel, cpu, a["pid"], addrs, a["nodes"], a["flags"])
        elif ev.action == "migrate_pages":
            def make(cpu, a=a):
                return syscalls.migrate_pages(kernel, cpu, a["pid"], a["from"], a["to"], a["move_all"])
        else:
            def make(cpu, a=a):
                return syscalls.mbind(kernel, cpu, a["pid"], a["addr"], a["size"], a["policy"], a["flags"])

        def done(p, ev=ev):
            v = p.value
            # start_ps: when the call entered the kernel (later than at_ps when the thread
            # was still inside an earlier call of its own)
            if hasattr(v, "ret"):
                # reasons: index of the page in the call -> why it was not migrated
                log(ev, ret=v.ret, status=list(v.status), start_ps=p.start_ps,
                    elapsed_ps=p.end_ps - p.start_ps,
                    reasons={int(i): r for i, r in sorted(v.reasons.items())})
            else:
                log(ev, ret=v, start_ps=p.start_ps, elapsed_ps=p.end_ps - p.start_ps)
        # the calling thread is inside the kernel for the whole call (Kernel.thread_syscall)
        kernel.thread_syscall(a["tid"], make, ev.where, done)

    for ev in schedule.events:
        if ev.at_ps < kernel.engine.now_ps:
            raise HwemuError(f"{schedule.path}: {ev.where}.at: {ev.at_ps}ps is in the past")
        kernel.engine.call_at(ev.at_ps, start, ev)
    return run
