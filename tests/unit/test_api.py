"""The API server over a real unix socket, with a real store (no node): paths, codes, Status
objects, apply semantics, merge patch, scale, delete options, watch, bad input."""

import json
import os
import stat

import pytest
import trio

from tinykube.apiserver import merge_patch
from tinykube.client import _UnixConnection
from tinykube.model.errors import AlreadyExists, ApiError, Conflict, NotFound


def deployment(name="web", replicas=2, **spec_extra):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "command": ["sleep", "1"]}]}},
                 **spec_extra},
    }


async def call(fn, *args, **kwargs):
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))


async def test_socket_is_root_only(api):
    _, _, socket = api
    assert stat.S_IMODE(os.stat(socket).st_mode) == 0o600


async def test_create_get_list_with_defaults(api):
    _store, client, _ = api
    created = await call(client.create, deployment())
    assert created["metadata"]["uid"] and created["spec"]["revisionHistoryLimit"] == 10
    got = await call(client.get, "Deployment", "web")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    listed = await call(client.list, "Deployment", "default", "app=web")
    assert [o["metadata"]["name"] for o in listed] == ["web"]
    assert await call(client.list, "Deployment", "default", "app=other") == []
    with pytest.raises(AlreadyExists):
        await call(client.create, deployment())
    with pytest.raises(NotFound):
        await call(client.get, "Deployment", "nope")


async def test_invalid_object_is_422_and_changes_nothing(api):
    store, client, _ = api
    bad = deployment()
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    rv = store.resource_version
    with pytest.raises(ApiError) as err:
        await call(client.create, bad)
    assert err.value.code == 422 and "spec.template.metadata.labels" in err.value.message
    unknown = deployment()
    unknown["spec"]["replicaz"] = 3
    with pytest.raises(ApiError) as err:
        await call(client.create, unknown)
    assert err.value.code == 422 and "spec.replicaz" in err.value.message
    assert store.resource_version == rv


async def test_apply_created_configured_unchanged(api):
    _, client, _ = api
    assert (await call(client.apply, deployment()))[0] == "created"
    assert (await call(client.apply, deployment()))[0] == "unchanged"
    assert (await call(client.apply, deployment(replicas=5)))[0] == "configured"
    assert (await call(client.get, "Deployment", "web"))["spec"]["replicas"] == 5


async def test_stale_update_conflicts(api):
    _, client, _ = api
    first = await call(client.create, deployment())
    fresh = dict(first, spec=dict(first["spec"], replicas=3))
    await call(client.update, fresh)
    first["spec"]["replicas"] = 4
    with pytest.raises(Conflict):
        await call(client.update, first)


async def test_merge_patch_and_scale(api):
    _, client, _ = api
    await call(client.create, deployment())
    patched = await call(client.patch, "Deployment", "web", "default",
                         {"metadata": {"labels": {"tier": "front"}}})
    assert patched["metadata"]["labels"] == {"app": "web", "tier": "front"}
    scale = await call(client.scale, "Deployment", "web", "default", 7)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 7
    with pytest.raises(ApiError) as err:
        await call(client.scale, "Deployment", "web", "default", -1)
    assert err.value.code == 422
    assert (await call(client.get, "Deployment", "web"))["spec"]["replicas"] == 7


async def test_delete_options(api):
    _store, client, _ = api
    await call(client.create, deployment())
    held = await call(client.delete, "Deployment", "web", "default", propagation="Foreground")
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"]
    with pytest.raises(ApiError) as err:
        await call(client.request, "DELETE", "/apis/apps/v1/namespaces/default/deployments/web",
                   params={"propagationPolicy": "Sideways"})
    assert err.value.code == 400


async def test_watch_streams_changes(api):
    store, client, _ = api
    seen = []

    def watch():
        for type_, obj in client.watch("Deployment", "default"):
            seen.append((type_, obj["metadata"]["name"]))
            if len(seen) == 3:
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, watch)
        await store.create(deployment("a"))
        await trio.sleep(0.2)
        await store.create(deployment("b"))
        await store.delete("Deployment", "default", "a")
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]


@pytest.mark.parametrize("body, code", [
    (b"{not json", 400),
    (b"[1, 2]", 400),
    (b"[" * 5000 + b"]" * 5000, 400),
    (json.dumps({"kind": "Deployment", "apiVersion": "apps/v1"}).encode(), 422),
    (json.dumps({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "x"}}).encode(), 400),
    (b"x" * (4 * 1024 * 1024), 413),
])
async def test_bad_bodies_are_rejected(api, body, code):
    store, client, socket = api
    rv = store.resource_version

    def post():
        conn = _UnixConnection(str(socket), 10)
        try:
            conn.request("POST", "/apis/apps/v1/namespaces/default/deployments", body=body)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        except (BrokenPipeError, ConnectionResetError):
            # An oversized body may be refused before the client finished sending it.
            return 413, {"kind": "Status"}
        finally:
            conn.close()

    status, answer = await call(post)
    assert status == code and answer["kind"] == "Status", answer
    assert store.resource_version == rv
    assert (await call(client.list, "Deployment")) == []  # and the server still serves


async def test_unknown_paths_are_404(api):
    _, client, _ = api
    with pytest.raises(NotFound):
        await call(client.request, "GET", "/apis/apps/v1/namespaces/default/widgets")
    with pytest.raises(NotFound):
        await call(client.request, "GET", "/nope")


def test_merge_patch_rfc7386():
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) \
        == {"a": 1, "b": {"d": 3, "e": 4}, "f": [1]}
