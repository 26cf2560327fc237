"""The StatefulSet controller's async side: watch, queue, reconcile, apply.

`run` watches StatefulSets, Pods, PersistentVolumeClaims and ControllerRevisions and turns each
event into the key `(namespace, set name)` of the set it concerns; workers take keys from a
deduplicating `WorkQueue` and call `reconcile`, which reads everything afresh from the store
(level-triggered: the event itself is never trusted), syncs the revisions, asks `plan.decide`
what to do, applies the actions in order, writes the status if it changed and prunes history.
A failed reconcile is retried with back-off; a periodic resync catches anything missed.
"""

from __future__ import annotations

import logging
import time

import trio

from tinykube import labels
from tinykube.model.errors import AlreadyExists, ApiError, Conflict, Gone, NotFound

from controllers.statefulset import claims as claimlib
from controllers.statefulset import plan as planlib
from controllers.statefulset import revisions as revlib
from controllers.statefulset.identity import parent_and_ordinal
from controllers.workqueue import WorkQueue

log = logging.getLogger("tinykube.controllers.statefulset")

KIND = "StatefulSet"
RESYNC_SECONDS = 30.0
Key = tuple[str, str]


# ---- reconcile -----------------------------------------------------------------------------

async def reconcile(store, key: Key, *, now: float | None = None) -> float | None:
    """Bring one set's pods, claims, revisions and status in line. Returns seconds after which
    to look again (minReadySeconds), or None. Raises ApiError for a retry with back-off."""
    namespace, name = key
    sts = store.try_get(KIND, namespace, name)
    if sts is None:
        return None  # its pods/claims/revisions are the garbage collector's business
    try:
        selector = labels.for_object(sts)
    except ValueError as err:
        await store.record_event(sts, "Warning", "InvalidSelector", f"invalid selector: {err}")
        return None

    claimed = planlib.claim_pods(sts, store.list("Pod", namespace), selector.matches)
    for pod in claimed.adopt + claimed.release:
        await store.update(pod)  # Conflict/NotFound: retried with a fresh read

    revisions = revlib.owned_revisions(store, sts)
    revs = await revlib.sync_revisions(store, sts, revisions)
    claims = {c["metadata"]["name"]: c for c in store.list("PersistentVolumeClaim", namespace)}
    plan = planlib.decide(
        sts, claimed.owned, claims,
        planlib.Revision(revs.current["metadata"]["name"], revlib.template_of(revs.current)),
        planlib.Revision(revs.update["metadata"]["name"], revlib.template_of(revs.update)),
        revs.collision_count, time.time() if now is None else now,
    )
    failure: ApiError | None = None
    try:
        await apply(store, sts, plan)
    except ApiError as err:
        failure = err
    # Status is written even after a failed action, as Kubernetes does: it reflects the pods.
    if planlib.status_changed(sts, plan.status):
        updated = dict(sts, status=planlib.merged_status(sts, plan.status))
        try:
            await store.update_status(updated)
        except (Conflict, NotFound) as err:
            failure = failure or err
    await revlib.prune_history(store, sts, claimed.owned, revisions,
                               {revs.current["metadata"]["name"], revs.update["metadata"]["name"]})
    if failure is not None:
        raise failure
    return plan.requeue_after


async def apply(store, sts: dict, plan: planlib.Plan) -> None:
    """Carry out the actions in order. Under OrderedReady the first failure stops the rest;
    under Parallel the rest still run and the first failure is raised at the end."""
    ordered = planlib.Settings.of(sts).policy != planlib.PARALLEL
    first: ApiError | None = None
    for action in plan.actions:
        try:
            await _apply_one(store, sts, action)
        except ApiError as err:
            if ordered:
                raise
            first = first or err
    if first is not None:
        raise first


