"""The machine's compiled handle: one buffer, built and updated in Python, holding its fields in
numba's layout of them, read by compiled code through its address (stateref.py)."""

import numpy as np
import pytest
from numba import njit, types

from hwemu.machine.stateref import handle_ref, handle_state
from hwemu.machine.system import Machine


@njit(_nrt=False)
def _probe(h):
    H = handle_ref(h)
    S = H.S
    H.out[0] = S.ctr[0]                         # the handle's last field, written
    return (S.cfg.shape[0],                     # the first field of S
            S.l1d.tags.shape[0],                # a nested tuple's array
            S.pf_tab.shape, S.pf_tab.strides,   # a 3-D array's shape and strides
            S.kf_place[1, 1, 2],                # a 3-D array, indexed
            S.mp_npf.shape[0],                  # the last field of S
            H.k4.shape[0], H.order.shape[0])


@njit(_nrt=False)
def _state_probe(h):
    S = handle_state(h)
    S.ctr[0] += 1
    return S.ctr[0], S.kf_place[1, 1, 2], S.mp_npf.shape[0]


def test_compiled_code_reads_the_fields_python_wrote(tiny):
    m = Machine(tiny)
    hp = m._handle()
    S = m.S
    S.kf_place[1, 1, 2] = 12345
    S.ctr[0] = 77
    got = _probe(hp)
    assert m._out[0] == 77
    assert got == (S.cfg.shape[0], S.l1d.tags.shape[0], S.pf_tab.shape, S.pf_tab.strides,
                   12345, S.mp_npf.shape[0], m.pt.t4.keys.shape[0], 0)   # no chunk loaded yet

    # the state alone, by reference (what a handle's entry passes its helpers)
    assert _state_probe(hp) == (78, 12345, S.mp_npf.shape[0]) and S.ctr[0] == 78

    m._h.set(order=np.arange(5, dtype=np.int64))
    assert _probe(hp)[-1] == 5
    assert m._handle() == hp                    # replaced in place: the address stays


def test_a_field_of_another_type_is_refused(tiny):
    m = Machine(tiny)
    m._handle()
    with pytest.raises(TypeError, match="order"):
        m._h.set(order=np.arange(5, dtype=np.int32))


@njit(_nrt=False)
def _l2_tag(h, i, v):
    c = handle_state(h).l2          # a cache of the state: a reference into the handle
    c.tags[i] = v
    return c.tags[i], c.params.shape[0]


def test_a_cache_of_the_state_is_handed_out_by_reference(tiny):
    """A named-tuple field of a reference (a cache) is typed as a reference too, not as a copy
    of its arrays (docs/performance.md, "Hidden copies of whole caches"), and writes through
    it reach the machine's arrays."""
    from numba import typeof
    from numba.core.registry import cpu_target

    from hwemu.machine.stateref import StateRefType

    m = Machine(tiny)
    ref = StateRefType(typeof(m.S))
    ctx = cpu_target.typing_context
    assert isinstance(ctx.resolve_getattr(ref, "l2"), StateRefType)
    assert isinstance(ctx.resolve_getattr(StateRefType(typeof(m.S.l2)), "tags"), types.Array)
    assert not isinstance(ctx.resolve_getattr(ref, "cfg"), StateRefType)
    assert _l2_tag(m._handle(), 3, np.uint64(42)) == (42, m.S.l2.params.shape[0])
    assert m.S.l2.tags[3] == 42
