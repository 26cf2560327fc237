"""A small etcd v3 client over etcd's gRPC-gateway JSON API, on httpx (which runs on trio).

Why not a gRPC client: the maintained Python etcd3 clients are bound to asyncio or to
threads; the gateway is part of every etcd v3 server (`/v3/kv/range`, `/v3/kv/txn`,
`/v3/watch` as a stream of JSON lines, `/v3/kv/compaction`) and speaks the same protobuf
messages as JSON: keys and values in base64, 64-bit integers as strings, fields that hold
their default value (0, false, PUT) left out.

Several endpoints: a request that cannot reach one tries the next (etcd forwards writes to
its leader itself), as etcd's own clients do.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from .location import EtcdTLS, StoreUnavailable

log = logging.getLogger("tinykube.store.etcd")

REQUEST_TIMEOUT = 10.0


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes a range cover every key starting with `prefix`."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def revision(response: dict) -> int:
    return int(response.get("header", {}).get("revision", 0))


class EtcdClient:
    def __init__(self, endpoints: list[str], tls: EtcdTLS | None = None) -> None:
        tls = tls or EtcdTLS()
        scheme = "https" if tls.enabled else "http"
        self.urls = [f"{scheme}://{endpoint}" for endpoint in endpoints]
        self._preferred = 0
        self._http = httpx.AsyncClient(
            verify=tls.context() if tls.enabled else True,
            timeout=httpx.Timeout(REQUEST_TIMEOUT),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _order(self) -> list[str]:
        return self.urls[self._preferred:] + self.urls[:self._preferred]

    def _prefer(self, url: str) -> None:
        self._preferred = self.urls.index(url)

    async def call(self, path: str, body: dict) -> dict:
        """POST one request to the first endpoint that answers; the decoded response."""
        failures = []
        for url in self._order():
            try:
                response = await self._http.post(url + path, json=body)
            except httpx.TransportError as e:
                failures.append(f"{url}: {e or type(e).__name__}")
                continue
            self._prefer(url)
            return _decoded(response, path)
        raise StoreUnavailable("etcd is unavailable: " + "; ".join(failures))

    # ---- KV ----------------------------------------------------------------------------

    async def range_prefix(self, prefix: bytes, *, revision_: int = 0,
                           page: int = 1000) -> tuple[int, list[dict]]:
        """Every key-value under `prefix` at one revision (the current one when 0), read in
        pages; (that revision, the kvs)."""
        end = prefix_end(prefix)
        key = prefix
        kvs: list[dict] = []
        at = revision_
        while True:
            body: dict[str, Any] = {"key": b64(key), "range_end": b64(end), "limit": page}
            if at:
                body["revision"] = at
            response = await self.call("/v3/kv/range", body)
            at = at or revision(response)
            batch = response.get("kvs", [])
            kvs.extend(batch)
            if not response.get("more") or not batch:
                return at, kvs
            key = unb64(batch[-1]["key"]) + b"\0"

    async def txn(self, compare: list[dict], success: list[dict],
                  failure: list[dict] | None = None) -> dict:
        return await self.call("/v3/kv/txn", {"compare": compare, "success": success,
                                              "failure": failure or []})

    async def compact(self, revision_: int) -> None:
        await self.call("/v3/kv/compaction", {"revision": revision_, "physical": True})

    # ---- watch -------------------------------------------------------------------------

    @asynccontextmanager
    async def watch(self, key: bytes, end: bytes, start_revision: int
                    ) -> AsyncIterator[AsyncIterator[dict]]:
        """A watch of [key, end) from `start_revision`, with the previous value of deleted
        keys: an iterator of the stream's WatchResponses (`result` of each line)."""
        body = {"create_request": {"key": b64(key), "range_end": b64(end),
                                   "start_revision": start_revision, "prev_kv": True}}
        failures = []
        for url in self._order():
            try:
                # No read timeout: a quiet store sends nothing for a long time.
                request = self._http.build_request(
                    "POST", url + "/v3/watch", json=body,
                    timeout=httpx.Timeout(REQUEST_TIMEOUT, read=None))
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as e:
                failures.append(f"{url}: {e or type(e).__name__}")
                continue
            self._prefer(url)
            try:
                if response.status_code != 200:
                    await response.aread()
                    _decoded(response, "/v3/watch")
                yield _results(response)
            finally:
                await response.aclose()
            return
        raise StoreUnavailable("etcd is unavailable: " + "; ".join(failures))


async def _results(response: httpx.Response) -> AsyncIterator[dict]:
    async for line in response.aiter_lines():
        if not line.strip():
            continue
        message = json.loads(line)
        if "error" in message:
            raise StoreUnavailable(f"etcd watch failed: {message['error']}")
        yield message.get("result", {})


def _decoded(response: httpx.Response, path: str) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        message = body.get("message") or body.get("error") or response.text[:200]
        raise StoreUnavailable(f"etcd {path} failed ({response.status_code}): {message}")
    return body
