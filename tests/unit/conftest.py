"""Fixtures the unit tests share."""

import pytest
import trio

from tinykube.apiserver import ApiServer, serve
from tinykube.client import Client
from tinykube.store import Store


@pytest.fixture
async def api(tmp_path):
    """An API server on a temp store and unix socket: (store, client, socket path)."""
    store = Store(tmp_path / "state.db")
    socket = tmp_path / "api.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, ApiServer(store), socket)
        client = Client(socket)
        yield store, client, socket
        client.close()
        nursery.cancel_scope.cancel()
    store.close()
