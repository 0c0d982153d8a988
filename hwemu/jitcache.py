"""Keep numba's on-disk caches of compiled kernels consistent.

numba's ``cache=True`` keys a compiled function on its own source file only; the machine's
replay loop inlines and calls functions from the other modules of its package and from the
cache core (``hwemu/cachesim/setassoc.py``), and the cachegrind replay (``hwemu/cachesim/sim.py``)
inlines the cache core too, so after any of them changes, cached machine code could be stale.
On first import of each package, :func:`check_package` compares a hash of the package's modules
(plus any extra source files its kernels inline) with the one stored beside the cache and, if it
differs, drops the package's cached kernels so they are recompiled: in the package's
``__pycache__`` and, when ``NUMBA_CACHE_DIR`` is set, in the directory numba keeps them in there.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

_DONE: set = set()


def cache_dirs(pkg: Path) -> list[Path]:
    """Where numba keeps the cached kernels of ``pkg``'s modules: the package's
    ``__pycache__`` and, when ``NUMBA_CACHE_DIR`` is set, the directory numba derives from it
    for that package (numba's ``UserProvidedCacheLocator``: the package directory's name and a
    SHA-1 of its absolute path, named by numba's own function)."""
    from numba import config
    from numba.core.caching import _CacheLocator

    pkg = Path(pkg)
    dirs = [pkg / "__pycache__"]
    if config.CACHE_DIR:
        # numba's own naming of a source file's directory under NUMBA_CACHE_DIR
        sub = _CacheLocator.get_suitable_cache_subpath(os.path.abspath(pkg / "__init__.py"))
        dirs.append(Path(config.CACHE_DIR) / sub)
    return dirs


def check_package(pkg: Path, extra: tuple[Path, ...] = ()) -> None:
    """Drop ``pkg``'s cached numba kernels if any of its modules (or ``extra``) changed, in
    every directory of :func:`cache_dirs`."""
    pkg = Path(pkg)
    if pkg in _DONE:
        return
    _DONE.add(pkg)
    h = hashlib.sha256()
    for f in sorted(pkg.glob("*.py")) + list(extra):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    digest = h.hexdigest()
    for cache in cache_dirs(pkg):
        stamp = cache / "hwemu-kernels.sha256"
        try:
            if stamp.read_text() == digest:
                continue
        except OSError:
            pass
        try:
            cache.mkdir(parents=True, exist_ok=True)
            for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
                f.unlink(missing_ok=True)
            stamp.write_text(digest)
        except OSError:
            pass  # read-only install: numba falls back to compiling in memory


# -- a notice when kernels compile -------------------------------------------------------------
# numba compiles a kernel on its first call when no cached machine code fits; for the machine
# model that is a minute or two after install or upgrade, which would otherwise pass in
# silence. numba's event API reports a compilation (never a load from the cache), so exactly
# one line goes to stderr in a process that compiles, and none in one that does not.
_NOTICE = {"said": False, "start": 0.0}


def _install_compile_notice() -> None:
    try:
        from numba.core import event
    except ImportError:          # pragma: no cover - numba without the event API
        return

    class _CompileNotice(event.Listener):
        def on_start(self, ev):
            if _NOTICE["said"] or os.environ.get("HWEMU_NO_COMPILE_NOTICE"):
                return
            disp = (ev.data or {}).get("dispatcher")
            mod = getattr(getattr(disp, "py_func", None), "__module__", "") or ""
            if not mod.startswith("hwemu."):
                return
            _NOTICE["said"] = True
            _NOTICE["start"] = time.perf_counter()
            print("hwemu: compiling the numba kernels (once after install or upgrade; "
                  "they are cached for later runs) ...", file=sys.stderr, flush=True)

        def on_end(self, ev):
            pass

    event.register("numba:compile", _CompileNotice())


_install_compile_notice()

