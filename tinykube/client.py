"""A small synchronous client for the API server's unix socket (what the CLI uses).

The standard library's http.client speaks HTTP/1.1 (chunked streams included) over the unix
socket; it imports in a few milliseconds where httpx took ~0.4 s, which every CLI call paid.
This module only knows Kubernetes' paths and turns `Status` answers back into the same
`ApiError` classes the server raised.
"""

from __future__ import annotations

import builtins
import errno
import http.client
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tinykube.locations import DEFAULT_SOCKET
from tinykube.model.errors import ApiError, from_status
from tinykube.model.kinds import KindInfo, by_kind


class StreamIdle(Exception):
    """A streaming response sent nothing for the caller's idle timeout."""


class DaemonUnreachable(Exception):
    """Nothing answers on the socket: the daemon is not running (or not reachable by us)."""


def default_socket() -> Path:
    return Path(os.environ.get("TINYKUBE_SOCKET") or DEFAULT_SOCKET)


def collection_path(info: KindInfo, namespace: str | None) -> str:
    base = f"/apis/{info.api_version}" if info.group else "/api/v1"
    if namespace is None or namespace == "*" or not info.namespaced:  # cluster-scoped: ns
        return f"{base}/{info.plural}"
    return f"{base}/namespaces/{namespace}/{info.plural}"


def object_path(info: KindInfo, namespace: str, name: str, sub: str | None = None) -> str:
    path = f"{collection_path(info, namespace)}/{name}"
    return f"{path}/{sub}" if sub else path


