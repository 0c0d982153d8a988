"""Output helpers shared by every command: the ``--json`` printer."""

from __future__ import annotations

import json
import sys


def print_json(obj) -> None:
    """Print ``obj`` as JSON on stdout (the ``--json`` output of every command)."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=_json_default)
    sys.stdout.write("\n")


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
