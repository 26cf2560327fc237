"""Authentication for the TCP listener, as an ASGI middleware around the API server.

The unix socket is root's only and needs no credential; over TCP every request must carry a
bearer token (`Authorization: Bearer …`), or it is answered 401 before the API server sees
it, so it touches nothing. Three kinds of token:
- the admin token: everything;
- in cluster mode, the agents' join token: only exchanged for a node credential
  (`POST /tinykube/v1/nodecredentials` with `{"nodeName": …}`, as a k3s agent joins);
- a node credential: what that node may do (tinykube/api/nodeauthz.py), others 403.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Protocol

from tinykube.api import nodeauthz

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
EXCHANGE_PATH = "/tinykube/v1/nodecredentials"
DRAIN_BYTES = 256 * 1024


class Nodes(Protocol):
    """The node credentials (tinykube/cluster/credentials.py) and the store they check."""

    store: Any

    def node_of(self, token: bytes) -> str | None: ...

    async def issue(self, node: str, password: str | None = None) -> str: ...


class BearerAuth:
    def __init__(self, app: Any, token: str, *join_tokens: str, nodes: Nodes | None = None
                 ) -> None:
        self.app = app
        self._admin = [token.encode()] if token else []
        self._join = [t.encode() for t in join_tokens if t]
        self.nodes = nodes

    def credential(self, scope: dict[str, Any]) -> bytes | None:
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                scheme, _, credential = value.partition(b" ")
                return credential.strip() if scheme.lower() == b"bearer" else None
        return None

    def authenticated(self, scope: dict[str, Any]) -> bool:
        """Whether the request carries the admin token."""
        credential = self.credential(scope)
        return credential is not None and _any_match(credential, self._admin)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        credential = self.credential(scope)
        if credential is None:
            await _refuse(scope, send, receive=receive)
        elif _any_match(credential, self._admin):
            await self.app(scope, receive, send)
        elif _any_match(credential, self._join):
            if self.nodes is None:  # no node authorizer: the join token acts as the admin
                await self.app(scope, receive, send)
            elif (scope["type"] == "http" and scope["method"] == "POST"
                    and scope["path"] == EXCHANGE_PATH):
                await self._exchange(receive, send)
            else:
                await _refuse(scope, send, 403, "the join token may only be exchanged for a "
                              f"node credential (POST {EXCHANGE_PATH})", receive)
        elif self.nodes is not None and (node := self.nodes.node_of(credential)) is not None:
            await self._as_node(node, scope, receive, send)
        else:
            await _refuse(scope, send, receive=receive)

    async def _exchange(self, receive: Any, send: Any) -> None:
        from tinykube.model.errors import ApiError
        from tinykube.model.names import dns1123_subdomain

        assert self.nodes is not None
        body, _ = await _read_body(receive)
        try:
            request = json.loads(body or b"{}")
            name, password = request.get("nodeName"), request.get("nodePassword")
        except (ValueError, AttributeError):
            name, password = None, None
        problems = dns1123_subdomain(name) if isinstance(name, str) and name else [
            "Required value"]
        if problems:
            await _send(send, 422, _status(422, "Invalid", f"nodeName: {'; '.join(problems)}"))
            return
        if password is not None and not isinstance(password, str):
            await _send(send, 422, _status(422, "Invalid", "nodePassword: must be a string"))
            return
        try:
            token = await self.nodes.issue(name, password)
        except ApiError as e:
            await _send(send, e.code, e.status())
            return
        await _send(send, 201, {"apiVersion": "tinykube/v1", "kind": "NodeCredential",
                                "nodeName": name, "token": token})

    async def _as_node(self, node: str, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from tinykube.apiserver import _route
        from tinykube.model.errors import ApiError

        assert self.nodes is not None
        if scope["type"] == "websocket":
            await _refuse(scope, send, 403, f'User "system:node:{node}" cannot exec')
            return
        try:
            route = _route(scope["path"])
            target: nodeauthz.Target | None = nodeauthz.Target(
                route.info, route.namespace, route.name, route.subresource)
        except ApiError:
            target = None
        body_name, replay = None, receive
        if (target is not None and scope["method"] == "POST" and target.name is None
                and target.info.kind in ("Node", "Lease")):
            body, replay = await _read_body(receive)
            try:
                body_name = (json.loads(body).get("metadata") or {}).get("name")
            except (ValueError, AttributeError):
                body_name = None
        pod = None
        if target is not None and target.info.kind == "Pod" and target.name:
            pod = self.nodes.store.try_get("Pod", target.namespace or "default", target.name)
        why = nodeauthz.refusal(node, scope["method"], target, body_name, pod)
        if why is not None:
            await _refuse(scope, send, 403, why, replay)
            return
        await self.app(scope, replay, send)


def _any_match(credential: bytes, tokens: list[bytes]) -> bool:
    matched = False
    for token in tokens:  # every one compared: the time does not tell which matched
        matched |= hmac.compare_digest(credential, token)
    return matched


async def _read_body(receive: Any) -> tuple[bytes, Any]:
    """The whole request body, and a `receive` that hands it to the application again."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    replayed = [False]

    async def replay() -> dict[str, Any]:
        if not replayed[0]:
            replayed[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _drain(receive: Any) -> None:
    """Read a refused request's body (up to DRAIN_BYTES) before answering: unread, it ends
    the keep-alive connection just after the answer, and a client reusing that connection
    meanwhile sees it closed without a response (Go's net/http drains likewise)."""
    size = 0
    while size <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            return


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


async def _send(send: Any, code: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(data))]})
    await send({"type": "http.response.body", "body": data})


async def _refuse(scope: dict[str, Any], send: Any, code: int = 401,
                  message: str | None = None, receive: Any = None) -> None:
    status = UNAUTHORIZED if code == 401 else _status(code, "Forbidden", message or "Forbidden")
    body = json.dumps(status).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if scope["type"] == "http":
        if receive is not None:
            await _drain(receive)
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": code, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
