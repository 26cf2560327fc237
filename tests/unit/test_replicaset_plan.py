"""The pure ReplicaSet/ReplicationController decision, driven with plain dicts."""

import pytest

from tinykube.controllers import base
from tinykube.controllers.replicaset import plan_replicas, victims_in_order

NOW = 1_800_000_000.0  # a fixed "now" (epoch seconds)


def stamp(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rs(name="web", replicas=3, *, kind="ReplicaSet", uid="rs-uid", generation=1,
       selector=None, template_labels=None, min_ready=0, status=None, deleting=False):
    template_labels = template_labels or {"app": "web"}
    obj = {
        "apiVersion": "apps/v1" if kind == "ReplicaSet" else "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default", "uid": uid,
                     "generation": generation},
        "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                 "template": {"metadata": {"labels": template_labels},
                              "spec": {"containers": [{"name": "c", "command": ["sleep", "9"]}]}}},
    }
    if kind == "ReplicaSet":
        obj["spec"]["selector"] = selector if selector is not None else {"matchLabels": {"app": "web"}}
    elif selector is not None:
        obj["spec"]["selector"] = selector
    if status is not None:
        obj["status"] = status
    if deleting:
        obj["metadata"]["deletionTimestamp"] = stamp(NOW)
        obj["metadata"]["finalizers"] = ["foregroundDeletion"]
    return obj


def pod(name, *, labels=None, owner=None, owner_uid=None, phase="Running", ready=True,
        ready_at=NOW - 100, created=NOW - 200, restarts=0, deleting=False, namespace="default"):
    meta = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
            "labels": {"app": "web"} if labels is None else labels,
            "creationTimestamp": stamp(created)}
    if owner is not None or owner_uid is not None:
        meta["ownerReferences"] = [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner or "other",
            "uid": owner_uid or "rs-uid", "controller": True, "blockOwnerDeletion": True}]
    if deleting:
        meta["deletionTimestamp"] = stamp(NOW)
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   "lastTransitionTime": stamp(ready_at)}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": "c", "restartCount": restarts}]}}


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def owned(n, **kw):
    return [pod(f"p{i}", owner="web", **kw) for i in range(n)]


@pytest.mark.parametrize(("replicas", "existing", "create", "delete"), [
    (3, 0, 3, 0),
    (3, 3, 0, 0),
    (3, 5, 0, 2),
    (0, 2, 0, 2),
    (10, 3, 7, 0),
])
def test_counts(replicas, existing, create, delete):
    plan = plan_replicas(rs(replicas=replicas), owned(existing), NOW)
    assert plan.create == create
    assert len(plan.victims) == delete
    assert not plan.adopt and not plan.release and not plan.terminal


def test_burst_limits_creates_and_deletes():
    assert plan_replicas(rs(replicas=800), [], NOW, burst=500).create == 500
    assert len(plan_replicas(rs(replicas=0), owned(20), NOW, burst=5).victims) == 5


def test_adopts_matching_orphans_and_counts_them():
    orphan = pod("orphan")
    plan = plan_replicas(rs(replicas=3), owned(2) + [orphan], NOW)
    assert names(plan.adopt) == ["orphan"]
    assert plan.create == 0 and not plan.victims


def test_does_not_adopt_non_matching_deleting_or_other_namespace_pods():
    pods = [pod("other-labels", labels={"app": "db"}), pod("dying", deleting=True),
            pod("elsewhere", namespace="prod")]
    plan = plan_replicas(rs(replicas=1), pods, NOW)
    assert plan.adopt == [] and plan.create == 1


def test_releases_owned_pods_that_no_longer_match():
    relabeled = pod("relabeled", owner="web", labels={"app": "web-debug"})
    plan = plan_replicas(rs(replicas=2), owned(2) + [relabeled], NOW)
    assert names(plan.release) == ["relabeled"]
    assert plan.create == 0 and not plan.victims  # the released pod is not counted


def test_never_touches_pods_of_another_controller():
    theirs = [pod(f"theirs{i}", owner="other", owner_uid="other-uid") for i in range(5)]
    theirs.append(pod("theirs-relabeled", owner="other", owner_uid="other-uid",
                      labels={"x": "y"}))
    plan = plan_replicas(rs(replicas=2), theirs, NOW)
    assert plan.create == 2
    assert not plan.adopt and not plan.release and not plan.victims


def test_terminal_pods_are_not_counted_and_get_deleted():
    pods = owned(2) + [pod("done", owner="web", phase="Succeeded"),
                       pod("crashed", owner="web", phase="Failed")]
    plan = plan_replicas(rs(replicas=3), pods, NOW)
    assert plan.create == 1
    assert sorted(names(plan.terminal)) == ["crashed", "done"]
    assert plan.status["replicas"] == 2


