"""The compiled machine model's compile-time conventions (docs/machine.md, "Compilation").

numba compiles a jitted callee once for every literal value passed to it (``True``, ``0``, a
module's integer constant), and that copy again inside every caller: seconds of the first run
each. This test reads the source of the machine's kernels and fails on a call from a compiled
function to a compiled (not inlined) helper with a literal argument.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

import hwemu.machine
from numba.core.registry import CPUDispatcher


def _modules():
    for info in pkgutil.iter_modules(hwemu.machine.__path__):
        yield importlib.import_module(f"hwemu.machine.{info.name}")


def _is_helper(obj) -> bool:
    """A compiled function called as a separate library (not inlined at numba IR level)."""
    return isinstance(obj, CPUDispatcher) and obj.targetoptions.get("inline") != "always"


def _literal(node, g: dict) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int)):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return True
    # a module-level Python int or bool (numpy scalars are typed, not literal)
    return isinstance(node, ast.Name) and type(g.get(node.id)) in (bool, int)


def test_no_literal_arguments_to_compiled_helpers():
    bad = []
    for mod in _modules():
        g = vars(mod)
        for name, fn in g.items():
            if not isinstance(fn, CPUDispatcher) or fn.py_func.__module__ != mod.__name__:
                continue
            src, first = inspect.getsourcelines(fn.py_func)
            tree = ast.parse("".join(src).lstrip())
            # names bound inside the function shadow module globals
            local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                     and isinstance(n.ctx, ast.Store)}
            local |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
            for call in ast.walk(tree):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
                    continue
                callee = g.get(call.func.id)
                if not _is_helper(callee):
                    continue
                for i, a in enumerate(call.args):
                    if _literal(a, {k: v for k, v in g.items() if k not in local}):
                        bad.append(f"{mod.__name__}.{name} line {first + call.lineno - 1}: "
                                   f"{call.func.id}(...) argument {i} is {ast.unparse(a)}")
    assert not bad, "literal arguments to compiled helpers:\n" + "\n".join(bad)


def test_handle_entries_pass_the_state_by_reference():
    """A handle's entry hands its compiled helpers ``handle_state(h)``, a reference to the
    state: ``handle_ref(h).S`` passed on is a copy of the whole tuple on every call, and a
    helper also called with the reference is then compiled twice (docs/machine.md)."""
    bad = []
    for mod in _modules():
        g = vars(mod)
        for name, fn in g.items():
            if not isinstance(fn, CPUDispatcher) or fn.py_func.__module__ != mod.__name__:
                continue
            src, first = inspect.getsourcelines(fn.py_func)
            tree = ast.parse("".join(src).lstrip())
            refs = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign)
                    and isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Name)
                    and n.value.func.id == "handle_ref" for t in n.targets
                    if isinstance(t, ast.Name)}

            def state_copy(a) -> bool:      # handle_ref(h).S, or H.S with H = handle_ref(h)
                return isinstance(a, ast.Attribute) and a.attr == "S" and (
                    (isinstance(a.value, ast.Name) and a.value.id in refs)
                    or (isinstance(a.value, ast.Call) and isinstance(a.value.func, ast.Name)
                        and a.value.func.id == "handle_ref"))
            copies = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign)
                      and state_copy(n.value) for t in n.targets if isinstance(t, ast.Name)}
            for call in ast.walk(tree):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                        and _is_helper(g.get(call.func.id))):
                    continue
                for a in call.args:
                    if state_copy(a) or (isinstance(a, ast.Name) and a.id in copies):
                        bad.append(f"{mod.__name__}.{name} line {first + call.lineno - 1}: "
                                   f"{call.func.id}({ast.unparse(a)}, ...)")
    assert not bad, "a handle's state passed by value:\n" + "\n".join(bad)
