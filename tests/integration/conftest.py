import os

import pytest

from tests.integration.daemon import Daemon
from tinykube.testing.lifecycle import running


@pytest.fixture
def cgroups():
    """A cgroup driver on a subtree of this test run's own, removed (with anything left in
    it) afterwards: tests never touch a daemon's `tinykube` subtree, nor leave one behind."""
    from tinykube.runtime.cgroups import detect

    driver = detect(subtree=f"tinykube-t{os.getpid()}")
    yield driver
    driver.remove_all()


@pytest.fixture
def daemon(tmp_path):
    """A running daemon on a temp root; everything it made is removed and checked after (the
    pytest plugin's teardown: also when the run is interrupted)."""
    with running(Daemon(tmp_path)) as d:
        yield d