def test_pods_being_deleted_are_not_counted_nor_deleted_again():
    pods = owned(2) + [pod("going", owner="web", deleting=True)]
    plan = plan_replicas(rs(replicas=3), pods, NOW)
    assert plan.create == 1 and not plan.victims and not plan.terminal


def test_owner_being_deleted_does_nothing():
    plan = plan_replicas(rs(replicas=3, deleting=True), [pod("orphan")], NOW)
    assert not plan.changes_pods and plan.status is None


def test_victim_order_follows_kubernetes_active_pods():
    pods = [
        pod("running-ready-old", owner="web", ready_at=NOW - 1000, created=NOW - 2000),
        pod("running-ready-new", owner="web", ready_at=NOW - 10, created=NOW - 2000),
        pod("running-notready", owner="web", ready=False),
        pod("pending", owner="web", phase="Pending", ready=False),
        pod("unknown", owner="web", phase="Unknown", ready=False),
        pod("ready-restarty", owner="web", ready_at=NOW - 1000, created=NOW - 2000,
            restarts=4),
        pod("ready-old-newer-created", owner="web", ready_at=NOW - 1000, created=NOW - 1500),
    ]
    order = names(victims_in_order(pods, NOW))
    assert order == ["pending", "unknown", "running-notready", "running-ready-new",
                     "ready-restarty", "ready-old-newer-created", "running-ready-old"]
    plan = plan_replicas(rs(replicas=4), pods, NOW)
    assert names(plan.victims) == order[:3]


def with_cost(p, cost):
    p["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": cost}
    return p


@pytest.mark.parametrize("kind", ["ReplicaSet", "ReplicationController"])
def test_lower_pod_deletion_cost_goes_first_before_age(kind):
    """controller.kubernetes.io/pod-deletion-cost ranks after readiness and before ready time
    and age; an unparsable cost counts as 0."""
    owner = rs(replicas=2, kind=kind, selector={"app": "web"} if kind != "ReplicaSet" else None)
    pods = [with_cost(pod("newest-but-costly", owner="web", ready_at=NOW - 5, created=NOW - 6),
                      "100"),
            with_cost(pod("oldest-but-cheap", owner="web", ready_at=NOW - 9000,
                          created=NOW - 9900), "-5"),
            with_cost(pod("garbage-cost", owner="web", ready_at=NOW - 9000,
                          created=NOW - 9900), "lots"),
            pod("not-ready-costly", owner="web", ready=False)]
    with_cost(pods[3], "1000")
    assert names(victims_in_order(pods, NOW)) == [
        "not-ready-costly", "oldest-but-cheap", "garbage-cost", "newest-but-costly"]
    assert names(plan_replicas(owner, pods, NOW).victims) == ["not-ready-costly",
                                                              "oldest-but-cheap"]


def test_ages_are_compared_in_log2_buckets_with_the_uid_deciding_within_one():
    """Kubernetes' LogarithmicScaleDown: ready 100 s and 101 s ago fall in the same
    power-of-two bucket of nanoseconds (2^36), so the newer pod is not preferred; the uid
    decides. 100 s against 1000 s are different buckets: the newer goes first."""
    older, newer = pod("a-older", owner="web", ready_at=NOW - 101), \
        pod("b-newer", owner="web", ready_at=NOW - 100)
    assert names(victims_in_order([newer, older], NOW)) == ["a-older", "b-newer"]
    assert names(plan_replicas(rs(replicas=1), [newer, older], NOW).victims) == ["a-older"]
    old = pod("a-old", owner="web", ready_at=NOW - 1000)
    assert names(victims_in_order([old, newer], NOW)) == ["b-newer", "a-old"]
    # creation times too, when ready times tie
    c1 = pod("a-c101", owner="web", ready_at=NOW - 50, created=NOW - 101)
    c2 = pod("b-c100", owner="web", ready_at=NOW - 50, created=NOW - 100)
    assert names(victims_in_order([c2, c1], NOW)) == ["a-c101", "b-c100"]


def test_ownerless_terminal_pods_are_neither_adopted_nor_deleted():
    """Kubernetes filters inactive pods before claiming (FilterActivePods, then claimPods)."""
    done, crashed = pod("done", phase="Succeeded"), pod("crashed", phase="Failed")
    for kind, selector in (("ReplicaSet", None), ("ReplicationController", {"app": "web"})):
        plan = plan_replicas(rs(replicas=2, kind=kind, selector=selector),
                             [done, crashed] + owned(1), NOW)
        assert not plan.adopt and not plan.terminal and not plan.victims, kind
        assert plan.create == 1 and plan.status["replicas"] == 1


