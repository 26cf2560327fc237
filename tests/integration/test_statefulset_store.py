"""The StatefulSet controller against a real Store (each backend: SQLite, etcd) and a tiny in-test
"fake kubelet" that marks pods Running+Ready and finishes deletions, as the runtime would, plus
the garbage collector for cascading deletion.
No processes, namespaces or cgroups: what is tested is ordering and bookkeeping."""

from __future__ import annotations

import copy
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import trio

from tests.integration.storewait import modify
from tinykube.controllers import gc, statefulset
from tinykube.controllers.statefulset.identity import REVISION_LABEL

NS = "default"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubelet:
    """Marks every new pod Running+Ready (after checking what was Ready when it appeared) and
    removes pods whose deletion was requested, recording both orders."""

    def __init__(self, store) -> None:
        self.store = store
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.ready_when_created: dict[str, set[str]] = {}
        self.hold_ready: set[str] = set()  # pod names left un-Ready
        self.ready: set[str] = set()  # pods this kubelet made Ready and not asked to stop

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with self.store.watch("Pod", NS, since=self.store.resource_version) as watch:
            task_status.started()
            async for event in watch:
                pod = event.object
                name = pod["metadata"]["name"]
                if event.type == "ADDED":
                    self.created.append(name)
                    self.ready_when_created[name] = set(self.ready)
                    if name not in self.hold_ready:
                        await self.mark_ready(name)
                elif event.type == "MODIFIED" and pod["metadata"].get("deletionTimestamp"):
                    self.deleted.append(name)
                    self.ready.discard(name)
                    await trio.sleep(0.01)  # a short "grace period"
                    await self.store.delete("Pod", NS, name, grace_period=0)

    async def mark_ready(self, name: str) -> None:
        pod = self.store.try_get("Pod", NS, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        pod["status"] = {"phase": "Running", "podIP": "10.88.0.9", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now_iso()}]}
        await self.store.update_status(pod)
        self.ready.add(name)


@asynccontextmanager
async def cluster(store_backend):
    async with store_backend.open() as store, trio.open_nursery() as nursery:
        kubelet = FakeKubelet(store)
        await nursery.start(kubelet.run)
        await nursery.start(statefulset.run, store)
        await nursery.start(gc.run, store)
        yield store, kubelet
        nursery.cancel_scope.cancel()


def sts_manifest(replicas=3, **spec_extra) -> dict:
    spec = {
        "replicas": replicas,
        "serviceName": "nginx",
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "command": ["sleep", "inf"],
                                              "volumeMounts": [{"name": "www",
                                                                "mountPath": "/data"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "www"},
                                  "spec": {"resources": {"requests": {"storage": "1Gi"}}}}],
    }
    spec.update(spec_extra)
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": NS}, "spec": spec}


