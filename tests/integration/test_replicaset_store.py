"""ReplicaSet/ReplicationController controllers and the garbage collector against a real Store
(each backend: SQLite, etcd).

No runtime runs here: pods stay Pending unless a test marks them Running/Ready through
`update_status`, as the runtime would. Templates use terminationGracePeriodSeconds 0 so deleted
pods go at once, except where a test wants to watch graceful deletion, and then it finishes the
deletion itself (`grace_period=0`) as the runtime does once processes are gone.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import trio

from tests.integration.storewait import eventually, modify, settled
from tinykube.controllers import replicaset
from tinykube.controllers.base import controller_ref
from tinykube.controllers.manager import run_all

NS = "default"


@asynccontextmanager
async def controllers(store):
    async with trio.open_nursery() as nursery:
        await nursery.start(run_all, store)
        yield
        nursery.cancel_scope.cancel()


def template(labels, grace=0):
    return {"metadata": {"labels": labels},
            "spec": {"terminationGracePeriodSeconds": grace,
                     "containers": [{"name": "app", "command": ["sleep", "1000"]}]}}


def replica_set(name, replicas, selector, labels, *, grace=0, min_ready=0, owners=None):
    obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": {"name": name, "namespace": NS, "labels": dict(labels)},
           "spec": {"replicas": replicas, "selector": selector, "minReadySeconds": min_ready,
                    "template": template(labels, grace)}}
    if owners:
        obj["metadata"]["ownerReferences"] = owners
    return obj


def replication_controller(name, replicas, labels):
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "template": template(labels)}}


def owned_by(store, owner, *, active_only=True):
    uid = owner["metadata"]["uid"]
    pods = [p for p in store.list("Pod", NS)
            if (controller_ref(p) or {}).get("uid") == uid]
    if active_only:
        pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return pods


def names(pods):
    return sorted(p["metadata"]["name"] for p in pods)


def stamp(epoch):
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def mark(store, pod, *, ready=True, ready_at=None, phase="Running"):
    pod = store.get("Pod", NS, pod["metadata"]["name"])
    del pod["metadata"]["resourceVersion"]  # status is the kubelet's alone: no race to lose
    pod["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False",
         "lastTransitionTime": stamp(ready_at if ready_at is not None else time.time())}]}
    await store.update_status(pod)


async def test_rs_with_match_expressions_and_rc_with_the_same_labels_keep_their_own(store):
    labels = {"app": "web", "tier": "front"}
    async with controllers(store):
        rs = await store.create(replica_set(
            "web-rs", 3,
            {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "www"]},
                                  {"key": "tier", "operator": "Exists"}]}, labels))
        rc = await store.create(replication_controller("web-rc", 2, labels))
        await eventually(lambda: len(owned_by(store, rs)) == 3 and len(owned_by(store, rc)) == 2,
                         what="3 RS pods and 2 RC pods")
        await settled(store)
        assert len(owned_by(store, rs)) == 3 and len(owned_by(store, rc)) == 2
        assert len(store.list("Pod", NS)) == 5
        for pod in owned_by(store, rs):
            assert pod["metadata"]["name"].startswith("web-rs-")
            assert pod["metadata"]["labels"] == labels
            assert controller_ref(pod)["blockOwnerDeletion"] is True
        assert store.get("ReplicaSet", NS, "web-rs")["status"]["replicas"] == 3
        rc_status = store.get("ReplicationController", NS, "web-rc")["status"]
        assert rc_status == {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 0,
                             "availableReplicas": 0, "observedGeneration": 1}
        reasons = [e["reason"] for e in store.events(involved_uid=rs["metadata"]["uid"])]
        assert reasons == ["SuccessfulCreate"] * 3


async def test_deleted_pod_is_replaced_and_reconcile_is_idempotent(store):
    async with controllers(store):
        rs = await store.create(replica_set("web", 3, {"matchLabels": {"app": "web"}},
                                            {"app": "web"}))
        await eventually(lambda: len(owned_by(store, rs)) == 3)
        victim = owned_by(store, rs)[0]["metadata"]["name"]
        await store.delete("Pod", NS, victim)
        await eventually(lambda: len(owned_by(store, rs)) == 3
                         and victim not in names(owned_by(store, rs)), what="a replacement")
        await settled(store)
    before = store.resource_version
    assert await replicaset.reconcile(store, (NS, "web"), kind="ReplicaSet") is None
    assert await replicaset.reconcile(store, (NS, "web"), kind="ReplicaSet") is None
    assert store.resource_version == before  # nothing left to change


async def test_scale_3_to_10_to_2_keeps_the_longest_ready(store):
    async with controllers(store):
        rs = await store.create(replica_set("web", 3, {"matchLabels": {"app": "web"}},
                                            {"app": "web"}))
        await eventually(lambda: len(owned_by(store, rs)) == 3)
        originals = names(owned_by(store, rs))
        for pod in owned_by(store, rs):
            await mark(store, pod, ready_at=time.time() - 100)

        await modify(store, "ReplicaSet", "web", lambda rs: rs["spec"].update(replicas=10))
        await eventually(lambda: len(owned_by(store, rs)) == 10, what="10 pods")
        newcomers = [p for p in owned_by(store, rs) if p["metadata"]["name"] not in originals]
        for i, pod in enumerate(newcomers):  # some ready recently, some not ready at all
            await mark(store, pod, ready=i % 2 == 0, ready_at=time.time() - 1)
        await eventually(lambda: store.get("ReplicaSet", NS, "web")["status"].get(
            "readyReplicas") == 7, what="status readyReplicas=7")

        await modify(store, "ReplicaSet", "web", lambda rs: rs["spec"].update(replicas=2))
        await eventually(lambda: len(owned_by(store, rs)) == 2, what="2 pods")
        await settled(store)
        assert set(names(owned_by(store, rs))) <= set(originals)
        status = store.get("ReplicaSet", NS, "web")["status"]
        assert status == {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                          "availableReplicas": 2, "observedGeneration": 3}
        deleted = [e for e in store.events(involved_uid=rs["metadata"]["uid"])
                   if e["reason"] == "SuccessfulDelete"]
        assert len(deleted) == 8


async def test_min_ready_seconds_counts_available_later(store):
    async with controllers(store):
        rs = await store.create(replica_set("web", 1, {"matchLabels": {"app": "web"}},
                                            {"app": "web"}, min_ready=2))
        await eventually(lambda: len(owned_by(store, rs)) == 1)
        # Stamps have whole seconds: ready "in 1 s" keeps the pod unavailable for more than
        # 2 s from now, however slowly the status is first written.
        await mark(store, owned_by(store, rs)[0], ready_at=time.time() + 1)
        status = await eventually(
            lambda: (s := store.get("ReplicaSet", NS, "web").get("status", {})).get(
                "readyReplicas") == 1 and s)
        assert status["availableReplicas"] == 0
        await eventually(lambda: store.get("ReplicaSet", NS, "web")["status"][
            "availableReplicas"] == 1, timeout=6, what="the pod to become available")


async def test_terminal_pod_is_replaced(store):
    async with controllers(store):
        rs = await store.create(replica_set("web", 2, {"matchLabels": {"app": "web"}},
                                            {"app": "web"}))
        await eventually(lambda: len(owned_by(store, rs)) == 2)
        failed = owned_by(store, rs)[0]
        await mark(store, failed, ready=False, phase="Failed")
        await eventually(lambda: failed["metadata"]["name"] not in names(store.list("Pod", NS))
                         and len(owned_by(store, rs)) == 2, what="failed pod replaced")


async def test_adopts_a_matching_orphan(store):
    orphan = await store.create({"apiVersion": "v1", "kind": "Pod",
                                 "metadata": {"name": "stray", "namespace": NS,
                                              "labels": {"app": "web"}},
                                 "spec": template({})["spec"]})
    other = await store.create({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": "unrelated", "namespace": NS,
                                             "labels": {"app": "db"}},
                                "spec": template({})["spec"]})
    async with controllers(store):
        rs = await store.create(replica_set("web", 2, {"matchLabels": {"app": "web"}},
                                            {"app": "web"}))
        await eventually(lambda: len(owned_by(store, rs)) == 2)
        await settled(store)
        assert "stray" in names(owned_by(store, rs))
        assert len(store.list("Pod", NS)) == 3
        assert controller_ref(store.get("Pod", NS, "unrelated")) is None
        assert store.get("Pod", NS, "stray")["metadata"]["uid"] == orphan["metadata"]["uid"]
        assert other["metadata"]["uid"] == store.get("Pod", NS, "unrelated")["metadata"]["uid"]


async def test_releases_a_relabeled_pod_and_replaces_it(store):
    async with controllers(store):
        rs = await store.create(replica_set("web", 2, {"matchLabels": {"app": "web"}},
                                            {"app": "web"}))
        await eventually(lambda: len(owned_by(store, rs)) == 2)
        name = owned_by(store, rs)[0]["metadata"]["name"]
        await modify(store, "Pod", name,
                     lambda pod: pod["metadata"].update(labels={"app": "debug"}))
        await eventually(lambda: controller_ref(store.get("Pod", NS, name)) is None
                         and len(owned_by(store, rs)) == 2, what="release + replacement")
        await settled(store)
        assert len(store.list("Pod", NS)) == 3
        assert name not in names(owned_by(store, rs))


async def test_cascade_background(store):
    async with controllers(store):
        rs = await store.create(replica_set("web", 3, {"matchLabels": {"app": "web"}},
                                            {"app": "web"}))
        await eventually(lambda: len(owned_by(store, rs)) == 3)
        await store.delete("ReplicaSet", NS, "web")
        await eventually(lambda: not store.list("Pod", NS), what="pods collected")


async def test_cascade_foreground_waits_for_graceful_pods(store):
    async with controllers(store):
        rs = await store.create(replica_set("web", 2, {"matchLabels": {"app": "web"}},
                                            {"app": "web"}, grace=30))
        await eventually(lambda: len(owned_by(store, rs)) == 2)
        await store.delete("ReplicaSet", NS, "web", propagation="Foreground")
        pods = await eventually(lambda: (p := store.list("Pod", NS)) and all(
            x["metadata"].get("deletionTimestamp") for x in p) and p, what="pods terminating")
        await settled(store)
        # The owner waits (finalizer kept) while its pods are still terminating...
        held = store.get("ReplicaSet", NS, "web")
        assert held["metadata"]["finalizers"] == ["foregroundDeletion"]
        assert len(store.list("Pod", NS)) == 2  # ...and it did not replace them
        for pod in pods:  # what the runtime does once the processes are gone
            await store.delete("Pod", NS, pod["metadata"]["name"], grace_period=0)
        await eventually(lambda: store.try_get("ReplicaSet", NS, "web") is None,
                         what="the ReplicaSet to go after its pods")


async def test_cascade_foreground_through_a_deployment_chain(store):
    async with controllers(store):
        # The RS carries the Deployment's labels, so the Deployment controller keeps it (as an
        # old ReplicaSet) and makes its own; the chain is Deployment -> 2 RS -> pods.
        deploy = await store.create({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": template({"app": "web"})}})
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                 "uid": deploy["metadata"]["uid"], "controller": True,
                 "blockOwnerDeletion": True}
        rs = await store.create(replica_set("web-abc", 2, {"matchLabels": {"app": "web"}},
                                            {"app": "web"}, owners=[owner]))
        await eventually(lambda: len(owned_by(store, rs)) == 2)
        await store.delete("Deployment", NS, "web", propagation="Foreground")
        await eventually(lambda: store.try_get("Deployment", NS, "web") is None
                         and store.try_get("ReplicaSet", NS, "web-abc") is None
                         and not store.list("Pod", NS), what="the whole chain deleted")


async def test_cascade_orphan_keeps_pods_without_owner(store):
    async with controllers(store):
        rs = await store.create(replica_set("web", 3, {"matchLabels": {"app": "web"}},
                                            {"app": "web"}))
        await eventually(lambda: len(owned_by(store, rs)) == 3)
        before = names(owned_by(store, rs))
        await store.delete("ReplicaSet", NS, "web", propagation="Orphan")
        await eventually(lambda: store.try_get("ReplicaSet", NS, "web") is None,
                         what="the ReplicaSet removed")
        await settled(store)
        pods = store.list("Pod", NS)
        assert names(pods) == before
        assert all(not p["metadata"].get("ownerReferences") for p in pods)
        # A new ReplicaSet with the same selector adopts them rather than creating more.
        rs2 = await store.create(replica_set("web2", 3, {"matchLabels": {"app": "web"}},
                                             {"app": "web"}))
        await eventually(lambda: names(owned_by(store, rs2)) == before, what="re-adoption")
        await settled(store)
        assert len(store.list("Pod", NS)) == 3