def test_scale_3_to_10_to_2_keeps_the_longest_ready():
    old = owned(3, ready_at=NOW - 500, created=NOW - 600)
    plan = plan_replicas(rs(replicas=10), old, NOW)
    assert plan.create == 7
    new = [pod(f"n{i}", owner="web", created=NOW - 5, ready=(i % 2 == 0), ready_at=NOW - 2)
           for i in range(7)]
    plan = plan_replicas(rs(replicas=2), old + new, NOW)
    assert len(plan.victims) == 8
    survivors = set(names(old + new)) - set(names(plan.victims))
    assert len(survivors) == 2 and survivors <= set(names(old))
    # Not-ready new pods go before ready ones.
    assert set(names(plan.victims[:3])) == {"n1", "n3", "n5"}


def test_status_counts_and_is_none_when_unchanged():
    pods = [pod("a", owner="web"), pod("b", owner="web", ready=False),
            pod("c", owner="web", labels={"app": "web", "extra": "1"}),
            pod("d", owner="web", ready_at=NOW - 5)]
    owner = rs(replicas=4, generation=7, min_ready=10,
               template_labels={"app": "web", "extra": "1"})
    plan = plan_replicas(owner, pods, NOW)
    assert plan.status == {"replicas": 4, "fullyLabeledReplicas": 1, "readyReplicas": 3,
                           "availableReplicas": 2, "observedGeneration": 7}
    # "d" became ready 5 s ago: available in 5 s, so ask to look again then.
    assert plan.requeue_after == pytest.approx(5)
    assert plan_replicas(rs(replicas=4, generation=7, min_ready=10,
                            template_labels={"app": "web", "extra": "1"},
                            status=plan.status), pods, NOW).status is None


def test_status_keeps_conditions():
    owner = rs(replicas=0, status={"conditions": [{"type": "ReplicaFailure"}], "replicas": 1})
    assert plan_replicas(owner, [], NOW).status["conditions"] == [{"type": "ReplicaFailure"}]


def test_match_expressions_selector():
    selector = {"matchExpressions": [{"key": "tier", "operator": "In",
                                      "values": ["front", "edge"]},
                                     {"key": "canary", "operator": "DoesNotExist"}]}
    pods = [pod("front", labels={"tier": "front"}), pod("edge", labels={"tier": "edge"}),
            pod("canary", labels={"tier": "front", "canary": "1"}),
            pod("back", labels={"tier": "back"})]
    plan = plan_replicas(rs(replicas=2, selector=selector), pods, NOW)
    assert sorted(names(plan.adopt)) == ["edge", "front"]


def test_replication_controller_selector_is_a_map_defaulting_to_template_labels():
    rc = rs(kind="ReplicationController", uid="rc-uid", replicas=2,
            template_labels={"app": "web", "tier": "front"})
    pods = [pod("both", labels={"app": "web", "tier": "front"}),
            pod("half", labels={"app": "web"})]
    assert names(plan_replicas(rc, pods, NOW).adopt) == ["both"]
    rc["spec"]["selector"] = {"app": "web"}
    assert sorted(names(plan_replicas(rc, pods, NOW).adopt)) == ["both", "half"]


def test_empty_selector_adopts_nothing():
    plan = plan_replicas(rs(replicas=1, selector={}), [pod("x")], NOW)
    assert plan.adopt == [] and plan.create == 1


def test_pod_from_template_copies_template_and_sets_controller_ref():
    owner = rs(name="a" * 70)
    owner["spec"]["template"]["metadata"]["annotations"] = {"note": "x"}
    created = base.pod_from_template(owner, owner["spec"]["template"])
    meta = created["metadata"]
    # Kubernetes cuts the "<owner>-" prefix at 58 characters, dash and all.
    assert meta["name"].startswith("a" * 58) and len(meta["name"]) == 63
    assert meta["labels"] == {"app": "web"} and meta["annotations"] == {"note": "x"}
    assert meta["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                        "name": "a" * 70, "uid": "rs-uid", "controller": True,
                                        "blockOwnerDeletion": True}]
    assert created["spec"] == owner["spec"]["template"]["spec"]
    assert created["spec"] is not owner["spec"]["template"]["spec"]
    short = base.pod_from_template(rs(name="web"), rs()["spec"]["template"])
    assert short["metadata"]["name"][:4] == "web-" and len(short["metadata"]["name"]) == 9
    assert set(short["metadata"]["name"][4:]) <= set("bcdfghjklmnpqrstvwxz2456789")
