"""Statistics with units: the single source of every printed number.

Each component records counters under its component path (``node0.core3.l1d``) with a name,
a value and a unit. :class:`Stats` gathers them into one long-form pandas DataFrame with the
columns ``component, stat, value, unit``. Derived metrics (rates, reductions) are computed by
reports from this frame, not stored. Snapshots subtract, for warm-up and regions of interest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COLUMNS = ("component", "stat", "value", "unit")


@dataclass
class Stats:
    """An ordered collection of (component, stat) -> (value, unit)."""

    _rows: dict = field(default_factory=dict)

    def add(self, component: str, stat: str, value, unit: str) -> None:
        """Set a statistic (replacing any earlier value of the same component and stat)."""
        self._rows[(component, stat)] = (value, unit)

    def inc(self, component: str, stat: str, value, unit: str) -> None:
        """Add ``value`` to a statistic, creating it at zero."""
        key = (component, stat)
        rows = self._rows
        row = rows.get(key)
        rows[key] = (0 + value, unit) if row is None else (row[0] + value, unit)

    def get(self, component: str, stat: str, default=None):
        row = self._rows.get((component, stat))
        return default if row is None else row[0]

    def merge(self, other: "Stats") -> None:
        self._rows.update(other._rows)

    def snapshot(self) -> "Stats":
        return Stats(dict(self._rows))

    def since(self, earlier: "Stats") -> "Stats":
        """Counters accumulated after ``earlier`` was taken (numeric values subtract)."""
        out = Stats()
        for key, (value, unit) in self._rows.items():
            base = earlier._rows.get(key, (0, unit))[0]
            try:
                out._rows[key] = (value - base, unit)
            except TypeError:
                out._rows[key] = (value, unit)
        return out

    def counters(self, component: str, names=(), unit: str = "count") -> "Counters":
        """A dict-like view of the counters of ``component``: ``c["x"] += 1`` updates the
        row (``component``, ``"x"``) of this collection. ``names`` are created at zero, in
        order; other names appear on first assignment."""
        c = Counters(self, component, unit)
        for name in names:
            c[name] = 0
        return c

    def to_frame(self):
        import pandas as pd

        rows = [(c, s, v, u) for (c, s), (v, u) in self._rows.items()]
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def __len__(self) -> int:
        return len(self._rows)


class Counters:
    """The counters of one component of a :class:`Stats`, used like a dict of ints (a
    policy's ``self.n["promoted"] += 1``): every read and write goes to the Stats rows."""

    __slots__ = ("_stats", "component", "unit")

    def __init__(self, stats: Stats, component: str, unit: str = "count"):
        self._stats, self.component, self.unit = stats, component, unit

    def __getitem__(self, name: str):
        row = self._stats._rows.get((self.component, name))
        if row is None:
            raise KeyError(name)
        return row[0]

    def __setitem__(self, name: str, value) -> None:
        row = self._stats._rows.get((self.component, name))
        self._stats._rows[(self.component, name)] = (value, self.unit if row is None else row[1])

    def __contains__(self, name: str) -> bool:
        return (self.component, name) in self._stats._rows

    def get(self, name: str, default=None):
        row = self._stats._rows.get((self.component, name))
        return default if row is None else row[0]

    def items(self):
        return [(s, v) for (c, s), (v, _u) in self._stats._rows.items() if c == self.component]

