"""Deployment + ReplicaSet controllers against a real Store (each backend: SQLite, etcd).

No runtime runs here: a tiny in-test "kubelet" marks new pods Running and Ready (or Running
and not ready, for a broken template) and finishes graceful deletions, as the real runtime
would. A sampler replays every Pod watch event into its own copy of the pods, so the fences
are checked at every single intermediate state the store went through, not at polls.
"""

from __future__ import annotations

import copy
import functools
from contextlib import asynccontextmanager

import pytest
import trio

from tests.integration.storewait import eventually, settled
from tinykube.cli import rollout
from tinykube.controllers import replicaset
from tinykube.controllers.deployment import controller as deployment_controller
from tinykube.controllers.deployment import util
from tinykube.model import meta
from tinykube.model.errors import Conflict, NotFound
from tinykube.model.meta import now_iso

NS = "default"
BROKEN = "tinykube.test/broken"  # pod annotation: the fake kubelet never makes it ready


async def fake_kubelet(store, *, stop_delay=0.0, task_status=trio.TASK_STATUS_IGNORED):
    """Pods: Pending -> Running (+Ready unless annotated broken) shortly after creation;
    a deletion is finished (grace_period=0) after `stop_delay`."""
    handled: set[tuple[str, str]] = set()

    async def start(pod):
        await trio.sleep(0.002)
        for _ in range(10):
            fresh = store.try_get("Pod", NS, pod["metadata"]["name"])
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return
            broken = BROKEN in (fresh["metadata"].get("annotations") or {})
            fresh["status"] = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False" if broken else "True",
                 "lastTransitionTime": now_iso()}]}
            try:
                await store.update_status(fresh)
                return
            except Conflict:
                continue

    async def stop(pod):
        await trio.sleep(stop_delay)
        try:
            await store.delete("Pod", NS, pod["metadata"]["name"], grace_period=0,
                               uid=pod["metadata"]["uid"])
        except NotFound:
            pass

    async with trio.open_nursery() as nursery:
        with store.watch("Pod", since=store.resource_version) as watch:
            task_status.started()
            async for event in watch:
                pod, uid = event.object, event.object["metadata"]["uid"]
                if event.type == "ADDED" and ("start", uid) not in handled:
                    handled.add(("start", uid))
                    nursery.start_soon(start, pod)
                if event.type != "DELETED" and pod["metadata"].get("deletionTimestamp") \
                        and ("stop", uid) not in handled:
                    handled.add(("stop", uid))
                    nursery.start_soon(stop, pod)


class Sampler:
    """Replays Pod events; after each one records active and available pod counts and which
    templates (by pod-template-hash) have pods, terminating ones included."""

    def __init__(self):
        self.pods: dict[str, dict] = {}
        self.samples: list[tuple[int, int, frozenset[str]]] = []

    async def run(self, store, *, task_status=trio.TASK_STATUS_IGNORED):
        for pod in store.list("Pod", NS):
            self.pods[pod["metadata"]["uid"]] = pod
        with store.watch("Pod", since=store.resource_version) as watch:
            task_status.started()
            async for event in watch:
                uid = event.object["metadata"]["uid"]
                if event.type == "DELETED":
                    self.pods.pop(uid, None)
                else:
                    self.pods[uid] = event.object
                self.samples.append(self.sample())

    def sample(self):
        active = [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]
        available = [p for p in active if meta.is_ready(p)]
        hashes = frozenset(p["metadata"]["labels"].get(util.HASH_LABEL)
                           for p in self.pods.values())
        return len(active), len(available), hashes

    @property
    def max_active(self):
        return max(s[0] for s in self.samples)

    @property
    def min_available(self):
        return min(s[1] for s in self.samples)


@asynccontextmanager
async def cluster(store, *, stop_delay=0.0):
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(fake_kubelet, store, stop_delay=stop_delay))
        await nursery.start(replicaset.run, store)
        await nursery.start(deployment_controller.run, store)
        yield nursery
        nursery.cancel_scope.cancel()


def template(version, *, broken=False, grace=0):
    annotations = {BROKEN: "yes"} if broken else {}
    return {"metadata": {"labels": {"app": "web"}, **({"annotations": annotations}
                                                      if annotations else {})},
            "spec": {"terminationGracePeriodSeconds": grace,
                     "containers": [{"name": "app", "command": ["sleep", str(version)]}]}}


