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


def _helper_calls():
    """Every call from a compiled function of the machine to a compiled helper: (module
    globals, the function's qualified name and syntax tree, its first line, the call)."""
    for mod in _modules():
        g = vars(mod)
        for name, fn in g.items():
            if not isinstance(fn, CPUDispatcher) or fn.py_func.__module__ != mod.__name__:
                continue
            src, first = inspect.getsourcelines(fn.py_func)
            tree = ast.parse("".join(src).lstrip())
            for call in ast.walk(tree):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) \
                        and _is_helper(g.get(call.func.id)):
                    yield g, f"{mod.__name__}.{name}", tree, first, call


def _assigned(tree, value) -> set:
    """Names the function binds to an expression for which ``value(expr)`` holds."""
    return {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and value(n.value)
            for t in n.targets if isinstance(t, ast.Name)}


def test_no_literal_arguments_to_compiled_helpers():
    bad = []
    for g, where, tree, first, call in _helper_calls():
        # names bound inside the function shadow module globals
        local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                 and isinstance(n.ctx, ast.Store)}
        local |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
        for i, a in enumerate(call.args):
            if _literal(a, {k: v for k, v in g.items() if k not in local}):
                bad.append(f"{where} line {first + call.lineno - 1}: "
                           f"{call.func.id}(...) argument {i} is {ast.unparse(a)}")
    assert not bad, "literal arguments to compiled helpers:\n" + "\n".join(bad)


def _calls(node, fname) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
        and node.func.id == fname


def test_handle_entries_pass_the_state_by_reference():
    """A handle's entry hands its compiled helpers ``handle_state(h)``, the one spelling of the
    reference to the state (docs/machine.md): a copy of the whole tuple on every call, which
    ``handle_ref(h).S`` was while a reference handed its named-tuple fields out by value, also
    made a helper the loop calls with the reference compile twice."""
    bad = []
    for _, where, tree, first, call in _helper_calls():
        refs = _assigned(tree, lambda v: _calls(v, "handle_ref"))

        def state_copy(a) -> bool:      # handle_ref(h).S, or H.S with H = handle_ref(h)
            return isinstance(a, ast.Attribute) and a.attr == "S" and (
                (isinstance(a.value, ast.Name) and a.value.id in refs)
                or _calls(a.value, "handle_ref"))
        copies = _assigned(tree, state_copy)
        for a in call.args:
            if state_copy(a) or (isinstance(a, ast.Name) and a.id in copies):
                bad.append(f"{where} line {first + call.lineno - 1}: "
                           f"{call.func.id}({ast.unparse(a)}, ...)")
    assert not bad, "a handle's state passed by value:\n" + "\n".join(bad)
