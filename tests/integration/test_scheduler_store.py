"""The scheduler and the node lifecycle controller against a real Store with the real
controllers (no runtime, no agents: Nodes and their Leases are written here as agents would,
pods stay Pending unless a test marks them Running)."""

from __future__ import annotations

import copy
from contextlib import asynccontextmanager

import pytest
import trio

from tests.integration.storewait import eventually
from tinykube.cluster import nodeobjects
from tinykube.cluster.placement import SELECTED_NODE
from tinykube.cluster.scheduler import Scheduler
from tinykube.controllers.manager import run_all
from tinykube.controllers.nodelifecycle import NodeLifecycle
from tinykube.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


async def add_node(store, name):
    node = await store.create(nodeobjects.node_object(nodeobjects.NodeFacts(
        name, cpu_millis=4000, memory_bytes=8 * 1024**3, pod_cidr="10.9.0.0/24")))
    await store.create(nodeobjects.lease_object(node))
    return node


async def renew(store, name):
    lease = copy.deepcopy(store.get("Lease", "kube-node-lease", name))
    lease["spec"]["renewTime"] = nodeobjects.micro_now()
    await store.update(lease)


@asynccontextmanager
async def control_plane(store, **lifecycle):
    async with trio.open_nursery() as nursery:
        await nursery.start(run_all, store)
        await nursery.start(Scheduler(store, resync_seconds=0.2).run)
        if lifecycle:
            await nursery.start(NodeLifecycle(store, **lifecycle).run)
        yield nursery
        nursery.cancel_scope.cancel()


TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "command": ["sleep", "1000"]}]}}


def per_node(store, app="web"):
    counts: dict[str, int] = {}
    for pod in store.list("Pod", "default"):
        if pod["metadata"]["labels"].get("app") == app and not pod["metadata"].get(
                "deletionTimestamp"):
            node = pod["spec"].get("nodeName") or "<unbound>"
            counts[node] = counts.get(node, 0) + 1
    return counts


async def test_six_replicas_of_a_deployment_spread_two_per_node(store):
    for name in ("a", "b", "c"):
        await add_node(store, name)
    async with control_plane(store):
        await store.create({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "web", "namespace": "default"},
                            "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                                     "template": TEMPLATE}})
        await eventually(lambda: per_node(store) == {"a": 2, "b": 2, "c": 2}, timeout=20,
                         what=f"2/2/2 (now {per_node(store)})")


async def test_node_selector_and_an_unschedulable_pod(store):
    await add_node(store, "a")
    node_b = await add_node(store, "b")
    labelled = copy.deepcopy(node_b)
    labelled["metadata"]["labels"]["disk"] = "ssd"
    await store.update(labelled)
    async with control_plane(store):
        spec = {"containers": [{"name": "c", "command": ["true"]}]}
        await store.create({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "ssd", "namespace": "default"},
                            "spec": {**spec, "nodeSelector": {"disk": "ssd"}}})
        await store.create({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "nvme", "namespace": "default"},
                            "spec": {**spec, "nodeSelector": {"disk": "nvme"}}})
        await eventually(lambda: store.get("Pod", "default", "ssd")["spec"].get("nodeName"),
                         what="the ssd pod bound")
        assert store.get("Pod", "default", "ssd")["spec"]["nodeName"] == "b"

        def unschedulable():
            conditions = store.get("Pod", "default", "nvme").get("status", {}).get(
                "conditions") or []
            return [c for c in conditions if c.get("reason") == "Unschedulable"]
        (condition,) = await eventually(unschedulable, what="nvme Unschedulable")
        assert condition["message"] == ("0/2 nodes are available: 2 node(s) didn't match "
                                        "Pod's node affinity/selector.")
        assert "nodeName" not in store.get("Pod", "default", "nvme")["spec"]


