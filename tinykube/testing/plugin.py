"""The pytest plugin (entry point `pytest11`: installing tinykube is enough).

- Fixture `tinykube`: a real daemon on a temporary root with its own run dir, socket, bridge,
  pod and service CIDRs, TLS port and cgroup subtree (named after the pytest-xdist worker, so
  workers run side by side); torn down with `tinykube reset --purge` and a leak check.
  Session scope unless `--tinykube-scope` or the ini option `tinykube_scope` says otherwise.
- Marker `@pytest.mark.tinykube(manifests=[...], timeout=120)`: applies the manifests (paths
  relative to the test file) before the test, waits until every object is Ready, and deletes
  them after it.
- A failed test's report gets the daemon log tail, `describe` of every non-Ready object and
  the recent events.
- Not root: the tests that need the daemon skip, saying why; under CI=true they fail instead.
- Interrupted runs (Ctrl-C, SIGTERM, an exception anywhere) still reset: fixture finalizers,
  and an atexit hook for anything that skipped them.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster import TinyKube
from .daemon import Daemon
from .lifecycle import running

SCOPES = ("session", "package", "module", "class", "function")
_ACTIVE = pytest.StashKey["TinyKube"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinykube")
    group.addoption("--tinykube-scope", choices=SCOPES, default=None,
                    help="scope of the tinykube fixture (default: ini tinykube_scope, session)")
    parser.addini("tinykube_scope", "scope of the tinykube fixture (session, package, module, "
                  "class or function)", default="session")
    parser.addini("tinykube_name_tag", "up to 2 letters or digits that start the names of "
                  "this run's host resources (bridge tkd<tag>..., cgroup tinykube-test-<tag>...)"
                  ", to tell them from other runs'", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tinykube(manifests=[...], timeout=120): apply these manifests (paths "
        "relative to the test file, YAML text or dicts) to the tinykube daemon before the "
        "test, wait until they are Ready, delete them after")


def _scope(fixture_name: str, config: pytest.Config) -> Any:
    scope = config.getoption("tinykube_scope") or config.getini("tinykube_scope")
    if scope not in SCOPES:
        raise pytest.UsageError(f"tinykube_scope: {scope!r} is not one of {', '.join(SCOPES)}")
    return scope


def require_root() -> None:
    if os.geteuid() == 0:
        return
    reason = ("needs root: tinykube runs real pods (network namespaces, cgroups, links); "
              "run pytest as root")
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason} (CI is set: a skipped tinykube test would hide a failure)",
                    pytrace=False)
    pytest.skip(reason)


def daemon_tag(name_tag: str = "") -> str:
    """Names this process's daemon: the ini option tinykube_name_tag, the xdist worker (w0,
    w1, ...; m without xdist), the pid, a random digit. Short: the bridge is `tkd<tag>` and a
    link name has 15 characters."""
    if not re.fullmatch(r"[a-z0-9]{0,2}", name_tag.lower()):
        raise pytest.UsageError(f"tinykube_name_tag: {name_tag!r} is not 0-2 letters or digits")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    prefix = "w" + worker.removeprefix("gw") if worker else "m"
    return f"{name_tag.lower()}{prefix}{os.getpid() % 1000:03d}{random.randrange(10)}"


@pytest.fixture(scope=_scope)
def tinykube(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[TinyKube]:
    """A running tinykube daemon, isolated from every other (see the module docstring)."""
    require_root()
    base = tmp_path_factory.mktemp("tinykube")
    daemon = Daemon(base, tag=daemon_tag(pytestconfig.getini("tinykube_name_tag")))
    with running(daemon):
        yield TinyKube(daemon)


@pytest.fixture(autouse=True)
def _tinykube_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Per test: remember the daemon for the failure report; apply and wait for the
    marker's manifests, delete them afterwards."""
    marker = request.node.get_closest_marker("tinykube")
    if marker is None and "tinykube" not in request.fixturenames:
        yield
        return
    tk: TinyKube = request.getfixturevalue("tinykube")
    request.node.stash[_ACTIVE] = tk
    applied: list[dict] = []
    if marker is not None:
        manifests = list(marker.kwargs.get("manifests", ())) + list(marker.args)
        timeout = float(marker.kwargs.get("timeout", 120))
        here = Path(str(request.node.path)).parent
        for manifest in manifests:
            applied += tk.apply(_relative_to(manifest, here))
        for obj in applied:
            meta = obj["metadata"]
            tk.wait(f"{obj['kind']}/{meta['name']}", timeout=timeout,
                    namespace=meta["namespace"])
    yield
    for obj in reversed(applied):
        meta = obj["metadata"]
        tk.delete(f"{obj['kind']}/{meta['name']}", namespace=meta["namespace"])


def _relative_to(manifest: Any, here: Path) -> Any:
    if isinstance(manifest, str) and "\n" not in manifest and ":" not in manifest:
        return here / manifest
    if isinstance(manifest, Path) and not manifest.is_absolute():
        return here / manifest
    return manifest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    tk = item.stash.get(_ACTIVE, None)
    if tk is not None and report.failed:
        for title, text in tk.failure_report():
            report.sections.append((title, text))
