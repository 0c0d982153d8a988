"""Constants and helpers shared by the machine tests (imported by name: test modules of other
areas have their own conftest, so ``from conftest import ...`` would be ambiguous)."""

from pathlib import Path

HERE = Path(__file__).parent
TINY = HERE / "tiny.toml"
NS = 1000


def align(t: int, unit: int) -> int:
    """Round t up to a multiple of unit (bus and link slots)."""
    return -(-t // unit) * unit
