"""Watch events that change nothing a controller reads bring no reconcile: a pod's status
write that changes no count, a ReplicaSet's status write for its Deployment. Those that do
(ready, deleted, a new size) still do."""

import copy

from tinykube.controllers import eventfilter, replicaset
from tinykube.controllers.deployment.controller import controller_spec
from tinykube.store import Store


def labels():
    return {"app": "web"}


def deployment():
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-1"},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels()},
                     "template": {"metadata": {"labels": labels()},
                                  "spec": {"containers": [{"name": "c", "command": ["true"]}]}}}}


def owner_ref(kind, name, uid):
    api = "v1" if kind == "Pod" else "apps/v1"
    return {"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": True}


def replica_set(d):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "namespace": "default", "labels": labels(),
                         "ownerReferences": [owner_ref("Deployment", "web",
                                                       d["metadata"]["uid"])]},
            "spec": copy.deepcopy(d["spec"])}


def pod(rs):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1-a", "namespace": "default", "uid": "p-1",
                         "labels": labels(), "resourceVersion": "10",
                         "ownerReferences": [owner_ref("ReplicaSet", "web-1",
                                                       rs["metadata"]["uid"])]},
            "spec": {"containers": [{"name": "c", "command": ["true"]}]},
            "status": {"phase": "Pending",
                       "conditions": [{"type": "Ready", "status": "False"}]}}


def write(obj, change):
    """The object as the next watch event shows it: `change` applied, a new version."""
    new = copy.deepcopy(obj)
    change(new)
    new["metadata"]["resourceVersion"] = str(int(new["metadata"]["resourceVersion"]) + 1)
    return new


def started(p):
    p["status"]["phase"] = "Running"
    p["status"]["podIP"] = "10.0.0.5"
    p["status"]["containerStatuses"] = [{"name": "c", "state": {"running": {}}}]


def ready(p):
    p["status"]["conditions"] = [{"type": "Ready", "status": "True",
                                  "lastTransitionTime": "2026-12-07T12:00:00Z"}]


def terminating(p):
    p["metadata"]["deletionTimestamp"] = "2026-12-07T12:00:02Z"


async def test_the_deployment_reconciles_on_pod_events_it_counts_only(tmp_path):
    store = Store(tmp_path / "state.db")
    try:
        d = await store.create(deployment())
        rs = await store.create(replica_set(d))
        watches = dict(controller_spec().watches)
        pod_keys = watches["Pod"]
        first = pod(rs)
        assert list(pod_keys(store, "ADDED", first)) == [("default", "web")]
        running = write(first, started)
        assert list(pod_keys(store, "MODIFIED", running)) == []  # nothing counted changed
        now_ready = write(running, ready)
        assert list(pod_keys(store, "MODIFIED", now_ready)) == [("default", "web")]
        assert list(pod_keys(store, "MODIFIED", write(now_ready, terminating))) == \
            [("default", "web")]
        assert list(pod_keys(store, "DELETED", now_ready)) == [("default", "web")]

        rs_keys = watches["ReplicaSet"]
        assert list(rs_keys(store, "ADDED", rs)) == [("default", "web")]
        counted = write(rs, lambda r: r.update(status={"replicas": 2, "readyReplicas": 1}))
        assert list(rs_keys(store, "MODIFIED", counted)) == []  # status: never read
        scaled = write(counted, lambda r: r["spec"].update(replicas=3))
        assert list(rs_keys(store, "MODIFIED", scaled)) == [("default", "web")]
    finally:
        store.close()


async def test_the_replicaset_reconciles_on_pod_events_it_counts_only(tmp_path):
    store = Store(tmp_path / "state.db")
    try:
        d = await store.create(deployment())
        rs = await store.create(replica_set(d))
        (pod_keys,) = dict(replicaset.controller_spec("ReplicaSet").watches).values()
        first = pod(rs)
        assert list(pod_keys(store, "ADDED", first)) == [("default", "web-1")]
        running = write(first, started)
        assert list(pod_keys(store, "MODIFIED", running)) == []
        relabeled = write(running, lambda p: p["metadata"]["labels"].update(tier="x"))
        assert list(pod_keys(store, "MODIFIED", relabeled)) == [("default", "web-1")]
        assert list(pod_keys(store, "MODIFIED", write(relabeled, ready))) == \
            [("default", "web-1")]
    finally:
        store.close()


def test_a_deleted_object_is_forgotten_and_comes_back_as_new():
    calls = []

    def mapper(store, event_type, obj):
        calls.append(event_type)
        return [("default", obj["metadata"]["name"])]

    keys = eventfilter.changes_only(eventfilter.without_status, mapper)
    obj = {"metadata": {"name": "a", "uid": "u", "resourceVersion": "1"}, "spec": {}}
    assert list(keys(None, "ADDED", obj)) == [("default", "a")]
    assert list(keys(None, "MODIFIED", obj)) == []
    assert list(keys(None, "DELETED", obj)) == [("default", "a")]
    assert list(keys(None, "ADDED", obj)) == [("default", "a")]
    assert calls == ["ADDED", "DELETED", "ADDED"]
