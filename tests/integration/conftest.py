import os

import pytest

from tests.integration.daemon import Daemon


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
    """A running daemon on a temp root; everything it made is removed and checked after."""
    d = Daemon(tmp_path).start()
    try:
        yield d
    finally:
        d.cleanup()
