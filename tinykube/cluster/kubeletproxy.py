"""The server's way to a pod's logs and exec when an agent runs the pod: the request goes on
to that agent's endpoint (tinykube/cluster/nodeserver.py), as kube-apiserver proxies
`pods/log` and `pods/exec` to the kubelet of the pod's node.

The node is found from the pod's `spec.nodeName`: its Node's InternalIP and
`status.daemonEndpoints.kubeletEndpoint.Port`. The server presents the cluster's
kubelet-client certificate. Like kube-apiserver without `--kubelet-certificate-authority`,
it does not verify the agent's self-signed serving certificate.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import trio

from tinykube.api import execws
from tinykube.model.errors import ApiError, BadRequest, NotFound

log = logging.getLogger("tinykube.cluster.kubeletproxy")
logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per proxied request

CONNECT_SECONDS = 10.0


class NodeUnreachable(ApiError):
    code = 502
    reason = "BadGateway"


class KubeletProxy:
    def __init__(self, store: Any, client_cert: Path, client_key: Path) -> None:
        self.store = store
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE  # the agent's self-signed serving cert
        self.context.load_cert_chain(str(client_cert), str(client_key))

    def endpoint(self, pod: dict[str, Any]) -> tuple[str, str]:
        """(node name, host:port) of the agent that runs `pod`; a clear error if none."""
        name = pod["metadata"]["name"]
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise BadRequest(f'pod "{name}" does not have a host assigned')
        node = self.store.try_get("Node", "default", node_name)  # cluster-scoped: "default"
        if node is None:
            raise NotFound(f'node "{node_name}" of pod "{name}" not found')
        status = node.get("status") or {}
        address = next((a.get("address") for a in status.get("addresses") or []
                        if a.get("type") == "InternalIP"), None)
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        if not address or not port:
            raise ApiError(f'node "{node_name}" publishes no log/exec endpoint (its agent runs '
                           "without --certificate-authority, or with --kubelet-port 0)",
                           code=503, reason="ServiceUnavailable")
        host = f"[{address}]" if ":" in address else address
        return node_name, f"{host}:{port}"

    async def forward_http(self, pod: dict[str, Any], method: str, path: str,
                           query: dict[str, str], body: bytes, send: Any, receive: Any) -> None:
        """Send the request on to the pod's agent and stream its answer back as it comes
        (`logs -f` for as long as the client stays)."""
        import httpx

        from tinykube.apiserver import _until_disconnect

        node_name, where = self.endpoint(pod)
        url = f"https://{where}{path}" + (f"?{urlencode(query)}" if query else "")
        timeout = httpx.Timeout(CONNECT_SECONDS, read=None)  # a followed log may idle forever
        async with httpx.AsyncClient(verify=self.context, timeout=timeout) as client:
            try:
                request = client.build_request(
                    method, url, content=body or None,
                    headers={"content-type": "application/json"} if body else {})
                response = await client.send(request, stream=True)
            except httpx.HTTPError as e:
                raise NodeUnreachable(f"cannot reach node {node_name} at {where} for pod "
                                      f'"{pod["metadata"]["name"]}": {e}') from None
            try:
                await send({"type": "http.response.start", "status": response.status_code,
                            "headers": [(b"content-type", response.headers.get(
                                "content-type", "text/plain").encode())]})

                async def relay(cancel: trio.CancelScope) -> None:
                    try:
                        async for chunk in response.aiter_raw():
                            await send({"type": "http.response.body", "body": chunk,
                                        "more_body": True})
                    except httpx.HTTPError as e:  # the agent went away mid-stream
                        log.warning("node %s: stream of %s ended: %s", node_name, path, e)
                    cancel.cancel()

                await _until_disconnect(receive, relay)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                with trio.CancelScope(shield=True):
                    await response.aclose()

    async def forward_websocket(self, scope: dict[str, Any], receive: Any, send: Any,
                                find_pod: Any) -> None:
        """`kubectl exec` (a WebSocket): relay every frame, both ways, to the pod's agent."""
        from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

        if (await receive())["type"] != "websocket.connect":
            return
        offered = [p.strip() for p in scope.get("subprotocols") or []]
        protocol = next((p for p in execws.PROTOCOLS if p in offered), None)
        if protocol is None:
            await send({"type": "websocket.close", "code": 1002})
            return
        query = scope.get("query_string", b"").decode("latin-1")
        accepted = False
        try:
            _, where = self.endpoint(find_pod(scope["path"]))
            url = f"wss://{where}{scope['path']}" + (f"?{query}" if query else "")
            async with open_websocket_url(url, self.context, subprotocols=[protocol],
                                          connect_timeout=CONNECT_SECONDS) as agent:
                await send({"type": "websocket.accept", "subprotocol": protocol})
                accepted = True
                await _relay_websocket(agent, receive, send, ConnectionClosed)
        except ApiError as e:
            await _fail(send, e.status(), protocol, accepted)
        except (HandshakeError, OSError, trio.TooSlowError) as e:
            await _fail(send, NodeUnreachable(f"cannot reach the node of the pod for exec: {e}"
                                              ).status(), protocol, accepted)


async def _fail(send: Any, status: dict, protocol: str, accepted: bool) -> None:
    if not accepted:
        await send({"type": "websocket.accept", "subprotocol": protocol})
    await send({"type": "websocket.send", "bytes": bytes([execws.ERROR]) + _json(status)})
    await send({"type": "websocket.close", "code": 1000})


def _json(status: dict) -> bytes:
    import json

    return json.dumps(status).encode()


async def _relay_websocket(agent: Any, receive: Any, send: Any,
                           closed: type[BaseException]) -> None:
    async with trio.open_nursery() as nursery:
        async def from_client() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    nursery.cancel_scope.cancel()
                    return
                data = message.get("bytes")
                await agent.send_message(data if data is not None else message.get("text", ""))

        async def from_agent() -> None:
            try:
                while True:
                    data = await agent.get_message()
                    key = "bytes" if isinstance(data, bytes) else "text"
                    await send({"type": "websocket.send", key: data})
            except closed:
                pass
            await send({"type": "websocket.close", "code": 1000})
            nursery.cancel_scope.cancel()

        nursery.start_soon(from_client)
        nursery.start_soon(from_agent)
