"""Passing the machine state to compiled helpers by reference, and a compiled handle on it.

Why (performance): the state ``S`` (:mod:`hwemu.machine.state`) is a named tuple of about a
hundred numpy arrays. numba passes a tuple *by value*: a call ``f(S, ...)`` copies every array
struct (~750 machine words) into the callee's arguments and, in a function compiled with the
NRT (numba's reference counting), increfs and later decrefs every one of those arrays: a
~1 us toll on every call, whatever the callee does. The miss path of the replay made a dozen
such calls per access (measured: ``stream_train`` 1 us per call, 0.1 us with ``_nrt=False``,
~0.005 us through a reference).

:func:`state_ref` turns ``S`` into a :class:`StateRefType` value: a pointer to one copy of the
tuple, stored once in the caller's stack frame. Attribute access on it (``S.cfg``) loads just
that field through the pointer, so helper code reads the same whether it is given the tuple or
the reference, and a call passes one pointer. A field that is itself a named tuple (a cache,
``S.l2``) is handed out as a reference too: loaded by value, a cache's five arrays (35 words)
were copied to the stack wherever a call might take the cache, on every access (the cold call
of the non-LRU replacement policies was enough; docs/performance.md). The helpers that take
``S`` are compiled with ``_nrt=False`` (they never allocate), so no reference counting happens
on the access path at all. A reference must not outlive the frame that made it (it is never
stored or returned); the arrays themselves are owned by the Python-side ``Machine.S``.

:class:`Handle` is the compiled-side half of a :class:`~hwemu.machine.system.Machine` for the
replay loop's entry: ``S``, the page-table arrays, the loaded chunk and the ``out`` array, laid
out in one buffer exactly as numba lays out a named tuple of them, built and updated from
Python. A compiled entry takes the buffer's address, an int, and reads the fields through it
(:func:`handle_ref`): numba types an int argument in C, where a tuple of a hundred arrays plus ten
more took ~19 us per entry to type and unbox, and an object 0.51 us (0.14 us for an int, for a
call that does almost nothing). Python keeps working on the same numpy arrays through
``Machine.S``.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from llvmlite import ir
from numba import njit, types, typeof
from numba.core import cgutils
from numba.core.extending import (infer_getattr, intrinsic, lower_getattr_generic, models,
                                  register_model)
from numba.core.imputils import impl_ret_borrowed
from numba.core.registry import cpu_target
from numba.core.typing.templates import AttributeTemplate


class StateRefType(types.Type):
    """A pointer to a named tuple (the machine state, one of its caches) in the stack frame of a
    caller or in a :class:`Handle`."""

    def __init__(self, state):
        self.state = state
        super().__init__(name=f"StateRef({state})")


@register_model(StateRefType)
class _StateRefModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, dmm.lookup(fe_type.state).get_value_type().as_pointer())


@infer_getattr
class _StateRefAttrs(AttributeTemplate):
    key = StateRefType

    def generic_resolve(self, typ, attr):
        st = typ.state
        if attr in st.fields:
            t = st.types[st.fields.index(attr)]
            return StateRefType(t) if isinstance(t, types.BaseNamedTuple) else t
        return None


@lower_getattr_generic(StateRefType)
def _stateref_getattr(context, builder, typ, val, attr):
    st = typ.state
    i = st.fields.index(attr)
    ptr = cgutils.gep_inbounds(builder, val, 0, i)
    if isinstance(st.types[i], types.BaseNamedTuple):
        return ptr                     # a named tuple field (a cache's arrays): by reference
    v = builder.load(ptr)
    return impl_ret_borrowed(context, builder, st.types[i], v)


@intrinsic
def state_ref(typingctx, s):
    """``S`` by reference (a no-op on a reference). Only for use inside compiled code; the
    reference lives as long as the calling function's frame."""
    if isinstance(s, StateRefType):
        return s(s), lambda context, builder, sig, args: args[0]
    if isinstance(s, types.BaseNamedTuple):
        def codegen(context, builder, sig, args):
            ptr = cgutils.alloca_once(builder, context.get_value_type(s))
            builder.store(args[0], ptr)
            return ptr
        return StateRefType(s)(s), codegen
    return None


# ---------------------------------------------------------------------------------------------
# the compiled handle of a machine


HANDLE_FIELDS = ("S", "k2", "v2", "k4", "v4", "kind", "addr", "size", "insts", "order", "out")
TABLE_FIELDS = HANDLE_FIELDS[1:5]     # the page tables' arrays (replaced when a table grows)
CHUNK_FIELDS = HANDLE_FIELDS[5:10]    # the loaded chunk's arrays


_HandleFields = namedtuple("_HandleFields", HANDLE_FIELDS)


def _words(ty) -> int:
    """Machine words of numba's in-memory form of ``ty``: an array is its struct (meminfo,
    parent, nitems, itemsize, data, shape, strides), a tuple its members one after another."""
    if isinstance(ty, types.Array):
        return 5 + 2 * ty.ndim
    if isinstance(ty, types.BaseTuple):
        return sum(_words(t) for t in ty.types)
    raise TypeError(f"a machine handle holds arrays and tuples of arrays, not {ty}")


