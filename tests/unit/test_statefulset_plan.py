"""The StatefulSet decision (controllers/statefulset/plan.py) on plain data."""

from __future__ import annotations

import copy

from tinykube.controllers.statefulset import plan as P
from tinykube.controllers.statefulset.identity import REVISION_LABEL, new_pod

NOW = 1_800_000_000.0
TEMPLATE_A = {"metadata": {"labels": {"app": "web"}},
              "spec": {"containers": [{"name": "c", "command": ["sleep", "inf"],
                                       "volumeMounts": [{"name": "www", "mountPath": "/data"}]}]}}
TEMPLATE_B = copy.deepcopy(TEMPLATE_A)
TEMPLATE_B["spec"]["containers"][0]["command"] = ["sleep", "1000"]
REV_A = P.Revision("web-aaa", TEMPLATE_A)
REV_B = P.Revision("web-bbb", TEMPLATE_B)


def make_set(replicas=3, policy=None, strategy=None, partition=None, claims=True,
             retention=None, deleting=False):
    spec = {"replicas": replicas, "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE_A}
    if policy:
        spec["podManagementPolicy"] = policy
    if strategy or partition is not None:
        spec["updateStrategy"] = {"type": strategy or "RollingUpdate"}
        if partition is not None:
            spec["updateStrategy"]["rollingUpdate"] = {"partition": partition}
    if claims:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "www"},
                                         "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]
    if retention:
        spec["persistentVolumeClaimRetentionPolicy"] = retention
    meta = {"name": "web", "namespace": "default", "uid": "set-uid", "generation": 1}
    if deleting:
        meta["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": spec}