async def wait_for(predicate, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


def pod_names(store) -> list[str]:
    return sorted(p["metadata"]["name"] for p in store.list("Pod", NS))


def claims(store) -> dict[str, str]:
    return {c["metadata"]["name"]: c["metadata"]["uid"]
            for c in store.list("PersistentVolumeClaim", NS)}


def status(store) -> dict:
    return store.get("StatefulSet", NS, "web").get("status") or {}


def settled(store, replicas: int) -> bool:
    s = status(store)
    return (s.get("readyReplicas") == replicas and s.get("replicas") == replicas
            and s.get("updatedReplicas") == replicas
            and s.get("currentRevision") == s.get("updateRevision"))


async def scale(store, replicas: int) -> None:
    await modify(store, "StatefulSet", "web", lambda sts: sts["spec"].update(replicas=replicas))


async def test_ordered_creation_and_reverse_scale_down(store_backend):
    async with cluster(store_backend) as (store, kubelet):
        await store.create(sts_manifest(replicas=3))
        await wait_for(lambda: settled(store, 3))
        assert kubelet.created == ["web-0", "web-1", "web-2"]
        # each pod appeared only when all lower ordinals were already Running+Ready
        assert kubelet.ready_when_created["web-1"] == {"web-0"}
        assert kubelet.ready_when_created["web-2"] == {"web-0", "web-1"}
        pod = store.get("Pod", NS, "web-1")
        assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "nginx"
        assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "www-web-1"
        assert sorted(claims(store)) == ["www-web-0", "www-web-1", "www-web-2"]
        messages = {e["message"] for e in store.events(NS, involved_name="web")}
        assert "create Pod web-0 in StatefulSet web successful" in messages
        assert "create Claim www-web-0 Pod web-0 in StatefulSet web success" in messages

        await scale(store, 1)
        await wait_for(lambda: pod_names(store) == ["web-0"] and status(store)["replicas"] == 1)
        assert kubelet.deleted == ["web-2", "web-1"]
        assert "delete Pod web-2 in StatefulSet web successful" in {
            e["message"] for e in store.events(NS, involved_name="web")}


async def test_rolling_update_with_partition_goes_highest_first(store_backend):
    async with cluster(store_backend) as (store, kubelet):
        await store.create(sts_manifest(replicas=3))
        await wait_for(lambda: settled(store, 3))
        old_revision = status(store)["currentRevision"]
        web0_uid = store.get("Pod", NS, "web-0")["metadata"]["uid"]

        sts = store.get("StatefulSet", NS, "web")
        sts["spec"]["updateStrategy"] = {"type": "RollingUpdate",
                                         "rollingUpdate": {"partition": 1}}
        sts["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "1000"]
        await store.update(sts)

        def updated() -> set[str]:
            s = status(store)
            return {p["metadata"]["name"] for p in store.list("Pod", NS)
                    if p["metadata"]["labels"][REVISION_LABEL] == s.get("updateRevision")
                    and (p.get("status") or {}).get("phase") == "Running"}

        await wait_for(lambda: updated() == {"web-1", "web-2"}
                       and status(store).get("updatedReplicas") == 2
                       and status(store).get("readyReplicas") == 3)
        assert kubelet.deleted == ["web-2", "web-1"]
        assert store.get("Pod", NS, "web-0")["metadata"]["uid"] == web0_uid
        s = status(store)
        assert s["currentRevision"] == old_revision != s["updateRevision"]
        assert s["currentReplicas"] == 1
        assert store.get("Pod", NS, "web-2")["spec"]["containers"][0]["command"] == [
            "sleep", "1000"]
        history = {r["metadata"]["name"]: r["revision"]
                   for r in store.list("ControllerRevision", NS)}
        assert history == {old_revision: 1, s["updateRevision"]: 2}

        # partition 0 finishes the rollout and moves currentRevision
        sts = store.get("StatefulSet", NS, "web")
        sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 0
        await store.update(sts)
        await wait_for(lambda: settled(store, 3) and updated() == {"web-0", "web-1", "web-2"})
        assert kubelet.deleted == ["web-2", "web-1", "web-0"]

        # rollback: the old template again reuses the old revision under a new number
        sts = store.get("StatefulSet", NS, "web")
        sts["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "inf"]
        await store.update(sts)
        await wait_for(lambda: settled(store, 3) and status(store)["updateRevision"] == old_revision)
        history = {r["metadata"]["name"]: r["revision"]
                   for r in store.list("ControllerRevision", NS)}
        assert history[old_revision] == 3 and len(history) == 2


async def test_claims_survive_pod_deletion_and_scaling(store_backend):
    async with cluster(store_backend) as (store, _kubelet):
        await store.create(sts_manifest(replicas=3))
        await wait_for(lambda: settled(store, 3))
        before = claims(store)

        old = store.get("Pod", NS, "web-1")["metadata"]["uid"]
        await store.delete("Pod", NS, "web-1")
        await wait_for(lambda: (p := store.try_get("Pod", NS, "web-1")) is not None
                       and p["metadata"]["uid"] != old and settled(store, 3))
        assert claims(store) == before

        await scale(store, 1)
        await wait_for(lambda: pod_names(store) == ["web-0"])
        assert claims(store) == before  # whenScaled: Retain
        await scale(store, 3)
        await wait_for(lambda: settled(store, 3))
        assert claims(store) == before  # web-1 and web-2 got their old claims back
        vol = store.get("Pod", NS, "web-2")["spec"]["volumes"][0]
        assert vol["persistentVolumeClaim"]["claimName"] == "www-web-2"
        assert all(not c["metadata"].get("ownerReferences")
                   for c in store.list("PersistentVolumeClaim", NS))


async def test_when_scaled_delete_removes_claims_of_removed_ordinals(store_backend):
    async with cluster(store_backend) as (store, _kubelet):
        await store.create(sts_manifest(
            replicas=3, persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete",
                                                               "whenDeleted": "Delete"}))
        await wait_for(lambda: settled(store, 3))
        sts_uid = store.get("StatefulSet", NS, "web")["metadata"]["uid"]
        assert all(c["metadata"]["ownerReferences"][0]["uid"] == sts_uid
                   for c in store.list("PersistentVolumeClaim", NS))
        await scale(store, 1)
        await wait_for(lambda: sorted(claims(store)) == ["www-web-0"])
        assert pod_names(store) == ["web-0"]
        messages = {e["message"] for e in store.events(NS, involved_name="web")}
        assert "delete Claim www-web-2 Pod web-2 in StatefulSet web success" in messages


async def test_parallel_creates_all_without_waiting(store_backend):
    async with cluster(store_backend) as (store, kubelet):
        kubelet.hold_ready = {"web-0", "web-1", "web-2"}
        await store.create(sts_manifest(replicas=3, podManagementPolicy="Parallel"))
        await wait_for(lambda: pod_names(store) == ["web-0", "web-1", "web-2"])
        assert status(store).get("readyReplicas", 0) == 0


async def test_failed_pod_is_recreated_under_the_same_name(store_backend):
    async with cluster(store_backend) as (store, kubelet):
        await store.create(sts_manifest(replicas=2))
        await wait_for(lambda: settled(store, 2))
        pod = store.get("Pod", NS, "web-0")
        failed = copy.deepcopy(pod)
        failed["status"] = {"phase": "Failed"}
        await store.update_status(failed)
        await wait_for(lambda: (p := store.try_get("Pod", NS, "web-0")) is not None
                       and p["metadata"]["uid"] != pod["metadata"]["uid"] and settled(store, 2))
        assert kubelet.deleted == ["web-0"]


async def test_deleting_the_set_keeps_retained_claims(store_backend):
    async with cluster(store_backend) as (store, _kubelet):
        await store.create(sts_manifest(replicas=2))
        await wait_for(lambda: settled(store, 2))
        before = claims(store)
        await store.delete("StatefulSet", NS, "web")
        await wait_for(lambda: pod_names(store) == []
                       and store.list("ControllerRevision", NS) == [])
        await trio.sleep(0.1)
        assert claims(store) == before  # whenDeleted: Retain
        # a new set of the same name picks its data back up
        await store.create(sts_manifest(replicas=2))
        await wait_for(lambda: settled(store, 2))
        assert claims(store) == before


async def test_when_deleted_delete_removes_claims_with_the_set(store_backend):
    async with cluster(store_backend) as (store, _kubelet):
        await store.create(sts_manifest(
            replicas=2, persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete"}))
        await wait_for(lambda: settled(store, 2))
        await store.delete("StatefulSet", NS, "web", propagation="Foreground")
        await wait_for(lambda: store.try_get("StatefulSet", NS, "web") is None
                       and pod_names(store) == [] and claims(store) == {})


async def test_orphaned_pods_claims_and_revisions_are_adopted_by_a_new_set(store_backend):
    async with cluster(store_backend) as (store, kubelet):
        await store.create(sts_manifest(replicas=2))
        await wait_for(lambda: settled(store, 2))
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in store.list("Pod", NS)}
        revision = status(store)["currentRevision"]
        await store.delete("StatefulSet", NS, "web", propagation="Orphan")
        await wait_for(lambda: store.try_get("StatefulSet", NS, "web") is None
                       and all(not p["metadata"].get("ownerReferences")
                               for p in store.list("Pod", NS)))
        new = await store.create(sts_manifest(replicas=2))
        await wait_for(lambda: settled(store, 2))
        assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in store.list("Pod", NS)} == uids
        assert all(p["metadata"]["ownerReferences"][0]["uid"] == new["metadata"]["uid"]
                   for p in store.list("Pod", NS))
        [rev] = store.list("ControllerRevision", NS)
        assert rev["metadata"]["name"] == revision
        assert rev["metadata"]["ownerReferences"][0]["uid"] == new["metadata"]["uid"]
        assert kubelet.deleted == []
