"""Keep numba's on-disk cache of the machine kernels consistent.

numba's ``cache=True`` keys a compiled function on its own source file only; the replay loop
inlines and calls functions from the other modules of this package, so after any of them
changes its cached machine code could be stale. On first import this compares a hash of every
module of the package with the one stored beside the cache and, if it differs, drops the
package's cached kernels so they are recompiled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_DONE = False


def check() -> None:
    global _DONE
    if _DONE:
        return
    _DONE = True
    pkg = Path(__file__).parent
    h = hashlib.sha256()
    for f in sorted(pkg.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    digest = h.hexdigest()
    cache = pkg / "__pycache__"
    stamp = cache / "hwemu-machine-kernels.sha256"
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
