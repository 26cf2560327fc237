"""The agent's way to the API server: the CLI's client over HTTPS with a bearer token, and
its blocking calls moved off the trio loop (`ApiObjects`)."""

from __future__ import annotations

import http.client
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from tinykube.client import Client, DaemonUnreachable, collection_path, object_path
from tinykube.model.errors import ApiError, NotFound
from tinykube.model.kinds import by_kind

log = logging.getLogger("tinykube.cluster.apiclient")


class HttpsClient(Client):
    def __init__(self, server: str, token: str, ca_file: Path | None,
                 timeout: float = 30.0) -> None:
        super().__init__("/nonexistent", timeout)
        url = urlsplit(server)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"--server: {server!r} is not an https:// URL")
        self.server = server
        self.host = url.hostname
        self.port = url.port or 6443
        self.token = token
        self.context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                           context=self.context)

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def _unreachable(self, error: Exception) -> str:
        return f"cannot reach the tinykube server at {self.server} ({error})"


class ServerPool:
    """The servers an agent may talk to (`--server URL[,URL…]`): one at a time, the next one
    after a failure to reach it (k3s agents balance over servers on the client side too)."""

    def __init__(self, servers: list[str], token: str, ca_file: Path | None) -> None:
        if not servers:
            raise ValueError("--server: at least one URL is needed")
        for server in servers:
            HttpsClient(server, token, ca_file)  # checks the URL now, not at the first call
        self.servers = servers
        self.token = token  # the join token, until the agent exchanged it for its node's own
        self.join_token = token
        self.ca_file = ca_file
        self.current = 0

    def make_client(self) -> HttpsClient:
        return HttpsClient(self.servers[self.current], self.token, self.ca_file)

    def failed(self, server: str) -> None:
        if self.servers[self.current] == server and len(self.servers) > 1:
            self.current = (self.current + 1) % len(self.servers)
            log.warning("server %s unreachable: using %s", server, self.servers[self.current])


class ApiObjects:
    """`tinykube.cluster.objects.Objects` through the API (each call in a worker thread with a
    client of its own: http.client connections are not shared between threads)."""

    def __init__(self, pool: ServerPool) -> None:
        self.pool = pool
        # Called when the server no longer takes the node credential (401: replaced, or its
        # Secret deleted): the agent joins again (agent.py) and the call is retried once.
        self.rejoin: Callable[[], Awaitable[None]] | None = None
        self._rejoining = trio.Lock()

    def make_client(self) -> HttpsClient:
        return self.pool.make_client()

    def failed(self, client: HttpsClient) -> None:
        self.pool.failed(client.server)

    async def call(self, method: str, path: str, body: Any = None,
                   params: dict[str, Any] | None = None, *, as_joining: bool = False) -> Any:
        """One request; `as_joining`: with the join token (the exchange for a credential)."""
        def run() -> Any:
            for attempt in range(len(self.pool.servers)):
                client = self.make_client()
                if as_joining:
                    client.token = self.pool.join_token
                try:
                    return client.request(method, path, body=body, params=params)
                except DaemonUnreachable:
                    self.failed(client)
                    if attempt == len(self.pool.servers) - 1:
                        raise
                finally:
                    client.close()
            raise AssertionError("unreachable")
        try:
            return await trio.to_thread.run_sync(run)
        except ApiError as e:
            if e.code != 401 or as_joining or self.rejoin is None:
                raise
        stale = self.pool.token
        async with self._rejoining:
            if self.pool.token == stale:  # not renewed meanwhile by another call
                await self.rejoin()
        return await trio.to_thread.run_sync(run)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.call("GET", object_path(by_kind(kind), namespace, name))
        except NotFound:
            return None

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        info = by_kind(obj["kind"])
        return await self.call("POST", collection_path(
            info, obj["metadata"].get("namespace") or "default"), obj)

    async def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self.call("PUT", _path_of(obj), obj)

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self.call("PUT", _path_of(obj, "status"), obj)

    async def delete(self, kind: str, namespace: str, name: str, *,
                     grace_period: int | None = None, uid: str | None = None) -> Any:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        if uid:
            options["preconditions"] = {"uid": uid}
        return await self.call("DELETE", object_path(by_kind(kind), namespace, name), options)


def _path_of(obj: dict[str, Any], sub: str | None = None) -> str:
    meta = obj["metadata"]
    return object_path(by_kind(obj["kind"]), meta.get("namespace") or "default", meta["name"],
                       sub)