def deployment(replicas=6, tpl=None, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": tpl or template(1), **spec}}


def rolled_out(store, revision=None):
    def check():
        d = store.get("Deployment", NS, "web")
        try:
            _message, done = rollout.deployment_status(d)
        except rollout.RolloutError:
            return False
        return done and (revision is None or util.revision(d) == revision) and d
    return check


async def edit(store, **changes):
    """A user's edit: read, change, write; again on a Conflict (client-go's RetryOnConflict:
    on etcd a controller's write can land between the read and the write)."""
    while True:
        d = store.get("Deployment", NS, "web")
        for key, value in changes.items():
            d["spec"][key] = value
        try:
            return await store.update(d)
        except Conflict:
            continue


def replica_sets(store):
    return {rs["metadata"]["name"]: rs for rs in store.list("ReplicaSet", NS)}


@pytest.mark.parametrize("surge, unavailable, grace", [
    ("25%", "25%", 0), (0, 1, 0), (1, 0, 30), ("50%", "50%", 30)])
async def test_rolling_update_never_breaks_the_fences(store, surge, unavailable, grace):
    strategy = {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    max_surge, max_unavailable = util.resolve_fenceposts(surge, unavailable, 6)
    async with cluster(store, stop_delay=0.02) as nursery:
        await store.create(deployment(6, template(1, grace=grace), strategy=strategy))
        await eventually(rolled_out(store, 1), what="first rollout")
        sampler = Sampler()
        await nursery.start(sampler.run, store)
        await edit(store, template=template(2, grace=grace))
        d = await eventually(rolled_out(store, 2), what="second rollout")
        await settled(store)
    assert sampler.max_active <= 6 + max_surge, sampler.samples
    assert sampler.min_available >= 6 - max_unavailable, sampler.samples
    assert len(sampler.samples) >= 18  # 6 pods created, made ready, and old 6 deleted
    rss = replica_sets(store)
    assert len(rss) == 2
    new_name = f"web-{util.template_hash(template(2, grace=grace))}"
    assert rss[new_name]["spec"]["replicas"] == 6
    assert [rs["spec"]["replicas"] for n, rs in rss.items() if n != new_name] == [0]
    assert rss[new_name]["metadata"]["annotations"][util.REVISION] == "2"
    assert d["status"]["replicas"] == d["status"]["availableReplicas"] == 6
    assert util.get_condition(d["status"], "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert util.get_condition(d["status"], "Available")["status"] == "True"
    messages = [e["message"] for e in store.events(involved_uid=d["metadata"]["uid"])]
    assert f"Scaled up replica set {new_name} to 6" in messages
    # Level-triggered and idempotent: another reconcile writes nothing.
    before = store.resource_version
    await deployment_controller.reconcile(store, (NS, "web"))
    assert store.resource_version == before


async def test_stalled_rollout_then_undo_reuses_the_old_replica_set(store):
    async with cluster(store):
        await store.create(deployment(6, progressDeadlineSeconds=2))
        await eventually(rolled_out(store, 1), what="first rollout")
        old_name = f"web-{util.template_hash(template(1))}"
        await edit(store, template=template(2, broken=True))
        await eventually(lambda: util.get_condition(
            store.get("Deployment", NS, "web").get("status", {}), "Progressing")["reason"]
            == util.TIMED_OUT, timeout=8, what="progress deadline")
        d = store.get("Deployment", NS, "web")
        with pytest.raises(rollout.RolloutError, match='deployment "web" exceeded its progress'):
            rollout.deployment_status(d)
        rss = replica_sets(store)
        assert rss[old_name]["spec"]["replicas"] == 5  # old pods keep serving
        assert d["status"]["availableReplicas"] == 5
        assert d["status"]["updatedReplicas"] == 3

        # rollout undo, client side, as the CLI does it (ReplicaSets stand in for the client)
        found = {util.revision(rs): {"template": rs["spec"]["template"],
                                     "annotations": rs["metadata"].get("annotations") or {}}
                 for rs in rss.values()}
        new, number = rollout.rolled_back(d, found, 0)
        assert number == 1
        await store.update(new)
        d = await eventually(rolled_out(store, 3), what="rollback")
        await settled(store)
    rss = replica_sets(store)
    assert len(rss) == 2  # no third ReplicaSet: the old one was reused
    assert rss[old_name]["spec"]["replicas"] == 6
    assert rss[old_name]["metadata"]["annotations"][util.REVISION] == "3"
    assert rss[old_name]["metadata"]["annotations"][util.REVISION_HISTORY] == "1"
    with pytest.raises(rollout.RolloutError, match="unable to find specified revision 1 in"):
        rollout.rolled_back(d, {util.revision(rs): {"template": {}, "annotations": {}}
                                for rs in rss.values()}, 1)


async def test_recreate_never_overlaps(store):
    async with cluster(store, stop_delay=0.2) as nursery:
        await store.create(deployment(4, template(1, grace=30), strategy={"type": "Recreate"}))
        await eventually(rolled_out(store, 1), what="first rollout")
        sampler = Sampler()
        await nursery.start(sampler.run, store)
        await edit(store, template=template(2, grace=30))
        await eventually(rolled_out(store, 2), what="second rollout")
        await settled(store)
    overlapping = [s for s in sampler.samples if len(s[2]) > 1]
    assert not overlapping, overlapping[:3]
    assert any(s[0] == 0 and s[2] for s in sampler.samples)  # saw old pods only terminating


async def test_pause_collects_edits_into_one_rollout(store):
    async with cluster(store):
        await store.create(deployment(3))
        await eventually(rolled_out(store, 1), what="first rollout")
        pods_before = {p["metadata"]["name"] for p in store.list("Pod", NS)}
        await edit(store, paused=True)
        await edit(store, template=template(2))
        await edit(store, template=template(3))
        # A status write that lost a race is retried after a back-off that may outlast
        # `settled`'s quiet time (more often on etcd, where a write takes a round trip).
        await eventually(lambda: (util.get_condition(
            store.get("Deployment", NS, "web").get("status") or {}, "Progressing"
        ) or {}).get("reason") == "DeploymentPaused", what="the paused condition")
        await settled(store)
        d = store.get("Deployment", NS, "web")
        assert len(replica_sets(store)) == 1
        assert {p["metadata"]["name"] for p in store.list("Pod", NS)} == pods_before
        assert util.get_condition(d["status"], "Progressing")["reason"] == "DeploymentPaused"
        assert d["status"]["observedGeneration"] == d["metadata"]["generation"]
        # scaling while paused still works (proportionally: one set here)
        await edit(store, replicas=4)
        await eventually(lambda: len(store.list("Pod", NS)) == 4, what="scale while paused")
        await edit(store, paused=False)
        await eventually(rolled_out(store, 2), what="rollout after resume")
        await settled(store)
    rss = replica_sets(store)
    assert set(rss) == {f"web-{util.template_hash(template(1))}",
                        f"web-{util.template_hash(template(3))}"}


async def test_history_limit_and_adoption(store):
    async with cluster(store):
        # An orphan ReplicaSet matching the selector is adopted, not duplicated.
        tpl = copy.deepcopy(template(1))
        h = util.template_hash(tpl)
        tpl["metadata"]["labels"][util.HASH_LABEL] = h
        await store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                            "metadata": {"name": f"web-{h}", "namespace": NS,
                                         "labels": tpl["metadata"]["labels"]},
                            "spec": {"replicas": 2, "template": tpl, "selector": {
                                "matchLabels": tpl["metadata"]["labels"]}}})
        await store.create(deployment(2, revisionHistoryLimit=1))
        d = await eventually(rolled_out(store, 1), what="adopted rollout")
        rs = store.get("ReplicaSet", NS, f"web-{h}")
        assert util.controller_uid(rs) == d["metadata"]["uid"]
        for version in (2, 3, 4):
            await edit(store, template=template(version))
            await eventually(rolled_out(store, version), what=f"rollout {version}")
        await settled(store)
    revisions = sorted(util.revision(rs) for rs in store.list("ReplicaSet", NS))
    assert revisions == [3, 4]  # one old revision kept
