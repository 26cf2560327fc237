"""Authentication for the TCP listener, as an ASGI middleware around the API server.

The unix socket is root's only and needs no credential; over TCP every request must carry
the admin bearer token (`Authorization: Bearer …`), or it is answered 401 before the API
server sees it, so it touches nothing.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


class BearerAuth:
    def __init__(self, app: Any, token: str, *more_tokens: str) -> None:
        self.app = app
        # The admin's token, and in cluster mode the agents' join token (no RBAC: an agent
        # is trusted like the admin, as a k3s node token is with its node authorizer off).
        self._tokens = [t.encode() for t in (token, *more_tokens) if t]

    def authenticated(self, scope: dict[str, Any]) -> bool:
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                scheme, _, credential = value.partition(b" ")
                credential = credential.strip()
                matches = [hmac.compare_digest(credential, t) for t in self._tokens]
                return scheme.lower() == b"bearer" and any(matches)
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not self.authenticated(scope):
            await _refuse(scope, send)
            return
        await self.app(scope, receive, send)


async def _refuse(scope: dict[str, Any], send: Any) -> None:
    body = json.dumps(UNAUTHORIZED).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
