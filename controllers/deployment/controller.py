"""The Deployment controller's thin async part: read, decide, apply.

`reconcile` claims the replica sets the deployment's selector matches (adopt orphans, release
ones that stopped matching, as the ReplicaSet controller does with pods), counts each one's
pods, asks `decide` for a plan and applies it in a safe order: create the new replica set,
then scale (shrinking before growing), copy the revision annotation to the deployment, prune
old replica sets, write status, record events. A stale write raises `Conflict` and the work
queue retries on fresh state; nothing is cached between reconciles.

Watches: Deployments (own key); ReplicaSets (their controlling Deployment, or for orphans every
Deployment whose selector matches); Pods (the Deployment that controls the pod's ReplicaSet),
because the controller counts pods itself (see util's module docstring).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from .. import base
from ..base import ControllerSpec, Key, Requeue
from ..eventfilter import changes_only, counted_pod_view, without_status
from . import util
from .decide import decide
from .planner import Plan

from tinykube.model.errors import AlreadyExists, NotFound
from tinykube.model.meta import Obj

if TYPE_CHECKING:
    from tinykube.store import Store

KIND = "Deployment"
SOURCE = "deployment-controller"  # the events' component, kubectl's "From"
log = logging.getLogger("tinykube.controllers.deployment")


async def reconcile(store: Store, key: Key, *, now: float | None = None) -> Requeue | None:
    namespace, name = key
    d = store.try_get(KIND, namespace, name)
    if d is None:
        return None  # deleted: the garbage collector removes its replica sets
    owned = await claim_replica_sets(store, d)
    pods_by_owner: dict[str, list[Obj]] = {}
    # Read only (counted by rs_state): the stored objects, not a copy of every pod of the
    # namespace on each pass (5% of the daemon's samples in a 20-replica rollout).
    for pod in store.list("Pod", namespace, copy=False):
        uid = util.controller_uid(pod)
        if uid is not None:
            pods_by_owner.setdefault(uid, []).append(pod)
    at = base.now() if now is None else now
    states = [util.rs_state(rs, pods_by_owner.get(rs["metadata"]["uid"], []), at)
              for rs in owned]
    plan = decide(d, states, at)
    requeue = await apply(store, d, plan)
    if requeue is not None:
        return requeue
    return Requeue(plan.requeue_after) if plan.requeue_after is not None else None


async def claim_replica_sets(store: Store, d: Obj) -> list[Obj]:
    """The replica sets this deployment controls after adopting matching orphans and
    releasing owned ones whose labels no longer match its selector."""
    namespace = d["metadata"].get("namespace") or "default"
    matches = base.labels_match(base.selector_for(d))
    claim = base.classify(d, store.list("ReplicaSet", namespace), matches)
    for rs in claim.release:
        await base.release(store, d, rs)
    owned = list(claim.owned)
    for rs in claim.adopt:
        adopted = await base.adopt(store, d, rs, matches)
        if adopted is not None:
            owned.append(adopted)
    return owned


async def apply(store: Store, d: Obj, plan: Plan) -> Requeue | None:
    """Write the plan. Returns Requeue(0) when a name collision needs another pass."""
    namespace = d["metadata"].get("namespace") or "default"
    latest = d
    if plan.paused_status is not None:
        latest = copy.deepcopy(d)
        latest["status"] = plan.paused_status
        latest = await store.update_status(latest)
    if plan.create is not None:
        try:
            created = await store.create(plan.create.obj)
            plan.create.obj["metadata"].update(created["metadata"])
        except AlreadyExists:
            await _collision(store, latest, plan)
            return Requeue(0)
    for rs in plan.updates:
        await store.update(rs.obj)
    if plan.annotations_changed:
        latest = copy.deepcopy(latest)
        latest["metadata"]["annotations"] = plan.deployment["metadata"].get("annotations") or {}
        latest = await store.update(latest)
    for rs in plan.deletes:
        try:
            await store.delete("ReplicaSet", namespace, rs.name, uid=rs.uid)
        except NotFound:
            pass
    if plan.status is not None and plan.status != plan.paused_status:
        latest = copy.deepcopy(latest)
        latest["status"] = plan.status
        await store.update_status(latest)
    for type_, reason, message in plan.events:
        await store.record_event(d, type_, reason, message, source=SOURCE)
    return None


async def _collision(store: Store, d: Obj, plan: Plan) -> None:
    """The new replica set's name is taken. If it is ours with our template, the next pass
    finds it; otherwise bump status.collisionCount so the next hash differs (Kubernetes)."""
    assert plan.create is not None
    meta = plan.create.obj["metadata"]
    existing = store.try_get("ReplicaSet", meta["namespace"], meta["name"])
    if existing is not None and base.is_controlled_by(existing, d) and util.equal_ignore_hash(
            (existing.get("spec") or {}).get("template") or {},
            d["spec"].get("template") or {}):
        return
    latest = copy.deepcopy(d)
    status = latest.setdefault("status", {})
    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
    await store.update_status(latest)
    await store.record_event(d, "Warning", "ReplicaSetCreateError",
                             f'Failed to create new replica set "{meta["name"]}": name taken '
                             f"by another object; retrying with collisionCount="
                             f"{status['collisionCount']}", source=SOURCE)


# ---- wiring -------------------------------------------------------------------------------

def _deployments_of_pod(store: Store, event_type: str, pod: Obj) -> Iterable[Key]:
    ref = base.controller_ref(pod)
    if ref is None or ref.get("kind") != "ReplicaSet":
        return ()
    namespace = pod["metadata"].get("namespace") or "default"
    rs = store.try_get("ReplicaSet", namespace, ref["name"])
    if rs is None:
        return ()
    owner = base.controller_ref(rs)
    if owner is None or owner.get("kind") != KIND:
        return ()
    return ((namespace, owner["name"]),)


def controller_spec() -> ControllerSpec:
    return ControllerSpec(
        name="deployment",
        kind=KIND,
        reconcile=reconcile,
        # Only what a pass reads: a replica set's metadata and spec, a pod's counted state
        # (controllers/eventfilter.py).
        watches=[("ReplicaSet", changes_only(without_status, base.owner_keys_for(KIND))),
                 ("Pod", changes_only(counted_pod_view, _deployments_of_pod))],
        # A rolling update is a chain of reactions (a pod Ready → grow the new set; its
        # write → shrink an old one; ...): each follows its event at once, as in Kubernetes,
        # instead of after a coalescing window per link. The pace still holds an expensive
        # key back (base.work).
        coalesce_seconds=0.0,
    )


async def run(store: Store, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
              ) -> None:
    """Run the Deployment controller until cancelled."""
    await base.run_controller(store, controller_spec(), task_status=task_status)
