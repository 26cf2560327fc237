import os

import pytest

from tests.integration.daemon import Daemon


@pytest.fixture
def daemon(tmp_path):
    """A running daemon on a temp root; everything it made is removed and checked after."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    d = Daemon(tmp_path).start()
    try:
        yield d
    finally:
        d.cleanup()
