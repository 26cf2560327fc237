"""The pure garbage-collection decision and the event -> affected-uids graph."""

from tinykube.controllers.gc import (
    FOREGROUND,
    ORPHAN,
    Delete,
    Graph,
    ObjectRef,
    RemoveFinalizer,
    RemoveOwnerRefs,
    plan,
)


def obj(kind, name, *, owners=(), deleting=False, finalizers=(), block=True):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if owners:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": o["kind"], "name": o["metadata"]["name"],
             "uid": o["metadata"]["uid"], "controller": i == 0, "blockOwnerDeletion": block}
            for i, o in enumerate(owners)]
    if deleting:
        meta["deletionTimestamp"] = "2026-11-03T10:00:00Z"
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta}


def ref(o):
    return ObjectRef.of(o)


def test_nothing_to_do_when_owners_live():
    rs = obj("ReplicaSet", "web")
    pods = [obj("Pod", f"p{i}", owners=[rs]) for i in range(3)]
    assert plan([rs, *pods]) == []


def test_background_dependents_of_a_gone_owner_are_deleted():
    rs = obj("ReplicaSet", "web")
    pods = [obj("Pod", f"p{i}", owners=[rs]) for i in range(2)]
    actions = plan(pods)  # the owner is gone
    assert actions == [Delete(ref(p), "Background", "its owner no longer exists") for p in pods]


def test_same_name_new_uid_does_not_keep_dependents_alive():
    old = obj("ReplicaSet", "web")
    pod = obj("Pod", "p", owners=[old])
    new = obj("ReplicaSet", "web")
    new["metadata"]["uid"] = "uid-web-recreated"
    assert plan([new, pod], focus=["uid-p"]) == [
        Delete(ref(pod), "Background", "its owner no longer exists")]


def test_dangling_ref_is_removed_when_another_owner_lives():
    a, b = obj("ReplicaSet", "a"), obj("StatefulSet", "b")
    pod = obj("Pod", "p", owners=[a, b])
    assert plan([pod, b], focus=["uid-p"]) == [RemoveOwnerRefs(ref(pod), frozenset({"uid-a"}))]


def test_unknown_owner_kind_is_never_taken_as_gone():
    pod = obj("Pod", "p", owners=[obj("Widget", "w")])
    assert plan([pod]) == []


def test_dependents_being_deleted_are_left_alone():
    pod = obj("Pod", "p", owners=[obj("ReplicaSet", "gone")], deleting=True)
    assert plan([pod]) == []


def test_foreground_deletes_dependents_and_waits_for_blocking_ones():
    rs = obj("ReplicaSet", "web", deleting=True, finalizers=[FOREGROUND])
    pods = [obj("Pod", f"p{i}", owners=[rs]) for i in range(2)]
    going = obj("Pod", "going", owners=[rs], deleting=True)
    actions = plan([rs, *pods, going], focus=["uid-web"])
    assert actions == [Delete(ref(p), "Background", "owner ReplicaSet default/web is deleted in "
                                                    "the foreground") for p in pods]
    # Dependents without blockOwnerDeletion do not hold the owner back.
    loose = obj("Pod", "loose", owners=[rs], block=False)
    actions = plan([rs, loose], focus=["uid-web"])
    assert actions[-1] == RemoveFinalizer(ref(rs), FOREGROUND)
    # Nothing left: the finalizer goes.
    assert plan([rs], focus=["uid-web"]) == [RemoveFinalizer(ref(rs), FOREGROUND)]


def test_foreground_cascades_foreground_through_owners_with_dependents():
    deploy = obj("Deployment", "web", deleting=True, finalizers=[FOREGROUND])
    rs = obj("ReplicaSet", "web-1", owners=[deploy])
    empty_rs = obj("ReplicaSet", "web-0", owners=[deploy])
    pod = obj("Pod", "p", owners=[rs])
    actions = plan([deploy, rs, empty_rs, pod], focus=["uid-web"])
    assert {(a.target.name, a.propagation) for a in actions} == {
        ("web-1", "Foreground"), ("web-0", "Background")}
    # The RS, now itself waiting, deletes its pod; the pod (dependent focus) agrees.
    rs_deleting = obj("ReplicaSet", "web-1", owners=[deploy], deleting=True,
                      finalizers=[FOREGROUND])
    assert plan([deploy, rs_deleting, pod], focus=["uid-web-1", "uid-p"]) == [
        Delete(ref(pod), "Background", "owner ReplicaSet default/web-1 is deleted in the "
                                       "foreground")]
    # Deployment waits while its RS exists (even while the RS is being deleted).
    assert plan([deploy, rs_deleting, pod], focus=["uid-web"]) == []


def test_foreground_only_lets_go_of_dependents_with_another_live_owner():
    rs = obj("ReplicaSet", "web", deleting=True, finalizers=[FOREGROUND])
    other = obj("StatefulSet", "db")
    shared = obj("Pod", "shared", owners=[rs, other])
    actions = plan([rs, other, shared], focus=["uid-web"])
    assert actions == [RemoveOwnerRefs(ref(shared), frozenset({"uid-web"})),
                       RemoveFinalizer(ref(rs), FOREGROUND)]


def test_orphan_removes_refs_then_the_finalizer():
    rs = obj("ReplicaSet", "web", deleting=True, finalizers=[ORPHAN])
    pods = [obj("Pod", f"p{i}", owners=[rs]) for i in range(2)]
    assert plan([rs, *pods], focus=["uid-web"]) == [
        RemoveOwnerRefs(ref(pods[0]), frozenset({"uid-web"})),
        RemoveOwnerRefs(ref(pods[1]), frozenset({"uid-web"})),
        RemoveFinalizer(ref(rs), ORPHAN)]
    # Orphans of an owner in orphan deletion are not collected as dangling.
    assert plan([rs, *pods], focus=["uid-p0"]) == []


def test_owner_with_only_foreign_finalizers_waits():
    rs = obj("ReplicaSet", "web", deleting=True, finalizers=["example.com/hold"])
    pod = obj("Pod", "p", owners=[rs])
    assert plan([rs, pod]) == []


def test_graph_enqueues_only_what_an_event_can_affect():
    graph = Graph()
    rs = obj("ReplicaSet", "web")
    pod = obj("Pod", "p", owners=[rs])
    assert graph.observe("ADDED", rs) == set()  # owns nothing, owned by nothing
    assert graph.observe("ADDED", pod) == {"uid-p"}
    status_only = dict(pod, status={"phase": "Running"})
    assert graph.observe("MODIFIED", status_only) == set()
    assert graph.dependents["uid-web"] == {"uid-p"}
    # Owner goes away: its dependents (and its own owners) are affected.
    assert graph.observe("DELETED", rs) == {"uid-p"}
    assert graph.dangling_or_finalizing() == ["uid-p"]
    # Deleting in the foreground: the owner itself needs attention.
    rs2 = obj("ReplicaSet", "web2")
    graph.observe("ADDED", rs2)
    assert graph.observe("MODIFIED", obj("ReplicaSet", "web2", deleting=True,
                                         finalizers=[FOREGROUND])) == {"uid-web2"}
    # A dependent dropping its ref re-checks the owner it dropped (it may be waiting on it).
    pod2 = obj("Pod", "q", owners=[rs2])
    graph.observe("ADDED", pod2)
    assert graph.observe("MODIFIED", obj("Pod", "q")) == {"uid-web2"}
    assert "uid-web2" not in graph.dependents
    # A dependent's removal re-checks its owners.
    graph.observe("MODIFIED", pod2)
    assert graph.observe("DELETED", pod2) == {"uid-web2"}
