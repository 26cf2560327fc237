"""The TLS listener in-process (real hypercorn, real certificates, no node): PKI files,
401 without or with a wrong credential, no plain HTTP, the kubeconfig over the unix socket."""

import base64
import http.client
import json
import os
import socket
import ssl
import stat

import pytest
import trio
import yaml

from tests.integration.daemon import free_port
from tinykube.api.listener import KUBECONFIG_PATH, WithKubeconfig, serve_tls
from tinykube.api.tls import ensure_pki, parse_listen
from tinykube.apiserver import ApiServer, serve
from tinykube.client import Client
from tinykube.store import Store


@pytest.fixture
async def tls_api(tmp_path):
    store = Store(tmp_path / "state.db")
    listen = parse_listen(f"127.0.0.1:{free_port()}")
    pki = ensure_pki(tmp_path / "root", listen)
    api = ApiServer(store)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, WithKubeconfig(api, listen, pki), tmp_path / "api.sock")
        await nursery.start(serve_tls, api, listen, pki)
        client = Client(tmp_path / "api.sock")
        yield store, client, listen, pki
        client.close()
        nursery.cancel_scope.cancel()
    store.close()


def https(listen, pki, method, path, token=None, body=None):
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    conn = http.client.HTTPSConnection(listen.host, listen.port, context=context, timeout=10)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "command": ["sleep", "1"]}]}}


async def test_requests_need_the_admin_token(tls_api):
    store, _, listen, pki = tls_api
    path = "/api/v1/namespaces/default/pods"
    rv = store.resource_version
    for token in (None, "wrong", pki.token() + "x"):
        code, body = await trio.to_thread.run_sync(https, listen, pki, "POST", path, token, POD)
        assert code == 401 and body["reason"] == "Unauthorized"
    assert store.resource_version == rv and store.try_get("Pod", "default", "p") is None
    code, body = await trio.to_thread.run_sync(https, listen, pki, "POST", path, pki.token(),
                                               POD)
    assert code == 201 and body["metadata"]["name"] == "p"


async def test_no_plain_http(tls_api):
    _, _, listen, _ = tls_api

    def plain() -> bytes:
        with socket.create_connection((listen.host, listen.port), timeout=5) as s:
            s.sendall(b"GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                return s.recv(4096)
            except (ConnectionResetError, TimeoutError):
                return b""

    assert not (await trio.to_thread.run_sync(plain)).startswith(b"HTTP/")


async def test_pki_files_are_private_and_kept(tls_api, tmp_path):
    _, _, listen, pki = tls_api
    files = sorted(p.name for p in pki.directory.iterdir())
    assert files == ["admin.token", "ca.crt", "ca.key", "kubelet-client.crt", "kubelet-client.key",
                     "server.crt", "server.key"]
    assert stat.S_IMODE(os.stat(pki.directory).st_mode) == 0o700
    before = {p.name: p.read_bytes() for p in pki.directory.iterdir()}
    for p in pki.directory.iterdir():
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
    again = ensure_pki(tmp_path / "root", listen)  # a restart: everything kept
    assert {p.name: p.read_bytes() for p in again.directory.iterdir()} == before
    # A new listen address gets a serving certificate that names it, from the same CA.
    other = ensure_pki(tmp_path / "root", parse_listen("localhost:7443"))
    assert other.ca_cert.read_bytes() == before["ca.crt"]
    assert other.token() == pki.token()


async def test_kubeconfig_over_the_unix_socket(tls_api):
    _, client, listen, pki = tls_api
    config = await trio.to_thread.run_sync(client.request, "GET", KUBECONFIG_PATH)
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == f"https://127.0.0.1:{listen.port}"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca_cert.read_bytes()
    token = config["users"][0]["user"]["token"]
    code, _ = await trio.to_thread.run_sync(https, listen, pki, "GET", "/api/v1/pods", token)
    assert code == 200
    # The TLS listener does not hand out credentials.
    code, _ = await trio.to_thread.run_sync(https, listen, pki, "GET", KUBECONFIG_PATH, token)
    assert code == 404
    assert yaml.safe_load(yaml.safe_dump(config)) == config


def test_parse_listen():
    assert parse_listen("none") is None
    assert parse_listen("127.0.0.1:6443").url == "https://127.0.0.1:6443"
    assert parse_listen("[::1]:6443").bind == "[::1]:6443"
    for bad in ("6443", "host:", "host:99999", ":80"):
        with pytest.raises(ValueError, match="--listen"):
            parse_listen(bad)


async def test_kubeconfig_without_listener_says_why(tmp_path):
    store = Store(tmp_path / "state.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, WithKubeconfig(ApiServer(store), None, None),
                            tmp_path / "api.sock")
        client = Client(tmp_path / "api.sock")
        from tinykube.model.errors import NotFound
        with pytest.raises(NotFound, match="--listen none"):
            await trio.to_thread.run_sync(client.request, "GET", KUBECONFIG_PATH)
        client.close()
        nursery.cancel_scope.cancel()
    store.close()


async def test_websocket_upgrade_needs_the_token_too(tls_api):
    _, _, listen, pki = tls_api

    def handshake() -> bytes:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        with socket.create_connection((listen.host, listen.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /api/v1/namespaces/default/pods/p/exec?command=id HTTP/1.1\r\n"
                        b"Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                        b"Sec-WebSocket-Version: 13\r\n"
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        b"Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n")
            answer = b""
            while b"}" not in answer:  # the Status body may come in its own record
                chunk = tls.recv(4096)
                if not chunk:
                    break
                answer += chunk
            return answer

    answer = await trio.to_thread.run_sync(handshake)
    assert answer.startswith(b"HTTP/1.1 401") and b"Unauthorized" in answer
