"""Per-CPU occupancy by OS work (busy-until times, integer picoseconds)."""

from __future__ import annotations


class CpuTimeline:
    """``busy_until_ps[cpu]``: OS work asked of a CPU starts no earlier than this.

    ``occupy(cpu, ready_ps, duration_ps)`` returns ``(start_ps, end_ps)`` and advances the
    CPU's busy-until to ``end_ps``; ``busy_ps[cpu]`` totals the time spent.
    """

    def __init__(self, num_cpus: int):
        if num_cpus <= 0:
            raise ValueError("a machine needs at least one CPU")
        self.num_cpus = num_cpus
        self.busy_until_ps = [0] * num_cpus
        self.busy_ps = [0] * num_cpus
        self.changed: set[int] = set()   # CPUs occupied since a reader last cleared this

    def _check(self, cpu: int) -> None:
        if not 0 <= cpu < self.num_cpus:
            raise ValueError(f"cpu {cpu} out of range 0..{self.num_cpus - 1}")

    def occupy(self, cpu: int, ready_ps: int, duration_ps: int) -> tuple[int, int]:
        self._check(cpu)
        if duration_ps < 0:
            raise ValueError(f"negative duration {duration_ps}ps")
        start = max(int(ready_ps), self.busy_until_ps[cpu])
        end = start + int(duration_ps)
        self.busy_until_ps[cpu] = end
        self.busy_ps[cpu] += int(duration_ps)
        self.changed.add(cpu)
        return start, end

    def free_at(self, cpu: int) -> int:
        self._check(cpu)
        return self.busy_until_ps[cpu]
