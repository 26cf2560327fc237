"""ControllerRevisions of a StatefulSet (controllers/statefulset/revisions.py), on a real Store
in a temp dir (it is in-memory plus one SQLite file: fast enough for unit tests)."""

from __future__ import annotations

import copy

import pytest

from tinykube.controllers.statefulset import revisions as R
from tinykube.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def template(cmd: str) -> dict:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "command": ["sh", "-c", cmd]}]}}


async def make_set(store, cmd="v1"):
    return await store.create({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": template(cmd)}})


async def sync(store, sts):
    revisions = R.owned_revisions(store, sts)
    revs = await R.sync_revisions(store, sts, revisions)
    return revs


def test_hash_is_stable_and_depends_on_template_and_collision_count():
    a, b = template("v1"), template("v2")
    assert R.template_hash(a, 0) == R.template_hash(copy.deepcopy(a), 0)
    assert R.template_hash(a, 0) != R.template_hash(b, 0)
    assert R.template_hash(a, 0) != R.template_hash(a, 1)
    assert set(R.template_hash(a, 0)) <= set("bcdfghjklmnpqrstvwxz2456789")


async def test_first_sync_creates_revision_one_owned_by_the_set(store):
    sts = await make_set(store)
    revs = await sync(store, sts)
    assert revs.current is revs.update or revs.current == revs.update
    rev = store.get("ControllerRevision", "default", revs.update["metadata"]["name"])
    assert rev["metadata"]["name"].startswith("web-")
    assert rev["revision"] == 1 and rev["data"] == template("v1")
    assert rev["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]
    # nothing changes on a second sync
    again = await sync(store, sts)
    assert again.update["metadata"]["name"] == rev["metadata"]["name"]
    assert len(store.list("ControllerRevision")) == 1


async def test_template_change_then_rollback_reuses_the_old_revision(store):
    sts = await make_set(store)
    first = (await sync(store, sts)).update
    sts = await store.update_status(dict(sts, status={"currentRevision": first["metadata"]["name"]}))
    sts["spec"]["template"] = template("v2")
    sts = await store.update(sts)
    revs = await sync(store, sts)
    second = revs.update
    assert second["revision"] == 2 and second["metadata"]["name"] != first["metadata"]["name"]
    assert revs.current["metadata"]["name"] == first["metadata"]["name"]
    # `rollout undo`: the old template written back
    sts["spec"]["template"] = template("v1")
    sts = await store.update(sts)
    revs = await sync(store, sts)
    assert revs.update["metadata"]["name"] == first["metadata"]["name"]
    assert revs.update["revision"] == 3
    numbers = {r["metadata"]["name"]: r["revision"] for r in store.list("ControllerRevision")}
    assert numbers == {first["metadata"]["name"]: 3, second["metadata"]["name"]: 2}


async def test_name_collision_bumps_collision_count(store):
    sts = await make_set(store)
    taken = R.new_revision(sts, 1, 0)
    taken["data"] = template("someone else's")
    taken["metadata"]["ownerReferences"] = []
    await store.create(taken)
    revs = await sync(store, sts)
    assert revs.collision_count == 1
    assert revs.update["metadata"]["name"] == R.revision_name("web", R.template_hash(
        template("v1"), 1))


def test_history_pruning_keeps_live_and_newest():
    sts = {"metadata": {"name": "web", "uid": "u"}, "spec": {"revisionHistoryLimit": 2}}
    revs = [{"metadata": {"name": f"web-{i}", "creationTimestamp": "t"}, "revision": i}
            for i in range(1, 7)]
    pods = [{"metadata": {"name": "web-0", "labels": {"controller-revision-hash": "web-1"}}}]
    pruned = R.history_to_prune(sts, pods, revs, {"web-6", "web-5"})
    # live: web-1 (a pod), web-5, web-6; history web-2..4, limit 2 -> web-2 goes
    assert [r["metadata"]["name"] for r in pruned] == ["web-2"]
    sts["spec"]["revisionHistoryLimit"] = 0
    assert len(R.history_to_prune(sts, pods, revs, {"web-6"})) == 4
