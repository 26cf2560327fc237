"""The etcd backend as kube-apiserver's etcd3 storage: keys and revisions, transactions, several
servers on one etcd (each cache fed by a watch), watch history across restarts and compaction,
values it cannot serve. The shared store suite (test_store.py) runs on etcd too."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import urllib.error

import pytest
import trio

from tinykube.model.errors import AlreadyExists, Conflict, Gone
from tinykube.store.location import EtcdTLS, StoreLocation, StoreUnavailable, open_store
from tinykube.testing.etcd import make_tls, running_etcd


def rs(name="web", replicas=1):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "command": ["true"]}]}}}}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def server(etcd):
    return open_store(StoreLocation(etcd_endpoints=(etcd.endpoint,)))


async def next_event(watch):
    with trio.fail_after(10):
        return await anext(watch)


async def test_keys_values_and_resource_version_are_etcds(etcd):
    async with server(etcd) as store:
        created = await store.create(rs())
    stored = etcd.call("/v3/kv/range", {"key": b64("/registry/ReplicaSet/default/web")})
    (kv,) = stored["kvs"]
    assert created["metadata"]["resourceVersion"] == kv["mod_revision"]
    value = json.loads(base64.b64decode(kv["value"]))
    assert "resourceVersion" not in value["metadata"]  # it is the key's mod revision
    assert value["metadata"]["uid"] == created["metadata"]["uid"]
    assert int(created["metadata"]["resourceVersion"]) == int(stored["header"]["revision"])


async def test_two_servers_see_each_others_writes_and_watches(etcd):
    async with server(etcd) as a, server(etcd) as b:
        with b.watch("ReplicaSet") as watch_b:
            made = await a.create(rs())
            event = await next_event(watch_b)
            assert (event.type, event.object["metadata"]["uid"]) == ("ADDED",
                                                                    made["metadata"]["uid"])
            assert event.resource_version == int(made["metadata"]["resourceVersion"])
            assert b.get("ReplicaSet", "default", "web")["metadata"]["uid"] == \
                made["metadata"]["uid"]
            assert b.resource_version == a.resource_version
            # B's update, decided on what A wrote, is seen by A's watchers.
            with a.watch("ReplicaSet") as watch_a:
                theirs = b.get("ReplicaSet", "default", "web")
                theirs["spec"]["replicas"] = 3
                updated = await b.update(theirs)
                event = await next_event(watch_a)
            assert event.type == "MODIFIED" and event.object["spec"]["replicas"] == 3
            assert a.get("ReplicaSet", "default", "web")["metadata"]["resourceVersion"] == \
                updated["metadata"]["resourceVersion"]
            await a.delete("ReplicaSet", "default", "web")
            assert (await next_event(watch_b)).type == "MODIFIED"
            gone = await next_event(watch_b)
            assert gone.type == "DELETED" and gone.object["metadata"]["name"] == "web"
            assert b.try_get("ReplicaSet", "default", "web") is None


async def test_optimistic_concurrency_across_servers(etcd):
    async with server(etcd) as a, server(etcd) as b:
        await a.create(rs())
        await b.wait_for_resource_version(a.resource_version, 10)
        mine, theirs = (a.get("ReplicaSet", "default", "web"),
                        b.get("ReplicaSet", "default", "web"))
        mine["spec"]["replicas"] = 2
        theirs["spec"]["replicas"] = 5
        results = []

        async def write(store, obj):
            try:
                results.append(("ok", (await store.update(obj))["spec"]["replicas"]))
            except Conflict:
                results.append(("conflict", obj["spec"]["replicas"]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, a, mine)
            nursery.start_soon(write, b, theirs)
        assert sorted(r[0] for r in results) == ["conflict", "ok"]
        winner = next(r[1] for r in results if r[0] == "ok")
        await a.wait_for_resource_version(b.resource_version, 10)
        assert a.get("ReplicaSet", "default", "web")["spec"]["replicas"] == winner
        assert b.get("ReplicaSet", "default", "web")["spec"]["replicas"] == winner


async def test_a_write_without_a_version_retries_on_the_fresh_object(etcd):
    """B's cache may be behind A's write when B writes: the compare fails, B catches up and
    applies its change on top (kube-apiserver's GuaranteedUpdate), losing nothing of A's."""
    async with server(etcd) as a, server(etcd) as b:
        await a.create(rs())
        await b.wait_for_resource_version(a.resource_version, 10)
        stale = b.get("ReplicaSet", "default", "web")
        fresh = a.get("ReplicaSet", "default", "web")
        fresh["metadata"]["labels"]["by"] = "a"
        await a.update(fresh)
        stale["metadata"].pop("resourceVersion")
        stale["status"] = {"replicas": 7}
        written = await b.update_status(stale)
        assert written["status"] == {"replicas": 7}
        assert written["metadata"]["labels"]["by"] == "a"


async def test_the_same_name_created_on_two_servers_exists_once(etcd):
    async with server(etcd) as a, server(etcd) as b:
        outcomes = []

        async def create(store):
            try:
                outcomes.append((await store.create(rs()))["metadata"]["uid"])
            except AlreadyExists:
                outcomes.append("exists")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(create, a)
            nursery.start_soon(create, b)
        assert outcomes.count("exists") == 1
        uid = next(o for o in outcomes if o != "exists")
        await a.wait_for_resource_version(b.resource_version, 10)
        assert a.get("ReplicaSet", "default", "web")["metadata"]["uid"] == uid
        assert b.get("ReplicaSet", "default", "web")["metadata"]["uid"] == uid


async def test_watch_history_survives_a_restart_until_compaction(etcd):
    async with server(etcd) as first:
        made = [await first.create(rs(f"r{i}")) for i in range(5)]
    since = int(made[1]["metadata"]["resourceVersion"])
    async with server(etcd) as again:  # a new server: its history replayed from etcd
        with again.watch("ReplicaSet", since=since) as watch:
            names = [(await next_event(watch)).object["metadata"]["name"] for _ in range(3)]
        assert names == ["r2", "r3", "r4"]
    etcd.call("/v3/kv/compaction", {"revision": int(made[3]["metadata"]["resourceVersion"]),
                                    "physical": True})
    async with server(etcd) as after:
        with pytest.raises(Gone):
            after.watch("ReplicaSet", since=since)
        with after.watch("ReplicaSet",
                         since=int(made[3]["metadata"]["resourceVersion"])) as watch:
            assert (await next_event(watch)).object["metadata"]["name"] == "r4"


async def test_values_that_cannot_be_served_are_skipped_and_keep_their_name(etcd):
    etcd.call("/v3/kv/put", {"key": b64("/registry/Pod/default/bad"), "value": b64("{nope")})
    async with server(etcd) as store:
        assert store.list("Pod") == []
        assert "not valid JSON" in store.unloadable[("Pod", "default", "bad")]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
               "spec": {"containers": [{"name": "c", "command": ["true"]}]}}
        with pytest.raises(AlreadyExists, match="doctor"):
            await store.create(pod)
        etcd.call("/v3/kv/deleterange", {"key": b64("/registry/Pod/default/bad")})
        await store.wait_for_resource_version(store.resource_version + 1, 10)
        assert not store.unloadable
        await store.create(pod)


async def test_tls_with_client_certificates(tmp_path):
    """--etcd-cafile/--etcd-certfile/--etcd-keyfile: the store speaks HTTPS to an etcd that
    requires client certificates; without the client certificate etcd refuses it."""
    certs = make_tls(tmp_path / "pki")
    with running_etcd(tmp_path / "etcd", tls=certs) as etcd:
        tls = EtcdTLS(str(certs.ca), str(certs.client_cert), str(certs.client_key))
        async with open_store(StoreLocation(etcd_endpoints=(etcd.endpoint,),
                                            etcd_tls=tls)) as store:
            made = await store.create(rs())
        stored = etcd.call("/v3/kv/range", {"key": b64("/registry/ReplicaSet/default/web")})
        assert stored["kvs"][0]["mod_revision"] == made["metadata"]["resourceVersion"]
        no_client_cert = EtcdTLS(cafile=str(certs.ca))
        with pytest.raises(StoreUnavailable, match="etcd is unavailable"):
            async with open_store(StoreLocation(etcd_endpoints=(etcd.endpoint,),
                                                etcd_tls=no_client_cert)):
                pass


async def test_etcd_down_fails_writes_clearly_and_the_cache_follows_again_after(tmp_path):
    with running_etcd(tmp_path / "etcd") as etcd:
        async with server(etcd) as a:
            made = await a.create(rs())
            etcd.stop()
            current = a.get("ReplicaSet", "default", "web")  # reads are the cache's
            current["spec"]["replicas"] = 4
            with pytest.raises(StoreUnavailable, match="etcd is unavailable") as error:
                await a.update(current)
            assert error.value.code == 503
            assert a.get("ReplicaSet", "default", "web") == made
            await trio.to_thread.run_sync(etcd.start)
            # Another server writes; A's watch reconnects from where it was and sees it.
            async with server(etcd) as b:
                await b.update(current)
                rv = b.resource_version
            assert await a.wait_for_resource_version(rv, 30)
            assert a.get("ReplicaSet", "default", "web")["spec"]["replicas"] == 4
            again = a.get("ReplicaSet", "default", "web")
            again["spec"]["replicas"] = 5
            assert (await a.update(again))["spec"]["replicas"] == 5


async def test_a_value_that_turns_unservable_leaves_the_cache_and_its_watchers(etcd):
    """A value written to etcd behind the servers' backs that cannot be served: it goes from
    the cache (watchers see it DELETED) and is reported, as an unloadable SQLite row is."""
    async with server(etcd) as store:
        await store.create(rs())
        with store.watch("ReplicaSet") as watch:
            etcd.call("/v3/kv/put", {"key": b64("/registry/ReplicaSet/default/web"),
                                     "value": b64('{"kind": "ReplicaSet"}')})
            event = await next_event(watch)
        assert (event.type, event.object["metadata"]["name"]) == ("DELETED", "web")
        assert store.try_get("ReplicaSet", "default", "web") is None
        assert "metadata" in store.unloadable[("ReplicaSet", "default", "web")]


class Partition:
    """A TCP proxy to etcd that the test can cut and restore: a server behind it loses etcd
    while others keep writing."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._connections: set[trio.CancelScope] = set()

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._serve, listeners)
            task_status.started()

    async def _serve(self, client: trio.SocketStream) -> None:
        with trio.CancelScope() as scope:
            self._connections.add(scope)
            upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
            async with client, upstream, trio.open_nursery() as nursery:
                nursery.start_soon(self._pipe, client, upstream)
                nursery.start_soon(self._pipe, upstream, client)

    async def _pipe(self, source: trio.SocketStream, sink: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            async for data in source:
                await sink.send_all(data)

    def cut(self) -> None:
        """Break every connection through the proxy (new ones pass)."""
        for scope in self._connections:
            scope.cancel()
        self._connections.clear()


async def test_a_server_cut_off_past_a_compaction_lists_again(etcd, nursery):
    """Server A loses etcd; meanwhile B changes things and etcd compacts the revisions A had
    not seen. Back, A's watch is refused (compacted): A lists again, tells its watchers what
    changed (including what was deleted meanwhile) and answers older watches with Gone."""
    partition = Partition(etcd.client_port)
    await nursery.start(partition.run)
    async with open_store(StoreLocation(etcd_endpoints=(f"127.0.0.1:{partition.port}",))) as a, \
            server(etcd) as b:
        await b.create(rs("kept"))
        await b.create(rs("deleted"))
        await a.wait_for_resource_version(b.resource_version, 10)
        before = a.resource_version
        with a.watch("ReplicaSet", since=before) as watch:
            partition.cut()  # A's watch breaks; it reconnects after its back-off...
            changed = b.get("ReplicaSet", "default", "kept")
            changed["spec"]["replicas"] = 9
            await b.update(changed)
            await b.delete("ReplicaSet", "default", "deleted")
            await b.create(rs("new"))
            # ...by when etcd compacted what A missed (a slow reconnect is the same case).
            etcd.call("/v3/kv/compaction", {"revision": b.resource_version, "physical": True})
            # Waiters wake when the relisted cache reaches the revision (not at their timeout:
            # a generous bound that only a missed wake-up exceeds).
            with trio.fail_after(20):
                assert await a.wait_for_resource_version(b.resource_version, 60)
            events = {}
            with trio.fail_after(10):
                while len(events) < 3:
                    event = await anext(watch)
                    events[event.object["metadata"]["name"]] = event.type
        assert events == {"kept": "MODIFIED", "deleted": "DELETED", "new": "ADDED"}
        assert a.get("ReplicaSet", "default", "kept")["spec"]["replicas"] == 9
        assert a.try_get("ReplicaSet", "default", "deleted") is None
        with pytest.raises(Gone):
            a.watch("ReplicaSet", since=before)


async def test_an_endpoint_that_does_not_answer_is_skipped(etcd):
    """etcd://A,B: with A down, requests and the watch go to B (as etcd's clients fail over)."""
    down = socket.socket()
    down.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        endpoints = (f"127.0.0.1:{down.getsockname()[1]}", etcd.endpoint)
        async with open_store(StoreLocation(etcd_endpoints=endpoints)) as store, \
                server(etcd) as other:
            made = await store.create(rs())
            assert other.get("ReplicaSet", "default", "web")["metadata"]["uid"] == \
                made["metadata"]["uid"]
            with store.watch("ReplicaSet") as watch:
                await other.delete("ReplicaSet", "default", "web")
                assert (await next_event(watch)).type == "DELETED"
    finally:
        down.close()


async def test_etcd_history_is_compacted(etcd):
    """Two servers compacting every 0.2 s (kube-apiserver's compactor, every 5 min by
    default): etcd's old revisions go and the stores keep working."""
    location = StoreLocation(etcd_endpoints=(etcd.endpoint,), etcd_compaction_interval=0.2)
    async with open_store(location) as a, open_store(location) as b:
        first = int((await a.create(rs("first")))["metadata"]["resourceVersion"])

        def compacted(rev: int) -> bool:
            try:
                etcd.call("/v3/kv/range", {"key": b64("/registry/"), "revision": rev})
            except urllib.error.HTTPError as e:
                return "compacted" in e.read().decode()
            return False

        with trio.fail_after(20):
            while not compacted(first):
                await b.create(rs(f"r{b.resource_version}"))
                await trio.sleep(0.05)
        with a.watch("ReplicaSet", since=a.resource_version) as watch:
            await b.delete("ReplicaSet", "default", "first")
            assert (await next_event(watch)).type == "DELETED"
