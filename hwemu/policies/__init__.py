"""Placement and migration policies behind one interface, registered by name.

See :mod:`hwemu.policies.base` and docs/policies.md. ``get_policy(name, **params)``,
``list_policies()``, ``register_policy(name)``.
"""

from hwemu.policies.base import (  # noqa: F401
    AccessSamples, HintFault, MigrationPolicy, Param, PlacementPolicy, Policy, PolicyContext,
    SERVED_CXL, SERVED_LOCAL, SERVED_REMOTE, SERVED_UNMAPPED, get_policy, list_policies,
    parse_policy_spec, policy_class, register_policy,
)