def _fill(buf, off: int, ty, value) -> int:
    """Write ``value`` (of numba type ``ty``) in numba's in-memory form into ``buf`` from word
    ``off``; returns the word after it. An array's meminfo is null: nothing compiled behind
    :func:`handle_ref` counts references (``_nrt=False``), and numba's reference counting skips
    a null meminfo anyway; ``parent`` is the array object, as when numba unboxes it."""
    if isinstance(ty, types.Array):
        nd = ty.ndim
        buf[off:off + 5] = (0, id(value), value.size, value.itemsize, value.ctypes.data)
        buf[off + 5:off + 5 + nd] = value.shape
        buf[off + 5 + nd:off + 5 + 2 * nd] = value.strides
        return off + 5 + 2 * nd
    for t, v in zip(ty.types, value):
        off = _fill(buf, off, t, v)
    return off


# The payload type of every machine's handle: the state's arrays and the handle's other fields
# have the same dtypes and dimensions whatever the machine, so one type serves all (checked).
_HANDLE_TYPE = {"type": None}


def _payload_type(h):
    """The handles' payload type if ``h`` (a compiled argument's type) is an address and a
    handle exists (its type is known), else None."""
    return _HANDLE_TYPE["type"] if isinstance(h, types.Integer) else None


@intrinsic
def handle_ref(typingctx, h):
    """A :class:`StateRefType` reference to the fields of a :class:`Handle` (``R.S``,
    ``R.k2``...) from the address of its payload (:attr:`Handle.address`), an integer: numba
    types an int argument in C, against about 0.45 us for an object on every call. Reading
    the fields counts no references, so it is usable with ``_nrt=False``."""
    ht = _payload_type(h)
    if ht is None:
        return None

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))
    return StateRefType(ht)(h), codegen


@njit(cache=True, _nrt=False, inline="always")
def handle_state(h):
    """A :class:`StateRefType` reference to the state ``S`` of the :class:`Handle` at address
    ``h``: ``handle_ref(h).S``, a pointer into the payload (a named-tuple field of a reference
    is a reference), the same type as ``state_ref(S)`` in compiled code, so that a helper
    called from both is compiled once. What a handle's entries pass their helpers."""
    return handle_ref(h).S


class Handle:
    """State, page tables, loaded chunk and the ``out`` array of one machine, laid out as numba
    lays out the named tuple of them (``HANDLE_FIELDS``) in one buffer, for the compiled
    entries to read through :func:`handle_ref` (see the module docstring). Built and updated
    from Python: no compiled constructor or setters (they were 2.5-3 s of the first run's
    compilation). The handle keeps every array it points to alive; its address never changes,
    and a field is replaced in place (:meth:`set`) between calls into compiled code."""

    def __init__(self, S, k2, v2, k4, v4, kind, addr, size, insts, order, out):
        values = _HandleFields(S, k2, v2, k4, v4, kind, addr, size, insts, order, out)
        ty = typeof(values)
        known = _HANDLE_TYPE["type"]
        if known is None:
            n = _words(ty)
            ctx = cpu_target.target_context
            if ctx.get_abi_sizeof(ctx.get_value_type(ty)) != 8 * n:  # pragma: no cover
                raise TypeError(f"numba lays out {ty} in other than {n} words")
            _HANDLE_TYPE["type"] = ty
        elif known != ty:           # pragma: no cover - the handle's field types are fixed
            raise TypeError(f"a machine handle of another type: {ty} (expected {known})")
        self._type = ty
        self._start = {}
        off = 0
        for f, t in zip(HANDLE_FIELDS, ty.types):
            self._start[f] = off
            off += _words(t)
        self._buf = np.zeros(off, np.int64)
        _fill(self._buf, 0, ty, values)
        self._values = values._asdict()     # what the buffer points into, kept alive

    @property
    def address(self) -> int:
        """The payload's address, for the compiled entries (:func:`handle_ref`)."""
        return self._buf.ctypes.data

    def set(self, **fields) -> None:
        """Replace fields (the page tables' arrays when a table grows, a newly loaded chunk)."""
        for f, v in fields.items():
            i = HANDLE_FIELDS.index(f)
            t = self._type.types[i]
            if typeof(v) != t:
                raise TypeError(f"handle field {f}: {typeof(v)} is not {t}")
            _fill(self._buf, self._start[f], t, v)
            self._values[f] = v


# ---------------------------------------------------------------------------------------------
# host-cache prefetch


@intrinsic
def prefetch(typingctx, arr, idx):
    """Ask the host CPU to start loading ``arr[idx]`` into its caches (``llvm.prefetch``; no
    bounds check needed, a prefetch never faults). No effect on any result: it only lets the
    loads of several large, randomly indexed arrays (the LLC's tags, replacement stamps and
    per-line payloads, ~40 MB on a 2-socket preset) overlap instead of missing the host caches
    one after the other."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                       wraparound=False)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, cgutils.voidptr_t), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.none(arr, idx), codegen
