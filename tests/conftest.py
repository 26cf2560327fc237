"""Suite-wide rules: tests marked `root` (the one way to say so; see pyproject's markers) skip
when not root, and under CI (run as root) a skipped root test is a failure, so nothing is
silently left out."""

import os

import pytest

# `store_backend` and `store`: the store suite over SQLite and etcd alike.
pytest_plugins = ["tests.store_backends"]

# Fixtures that only work as root: a test using one is a root test without saying so again.
ROOT_FIXTURES = frozenset({"daemon", "cgroups", "kube", "node", "tinykube"})


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if ROOT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.root)
    if os.geteuid() == 0:
        return
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(pytest.mark.skip(reason="needs root"))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "needs root" in str(getattr(r, "longrepr", ""))]
    if skipped and os.environ.get("CI"):
        terminalreporter.write_line(f"CI: {len(skipped)} root tests were skipped", red=True)
        config._tinykube_ci_fail = True


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if getattr(session.config, "_tinykube_ci_fail", False) and exitstatus == 0:
        session.exitstatus = 1
