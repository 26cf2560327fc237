"""The Deployment controller's decisions on plain data: rolling, recreate, scaling, pause,
history, status. A small simulated world (ReplicaSet controller + kubelet as pure steps)
checks the surge/availability fences at every step of whole rollouts."""

import copy

import pytest

from tinykube.controllers.deployment import util
from tinykube.controllers.deployment.decide import decide
from tinykube.controllers.deployment.util import RSState
from tinykube.model import meta

NOW = 1_000_000.0
T1 = {"metadata": {"labels": {"app": "web"}},
      "spec": {"containers": [{"name": "app", "command": ["sleep", "1"]}]}}
T2 = {"metadata": {"labels": {"app": "web"}},
      "spec": {"containers": [{"name": "app", "command": ["sleep", "2"]}]}}
T3 = {"metadata": {"labels": {"app": "web"}},
      "spec": {"containers": [{"name": "app", "command": ["sleep", "3"]}]}}


def deployment(template=T1, replicas=6, strategy=None, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid",
                         "generation": 1, "resourceVersion": "1"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": copy.deepcopy(template), "strategy": strategy or {}, **spec},
            "status": {}}


def rs(template, replicas, revision, *, available=None, ready=None, actual=None,
       created="2026-01-01T00:00:00Z", desired=None, max_replicas=None, terminating=0):
    h = util.template_hash(template)
    tpl = copy.deepcopy(template)
    tpl["metadata"]["labels"][util.HASH_LABEL] = h
    ann = {util.REVISION: str(revision)}
    if desired is not None:
        ann[util.DESIRED_REPLICAS] = str(desired)
    if max_replicas is not None:
        ann[util.MAX_REPLICAS] = str(max_replicas)
    obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": {"name": f"web-{h}", "namespace": "default", "uid": f"uid-{h}",
                        "creationTimestamp": created, "annotations": ann},
           "spec": {"replicas": replicas, "template": tpl}}
    actual = replicas if actual is None else actual
    available = actual if available is None else available
    return RSState(obj=obj, actual=actual, ready=available if ready is None else ready,
                   available=available, terminating=terminating)


def by_name(plan):
    return {r.name: r for r in plan.rss}


# ---- first rollout, single steps ----------------------------------------------------------

