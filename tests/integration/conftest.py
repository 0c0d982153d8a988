import pytest

from integ_kit import make_trace


@pytest.fixture(scope="session")
def small_trace(tmp_path_factory):
    return make_trace(tmp_path_factory.mktemp("tr") / "small.parquet")
