"""Placement and migration policies behind one interface, by name.

See :mod:`hwemu.policies.base` (the interface), :mod:`hwemu.policies.registry` (built-ins and
the ``hwemu.policies`` entry-point group) and docs/policies.md. ``get_policy(name, **params)``,
``list_policies()``, ``parse_policy_spec(spec)``, ``register_policy(name)``.
"""

from hwemu.policies.base import (  # noqa: F401
    AccessSamples, HintFault, MigrationPolicy, Param, PlacementPolicy, Policy, PolicyContext,
    SERVED_CXL, SERVED_LOCAL, SERVED_REMOTE, SERVED_UNMAPPED,
)
from hwemu.policies.registry import (  # noqa: F401
    ENTRY_POINT_GROUP, get_policy, list_policies, parse_policy_spec, policy_class,
    register_policy,
)
