"""The agent's own HTTPS endpoint: logs and exec of the pods it runs, for the API servers.

As kube-apiserver reaches the kubelet on port 10250, a `tinykube server` reaches an agent at
its Node's InternalIP and `status.daemonEndpoints.kubeletEndpoint.Port`
(tinykube/cluster/kubeletproxy.py). Only clients holding a certificate signed by the
cluster's CA get through the TLS handshake: the servers' kubelet-client certificate (agents
hold the CA certificate, never its key). Only `pods/NAME/log` and `pods/NAME/exec` of pods
bound to this node are served; the requests themselves are the API server's code (the same
handlers, on the agent's cache and its kubelet).
"""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path
from typing import Any

import trio

from tinykube.api.serviceips import ServiceAllocator
from tinykube.apiserver import ApiServer

log = logging.getLogger("tinykube.cluster.nodeserver")

DEFAULT_KUBELET_PORT = 10250  # the kubelet's --port


class NodeEndpoint:
    """ASGI: the API server's log and exec handlers, for this node's pods only."""

    def __init__(self, store: Any, kubelet: Any, node_name: str) -> None:
        self.store = store
        self.node_name = node_name
        self.api = ApiServer(store, kubelet, ServiceAllocator(store))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.api(scope, receive, send)
            return
        if scope["type"] not in ("http", "websocket"):
            return
        problem = self._refusal(scope)
        if problem is not None:
            await _refuse(scope, send, *problem)
            return
        await self.api(scope, receive, send)

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        """Why this request is not served here (code, message), or None."""
        parts = [p for p in scope.get("path", "").split("/") if p]
        if (len(parts) != 7 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods"
                or parts[6] not in ("log", "exec")):
            return 404, f"the node serves only pods' log and exec, not {scope.get('path')}"
        pod = self.store.try_get("Pod", parts[3], parts[5])
        if pod is None or (pod.get("spec") or {}).get("nodeName") != self.node_name:
            return 404, f'pod "{parts[5]}" is not running on node {self.node_name}'
        return None


async def _refuse(scope: dict[str, Any], send: Any, code: int, message: str) -> None:
    body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                       "status": "Failure", "message": message, "code": code,
                       "reason": "NotFound" if code == 404 else "Forbidden"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": code,
                    "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


async def serve_node_endpoint(app: NodeEndpoint, address: str, port: int, cert: Path,
                              key: Path, client_ca: Path, *,
                              task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `app` over TLS on address:port, requiring a client certificate from the CA."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    host = f"[{address}]" if ":" in address else address
    config.bind = [f"{host}:{port}"]
    config.certfile = str(cert)
    config.keyfile = str(key)
    config.ca_certs = str(client_ca)
    config.verify_mode = ssl.CERT_REQUIRED
    config.accesslog = None
    config.errorlog = logging.getLogger("tinykube.node-https")
    config.keep_alive_timeout = 30
    config.graceful_timeout = 1
    config.h11_max_incomplete_size = 64 * 1024
    log.info("node %s: log/exec endpoint on https://%s:%d", app.node_name, host, port)
    await hypercorn_serve(app, config, task_status=task_status,  # type: ignore[arg-type]
                          mode="asgi")
