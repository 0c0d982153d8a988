"""Generator processes on top of the event queue (the OS's threads of control).

A process is a generator. What it yields decides when it resumes:

* an ``int`` ``d``: it computes for ``d`` ps on its CPU. The CPU's busy-until advances (work
  queued behind other OS work on the same CPU starts later) and the process resumes at the
  end of that work.
* :class:`Sleep` ``(d)``: it waits ``d`` ps without occupying the CPU (an I/O wait, a timer).
* a :class:`WaitQueue`: it sleeps until the queue is woken; it resumes with the value passed
  to ``wake``.
* a :class:`Process`: it waits for that process to finish and resumes with its return value.

``Engine.spawn(gen, cpu, at_ps)`` starts a process; the generator's return value is stored in
``Process.value`` and passed to the callbacks in ``Process.on_done``.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

from hwemu.engine.cpus import CpuTimeline
from hwemu.engine.queue import EventQueue

# Priorities among events at the same picosecond: wake-ups first (so a released lock is seen
# by waiters before new work starts), then process steps, then external arrivals.
PRIO_WAKE = 0
PRIO_STEP = 1
PRIO_EXTERNAL = 2


class Sleep:
    """Yield ``Sleep(d)`` to wait ``d`` ps without occupying the CPU."""

    __slots__ = ("duration_ps",)

    def __init__(self, duration_ps: int):
        self.duration_ps = int(duration_ps)


class WaitQueue:
    """Processes (or plain callbacks) sleeping until an event; ``wake(value)`` releases all."""

    __slots__ = ("name", "_waiters")

    def __init__(self, name: str = ""):
        self.name = name
        self._waiters: list[Callable[[Any], None]] = []

    def add(self, callback: Callable[[Any], None]) -> None:
        self._waiters.append(callback)

    def __len__(self) -> int:
        return len(self._waiters)

    def wake(self, engine: "Engine", value: Any = None) -> int:
        waiters, self._waiters = self._waiters, []
        for cb in waiters:
            engine.queue.schedule(engine.now_ps, cb, value, priority=PRIO_WAKE)
        return len(waiters)


class Process:
    __slots__ = ("engine", "gen", "cpu", "name", "done", "value", "start_ps", "end_ps",
                 "on_done", "_waitq")

    def __init__(self, engine: "Engine", gen: Generator, cpu: int | None, name: str):
        self.engine = engine
        self.gen = gen
        self.cpu = cpu
        self.name = name
        self.done = False
        self.value: Any = None
        self.start_ps: int | None = None
        self.end_ps: int | None = None
        self.on_done: list[Callable[["Process"], None]] = []
        self._waitq = WaitQueue(f"join:{name}")

    def _resume(self, send_value: Any = None) -> None:
        eng = self.engine
        if self.start_ps is None:
            self.start_ps = eng.now_ps
        try:
            item = self.gen.send(send_value)
        except StopIteration as stop:
            self.done = True
            self.value = stop.value
            self.end_ps = eng.now_ps
            self._waitq.wake(eng, self.value)
            for cb in self.on_done:
                cb(self)
            return
        if isinstance(item, bool):
            raise TypeError(f"process {self.name} yielded a bool")
        if isinstance(item, int):
            if self.cpu is None:
                raise TypeError(f"process {self.name} has no CPU but yielded work of {item}ps")
            _, end = eng.cpus.occupy(self.cpu, eng.now_ps, item)
            eng.queue.schedule(end, self._resume, None, priority=PRIO_STEP)
        elif isinstance(item, Sleep):
            eng.queue.schedule(eng.now_ps + item.duration_ps, self._resume, None, priority=PRIO_STEP)
        elif isinstance(item, WaitQueue):
            item.add(self._resume)
        elif isinstance(item, Process):
            if item.done:
                eng.queue.schedule(eng.now_ps, self._resume, item.value, priority=PRIO_WAKE)
            else:
                item._waitq.add(self._resume)
        else:
            raise TypeError(f"process {self.name} yielded {item!r}")


class Engine:
    """The event queue, the CPUs' busy-until times, and the processes running on them."""

    def __init__(self, num_cpus: int, start_ps: int = 0):
        self.queue = EventQueue(start_ps)
        self.cpus = CpuTimeline(num_cpus)

    @property
    def now_ps(self) -> int:
        return self.queue.now_ps

    def spawn(self, gen: Generator, cpu: int | None = None, at_ps: int | None = None,
              name: str = "process") -> Process:
        proc = Process(self, gen, cpu, name)
        when = self.now_ps if at_ps is None else int(at_ps)
        self.queue.schedule(when, proc._resume, None, priority=PRIO_STEP)
        return proc

    def call_at(self, time_ps: int, callback: Callable, *args, priority: int = PRIO_EXTERNAL):
        return self.queue.schedule(int(time_ps), callback, *args, priority=priority)

    def run_until(self, time_ps: int) -> int:
        return self.queue.run_until(int(time_ps))

    def run(self, limit: int | None = None) -> int:
        return self.queue.run(limit)

    def run_process(self, proc: Process, limit: int = 50_000_000) -> Any:
        """Run events until ``proc`` finishes; return its value. Other due work runs too."""
        n = 0
        while not proc.done:
            if self.queue.step() is None:
                raise RuntimeError(f"process {proc.name} is blocked forever (no events left)")
            n += 1
            if n > limit:
                raise RuntimeError(f"process {proc.name} did not finish within {limit} events")
        return proc.value
