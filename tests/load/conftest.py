"""Fixtures of the load tests (tests/load/). Quick sizes by default, the issue's full sizes
with REEL_LOAD_FULL=1 (`make load`); loadlib.py holds the harness."""
import pytest

from loadlib import FULL


@pytest.fixture
def workdir(tmp_path):
    return str(tmp_path)


def pytest_report_header(config):
    return "reel load tests: %s mode (REEL_LOAD_FULL=1 for full sizes)" % (
        "full" if FULL else "quick")
