"""The TCP listener: the same ASGI application as the unix socket, behind TLS and
`BearerAuth`, and the admin kubeconfig that reaches it.

Hypercorn binds TLS sockets for every `bind` address when a certificate is configured (and
plain ones only for `insecure_bind`, which we never set), so nothing is served in the clear.
The unix socket and the TCP listener are two `serve` calls with their own configs.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import trio

from tinykube.api.auth import BearerAuth, Nodes
from tinykube.api.tls import Listen, Pki

KUBECONFIG_PATH = "/tinykube/kubeconfig"


class ListenError(Exception):
    """The TLS listener's address cannot be bound; str() says what to do."""


def check_free(listen: Listen) -> None:
    """Fail early with a clear message when the address is taken (hypercorn would raise from
    deep inside its worker). Binds as hypercorn does (SO_REUSEADDR), then lets go."""
    import socket

    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((listen.host, listen.port))
        except OSError as e:
            raise ListenError(f"cannot listen on {listen.bind}: {e.strerror or e}; choose "
                              "another address with --listen HOST:PORT, or --listen none"
                              ) from None


async def serve_tls(app: Any, listen: Listen, pki: Pki, *, nodes: Nodes | None = None,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """`nodes`: in cluster mode, the node credentials (agents exchange the join token for
    one, and may then do only what a node may)."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    config.bind = [listen.bind]
    config.certfile = str(pki.server_cert)
    config.keyfile = str(pki.server_key)
    config.accesslog = None
    config.errorlog = logging.getLogger("tinykube.https")
    config.keep_alive_timeout = 30
    config.graceful_timeout = 1
    config.h11_max_incomplete_size = 64 * 1024
    token = await trio.to_thread.run_sync(pki.token)
    node_tokens = await trio.to_thread.run_sync(pki.node_tokens)
    await hypercorn_serve(BearerAuth(app, token, *node_tokens, nodes=nodes),  # type: ignore[arg-type]
                          config,
                          task_status=task_status, mode="asgi")


def kubeconfig(listen: Listen, pki: Pki) -> dict:
    """An admin kubeconfig for the TCP listener (blocking: reads the pki files)."""
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "::") else listen.host
    server = Listen(host, listen.port).url
    ca = base64.b64encode(pki.ca_cert.read_bytes()).decode()
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "tinykube", "cluster": {
            "server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "tinykube-admin", "user": {"token": pki.token()}}],
        "contexts": [{"name": "tinykube", "context": {
            "cluster": "tinykube", "user": "tinykube-admin", "namespace": "default"}}],
        "current-context": "tinykube",
    }


class WithKubeconfig:
    """The unix socket's application: the API plus `GET /tinykube/kubeconfig` (root only,
    like the socket itself; the TCP listener does not serve it)."""

    def __init__(self, app: Any, listen: Listen | None, pki: Pki | None) -> None:
        self.app = app
        self.listen = listen
        self.pki = pki

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != KUBECONFIG_PATH:
            await self.app(scope, receive, send)
            return
        import json

        if self.listen is None or self.pki is None:
            code, body = 404, {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": "NotFound", "code": 404,
                "message": "the daemon runs no TCP listener (it was started with --listen none)"}
        else:
            code, body = 200, await trio.to_thread.run_sync(kubeconfig, self.listen, self.pki)
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": code,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"%d" % len(data))]})
        await send({"type": "http.response.body", "body": data})
