"""Stale cached kernels are dropped wherever numba keeps them, NUMBA_CACHE_DIR included."""

from __future__ import annotations

import numba
from numba.core.caching import UserProvidedCacheLocator

from hwemu import jitcache


def _kernel_file(d):
    d.mkdir(parents=True, exist_ok=True)
    f = d / "mod.f-1.py311.nbi"
    f.write_text("x")
    return f


def test_changed_module_drops_user_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "nc"))
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    src = pkg / "m.py"
    src.write_text("def f():\n    return 1\n")

    def f():
        return 1

    # the directory numba itself would use for a function of pkg/m.py
    loc = UserProvidedCacheLocator(f, str(src))
    assert jitcache.cache_dirs(pkg)[1] == type(pkg)(loc.get_cache_path())

    monkeypatch.setattr(jitcache, "_DONE", set())
    jitcache.check_package(pkg)
    kept = [_kernel_file(d) for d in jitcache.cache_dirs(pkg)]
    monkeypatch.setattr(jitcache, "_DONE", set())
    jitcache.check_package(pkg)                 # unchanged: the kernels stay
    assert all(k.exists() for k in kept)
    src.write_text("def f():\n    return 2\n")
    monkeypatch.setattr(jitcache, "_DONE", set())
    jitcache.check_package(pkg)                 # changed: dropped in both places
    assert not any(k.exists() for k in kept)
