"""The store: versions, generation, optimistic concurrency, deletion rules, watch, durability;
every test runs against each backend (`store` and `store_backend`: tests/store_backends.py)."""

import time

import pytest
import trio
import trio.lowlevel

from tinykube.model.errors import AlreadyExists, Conflict, Gone, NotFound
from tinykube.model.meta import parse_time
from tinykube.store import base as store_base


def rs(name="web", replicas=1, labels=None):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels or {"app": name}},
                     "template": {"metadata": {"labels": labels or {"app": name}},
                                  "spec": {"containers": [{"name": "c", "command": ["true"]}]}}}}


def pod(name="p", grace=30):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": grace, "containers": []}}


async def test_create_sets_system_fields_and_rejects_duplicates(store):
    obj = await store.create(rs())
    meta = obj["metadata"]
    assert meta["namespace"] == "default" and meta["generation"] == 1
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) >= 1
    with pytest.raises(AlreadyExists):
        await store.create(rs())


async def test_resource_version_is_monotonic_and_generation_follows_spec(store):
    a = await store.create(rs("a"))
    b = await store.create(rs("b"))
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    a["metadata"]["labels"]["x"] = "y"
    a2 = await store.update(a)
    assert a2["metadata"]["generation"] == 1  # metadata-only change
    a2["spec"]["replicas"] = 3
    a3 = await store.update(a2)
    assert a3["metadata"]["generation"] == 2
    a3["status"] = {"replicas": 3}
    a4 = await store.update_status(a3)
    assert a4["metadata"]["generation"] == 2 and a4["status"] == {"replicas": 3}


async def test_stale_write_conflicts(store):
    first = await store.create(rs())
    fresh = store.get("ReplicaSet", "default", "web")
    fresh["spec"]["replicas"] = 2
    await store.update(fresh)
    first["spec"]["replicas"] = 5
    with pytest.raises(Conflict):
        await store.update(first)
    assert store.get("ReplicaSet", "default", "web")["spec"]["replicas"] == 2


async def test_concurrent_writers_one_wins_each_round(store):
    await store.create(rs())
    results = {"ok": 0, "conflict": 0}

    copies = [store.get("ReplicaSet", "default", "web") for _ in range(10)]  # all read first

    async def writer(n):
        obj = copies[n]
        await trio.lowlevel.checkpoint()
        obj["spec"]["replicas"] = n + 2  # every write changes something (no-ops keep the version)
        try:
            await store.update(obj)
            results["ok"] += 1
        except Conflict:
            results["conflict"] += 1

    async with trio.open_nursery() as nursery:
        for n in range(10):
            nursery.start_soon(writer, n)
    assert results == {"ok": 1, "conflict": 9}


async def test_update_keeps_status_and_update_status_keeps_spec(store):
    obj = await store.create(rs())
    obj["status"] = {"replicas": 1}
    obj = await store.update_status(obj)
    obj["spec"]["replicas"] = 4
    obj["status"] = {"replicas": 99}
    obj = await store.update(obj)
    assert obj["status"] == {"replicas": 1} and obj["spec"]["replicas"] == 4
    obj["spec"]["replicas"] = 7
    obj["status"] = {"replicas": 2}
    obj = await store.update_status(obj)
    assert obj["spec"]["replicas"] == 4 and obj["status"] == {"replicas": 2}


async def test_pod_delete_is_graceful_then_forced(store):
    await store.create(pod())
    marked = await store.delete("Pod", "default", "p")
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    shorter = await store.delete("Pod", "default", "p", grace_period=5)
    assert shorter["metadata"]["deletionGracePeriodSeconds"] == 5
    # deletionTimestamp is when the pod is due to be gone (Kubernetes' BeforeDelete): the
    # request's time plus the grace period, moved 25 s earlier by the shorter second delete.
    due = parse_time(marked["metadata"]["deletionTimestamp"])
    assert due - time.time() > 20
    assert due - parse_time(shorter["metadata"]["deletionTimestamp"]) == 25
    await store.delete("Pod", "default", "p", grace_period=0)
    with pytest.raises(NotFound):
        store.get("Pod", "default", "p")


