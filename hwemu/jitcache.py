"""Keep numba's on-disk caches of compiled kernels consistent.

numba's ``cache=True`` keys a compiled function on its own source file only; the machine's
replay loop inlines and calls functions from the other modules of its package and from the
cache core (``hwemu/cachesim/setassoc.py``), and the cachegrind replay (``hwemu/cachesim/sim.py``)
inlines the cache core too, so after any of them changes, cached machine code could be stale.
On first import of each package, :func:`check_package` compares a hash of the package's modules
(plus any extra source files its kernels inline) with the one stored beside the cache and, if it
differs, drops the package's cached kernels so they are recompiled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_DONE: set = set()


def check_package(pkg: Path, extra: tuple[Path, ...] = ()) -> None:
    """Drop ``pkg``'s cached numba kernels if any of its modules (or ``extra``) changed."""
    pkg = Path(pkg)
    if pkg in _DONE:
        return
    _DONE.add(pkg)
    h = hashlib.sha256()
    for f in sorted(pkg.glob("*.py")) + list(extra):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    digest = h.hexdigest()
    cache = pkg / "__pycache__"
    stamp = cache / "hwemu-kernels.sha256"
    try:
        if stamp.read_text() == digest:
            return
    except OSError:
        pass
    try:
        cache.mkdir(exist_ok=True)
        for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            f.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:
        pass  # read-only install: numba falls back to compiling in memory
