"""The one replay driver: a loop that runs the compiled replay and hands every stop (fault,
event, end of chunk) to a :class:`StopHandler`. ``hwemu run`` (first touch,
:mod:`hwemu.machine.replay`), the co-simulation with the OS model (``hwemu.sim.cosim.CoSim`` is
a StopHandler) and the ``mlc`` probes (:mod:`hwemu.machine.mlc`) all replay through it;
:meth:`hwemu.machine.replay.Feeder.drive` feeds it chunk after chunk."""

from __future__ import annotations

from hwemu.machine.system import Machine, Stop


class StopHandler:
    """What to do at each stop of the replay loop: the one driver (:func:`replay`,
    :meth:`Feeder.drive`) behind ``hwemu run``, the co-simulation with the OS model
    (``hwemu.sim.cosim.CoSim`` is a StopHandler) and the ``mlc`` probes.

    Override what you need: ``stop_time`` (the time at which the loop returns ``event``;
    None: never), ``load`` (put a chunk into the machine), ``fault`` (resolve a fault; the
    record is retried), ``event`` (the earliest runnable thread reached the stop time:
    return True to go on replaying, False to return to the caller)."""

    def stop_time(self) -> int | None:
        return None

    def load(self, m: Machine, chunk, more=None) -> None:
        m.load_chunk(chunk, more)

    def fault(self, m: Machine, stop: Stop) -> None:
        raise AssertionError(f"unexpected fault: {stop}")

    def event(self, m: Machine, stop: Stop, time_ps: int) -> bool:
        return False

    def chunk_end(self, m: Machine, starved: bool) -> None:
        """Called when the loaded chunk is done or starved."""

    def entering(self, m: Machine, stop_ps: int | None) -> None:
        """Called before every entry into the compiled loop (with the stop time it gets)."""

    def returned(self, m: Machine, stop: Stop, stop_ps: int | None) -> None:
        """Called when the loop returns, before the stop is handled."""

    def idle_skips_hooks(self) -> bool:
        """Whether an entry into the loop that would return ``event`` at once, having done
        nothing (:meth:`Machine.idle_stop`), may be skipped with ``entering`` and
        ``returned``: True when those hooks, around such an entry, change nothing that a
        later entry's would not (the defaults do nothing)."""
        return True


def replay(m: Machine, handler: StopHandler) -> str:
    """Replay what is loaded into ``m`` until the chunk is done (``"chunk-done"``), the
    earliest thread needs records beyond it (``"starved"``), or ``handler.event`` says stop
    (``"event"``). Faults go to ``handler.fault``."""
    while True:
        t = handler.stop_time()
        # an entry that would return at once, doing nothing, is not made (the OS model
        # advances in steps of tens of nanoseconds; most find every thread past them)
        s = m.idle_stop(t) if handler.idle_skips_hooks() else None
        if s is None:
            handler.entering(m, t)
            s = m.run(t)
            handler.returned(m, s, t)
        if s.reason == "fault":
            handler.fault(m, s)
            continue
        if s.reason == "event":
            if handler.event(m, s, t):
                continue
            return "event"
        handler.chunk_end(m, s.reason == "starved")
        return s.reason