STATEFUL_SET = {
    "apiVersion": "apps/v1", "kind": "StatefulSet",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"replicas": 2, "serviceName": "web", "podManagementPolicy": "Parallel",
             "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE,
             "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                 "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Mi"}}}}]}}


async def test_a_statefulset_pod_follows_its_claim_and_waits_while_its_node_is_down(store):
    for name in ("a", "b", "c"):
        await add_node(store, name)
    async with control_plane(store, grace_seconds=0.5, eviction_seconds=600):
        await store.create(copy.deepcopy(STATEFUL_SET))

        def web1_node():
            pod = store.try_get("Pod", "default", "web-1")
            return pod and pod["spec"].get("nodeName")
        first = await eventually(web1_node, what="web-1 bound")
        claim = store.get("PersistentVolumeClaim", "default", "data-web-1")
        assert claim["metadata"]["annotations"][SELECTED_NODE] == first
        others = [n for n in "abc" if n != first]

        async def keep_alive():
            while True:
                for name in others:
                    await renew(store, name)
                await trio.sleep(0.1)
        async with trio.open_nursery() as beats:
            beats.start_soon(keep_alive)
            # The node of web-1 stops heartbeating: Unknown, and web-1 recreated stays Pending.
            await eventually(lambda: store.get("Node", "default", first)["status"][
                "conditions"][-1]["status"] == "Unknown", what=f"{first} Unknown")
            web1 = store.get("Pod", "default", "web-1")
            await store.delete("Pod", "default", "web-1", grace_period=0)
            await eventually(lambda: (store.try_get("Pod", "default", "web-1") or {}).get(
                "metadata", {}).get("uid") not in (None, web1["metadata"]["uid"]),
                what="web-1 recreated")
            await trio.sleep(1.0)  # several scheduling rounds (the resync is 0.2 s)
            assert web1_node() is None, "web-1 went to another node than its claim's"
            # Its node comes back: web-1 goes there.
            await renew(store, first)
            node = copy.deepcopy(store.get("Node", "default", first))
            node["status"] = nodeobjects.node_status(nodeobjects.NodeFacts(
                first, cpu_millis=4000, memory_bytes=8 * 1024**3, pod_cidr="10.9.0.0/24"))
            await store.update_status(node)
            assert await eventually(web1_node, what="web-1 bound again") == first
            beats.cancel_scope.cancel()


async def test_a_silent_node_turns_unknown_and_its_pods_are_replaced(store):
    for name in ("a", "b"):
        await add_node(store, name)
    async with control_plane(store, grace_seconds=0.5, eviction_seconds=1.0):
        await store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                            "metadata": {"name": "web", "namespace": "default"},
                            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                     "template": {**TEMPLATE, "spec": {
                                         **TEMPLATE["spec"], "terminationGracePeriodSeconds": 5}}}})
        await eventually(lambda: per_node(store) == {"a": 1, "b": 1}, what="1/1")

        async def keep_b_alive():
            while True:
                await renew(store, "b")
                await trio.sleep(0.1)
        async with trio.open_nursery() as beats:
            beats.start_soon(keep_b_alive)
            await eventually(lambda: per_node(store) == {"b": 2}, timeout=15,
                             what=f"a's pod replaced on b (now {per_node(store)})")
            stuck = [p for p in store.list("Pod", "default")
                     if p["spec"].get("nodeName") == "a"]
            # Gracefully deleted: Terminating until node a's kubelet (or its Node) goes.
            assert stuck and all(p["metadata"].get("deletionTimestamp") for p in stuck)
            assert store.get("Node", "default", "a")["status"]["conditions"][-1][
                "reason"] == "NodeStatusUnknown"
            await store.delete("Node", "default", "a")
            await eventually(lambda: not [p for p in store.list("Pod", "default")
                                          if p["spec"].get("nodeName") == "a"],
                             what="the deleted node's pods removed")
            beats.cancel_scope.cancel()


async def test_node_ipam_gives_each_node_a_free_slice(store):
    from tinykube.controllers.nodeipam import NodeIpam

    a = await store.create(nodeobjects.node_object(nodeobjects.NodeFacts("a")))
    async with trio.open_nursery() as nursery:
        await nursery.start(NodeIpam(store, "10.9.0.0/16").run)
        await store.create(nodeobjects.node_object(nodeobjects.NodeFacts("b")))

        def slices():
            found = {n["metadata"]["name"]: n["spec"].get("podCIDR")
                     for n in store.list("Node")}
            return found if all(found.values()) else None
        assert await eventually(slices, what="slices") == {"a": "10.9.0.0/24",
                                                           "b": "10.9.1.0/24"}
        await store.delete("Node", "default", "a", uid=a["metadata"]["uid"])
        await store.create(nodeobjects.node_object(nodeobjects.NodeFacts("c")))
        found = await eventually(lambda: (store.try_get("Node", "default", "c") or {}).get(
            "spec", {}).get("podCIDR"), what="c's slice")
        assert found == "10.9.0.0/24"  # a's slice, free again
        nursery.cancel_scope.cancel()
