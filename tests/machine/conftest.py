import pytest

from hwemu.machine.config import load_machine
from machine_testkit import TINY


@pytest.fixture(scope="session")
def tiny():
    return load_machine(str(TINY))
