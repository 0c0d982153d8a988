"""A deterministic event queue keyed by (time_ps, priority, sequence)."""

from __future__ import annotations

import heapq
import itertools
from typing import Any, Callable


class Event:
    """One scheduled callback. ``cancel()`` keeps it in the heap but makes it a no-op."""

    __slots__ = ("time_ps", "priority", "seq", "callback", "args", "cancelled")

    def __init__(self, time_ps: int, priority: int, seq: int, callback: Callable, args: tuple):
        self.time_ps = time_ps
        self.priority = priority
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def key(self) -> tuple[int, int, int]:
        return (self.time_ps, self.priority, self.seq)

    def __lt__(self, other: "Event") -> bool:  # the queue's order (its heap holds key tuples)
        return (self.time_ps, self.priority, self.seq) < (other.time_ps, other.priority, other.seq)

    def __repr__(self) -> str:
        name = getattr(self.callback, "__qualname__", repr(self.callback))
        return f"Event(t={self.time_ps}ps, prio={self.priority}, seq={self.seq}, {name})"


class EventQueue:
    """Min-heap of :class:`Event`; ``now_ps`` is the time of the last event popped.

    Time never goes backwards: scheduling before ``now_ps`` is a bug in the caller and raises
    ``ValueError``. Lower ``priority`` runs first among events at the same time; equal keys run
    in scheduling order (the sequence number), so runs are reproducible.
    """

    def __init__(self, start_ps: int = 0):
        if int(start_ps) != start_ps or start_ps < 0:
            raise ValueError(f"start time must be a non-negative integer of ps, got {start_ps!r}")
        self.now_ps = int(start_ps)
        # (time_ps, priority, seq, event): tuples compare in C, an Event's __lt__ in Python
        # (the OS model schedules and pops millions of events)
        self._heap: list[tuple[int, int, int, Event]] = []
        self._seq = itertools.count()

    def schedule(self, time_ps: int, callback: Callable, *args: Any, priority: int = 0) -> Event:
        if not isinstance(time_ps, int):
            raise TypeError(f"event time must be an int of picoseconds, got {type(time_ps).__name__}")
        if time_ps < self.now_ps:
            raise ValueError(f"cannot schedule at {time_ps}ps, before now ({self.now_ps}ps)")
        seq = next(self._seq)
        ev = Event(time_ps, priority, seq, callback, args)
        heapq.heappush(self._heap, (time_ps, priority, seq, ev))
        return ev

    def schedule_in(self, delay_ps: int, callback: Callable, *args: Any, priority: int = 0) -> Event:
        return self.schedule(self.now_ps + delay_ps, callback, *args, priority=priority)

    def _drop_cancelled(self) -> None:
        heap = self._heap
        while heap and heap[0][3].cancelled:
            heapq.heappop(heap)

    def peek_time(self) -> int | None:
        """Time of the next live event, or None when the queue is empty."""
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    def due(self, time_ps: int) -> list[Event]:
        """The live events at or before ``time_ps`` (in no particular order)."""
        return [e for t, _, _, e in self._heap if t <= time_ps and not e.cancelled]

    def __len__(self) -> int:
        return sum(1 for *_, e in self._heap if not e.cancelled)

    def step(self) -> Event | None:
        """Pop and run the next live event; returns it (None if the queue was empty)."""
        self._drop_cancelled()
        if not self._heap:
            return None
        ev = heapq.heappop(self._heap)[3]
        self.now_ps = ev.time_ps
        ev.callback(*ev.args)
        return ev

    def run_until(self, time_ps: int) -> int:
        """Run every event with time <= ``time_ps``; then set now to ``time_ps``. Returns the
        number of events run."""
        n = 0
        heap = self._heap
        while heap:
            head = heap[0]
            if head[3].cancelled:
                heapq.heappop(heap)
            elif head[0] > time_ps:
                break
            else:
                self.step()
                n += 1
        if time_ps > self.now_ps:
            self.now_ps = time_ps
        return n

    def run(self, limit: int | None = None) -> int:
        """Run until the queue is empty (or ``limit`` events ran). Returns events run."""
        n = 0
        while (limit is None or n < limit) and self.step() is not None:
            n += 1
        return n
