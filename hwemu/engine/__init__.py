"""Simulated time for OS work: an event queue in integer picoseconds and per-CPU occupancy.

* :class:`EventQueue` orders entries by ``(time_ps, priority, sequence)`` so that two runs of
  the same inputs pop events in exactly the same order (ties go to the lower priority number,
  then to the entry scheduled first).
* :class:`CpuTimeline` keeps, per CPU, the time until which OS work occupies it: work asked of
  a busy CPU starts when the CPU is free.
* :class:`Engine` joins the two and runs *processes*: Python generators that yield a duration
  (the CPU they run on is busy for it), a :class:`WaitQueue` (they sleep, the CPU is free,
  until someone wakes the queue) or another :class:`Process` (they wait for it to finish).
  This is the same shape as SimPy's core, kept to what the OS model needs.
"""

from hwemu.engine.queue import Event, EventQueue
from hwemu.engine.cpus import CpuTimeline
from hwemu.engine.process import Engine, Process, WaitQueue, Sleep

__all__ = ["Event", "EventQueue", "CpuTimeline", "Engine", "Process", "WaitQueue", "Sleep"]
