"""Two API servers on one etcd (`--store etcd://…`): what a client writes through one is read,
listed and watched through the other, and optimistic concurrency holds across them. Real API
servers (unix sockets, the HTTP API), real etcd; no pods."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager

import pytest
import trio

from tinykube.apiserver import ApiServer, serve
from tinykube.client import Client
from tinykube.model.errors import ApiError
from tinykube.store.location import StoreLocation, open_store


def replica_set(name: str, replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c",
                                                           "command": ["sleep", "1"]}]}}}}


async def call(fn, *args, **kwargs):
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))


@asynccontextmanager
async def api_server(etcd, socket):
    async with open_store(StoreLocation(etcd_endpoints=(etcd.endpoint,))) as store, \
            trio.open_nursery() as nursery:
        await nursery.start(serve, ApiServer(store), socket)
        client = Client(socket)
        try:
            yield client
        finally:
            client.close()
            nursery.cancel_scope.cancel()


async def test_two_api_servers_share_writes_lists_and_watches(etcd, tmp_path):
    async with api_server(etcd, tmp_path / "a.sock") as a, \
            api_server(etcd, tmp_path / "b.sock") as b:
        seen: list[tuple[str, str, str]] = []
        watching = threading.Event()

        def watch_b():
            for type_, obj in b.watch("ReplicaSet", idle_timeout=15):
                if type_ == "BOOKMARK":
                    continue
                seen.append((type_, obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))
                watching.set()
                if type_ == "DELETED":
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, watch_b)
            made = await call(a.create, replica_set("before-watch"))
            await call(watching.wait, 15)  # the watch is up: it listed `before-watch`
            first = await call(a.create, replica_set("web"))
            got = await call(b.get, "ReplicaSet", "web")
            assert got["metadata"]["uid"] == first["metadata"]["uid"]
            assert got["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
            listed = await call(b.list, "ReplicaSet")
            assert {o["metadata"]["name"] for o in listed} == {"before-watch", "web"}
            # An update through B from A's version; A's stale copy then conflicts.
            got["spec"]["replicas"] = 3
            updated = await call(b.update, got)
            first["spec"]["replicas"] = 5
            with pytest.raises(ApiError) as conflict:
                await call(a.update, first)
            assert conflict.value.code == 409
            assert (await call(a.get, "ReplicaSet", "web"))["spec"]["replicas"] == 3
            await call(a.delete, "ReplicaSet", "web")
        assert seen[0][:2] == ("ADDED", "before-watch")
        assert seen[0][2] == made["metadata"]["resourceVersion"]
        assert [s[:2] for s in seen[1:]] == [("ADDED", "web"), ("MODIFIED", "web"),
                                             ("DELETED", "web")]
        assert seen[2][2] == updated["metadata"]["resourceVersion"]
        assert [int(s[2]) for s in seen[1:]] == sorted(int(s[2]) for s in seen[1:])


async def test_a_watch_from_a_version_read_on_one_server_resumes_on_the_other(etcd, tmp_path):
    """A client that listed through A and lost its connection resumes its watch on B from
    A's resourceVersion, missing nothing (both servers speak etcd's revisions)."""
    async with api_server(etcd, tmp_path / "a.sock") as a, \
            api_server(etcd, tmp_path / "b.sock") as b:
        await call(a.create, replica_set("one"))
        listed_at = (await call(a.request, "GET",
                                "/apis/apps/v1/namespaces/default/replicasets")
                     )["metadata"]["resourceVersion"]
        await call(a.create, replica_set("two"))
        await call(a.create, replica_set("three"))

        def resume_on_b():
            names = []
            for type_, obj in b.watch("ReplicaSet", resource_version=listed_at,
                                      idle_timeout=15):
                names.append((type_, obj["metadata"]["name"]))
                if len(names) == 2:
                    return names
            return names

        assert await call(resume_on_b) == [("ADDED", "two"), ("ADDED", "three")]