def test_new_deployment_creates_first_replica_set():
    plan = decide(deployment(), [], NOW)
    new = plan.create
    h = util.template_hash(T1)
    assert new.name == f"web-{h}"
    assert new.replicas == 6
    assert new.obj["spec"]["selector"]["matchLabels"] == {"app": "web", util.HASH_LABEL: h}
    assert new.obj["spec"]["template"]["metadata"]["labels"][util.HASH_LABEL] == h
    assert new.obj["metadata"]["labels"][util.HASH_LABEL] == h
    assert new.obj["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    ann = new.obj["metadata"]["annotations"]
    assert (ann[util.REVISION], ann[util.DESIRED_REPLICAS], ann[util.MAX_REPLICAS]) == \
        ("1", "6", "8")
    assert plan.deployment["metadata"]["annotations"][util.REVISION] == "1"
    assert ("Normal", "ScalingReplicaSet", f"Scaled up replica set web-{h} to 6") in plan.events
    cond = util.get_condition(plan.status, "Progressing")
    assert (cond["reason"], cond["message"]) == ("NewReplicaSetCreated",
                                                 f'Created new replica set "web-{h}"')
    assert util.get_condition(plan.status, "Available")["reason"] == "MinimumReplicasUnavailable"


def test_template_change_surges_then_scales_old_down():
    old = rs(T1, 6, 1, desired=6, max_replicas=8)
    plan = decide(deployment(T2), [old], NOW)
    assert plan.create.replicas == 2  # 6 + surge 2 = 8 pods at most
    assert plan.create.obj["metadata"]["annotations"][util.REVISION] == "2"
    # Creating the new set at 2 was no scaling step of its own (as in Kubernetes), so the same
    # sync goes on to the old set: 8 pods, minAvailable 5, 2 new unavailable -> old may lose 1.
    assert old.replicas == 5
    assert [u.name for u in plan.updates] == [old.name]
    # Next sync: the old pod is gone, which leaves room for one more new pod.
    new = rs(T2, 2, 2, available=0, desired=6, max_replicas=8, created="2026-01-01T00:01:00Z")
    old = rs(T1, 5, 1, desired=6, max_replicas=8)
    plan = decide(deployment(T2), [old, new], NOW)
    assert by_name(plan)[new.name].replicas == 3  # old pod gone: room for one more new
    assert by_name(plan)[old.name].replicas == 5


def test_stall_when_new_pods_never_ready():
    old = rs(T1, 5, 1, desired=6, max_replicas=8)
    new = rs(T2, 3, 2, available=0, desired=6, max_replicas=8, created="2026-01-01T00:01:00Z")
    plan = decide(deployment(T2), [old, new], NOW)
    assert not plan.updates and plan.create is None
    assert plan.status["availableReplicas"] == 5
    assert plan.status["updatedReplicas"] == 3


def test_pods_still_running_count_against_surge():
    # Old set already scaled to 4 but its 6 pods are not deleted yet: no room for new pods.
    old = rs(T1, 4, 1, actual=6, desired=6, max_replicas=8)
    new = rs(T2, 2, 2, available=2, desired=6, max_replicas=8, created="2026-01-01T00:01:00Z")
    plan = decide(deployment(T2), [old, new], NOW)
    assert by_name(plan)[new.name].replicas == 2


def test_terminating_pods_do_not_count_against_surge():
    # As in Kubernetes: old set scaled to 4, its 4 pods running and 2 more still terminating
    # (their grace period): the new set grows into the room the spec left, 2 -> 4, without
    # waiting for the terminating pods to be gone.
    old = rs(T1, 4, 1, actual=4, terminating=2, desired=6, max_replicas=8)
    new = rs(T2, 2, 2, available=2, desired=6, max_replicas=8, created="2026-01-01T00:01:00Z")
    plan = decide(deployment(T2), [old, new], NOW)
    assert by_name(plan)[new.name].replicas == 4


def test_pods_above_spec_do_not_count_as_available():
    # Old set scaled to 5, still 6 available pods: only 5 will stay, so with the 3 new not
    # ready there is no budget (5 available == minAvailable 5).
    old = rs(T1, 5, 1, actual=6, desired=6, max_replicas=8)
    new = rs(T2, 2, 2, available=0, desired=6, max_replicas=8, created="2026-01-01T00:01:00Z")
    plan = decide(deployment(T2), [old, new], NOW)
    assert by_name(plan)[old.name].replicas == 5


def test_unhealthy_old_pods_go_first():
    # Old set of 6 has 2 broken pods: both may go even though availability is at the floor.
    old = rs(T1, 6, 1, available=4, desired=6, max_replicas=8)
    new = rs(T2, 2, 2, available=0, desired=6, max_replicas=8, created="2026-01-01T00:01:00Z")
    d = deployment(T2, strategy={"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 2}})
    plan = decide(d, [old, new], NOW)
    # allPods 8 - minAvailable 4 - newUnavailable 2 = 2 -> cleanup removes the 2 broken ones
    assert by_name(plan)[old.name].replicas == 4


# ---- whole rollouts in a simulated world --------------------------------------------------

class World:
    """ReplicaSet controller + kubelet as pure steps on the RS states.

    Each RS holds pods as a list of "ready" flags. `rs_controller` makes the pod count match
    spec (deleting not-ready pods first, as Kubernetes' ActivePods order does); `kubelet`
    makes one pending pod ready (if the template is healthy). After every step the fences
    are checked."""

    def __init__(self, d, healthy=lambda tpl: True):
        self.d = d
        self.healthy = healthy
        self.rss: dict[str, dict] = {}  # name -> stored RS object
        self.pods: dict[str, list[bool]] = {}
        self.clock = 0
        self.max_pods = 0
        self.min_available_seen = None

    def states(self):
        out = []
        for name, obj in self.rss.items():
            pods = self.pods[name]
            out.append(RSState(obj=copy.deepcopy(obj), actual=len(pods), ready=sum(pods),
                               available=sum(pods)))
        return out

    def total_pods(self):
        return sum(len(p) for p in self.pods.values())

    def available(self):
        return sum(sum(p) for p in self.pods.values())

    def check(self, started_stable):
        r = util.replicas(self.d)
        self.max_pods = max(self.max_pods, self.total_pods())
        assert self.total_pods() <= r + util.max_surge(self.d), self.snapshot()
        if started_stable:
            floor = r - util.max_unavailable(self.d)
            assert self.available() >= floor, self.snapshot()

    def snapshot(self):
        return {n: (o["spec"]["replicas"], self.pods[n]) for n, o in self.rss.items()}

    def controller(self):
        self.clock += 1
        plan = decide(copy.deepcopy(self.d), self.states(), NOW + self.clock)
        changed = False
        if plan.create is not None:
            obj = copy.deepcopy(plan.create.obj)
            obj["metadata"]["uid"] = "uid-" + obj["metadata"]["name"]
            obj["metadata"]["creationTimestamp"] = meta.format_time(NOW + self.clock)
            self.rss[obj["metadata"]["name"]] = obj
            self.pods[obj["metadata"]["name"]] = []
            changed = True
        for u in plan.updates:
            self.rss[u.name] = copy.deepcopy(u.obj)
            changed = True
        for gone in plan.deletes:
            del self.rss[gone.name]
            del self.pods[gone.name]
        if plan.annotations_changed:
            self.d["metadata"]["annotations"] = plan.deployment["metadata"]["annotations"]
        if plan.status is not None:
            self.d["status"] = plan.status
        return changed

    def rs_controller(self, stable):
        moved = False
        # Deletions first in the same round, as a fair ordering of independent controllers.
        for name, obj in self.rss.items():
            pods = self.pods[name]
            while len(pods) > obj["spec"]["replicas"]:
                pods.sort()  # False (not ready) first
                pods.pop(0)
                moved = True
                self.check(stable)
        for name, obj in self.rss.items():
            pods = self.pods[name]
            while len(pods) < obj["spec"]["replicas"]:
                pods.append(False)
                moved = True
                self.check(stable)
        return moved

    def kubelet(self, stable):
        for name, obj in self.rss.items():
            pods = self.pods[name]
            if not all(pods) and self.healthy(obj["spec"]["template"]):
                pods[pods.index(False)] = True
                self.check(stable)
                return True
        return False

    def run(self, stable=False, max_rounds=500):
        for _ in range(max_rounds):
            a = self.controller()
            b = self.rs_controller(stable)
            c = self.kubelet(stable)
            # quiescent only if a fresh controller pass also changes nothing
            if not (a or b or c) and not self.controller():
                return
        raise AssertionError("rollout did not settle")


STRATEGIES = [
    {},  # 25% / 25%
    {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
    {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": "50%"}},
    {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": "10%"}},
]


@pytest.mark.parametrize("replicas", [1, 2, 5, 6, 10])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rollouts_respect_the_fences(replicas, strategy):
    world = World(deployment(T1, replicas, strategy))
    world.run()
    assert world.available() == replicas
    world.d["spec"]["template"] = copy.deepcopy(T2)
    world.d["metadata"]["generation"] = 2
    world.run(stable=True)
    names = {n: len(p) for n, p in world.pods.items()}
    new_name = f"web-{util.template_hash(T2)}"
    assert names[new_name] == replicas and sum(names.values()) == replicas
    status = world.d["status"]
    assert (status["updatedReplicas"], status["availableReplicas"]) == (replicas, replicas)
    assert util.get_condition(status, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert world.d["metadata"]["annotations"][util.REVISION] == "2"


def test_broken_template_stalls_with_old_pods_serving():
    world = World(deployment(T1, 6), healthy=lambda tpl: tpl["spec"] == T1["spec"])
    world.run()
    world.d["spec"]["template"] = copy.deepcopy(T2)
    world.d["metadata"]["generation"] = 2
    world.run(stable=True)
    old, new = f"web-{util.template_hash(T1)}", f"web-{util.template_hash(T2)}"
    assert (len(world.pods[old]), len(world.pods[new])) == (5, 3)
    assert world.available() == 5
    # rollout undo back to T1: the old set is the "new" one again and takes over
    world.d["spec"]["template"] = copy.deepcopy(T1)
    world.d["metadata"]["generation"] = 3
    world.run(stable=True)
    assert len(world.pods[old]) == 6 and not world.pods.get(new)
    assert world.rss[old]["metadata"]["annotations"][util.REVISION] == "3"
    assert world.rss[old]["metadata"]["annotations"][util.REVISION_HISTORY] == "1"
    assert world.d["metadata"]["annotations"][util.REVISION] == "3"


def test_template_change_mid_rollout_moves_to_newest():
    world = World(deployment(T1, 6))
    world.run()
    world.d["spec"]["template"] = copy.deepcopy(T2)
    world.d["metadata"]["generation"] = 2
    for _ in range(3):  # part way
        world.controller()
        world.rs_controller(True)
        world.kubelet(True)
    world.d["spec"]["template"] = copy.deepcopy(T3)
    world.d["metadata"]["generation"] = 3
    world.run(stable=True)
    newest = f"web-{util.template_hash(T3)}"
    assert {n: len(p) for n, p in world.pods.items() if p} == {newest: 6}
    assert world.rss[newest]["metadata"]["annotations"][util.REVISION] == "3"


def test_scaling_mid_rollout_is_proportional():
    d = deployment(T2, 10, {"type": "RollingUpdate",
                            "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}})
    old = rs(T1, 8, 1, desired=10, max_replicas=13)
    new = rs(T2, 5, 2, available=0, desired=10, max_replicas=13,
             created="2026-01-01T00:01:00Z")
    d["spec"]["replicas"] = 20
    plan = decide(d, [old, new], NOW)
    sizes = {r.name: r.replicas for r in plan.rss}
    # 23 allowed, 10 to add: old round(8*23/13)=14 (+6), new round(5*23/13)=9 (+4)
    assert (sizes[old.name], sizes[new.name]) == (14, 9)
    for r in plan.rss:
        assert r.obj["metadata"]["annotations"][util.DESIRED_REPLICAS] == "20"
        assert r.obj["metadata"]["annotations"][util.MAX_REPLICAS] == "23"
    # and back down to 5: 8 allowed
    d2 = deployment(T2, 5, d["spec"]["strategy"])
    old2 = rs(T1, 14, 1, desired=20, max_replicas=23)
    new2 = rs(T2, 9, 2, available=0, desired=20, max_replicas=23,
              created="2026-01-01T00:01:00Z")
    plan = decide(d2, [old2, new2], NOW)
    sizes = {r.name: r.replicas for r in plan.rss}
    assert sum(sizes.values()) == 8 and sizes[old2.name] > sizes[new2.name] > 0


def test_scaling_a_single_replica_set():
    only = rs(T1, 3, 1, desired=3, max_replicas=4)
    plan = decide(deployment(T1, 7), [only], NOW)
    assert [(u.name, u.replicas) for u in plan.updates] == [(only.name, 7)]
    assert ("Normal", "ScalingReplicaSet", f"Scaled up replica set {only.name} to 7") \
        in plan.events


# ---- recreate -----------------------------------------------------------------------------

def test_recreate_waits_for_every_old_pod():
    d = deployment(T2, 3, {"type": "Recreate"})
    old = rs(T1, 3, 1, desired=3, max_replicas=3)
    plan = decide(d, [old], NOW)
    assert plan.create is None and by_name(plan)[old.name].replicas == 0
    # scaled to 0 but a pod is still terminating: nothing new yet
    old = rs(T1, 0, 1, actual=0, terminating=1, desired=3, max_replicas=3)
    plan = decide(copy.deepcopy(d), [old], NOW)
    assert plan.create is None and not plan.updates
    # all gone: the new set starts at full size
    old = rs(T1, 0, 1, actual=0, desired=3, max_replicas=3)
    plan = decide(copy.deepcopy(d), [old], NOW)
    assert plan.create.replicas == 3


def test_recreate_world_never_overlaps():
    world = World(deployment(T1, 4, {"type": "Recreate"}))
    world.run()
    world.d["spec"]["template"] = copy.deepcopy(T2)
    world.d["metadata"]["generation"] = 2
    old, new = f"web-{util.template_hash(T1)}", f"web-{util.template_hash(T2)}"
    for _ in range(50):
        world.controller()
        world.rs_controller(False)
        world.kubelet(False)
        assert not (world.pods.get(old) and world.pods.get(new))
    assert len(world.pods[new]) == 4 and not world.pods[old]


# ---- pause, history, status ---------------------------------------------------------------

def test_paused_edit_makes_no_replica_set():
    d = deployment(T2, 3, paused=True)
    old = rs(T1, 3, 1, desired=3, max_replicas=4)
    plan = decide(d, [old], NOW)
    assert plan.create is None and not plan.updates
    cond = util.get_condition(plan.status, "Progressing")
    assert (cond["status"], cond["reason"]) == ("Unknown", "DeploymentPaused")
    # resume: one rollout starts, and the condition says resumed first
    d = deployment(T2, 3)
    d["status"] = plan.status
    plan = decide(d, [old], NOW + 5)
    assert plan.create is not None
    assert util.get_condition(plan.status, "Progressing")["reason"] == "NewReplicaSetCreated"


def test_resume_is_written_as_progressing_unknown_before_the_rollout_moves_on():
    """Kubernetes' checkPausedConditions writes Progressing=Unknown/DeploymentResumed with its
    own status update before the sync goes on (so a watch sees it); the same sync's final
    status then reports the new rollout."""
    paused = decide(deployment(T2, 3, paused=True), [rs(T1, 3, 1, desired=3)], NOW)
    assert paused.paused_status is not None
    assert util.get_condition(paused.paused_status, "Progressing")["reason"] == "DeploymentPaused"
    d = deployment(T2, 3)
    d["status"] = copy.deepcopy(paused.status)
    plan = decide(d, [rs(T1, 3, 1, desired=3)], NOW + 5)
    first = util.get_condition(plan.paused_status, "Progressing")
    assert (first["status"], first["reason"], first["message"]) == \
        ("Unknown", "DeploymentResumed", "Deployment is resumed")
    assert util.get_condition(plan.status, "Progressing")["reason"] == "NewReplicaSetCreated"
    still = deployment(T2, 3, paused=True)
    still["status"] = copy.deepcopy(paused.status)
    assert decide(still, [rs(T1, 3, 1, desired=3)], NOW).paused_status is None  # once only


def test_paused_world_resumes_into_one_rollout():
    world = World(deployment(T1, 4))
    world.run()
    world.d["spec"]["paused"] = True
    for template in (T2, T3):  # two edits while paused
        world.d["spec"]["template"] = copy.deepcopy(template)
        world.run()
    assert len(world.rss) == 1
    world.d["spec"]["paused"] = False
    world.run(stable=True)
    assert len(world.rss) == 2  # T1 and T3, never T2
    assert f"web-{util.template_hash(T2)}" not in world.rss


def test_history_limit_prunes_oldest_revisions():
    d = deployment(T3, 2, revisionHistoryLimit=1)
    d["status"] = {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                   "observedGeneration": 1}
    tx = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}
    rss = [rs(T1, 0, 1), rs(T2, 0, 2), rs(tx, 0, 3), rs(T3, 2, 4)]
    plan = decide(d, rss, NOW)
    assert sorted(r.revision for r in plan.deletes) == [1, 2]


def test_progress_deadline_exceeded():
    d = deployment(T2, 6, progressDeadlineSeconds=60)
    stamp = meta.format_time(NOW - 120)
    d["status"] = {"replicas": 8, "updatedReplicas": 3, "availableReplicas": 5,
                   "readyReplicas": 5, "unavailableReplicas": 3, "observedGeneration": 1,
                   "conditions": [{"type": "Progressing", "status": "True",
                                   "reason": "ReplicaSetUpdated", "message": "",
                                   "lastUpdateTime": stamp, "lastTransitionTime": stamp}]}
    old = rs(T1, 5, 1, desired=6, max_replicas=8)
    new = rs(T2, 3, 2, available=0, desired=6, max_replicas=8, created="2026-01-01T00:01:00Z")
    plan = decide(d, [old, new], NOW)
    cond = util.get_condition(plan.status, "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"] == f'ReplicaSet "{new.name}" has timed out progressing.'


def test_requeue_before_deadline_and_for_min_ready():
    d = deployment(T2, 6, progressDeadlineSeconds=60)
    stamp = meta.format_time(NOW - 20)
    d["status"] = {"replicas": 8, "updatedReplicas": 3, "availableReplicas": 5,
                   "readyReplicas": 5, "unavailableReplicas": 3, "observedGeneration": 1,
                   "conditions": [{"type": "Progressing", "status": "True",
                                   "reason": "ReplicaSetUpdated", "message": "",
                                   "lastUpdateTime": stamp, "lastTransitionTime": stamp}]}
    old = rs(T1, 5, 1, desired=6, max_replicas=8)
    new = rs(T2, 3, 2, available=0, desired=6, max_replicas=8, created="2026-01-01T00:01:00Z")
    plan = decide(d, [old, new], NOW)
    assert plan.requeue_after == pytest.approx(41)
    new.next_available_at = NOW + 3
    plan = decide(d, [old, new], NOW)
    assert plan.requeue_after == pytest.approx(3.05)


def test_complete_deployment_past_its_deadline_losing_a_pod_is_never_requeued_now():
    """Regression: complete long ago (NewReplicaSetAvailable, lastUpdateTime older than the
    deadline), then a pod is lost: the re-check used to be due in the past, i.e. "now",
    every time -> a reconcile loop at 100% CPU."""
    d = deployment(T1, 3, progressDeadlineSeconds=2)
    stamp = meta.format_time(NOW - 3600)
    d["status"] = {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
                   "readyReplicas": 3, "observedGeneration": 1,
                   "conditions": [{"type": "Progressing", "status": "True",
                                   "reason": "NewReplicaSetAvailable", "message": "",
                                   "lastUpdateTime": stamp, "lastTransitionTime": stamp}]}
    plan = decide(d, [rs(T1, 3, 1, actual=2, available=2)], NOW)
    assert plan.requeue_after is not None and plan.requeue_after >= 1.0


def test_status_written_only_when_changed():
    world = World(deployment(T1, 3))
    world.run()
    plan = decide(copy.deepcopy(world.d), world.states(), NOW + 10_000)
    assert plan.status is None and not plan.updates and plan.create is None
    assert not plan.annotations_changed and not plan.events


def test_empty_selector_is_refused():
    d = deployment()
    d["spec"]["selector"] = {}
    plan = decide(d, [], NOW)
    assert plan.create is None
    assert plan.events[0][:2] == ("Warning", "SelectingAll")
    assert plan.status == {"observedGeneration": 1}


def test_invalid_strategy_is_reported_not_applied():
    d = deployment(strategy={"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}})
    plan = decide(d, [], NOW)
    assert plan.create is None
    assert plan.events[0][:2] == ("Warning", "InvalidStrategy")