def pod(sts, ordinal, rev=REV_A, phase="Running", ready=True, terminating=False):
    p = new_pod(sts, rev.template, rev.name, ordinal)
    p["metadata"]["uid"] = f"uid-{ordinal}"
    p["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False",
         "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
    if terminating:
        p["metadata"]["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    return p


def claim_objs(sts, ordinals):
    from tinykube.controllers.statefulset.claims import new_claim

    template = sts["spec"]["volumeClaimTemplates"][0]
    out = {}
    for o in ordinals:
        c = new_claim(sts, template, o)
        c["metadata"]["uid"] = f"claim-{o}"
        out[c["metadata"]["name"]] = c
    return out


def decide(sts, pods, claims=None, current=REV_A, update=REV_A):
    return P.decide(sts, pods, claims or {}, current, update, 0, NOW)


def created(plan):
    return [a.pod["metadata"]["name"] for a in plan.of_type(P.CreatePod)]


def deleted(plan):
    return [a.name for a in plan.of_type(P.DeletePod)]


# ---- OrderedReady creation and reverse deletion --------------------------------------------

def test_ordered_ready_creates_ordinal_zero_first_with_its_claim():
    sts = make_set()
    plan = decide(sts, [])
    assert created(plan) == ["web-0"]
    assert isinstance(plan.actions[0], P.CreateClaim)  # the claim comes before the pod
    claim = plan.actions[0].claim
    assert claim["metadata"]["name"] == "www-web-0"
    assert claim["status"]["phase"] == "Bound"
    assert "ownerReferences" not in claim["metadata"]  # Retain: not owned by the set


def test_ordered_ready_waits_for_predecessor_running_and_ready():
    sts = make_set()
    claims = claim_objs(sts, [0])
    assert decide(sts, [pod(sts, 0, phase="Pending", ready=False)], claims).actions == []
    assert decide(sts, [pod(sts, 0, ready=False)], claims).actions == []
    plan = decide(sts, [pod(sts, 0)], claims)
    assert created(plan) == ["web-1"]
    plan = decide(sts, [pod(sts, 0), pod(sts, 1)], claim_objs(sts, [0, 1]))
    assert created(plan) == ["web-2"]


def test_created_pod_has_identity_storage_and_owner():
    sts = make_set()
    p = decide(sts, []).of_type(P.CreatePod)[0].pod
    assert p["spec"]["hostname"] == "web-0" and p["spec"]["subdomain"] == "nginx"
    labels = p["metadata"]["labels"]
    assert labels["app"] == "web"
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-0"
    assert labels[REVISION_LABEL] == "web-aaa"
    assert p["spec"]["volumes"] == [{"name": "www", "persistentVolumeClaim":
                                     {"claimName": "www-web-0"}}]
    ref = p["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "StatefulSet" and ref["uid"] == "set-uid" and ref["controller"] is True


def test_failed_pod_is_deleted_and_recreated_with_same_name_first():
    sts = make_set()
    claims = claim_objs(sts, [0, 1])
    plan = decide(sts, [pod(sts, 0), pod(sts, 1, phase="Failed", ready=False)], claims)
    assert deleted(plan) == ["web-1"] and created(plan) == []
    # while it terminates, nothing else happens; once gone it is created again
    assert decide(sts, [pod(sts, 0), pod(sts, 1, terminating=True)], claims).actions == []
    assert created(decide(sts, [pod(sts, 0)], claims)) == ["web-1"]


def test_missing_lower_ordinal_is_recreated_before_anything_else():
    sts = make_set(replicas=3)
    plan = decide(sts, [pod(sts, 1), pod(sts, 2)], claim_objs(sts, [0, 1, 2]))
    assert created(plan) == ["web-0"] and plan.of_type(P.CreateClaim) == []


def test_ordered_scale_down_highest_first_one_at_a_time():
    sts = make_set(replicas=1)
    pods = [pod(sts, 0), pod(sts, 1), pod(sts, 2)]
    claims = claim_objs(sts, [0, 1, 2])
    assert deleted(decide(sts, pods, claims)) == ["web-2"]
    pods[2] = pod(sts, 2, terminating=True)
    assert decide(sts, pods, claims).actions == []  # wait until web-2 is gone
    assert deleted(decide(sts, pods[:2], claims)) == ["web-1"]


def test_ordered_scale_down_waits_while_a_kept_ordinal_is_unhealthy():
    sts = make_set(replicas=1)
    pods = [pod(sts, 0, ready=False), pod(sts, 1), pod(sts, 2)]
    assert deleted(decide(sts, pods, claim_objs(sts, [0, 1, 2]))) == []


def test_scale_down_keeps_claims_by_default():
    sts = make_set(replicas=1)
    plan = decide(sts, [pod(sts, 0)], claim_objs(sts, [0, 1, 2]))
    assert plan.actions == []


# ---- Parallel --------------------------------------------------------------------------------

def test_parallel_creates_all_at_once():
    sts = make_set(replicas=3, policy="Parallel")
    plan = decide(sts, [])
    assert created(plan) == ["web-0", "web-1", "web-2"]
    assert [a.claim["metadata"]["name"] for a in plan.of_type(P.CreateClaim)] == [
        "www-web-0", "www-web-1", "www-web-2"]


def test_parallel_deletes_all_condemned_at_once_even_if_unready():
    sts = make_set(replicas=1, policy="Parallel")
    pods = [pod(sts, 0, ready=False), pod(sts, 1, ready=False), pod(sts, 2)]
    assert sorted(deleted(decide(sts, pods, claim_objs(sts, [0, 1, 2])))) == ["web-1", "web-2"]


# ---- rolling update ------------------------------------------------------------------------

def test_rolling_update_deletes_highest_not_updated_first():
    sts = make_set(replicas=3)
    pods = [pod(sts, i) for i in range(3)]
    claims = claim_objs(sts, [0, 1, 2])
    plan = decide(sts, pods, claims, current=REV_A, update=REV_B)
    assert deleted(plan) == ["web-2"]
    assert plan.status["currentReplicas"] == 2 and plan.status["updatedReplicas"] == 0
    # web-2 gone: recreated at the update revision
    plan = decide(sts, pods[:2], claims, current=REV_A, update=REV_B)
    new = plan.of_type(P.CreatePod)[0].pod
    assert new["metadata"]["labels"][REVISION_LABEL] == "web-bbb"
    assert new["spec"]["containers"][0]["command"] == ["sleep", "1000"]
    # replacement not Ready yet: nothing else is touched
    pods[2] = pod(sts, 2, rev=REV_B, ready=False)
    assert decide(sts, pods, claims, current=REV_A, update=REV_B).actions == []
    pods[2] = pod(sts, 2, rev=REV_B)
    assert deleted(decide(sts, pods, claims, current=REV_A, update=REV_B)) == ["web-1"]


def test_rolling_update_completes_and_moves_current_revision():
    sts = make_set(replicas=2)
    pods = [pod(sts, i, rev=REV_B) for i in range(2)]
    plan = decide(sts, pods, claim_objs(sts, [0, 1]), current=REV_A, update=REV_B)
    assert plan.actions == []
    assert plan.status["currentRevision"] == "web-bbb"
    assert plan.status["currentReplicas"] == 2 and plan.status["updatedReplicas"] == 2


def test_rolling_update_respects_partition():
    sts = make_set(replicas=3, partition=1)
    claims = claim_objs(sts, [0, 1, 2])
    pods = [pod(sts, 0), pod(sts, 1), pod(sts, 2, rev=REV_B)]
    assert deleted(decide(sts, pods, claims, REV_A, REV_B)) == ["web-1"]
    pods = [pod(sts, 0), pod(sts, 1, rev=REV_B), pod(sts, 2, rev=REV_B)]
    plan = decide(sts, pods, claims, REV_A, REV_B)
    assert plan.actions == []  # ordinal 0 is below the partition
    assert plan.status["currentRevision"] == "web-aaa"  # rollout not complete
    # an ordinal below the partition that dies comes back at the current revision
    plan = decide(sts, pods[1:], claims, REV_A, REV_B)
    assert created(plan) == ["web-0"]
    assert plan.of_type(P.CreatePod)[0].pod["metadata"]["labels"][REVISION_LABEL] == "web-aaa"


def test_rolling_update_in_parallel_mode_still_waits_for_all_ready():
    sts = make_set(replicas=3, policy="Parallel")
    pods = [pod(sts, 0, ready=False), pod(sts, 1), pod(sts, 2)]
    assert deleted(decide(sts, pods, claim_objs(sts, [0, 1, 2]), REV_A, REV_B)) == []


def test_on_delete_only_recreates_deleted_pods_at_update_revision():
    sts = make_set(replicas=2, strategy="OnDelete")
    claims = claim_objs(sts, [0, 1])
    pods = [pod(sts, 0), pod(sts, 1)]
    plan = decide(sts, pods, claims, REV_A, REV_B)
    assert plan.actions == []
    plan = decide(sts, [pods[0]], claims, REV_A, REV_B)
    assert plan.of_type(P.CreatePod)[0].pod["metadata"]["labels"][REVISION_LABEL] == "web-bbb"


# ---- identity --------------------------------------------------------------------------------

def test_wrong_identity_labels_are_fixed_in_place():
    sts = make_set(replicas=1)
    p = pod(sts, 0)
    del p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"]
    plan = decide(sts, [p], claim_objs(sts, [0]))
    [update] = plan.of_type(P.UpdatePod)
    assert update.pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-0"


def test_wrong_storage_or_hostname_recreates_the_pod():
    sts = make_set(replicas=1)
    p = pod(sts, 0)
    p["spec"]["volumes"] = [{"name": "www", "emptyDir": {}}]
    assert [a.why for a in decide(sts, [p], claim_objs(sts, [0])).actions] == ["identity"]
    p = pod(sts, 0)
    p["spec"]["hostname"] = "other"
    assert deleted(decide(sts, [p], claim_objs(sts, [0]))) == ["web-0"]


# ---- claims and retention --------------------------------------------------------------------

def test_claim_names_per_template_and_ordinal():
    sts = make_set(replicas=2, policy="Parallel")
    sts["spec"]["volumeClaimTemplates"].append({"metadata": {"name": "logs"}, "spec": {}})
    names = [a.claim["metadata"]["name"] for a in decide(sts, []).of_type(P.CreateClaim)]
    assert names == ["www-web-0", "logs-web-0", "www-web-1", "logs-web-1"]


def test_existing_claim_is_reused_not_recreated():
    sts = make_set(replicas=3)
    plan = decide(sts, [pod(sts, 0), pod(sts, 1)], claim_objs(sts, [0, 1, 2]))
    assert created(plan) == ["web-2"] and plan.of_type(P.CreateClaim) == []


def test_when_deleted_delete_makes_claims_owned_by_the_set():
    sts = make_set(retention={"whenDeleted": "Delete"})
    claim = decide(sts, []).of_type(P.CreateClaim)[0].claim
    [ref] = claim["metadata"]["ownerReferences"]
    assert ref["uid"] == "set-uid" and ref["kind"] == "StatefulSet"
    # a claim made under Retain gets the reference when the policy changes, and loses it back
    old = claim_objs(make_set(), [0])
    [fix] = decide(sts, [pod(sts, 0)], old).of_type(P.UpdateClaim)
    assert fix.claim["metadata"]["ownerReferences"][0]["uid"] == "set-uid"
    [unfix] = decide(make_set(), [pod(sts, 0)], {"www-web-0": fix.claim}).of_type(P.UpdateClaim)
    assert unfix.claim["metadata"]["ownerReferences"] == []


def test_when_scaled_delete_removes_claims_after_their_pods_are_gone():
    sts = make_set(replicas=1, retention={"whenScaled": "Delete"})
    claims = claim_objs(sts, [0, 1, 2])
    plan = decide(sts, [pod(sts, 0), pod(sts, 1), pod(sts, 2, terminating=True)], claims)
    assert plan.of_type(P.DeleteClaim) == []  # pods still there
    plan = decide(sts, [pod(sts, 0)], claims)
    assert sorted(a.name for a in plan.of_type(P.DeleteClaim)) == ["www-web-1", "www-web-2"]


def test_pod_waits_for_a_terminating_claim_of_its_ordinal():
    sts = make_set(replicas=1)
    claims = claim_objs(sts, [0])
    claims["www-web-0"]["metadata"]["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    assert decide(sts, [], claims).actions == []


# ---- status ------------------------------------------------------------------------------------

def test_status_counts_and_revisions():
    sts = make_set(replicas=3)
    sts["metadata"]["generation"] = 4
    pods = [pod(sts, 0), pod(sts, 1, rev=REV_B, ready=False), pod(sts, 2, terminating=True)]
    status = P.decide(sts, pods, claim_objs(sts, [0, 1, 2]), REV_A, REV_B, 2, NOW).status
    assert status == {"observedGeneration": 4, "replicas": 3, "readyReplicas": 2,
                      "availableReplicas": 2, "currentReplicas": 1, "updatedReplicas": 1,
                      "currentRevision": "web-aaa", "updateRevision": "web-bbb",
                      "collisionCount": 2}


def test_min_ready_seconds_delays_availability_and_next_creation():
    sts = make_set(replicas=2)
    sts["spec"]["minReadySeconds"] = 10
    p = pod(sts, 0)
    p["status"]["conditions"][0]["lastTransitionTime"] = "2027-01-15T08:00:00Z"
    ready_at = 1_800_000_000.0 + 0  # the same instant as the string above
    plan = P.decide(sts, [p], claim_objs(sts, [0]), REV_A, REV_A, 0, ready_at + 4)
    assert plan.actions == [] and plan.status["availableReplicas"] == 0
    assert plan.requeue_after == 6
    plan = P.decide(sts, [p], claim_objs(sts, [0]), REV_A, REV_A, 0, ready_at + 10)
    assert created(plan) == ["web-1"]


def test_deleting_set_only_reports_status():
    sts = make_set(replicas=3, deleting=True)
    assert decide(sts, []).actions == []
