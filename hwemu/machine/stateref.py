"""Passing the machine state to compiled helpers by reference, and a compiled handle on it.

Why (performance): the state ``S`` (:mod:`hwemu.machine.state`) is a named tuple of about a
hundred numpy arrays. numba passes a tuple *by value*: a call ``f(S, ...)`` copies every array
struct (~750 machine words) into the callee's arguments and, in a function compiled with the
NRT (numba's reference counting), increfs and later decrefs every one of those arrays: a
~1 us toll on every call, whatever the callee does. The miss path of the replay made a dozen
such calls per access (measured: ``stream_train`` 1 us per call, 0.1 us with ``_nrt=False``,
~0.005 us through a reference).

:func:`state_ref` turns ``S`` into a :class:`StateRefType` value: a pointer to one copy of the
tuple, stored once in the caller's stack frame. Attribute access on it (``S.l2``, ``S.cfg``)
loads just that field through the pointer, so helper code reads the same whether it is given
the tuple or the reference, and a call passes one pointer. The helpers that take ``S`` are
compiled with ``_nrt=False`` (they never allocate), so no reference counting happens on the
access path at all. A reference must not outlive the frame that made it (it is never stored or
returned); the arrays themselves are owned by the Python-side ``Machine.S``.

:class:`Handle` is the compiled-side half of a :class:`~hwemu.machine.system.Machine` for the
replay loop's entry: a numba structref holding ``S``, the page-table arrays, the loaded chunk and
the ``out`` array. Entering the compiled loop from Python then types and unboxes one object
instead of a tuple of a hundred arrays plus ten more (~19 us per entry before, a few us after).
Python passes the handle's payload address, an int, rather than the handle object
(:func:`handle_address`): numba types an int in C, a structref in Python (0.14 vs 0.51 us for a
call that does almost nothing). Python keeps working on the same numpy arrays through
``Machine.S``.
"""

from __future__ import annotations

from collections import namedtuple

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import (infer_getattr, intrinsic, lower_getattr_generic, models,
                                  register_model)
from numba.core.imputils import impl_ret_borrowed
from numba.core.typing.templates import AttributeTemplate
from numba.experimental import structref


class StateRefType(types.Type):
    """A pointer to a named tuple (the machine state) in the stack frame of a caller."""

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
            return st.types[st.fields.index(attr)]
        return None


@lower_getattr_generic(StateRefType)
def _stateref_getattr(context, builder, typ, val, attr):
    st = typ.state
    i = st.fields.index(attr)
    v = builder.load(cgutils.gep_inbounds(builder, val, 0, i))
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


@structref.register
class HandleType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


HANDLE_FIELDS = ("S", "k2", "v2", "k4", "v4", "kind", "addr", "size", "insts", "order", "out")


_HandleFields = namedtuple("_HandleFields", HANDLE_FIELDS)


def _payload_type(h):
    return types.NamedTuple([h.field_dict[f] for f in HANDLE_FIELDS], _HandleFields)


# The handle type of every machine: the state's arrays and the handle's other fields have the
# same dtypes and dimensions whatever the machine, so one type serves all (checked).
_HANDLE_TYPE = {"type": None}


@intrinsic
def handle_ref(typingctx, h):
    """A :class:`StateRefType` reference to the fields of handle ``h`` (``R.S``, ``R.k2``...),
    read straight from its payload: no reference counting, so usable with ``_nrt=False`` (a
    structref's own attribute access needs the NRT and increfs what it returns). The payload
    of a structref is laid out as a named tuple of its fields.

    ``h`` may also be the payload's address as an integer (:func:`handle_address`): Python
    calls the compiled entries that way, because numba types an int argument in C, against
    about 0.45 us for a handle object on every call."""
    if isinstance(h, types.Integer):
        ht = _HANDLE_TYPE["type"]
        if ht is None:
            return None

        def codegen_addr(context, builder, sig, args):
            return builder.inttoptr(args[0], context.get_value_type(sig.return_type))
        return StateRefType(_payload_type(ht))(h), codegen_addr
    if not isinstance(h, HandleType):
        return None

    def codegen(context, builder, sig, args):
        meminfo = builder.extract_value(args[0], 0)
        # NRT_MemInfo is {refct, dtor, dtor_info, data, size, ...}: data is field 3
        mi = builder.bitcast(meminfo, cgutils.voidptr_t.as_pointer())
        data = builder.load(cgutils.gep(builder, mi, 3))
        return builder.bitcast(data, context.get_value_type(sig.return_type))
    return StateRefType(_payload_type(h))(h), codegen


def handle_address(h) -> int:
    """The address of handle ``h``'s payload, to pass to the compiled entries instead of ``h``
    (:func:`handle_ref`). Valid while ``h`` lives: the machine keeps its handle for its own
    lifetime, and a handle's fields are replaced in place, so the address never changes."""
    from numba import typeof

    ht = typeof(h)
    known = _HANDLE_TYPE["type"]
    if known is None:
        _HANDLE_TYPE["type"] = ht
    elif known != ht:           # pragma: no cover - the handle's field types are fixed
        raise TypeError(f"a machine handle of another type: {ht} (expected {known})")
    return int(h._meminfo.data)


class Handle(structref.StructRefProxy):
    """State, page tables, loaded chunk and the ``out`` array of one machine, as one compiled
    object (see the module docstring)."""


structref.define_proxy(Handle, HandleType, list(HANDLE_FIELDS))


@njit(cache=True)
def new_handle(S, k2, v2, k4, v4, kind, addr, size, insts, order, out):
    return Handle(S, k2, v2, k4, v4, kind, addr, size, insts, order, out)


@njit(cache=True)
def set_tables(h, k2, v2, k4, v4):
    """The page tables' arrays (replaced when a table grows)."""
    h.k2 = k2
    h.v2 = v2
    h.k4 = k4
    h.v4 = v4


@njit(cache=True)
def set_chunk(h, kind, addr, size, insts, order):
    h.kind = kind
    h.addr = addr
    h.size = size
    h.insts = insts
    h.order = order


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
