"""Output helpers shared by every command: the ``--json`` printer and the number formats of
text output."""

from __future__ import annotations

import argparse
import json
import sys

from hwemu.units import format_bytes as size  # noqa: F401  (sizes: one formatter, in units)


def print_json(obj) -> None:
    """Print ``obj`` as JSON on stdout (the ``--json`` output of every command)."""
    # written in pieces of many tokens: json.dump writes each token (millions for a long run's
    # records), json.dumps holds them all at once
    out, parts = sys.stdout, []
    for token in json.JSONEncoder(indent=2, default=_json_default).iterencode(obj):
        parts.append(token)
        if len(parts) >= 8192:
            out.write("".join(parts))
            parts.clear()
    parts.append("\n")
    out.write("".join(parts))


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

# -- numbers in text output -------------------------------------------------------------------
# One style everywhere: counts with thousands separators, sizes in binary units with the exact
# byte count, times in the unit that keeps 1-4 integer digits, never a raw float repr.

def count(n) -> str:
    """``2396289`` -> ``"2,396,289"``."""
    return f"{int(n):,}"


def duration(ns) -> str:
    """A time given in ns, in ns, us, ms or s: ``1234.5`` -> ``"1.23 us"``."""
    if ns is None or ns != ns:
        return "n/a"
    v = float(ns)
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.3g} {unit}" if abs(v) / div < 100 else f"{v / div:,.0f} {unit}"
    return f"{v:.3g} ns" if abs(v) < 100 else f"{v:,.0f} ns"


def ns(value, digits: int = 1) -> str:
    """A latency in ns with ``digits`` decimals, or ``n/a``."""
    if value is None or value != value:
        return "n/a"
    return f"{float(value):,.{digits}f} ns"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help text: prose paragraphs of the description and epilog wrapped to the terminal
    (at most 100 columns), blocks with indented lines (examples, tables) kept as written."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        import shutil

        if width is None:
            width = shutil.get_terminal_size().columns - 2
        super().__init__(prog, indent_increment, max_help_position, min(width, 100))

    def _fill_text(self, text, width, indent):
        import textwrap

        out = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if any(line[:1].isspace() for line in lines) or para.rstrip().endswith(":"):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(line.strip() for line in lines), width,
                                         initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(out)
