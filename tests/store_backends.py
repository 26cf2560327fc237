"""The store test suite runs against every backend: the `store_backend` fixture is
parametrized over SQLite and etcd (one real etcd on loopback per test session, emptied
before each test), and `store` is a store opened on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tinykube.store import Store
from tinykube.store.location import StoreLocation, open_store
from tinykube.testing.etcd import Etcd, etcd_binary, running_etcd

BACKENDS = ("sqlite", "etcd")


@dataclass
class StoreBackend:
    name: str
    location: StoreLocation

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Store]:
        """A store on this test's backend; every one opened in a test sees the same data."""
        async with open_store(self.location) as store:
            yield store


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory) -> Etcd:
    if etcd_binary() is None:
        pytest.fail("etcd is not installed: scripts/setup installs Debian's etcd-server")
    with running_etcd(tmp_path_factory.mktemp("etcd") / "data") as etcd:
        yield etcd


@pytest.fixture
def etcd(etcd_server) -> Etcd:
    """The session's etcd, with no keys (revisions go on counting, as they do in etcd)."""
    etcd_server.call("/v3/kv/deleterange", {"key": "AA==", "range_end": "AA=="})
    return etcd_server


@pytest.fixture(params=BACKENDS)
def store_backend(request, tmp_path: Path) -> StoreBackend:
    if request.param == "etcd":
        etcd = request.getfixturevalue("etcd")
        return StoreBackend("etcd", StoreLocation(etcd_endpoints=(etcd.endpoint,)))
    return StoreBackend("sqlite", StoreLocation(sqlite_path=tmp_path / "state.db"))


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[Store]:
    async with store_backend.open() as opened:
        yield opened
