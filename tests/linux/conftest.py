import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from linux_testkit import make  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def kern():
    return make()