async def _apply_one(store, sts: dict, action: planlib.Action) -> None:
    set_name = sts["metadata"]["name"]
    namespace = sts["metadata"].get("namespace", "default")
    event = store.record_event
    if isinstance(action, planlib.CreateClaim):
        claim = action.claim["metadata"]["name"]
        what = f"Claim {claim} Pod {action.pod_name} in StatefulSet {set_name}"
        try:
            await store.create(action.claim)
        except AlreadyExists:
            return  # created meanwhile (e.g. by an earlier pass): that is what we wanted
        except ApiError as err:
            await event(sts, "Warning", "FailedCreate", f"create {what} failure: {err.message}")
            raise
        await event(sts, "Normal", "SuccessfulCreate", f"create {what} success")
    elif isinstance(action, planlib.CreatePod):
        pod = action.pod["metadata"]["name"]
        what = f"Pod {pod} in StatefulSet {set_name}"
        try:
            await store.create(action.pod)
        except ApiError as err:
            await event(sts, "Warning", "FailedCreate", f"create {what} failed error: {err.message}")
            raise
        await event(sts, "Normal", "SuccessfulCreate", f"create {what} successful")
    elif isinstance(action, planlib.DeletePod):
        what = f"Pod {action.name} in StatefulSet {set_name}"
        try:
            await store.delete("Pod", namespace, action.name, uid=action.uid or None)
        except NotFound:
            return
        except ApiError as err:
            await event(sts, "Warning", "FailedDelete", f"delete {what} failed error: {err.message}")
            raise
        log.info("statefulset %s/%s: deleted pod %s (%s)", namespace, set_name, action.name,
                 action.why)
        await event(sts, "Normal", "SuccessfulDelete", f"delete {what} successful")
    elif isinstance(action, planlib.UpdatePod):
        pod = action.pod["metadata"]["name"]
        await store.update(action.pod)
        await event(sts, "Normal", "SuccessfulUpdate",
                    f"update Pod {pod} in StatefulSet {set_name} successful")
    elif isinstance(action, planlib.UpdateClaim):
        await store.update(action.claim)
    elif isinstance(action, planlib.DeleteClaim):
        what = f"Claim {action.name} Pod {action.pod_name} in StatefulSet {set_name}"
        try:
            await store.delete("PersistentVolumeClaim", namespace, action.name,
                               uid=action.uid or None)
        except NotFound:
            return
        await event(sts, "Normal", "SuccessfulDelete", f"delete {what} success")


# ---- mapping watch events to keys ------------------------------------------------------------

def _controller_key(obj: dict, kind: str) -> Key | None:
    meta = obj["metadata"]
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return (meta.get("namespace", "default"), ref["name"])
    return None


def keys_for_pod(store, pod: dict) -> list[Key]:
    key = _controller_key(pod, KIND)
    if key is not None:
        return [key]
    # An orphan named like one of a set's ordinals may be adopted by that set.
    parent, ordinal = parent_and_ordinal(pod["metadata"]["name"])
    namespace = pod["metadata"].get("namespace", "default")
    if ordinal >= 0 and store.try_get(KIND, namespace, parent) is not None:
        return [(namespace, parent)]
    return []


def keys_for_claim(store, claim: dict) -> list[Key]:
    namespace = claim["metadata"].get("namespace", "default")
    return [(namespace, s["metadata"]["name"]) for s in store.list(KIND, namespace)
            if claimlib.parse_claim(s, claim["metadata"]["name"]) is not None]


def keys_for_revision(store, revision: dict) -> list[Key]:
    key = _controller_key(revision, KIND)
    return [key] if key is not None else []


def keys_for_set(store, sts: dict) -> list[Key]:
    return [(sts["metadata"].get("namespace", "default"), sts["metadata"]["name"])]


WATCHED = {
    KIND: keys_for_set,
    "Pod": keys_for_pod,
    "PersistentVolumeClaim": keys_for_claim,
    "ControllerRevision": keys_for_revision,
}


# ---- the loop ------------------------------------------------------------------------------

async def run(store, *, workers: int = 2, resync: float = RESYNC_SECONDS,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    queue: WorkQueue[Key] = WorkQueue()
    async with trio.open_nursery() as nursery:
        for kind, mapper in WATCHED.items():
            await nursery.start(_watch_kind, store, queue, kind, mapper)
        nursery.start_soon(_resync, store, queue, resync)
        for _ in range(workers):
            nursery.start_soon(_worker, store, queue)
        task_status.started()


async def _watch_kind(store, queue: WorkQueue[Key], kind: str, mapper,
                      task_status=trio.TASK_STATUS_IGNORED) -> None:
    started = False
    while True:
        # List + watch from the listed resourceVersion: nothing falls in between.
        since = store.resource_version
        for obj in store.list(kind):
            for key in mapper(store, obj):
                queue.add(key)
        try:
            with store.watch(kind, since=since) as watch:
                if not started:
                    task_status.started()
                    started = True
                async for event in watch:
                    for key in mapper(store, event.object):
                        queue.add(key)
        except Gone:
            continue  # fell behind the kept history: re-list
        return


async def _resync(store, queue: WorkQueue[Key], every: float) -> None:
    while True:
        await trio.sleep(every)
        for sts in store.list(KIND):
            queue.add(keys_for_set(store, sts)[0])


async def _worker(store, queue: WorkQueue[Key]) -> None:
    while True:
        try:
            key = await queue.get()
        except trio.EndOfChannel:
            return
        try:
            again = await reconcile(store, key)
        except ApiError as err:
            log.info("statefulset %s/%s: will retry: %s", *key, err)
            queue.add_rate_limited(key)
        except Exception:
            log.exception("statefulset %s/%s: reconcile crashed; will retry", *key)
            queue.add_rate_limited(key)
        else:
            queue.forget(key)
            if again is not None:
                queue.add_after(key, again)
        finally:
            queue.done(key)