def _info(kind: KindInfo | str) -> KindInfo:
    return kind if isinstance(kind, KindInfo) else by_kind(kind)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("tinykube", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Client:
    def __init__(self, socket_path: Path | str | None = None, timeout: float = 30.0) -> None:
        self.socket_path = Path(socket_path) if socket_path else default_socket()
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        # the server's Warning headers, in order (kubectl prints them)
        self.warnings: list[str] = []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, method: str, path: str, params: dict[str, Any] | None, body: Any,
              content_type: str | None, timeout: float | None,
              fresh: bool) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        url = f"{path}?{urlencode(params)}" if params else path
        content = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": content_type or "application/json", **self._auth_headers()}
        for attempt in (1, 2):
            # Streams get a connection of their own; plain requests reuse one (keep-alive).
            conn = self._connection(timeout) if fresh else self._shared()
            try:
                conn.request(method, url, body=content, headers=headers)
                return conn.getresponse(), conn
            except (ConnectionRefusedError, FileNotFoundError, PermissionError) as e:
                conn.close()
                raise DaemonUnreachable(self._unreachable(e)) from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                self._conn = None
                if attempt == 2:  # a kept-alive connection may have been closed by the server
                    raise DaemonUnreachable(self._unreachable(e)) from None
            except TimeoutError:
                conn.close()
                self._conn = None
                if fresh and timeout is not None:
                    # A stream's timeout is its idle timeout: a daemon busy for longer than
                    # that before the first byte (starting up, loaded) is idle, not gone.
                    raise StreamIdle() from None
                raise DaemonUnreachable(
                    f"the tinykube daemon at {self.socket_path} did not answer within "
                    f"{timeout} s; it may be overloaded, try again") from None
            except OSError as e:
                conn.close()
                self._conn = None
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    # A unix socket whose listen backlog is full refuses at once with EAGAIN.
                    raise DaemonUnreachable(
                        f"the tinykube daemon at {self.socket_path} is not accepting more "
                        "connections right now (its connection backlog is full); try again"
                    ) from None
                raise DaemonUnreachable(self._unreachable(e)) from None
        raise AssertionError("unreachable")

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        return _UnixConnection(str(self.socket_path), timeout)

    def _auth_headers(self) -> dict[str, str]:
        return {}  # root's unix socket needs no credential

    def _shared(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = self._connection(self.timeout)
        return self._conn

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing --------------------------------------------------------------------------

    def request(self, method: str, path: str, *, body: Any = None,
                params: dict[str, Any] | None = None, content_type: str | None = None) -> Any:
        response, _ = self._send(method, path, params, body, content_type, self.timeout,
                                 fresh=False)
        try:
            data = response.read()
        except (http.client.IncompleteRead, ConnectionResetError) as e:  # the daemon died
            self.close()
            raise DaemonUnreachable(self._unreachable(e)) from None
        except TimeoutError:
            self.close()
            raise DaemonUnreachable(f"the tinykube daemon at {self.socket_path} did not answer "
                                    f"within {self.timeout} s; try again") from None
        for warning in response.headers.get_all("warning") or []:
            text = warning.split(" ", 2)[-1].strip('"') if warning.startswith("299") else warning
            if text not in self.warnings:
                self.warnings.append(text)
        return self._decode(response.status, data)

    def _unreachable(self, error: Exception) -> str:
        return (f"cannot reach the tinykube daemon at {self.socket_path} ({error}); "
                "is `tinykube daemon` running?")

    @staticmethod
    def _decode(status: int, data: bytes) -> Any:
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = None
        if status >= 400:
            if isinstance(body, dict) and body.get("kind") == "Status":
                raise from_status(body)
            raise ApiError(f"HTTP {status}: {data[:200].decode('utf-8', 'replace')}", code=status)
        return body

    def stream(self, method: str, path: str, *, params: dict[str, Any] | None = None,
               body: Any = None, idle_timeout: float | None = None) -> Iterator[bytes]:
        """Yield the raw chunks of a streaming response (watch, logs -f, exec).

        `idle_timeout`: raise `StreamIdle` when nothing arrives for that long."""
        response, conn = self._send(method, path, params, body, None, idle_timeout, fresh=True)
        try:
            if response.status >= 400:
                self._decode(response.status, response.read())
            while True:
                try:
                    chunk = response.read1(65536)
                except TimeoutError:
                    raise StreamIdle() from None
                if not chunk:
                    return
                yield chunk
        finally:
            conn.close()

    def stream_lines(self, method: str, path: str, **kwargs: Any) -> Iterator[dict]:
        buffer = b""
        for chunk in self.stream(method, path, **kwargs):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line)

    # ---- objects ---------------------------------------------------------------------------

    def get(self, kind: KindInfo | str, name: str, namespace: str = "default") -> dict:
        return self.request("GET", object_path(_info(kind), namespace, name))

    def list(self, kind: KindInfo | str, namespace: str | None = "default",
             label_selector: str | None = None) -> list[dict]:
        params = {"labelSelector": label_selector} if label_selector else None
        return self.request("GET", collection_path(_info(kind), namespace),
                            params=params)["items"]

    def create(self, obj: dict) -> dict:
        info = by_kind(obj["kind"])
        namespace = obj.get("metadata", {}).get("namespace") or "default"
        return self.request("POST", collection_path(info, namespace), body=obj)

    def apply(self, obj: dict) -> tuple[str, dict]:
        """Create or update from a manifest: returns ("created"|"configured"|"unchanged", obj)."""
        info = by_kind(obj["kind"])
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        before = None
        try:
            before = self.get(info, meta.get("name", ""), namespace)
        except ApiError as e:
            if e.code != 404:
                raise
        result = self.request("POST", collection_path(info, namespace), body=obj,
                              params={"apply": "true"})
        if before is None:
            return "created", result
        same = before["metadata"]["resourceVersion"] == result["metadata"]["resourceVersion"]
        return ("unchanged" if same else "configured"), result

    def update(self, obj: dict) -> dict:
        info = by_kind(obj["kind"])
        meta = obj["metadata"]
        return self.request("PUT", object_path(info, meta.get("namespace", "default"),
                                               meta["name"]), body=obj)

    def update_status(self, obj: dict) -> dict:
        info = by_kind(obj["kind"])
        meta = obj["metadata"]
        return self.request("PUT", object_path(info, meta.get("namespace", "default"),
                                               meta["name"], "status"), body=obj)

    def patch(self, kind: KindInfo | str, name: str, namespace: str, patch: dict) -> dict:
        return self.request("PATCH", object_path(_info(kind), namespace, name), body=patch,
                            content_type="application/merge-patch+json")

    def delete(self, kind: KindInfo | str, name: str, namespace: str = "default", *,
               propagation: str | None = None, grace_period: int | None = None) -> dict:
        params: dict[str, Any] = {}
        if propagation:
            params["propagationPolicy"] = propagation
        if grace_period is not None:
            params["gracePeriodSeconds"] = grace_period
        return self.request("DELETE", object_path(_info(kind), namespace, name), params=params)

    def scale(self, kind: KindInfo | str, name: str, namespace: str, replicas: int) -> dict:
        return self.request("PATCH", object_path(_info(kind), namespace, name, "scale"),
                            body={"spec": {"replicas": replicas}},
                            content_type="application/merge-patch+json")

    def events(self, obj: dict) -> builtins.list[dict]:
        meta = obj["metadata"]
        path = collection_path(by_kind("Event"), meta.get("namespace", "default"))
        return self.request("GET", path, params={
            "fieldSelector": f"involvedObject.uid={meta['uid']}"})["items"]

    def watch(self, kind: KindInfo | str, namespace: str | None = "default",
              name: str | None = None, label_selector: str | None = None,
              resource_version: str | None = None,
              idle_timeout: float | None = None) -> Iterator[tuple[str, dict]]:
        """Current objects as ADDED, then every change (no resource_version), or changes after
        resource_version."""
        params: dict[str, Any] = {"watch": "true"}
        if label_selector:
            params["labelSelector"] = label_selector
        if name:
            params["fieldSelector"] = f"metadata.name={name}"
        if resource_version:
            params["resourceVersion"] = resource_version
        for event in self.stream_lines("GET", collection_path(_info(kind), namespace),
                                       params=params, idle_timeout=idle_timeout):
            yield event["type"], event["object"]

    def health(self) -> dict:
        return self.request("GET", "/healthz")

    def unloadable(self) -> builtins.list[dict]:
        """Stored objects the daemon could not load (`tinykube doctor`)."""
        return self.request("GET", "/tinykube/v1/unloadable")["items"]

    def set_aside_unloadable(self) -> builtins.list[dict]:
        """Move every unloadable object out of the store into backup files."""
        return self.request("POST", "/tinykube/v1/unloadable/repair")["items"]

    def healthy(self) -> bool:
        try:
            self.request("GET", "/healthz")
            return True
        except DaemonUnreachable:
            return False
