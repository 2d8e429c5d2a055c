"""Fixtures for the command-line tests; helpers live in clihelp.py (a module name of its
own, so that these tests can run in one pytest session with tests/http)."""
import pytest

from clihelp import Reel


@pytest.fixture
def reel(tmp_path):
    return Reel(str(tmp_path / "data"))
