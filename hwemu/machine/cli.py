"""Subcommands of hwemu.machine (registered by hwemu.cli)."""


def register(sub) -> None:
    """Add this area's subcommands to the top-level parser (none yet)."""