async def test_finalizers_hold_deletion_until_removed(store):
    await store.create(rs())
    held = await store.delete("ReplicaSet", "default", "web", propagation="Foreground")
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"]
    held["metadata"]["finalizers"] = []
    await store.update(held)
    assert store.try_get("ReplicaSet", "default", "web") is None


async def test_watch_from_version_replays_then_streams(store):
    a = await store.create(rs("a"))
    since = int(a["metadata"]["resourceVersion"])
    await store.create(rs("b"))
    with store.watch("ReplicaSet", since=since) as w:
        await store.delete("ReplicaSet", "default", "a")
        seen = []
        async for event in w:
            seen.append((event.type, event.object["metadata"]["name"]))
            if len(seen) == 2:
                break
    assert seen == [("ADDED", "b"), ("DELETED", "a")]


async def test_watch_hands_over_its_backlog_in_one_call(store):
    """What has arrived is taken without a trip through trio's run queue per event (the
    kubelet fell behind the pods of a rollout that way), copied unless asked shared."""
    with store.watch("ReplicaSet") as w:
        for name in ("a", "b", "c"):
            await store.create(rs(name))
        first = await w.__anext__()
        rest = w.ready_nowait()  # not async: no checkpoint, whatever the backlog
        assert [first.object["metadata"]["name"]] + \
            [e.object["metadata"]["name"] for e in rest] == ["a", "b", "c"]
        assert w.ready_nowait() == []
        rest[0].object["metadata"]["labels"]["app"] = "changed"  # a copy: the store's stays
        assert store.try_get("ReplicaSet", "default", "b")["metadata"]["labels"] == {"app": "b"}
        await store.delete("ReplicaSet", "default", "a")
        (shared,) = w.ready_nowait(shared=True)
        assert shared.type == "DELETED" and shared.object["metadata"]["name"] == "a"


async def test_watch_filters_kind_and_namespace(store):
    with store.watch("ReplicaSet", namespace="other") as w:
        await store.create(rs("x"))
        await store.create(pod("x"))
        other = rs("y")
        other["metadata"]["namespace"] = "other"
        await store.create(other)
        event = await w.__anext__()
    assert event.object["metadata"]["name"] == "y"


async def test_watch_too_old_is_gone(store, monkeypatch):
    monkeypatch.setattr(store_base, "HISTORY_LIMIT", 2)
    for n in range(5):
        await store.create(rs(f"n{n}"))
    with pytest.raises(Gone):
        store.watch("ReplicaSet", since=1)


async def test_objects_survive_reopen(store_backend):
    async with store_backend.open() as s:
        await s.create(rs(), durable=True)
        rv = s.resource_version
    async with store_backend.open() as again:
        assert again.get("ReplicaSet", "default", "web")["spec"]["replicas"] == 1
        assert again.resource_version == rv


async def test_events_are_aggregated(store):
    obj = await store.create(rs())
    await store.record_event(obj, "Normal", "SuccessfulCreate", "create Pod x")
    await store.record_event(obj, "Normal", "SuccessfulCreate", "create Pod x")
    events = store.events(involved_uid=obj["metadata"]["uid"])
    assert len(events) == 1 and events[0]["count"] == 2


async def test_updating_a_terminating_pod_keeps_it_until_the_runtime_is_done(store):
    await store.create(pod())
    terminating = await store.delete("Pod", "default", "p")
    terminating["metadata"]["labels"] = {"released": "yes"}
    updated = await store.update(terminating)
    assert updated["metadata"]["labels"] == {"released": "yes"}
    assert store.try_get("Pod", "default", "p") is not None


async def test_pod_with_finalizer_goes_when_processes_and_finalizers_are_gone(store):
    held = pod()
    held["metadata"]["finalizers"] = ["example.com/hold"]
    await store.create(held)
    await store.delete("Pod", "default", "p")
    after_runtime = await store.delete("Pod", "default", "p", grace_period=0)
    assert after_runtime["metadata"]["deletionGracePeriodSeconds"] == 0
    after_runtime["metadata"]["finalizers"] = []
    await store.update(after_runtime)
    assert store.try_get("Pod", "default", "p") is None
