from pathlib import Path

import pytest

from hwemu.machine.config import load_machine

HERE = Path(__file__).parent
TINY = HERE / "tiny.toml"
NS = 1000


@pytest.fixture(scope="session")
def tiny():
    return load_machine(str(TINY))


def align(t: int, unit: int) -> int:
    """Round t up to a multiple of unit (bus and link slots)."""
    return -(-t // unit) * unit
