"""Deployment arithmetic and identity: surge/unavailable fenceposts, the template hash,
revision annotations, conditions."""

import pytest

from tinykube.controllers.deployment import util
from tinykube.model import meta


@pytest.mark.parametrize("surge, unavailable, desired, expected", [
    # ints pass through
    (1, 0, 3, (1, 0)),
    (0, 1, 3, (0, 1)),
    (3, 2, 10, (3, 2)),
    # percentages: surge rounds up, unavailable rounds down
    ("25%", "25%", 6, (2, 1)),
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 10, (3, 2)),
    ("25%", "25%", 3, (1, 0)),  # 0.75 -> 1 up, 0.75 -> 0 down: surge 1 keeps it valid
    ("50%", "50%", 5, (3, 2)),
    ("100%", "0%", 7, (7, 0)),
    ("29%", "29%", 100, (29, 29)),  # exact integer math: no float 29.000000000000004 -> 30
    ("1%", "1%", 1, (1, 0)),
    ("0%", "25%", 1, (0, 1)),  # both resolve to 0 by rounding -> unavailable becomes 1
    ("0%", "10%", 5, (0, 1)),
    (0, "10%", 9, (0, 1)),
    ("25%", "25%", 0, (0, 1)),
])
def test_resolve_fenceposts(surge, unavailable, desired, expected):
    assert util.resolve_fenceposts(surge, unavailable, desired) == expected


@pytest.mark.parametrize("surge, unavailable", [(0, 0), ("0%", "0%"), (0, "0%"), ("0%", 0)])
def test_both_zero_is_invalid(surge, unavailable):
    with pytest.raises(ValueError, match="may not be 0 when maxSurge is 0"):
        util.resolve_fenceposts(surge, unavailable, 5)


@pytest.mark.parametrize("bad", ["25", "x%", "2.5%", None, True, 1.5])
def test_bad_int_or_percent(bad):
    with pytest.raises(ValueError, match="maxSurge: invalid value"):
        util.resolve_fenceposts(bad, 1, 5)


def deployment(replicas=6, strategy=None, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
            "spec": {"replicas": replicas, "strategy": strategy or {}, **spec}}


def test_defaults_and_recreate():
    d = deployment(6)
    assert (util.max_surge(d), util.max_unavailable(d)) == (2, 1)
    d = deployment(6, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0,
                                                                  "maxUnavailable": 2}})
    assert (util.max_surge(d), util.max_unavailable(d)) == (0, 2)
    d = deployment(6, {"type": "Recreate"})
    assert (util.max_surge(d), util.max_unavailable(d)) == (0, 0)
    assert util.revision_history_limit(d) == 10
    assert util.progress_deadline(d) == 600
    assert util.progress_deadline(deployment(progressDeadlineSeconds=2**31 - 1)) is None


TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "command": ["sleep", "100"]}]}}


def test_hash_is_stable_and_sensitive():
    h = util.template_hash(TEMPLATE)
    assert h == util.template_hash(TEMPLATE)
    assert h == "dfcb56c4b"  # pinned: a change renames every ReplicaSet of every deployment
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    # key order does not matter, content does
    reordered = {"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]}
    assert util.template_hash(reordered) == h
    changed = {"metadata": TEMPLATE["metadata"],
               "spec": {"containers": [{"name": "app", "command": ["sleep", "200"]}]}}
    assert util.template_hash(changed) != h
    # its own label does not feed back into it
    labelled = {"metadata": {"labels": {"app": "web", "pod-template-hash": h}},
                "spec": TEMPLATE["spec"]}
    assert util.template_hash(labelled) == h
    # a collision count gives a different name
    assert util.template_hash(TEMPLATE, 1) not in (h, util.template_hash(TEMPLATE, 2))


def test_equal_ignore_hash():
    labelled = {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
                "spec": TEMPLATE["spec"]}
    assert util.equal_ignore_hash(labelled, TEMPLATE)
    other = {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"},
                          "annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
             "spec": TEMPLATE["spec"]}
    assert not util.equal_ignore_hash(other, TEMPLATE)
    assert util.equal_ignore_hash({"metadata": {"labels": {"a": "b"}, "annotations": {}}},
                                  {"metadata": {"labels": {"a": "b"}}})


def test_new_rs_annotations_revision_and_history():
    d = deployment(3)
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "v2",
                                    util.REVISION: "9", util.LAST_APPLIED: "{}"}
    rs = {"metadata": {"name": "web-x"}}
    assert util.set_new_rs_annotations(d, rs, 4, exists=False)
    ann = rs["metadata"]["annotations"]
    assert ann == {"kubernetes.io/change-cause": "v2", util.REVISION: "4",
                   util.DESIRED_REPLICAS: "3", util.MAX_REPLICAS: "4"}
    assert not util.set_new_rs_annotations(d, rs, 4, exists=True)
    # reused by a rollback: gets the newest number, remembers the old ones
    assert util.set_new_rs_annotations(d, rs, 7, exists=True)
    assert ann[util.REVISION] == "7" and ann[util.REVISION_HISTORY] == "4"
    util.set_new_rs_annotations(d, rs, 10, exists=True)
    assert ann[util.REVISION_HISTORY] == "4,7"
    # numeric, not string, comparison: "10" > "9"
    assert not util.set_new_rs_annotations(d, rs, 9, exists=True)


def test_set_condition_keeps_times_unless_status_changes():
    status: dict = {}
    util.set_condition(status, util.new_condition("Available", "True", "A", "m", 100))
    first = dict(status["conditions"][0])
    util.set_condition(status, util.new_condition("Available", "True", "A", "m2", 200))
    assert status["conditions"][0] == first  # same status+reason: untouched
    util.set_condition(status, util.new_condition("Available", "True", "B", "m", 300))
    cond = status["conditions"][0]
    assert cond["lastTransitionTime"] == first["lastTransitionTime"]
    assert cond["lastUpdateTime"] == meta.format_time(300)
    util.set_condition(status, util.new_condition("Available", "False", "C", "m", 400))
    assert status["conditions"][0]["lastTransitionTime"] == meta.format_time(400)


def pod(ready_at=None, deleting=False, phase="Running"):
    p = {"metadata": {"name": "p"}, "status": {"phase": phase, "conditions": []}}
    if ready_at is not None:
        p["status"]["conditions"].append({"type": "Ready", "status": "True",
                                          "lastTransitionTime": meta.format_time(ready_at)})
    if deleting:
        p["metadata"]["deletionTimestamp"] = meta.format_time(0)
    return p


def test_rs_state_counts_pods():
    rs = {"metadata": {"name": "web-a", "uid": "u"}, "spec": {"replicas": 4,
                                                               "minReadySeconds": 10}}
    pods = [pod(ready_at=0), pod(ready_at=95), pod(), pod(deleting=True),
            pod(phase="Failed"), pod(ready_at=0, deleting=True)]
    state = util.rs_state(rs, pods, now=100)
    assert (state.actual, state.ready, state.available, state.terminating) == (3, 2, 1, 2)
    assert state.next_available_at == 105
    assert state.settled_available == 1


def test_round_half_away_from_zero():
    assert [util.round_half_away(x) for x in (0.5, 1.5, 2.5, -0.5, -2.5, 2.4)] == \
        [1, 2, 3, -1, -3, 2]
