"""The StatefulSet controller's async side: watch, queue, reconcile, apply.

`run` hands `controller_spec()` to the shared loop (controllers/base.py): it watches StatefulSets,
Pods, PersistentVolumeClaims and ControllerRevisions and turns each event into the key
`(namespace, set name)` of the set it concerns. `reconcile` reads everything afresh from the
store (level-triggered: the event itself is never trusted), adopts/releases pods, syncs the
revisions, asks `plan.decide` what to do, applies the actions in order, writes the status if it
changed and prunes history. A failed reconcile is retried with back-off by the shared loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from .. import base
from . import claims as claimlib
from . import plan as planlib
from . import revisions as revlib
from .identity import (
    POD_NAME_LABEL,
    claim_templates,
    is_member,
    ordinal_of,
    parent_and_ordinal,
)

from tinykube.model import meta
from tinykube.model.errors import AlreadyExists, ApiError, Conflict, NotFound
from tinykube.model.meta import Obj

if TYPE_CHECKING:
    from tinykube import labels
    from tinykube.store import Store

log = logging.getLogger("tinykube.controllers.statefulset")

KIND = "StatefulSet"
Key = tuple[str, str]


# ---- reconcile -----------------------------------------------------------------------------

async def reconcile(store: Store, key: Key, *, now: float | None = None) -> base.Requeue | None:
    """Bring one set's pods, claims, revisions and status in line. Returns a Requeue when
    waiting on minReadySeconds. Raises ApiError for a retry with back-off."""
    namespace, name = key
    sts = store.try_get(KIND, namespace, name)
    if sts is None or meta.is_being_deleted(sts):
        return None  # its pods/claims/revisions are the garbage collector's business
    try:
        selector = base.selector_for(sts)
    except ValueError as err:
        await store.record_event(sts, "Warning", "InvalidSelector", f"invalid selector: {err}")
        return None

    owned = await _claim_pods(store, sts, selector)

    await _adopt_orphan_revisions(store, sts, selector)
    revisions = revlib.owned_revisions(store, sts)
    revs = await revlib.sync_revisions(store, sts, revisions)
    claims = _claims(store, sts, owned)
    plan = planlib.decide(
        sts, owned, claims,
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
    await revlib.prune_history(store, sts, owned, revisions,
                               {revs.current["metadata"]["name"], revs.update["metadata"]["name"]})
    if failure is not None:
        raise failure
    return None if plan.requeue_after is None else base.Requeue(plan.requeue_after)


async def _claim_pods(store: Store, sts: Obj, selector: labels.Selector) -> list[Obj]:
    """The set's pods after adopting matching orphans and releasing non-matching ones. A pod
    is a candidate only if it matches the selector *and* is named like one of our ordinals."""
    def matches(pod: Obj) -> bool:
        return is_member(sts, pod) and selector.matches(pod["metadata"].get("labels") or {})

    namespace = sts["metadata"].get("namespace", "default")
    set_prefix = sts["metadata"]["name"] + "-"

    def candidate(pod_labels: Obj) -> bool:
        # Filter before the store copies anything: a reconcile per pod event must not copy
        # every pod of the namespace. Our pods keep their pod-name label even when relabelled
        # out of the selector, so they are still seen (and released).
        return (pod_labels.get(POD_NAME_LABEL, "").startswith(set_prefix)
                or selector.matches(pod_labels))

    claim = base.classify(sts, store.list("Pod", namespace, selector=candidate), matches)
    owned = list(claim.owned)
    for orphan in claim.adopt:
        adopted = await base.adopt(store, sts, orphan, matches)
        if adopted is not None:
            owned.append(adopted)
    for pod in claim.release:
        await base.release(store, sts, pod)
    return owned


def _claims(store: Store, sts: Obj, pods: list[Obj]) -> dict[str, Obj]:
    """The set's claims by name: the ones its ordinals need (looked up by name, so a claim
    made beforehand by hand is found too) and, for whenScaled=Delete, every claim labelled
    as the set's, so those of removed ordinals are found."""
    namespace = sts["metadata"].get("namespace", "default")
    set_name = sts["metadata"]["name"]
    replicas = planlib.Settings.of(sts).replicas
    highest = max([replicas - 1, *(ordinal_of(p) for p in pods)])
    found: dict[str, Obj] = {}
    for template in claim_templates(sts):
        for ordinal in range(highest + 1):
            name = claimlib.claim_name(template["metadata"]["name"], set_name, ordinal)
            claim = store.try_get("PersistentVolumeClaim", namespace, name)
            if claim is not None:
                found[name] = claim
    if claimlib.RetentionPolicy.of(sts).when_scaled == claimlib.DELETE:
        wanted = claimlib.claim_selector_labels(sts)

        def ours(claim_labels: Obj) -> bool:
            return all(claim_labels.get(k) == v for k, v in wanted.items())

        for claim in store.list("PersistentVolumeClaim", namespace, selector=ours):
            if claimlib.parse_claim(sts, claim["metadata"]["name"]) is not None:
                found.setdefault(claim["metadata"]["name"], claim)
    return found


async def _adopt_orphan_revisions(store: Store, sts: Obj, selector: labels.Selector) -> None:
    """Revisions orphaned by `delete --cascade=orphan` go back to a new set of the same
    selector (Kubernetes' AdoptOrphanRevisions), so its history and numbering carry on."""
    matches = base.labels_match(selector)
    namespace = sts["metadata"].get("namespace", "default")
    for orphan in base.classify(sts, store.list(revlib.KIND, namespace), matches).adopt:
        await base.adopt(store, sts, orphan, matches)


async def apply(store: Store, sts: Obj, plan: planlib.Plan) -> None:
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


async def _apply_one(store: Store, sts: Obj, action: planlib.Action) -> None:
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
            await event(sts, "Warning", "FailedCreate",
                        f"create {what} failed error: {err.message}")
            raise
        await event(sts, "Normal", "SuccessfulCreate", f"create {what} successful")
    elif isinstance(action, planlib.DeletePod):
        what = f"Pod {action.name} in StatefulSet {set_name}"
        try:
            await store.delete("Pod", namespace, action.name, uid=action.uid or None)
        except NotFound:
            return
        except ApiError as err:
            await event(sts, "Warning", "FailedDelete",
                        f"delete {what} failed error: {err.message}")
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

def keys_for_pod(store: Store, event_type: str, pod: Obj) -> Iterable[Key]:
    ref = base.controller_ref(pod)
    namespace = pod["metadata"].get("namespace", "default")
    if ref is not None:
        return [(namespace, ref["name"])] if ref.get("kind") == KIND else []
    # An orphan named like one of a set's ordinals may be adopted by that set.
    parent, ordinal = parent_and_ordinal(pod["metadata"]["name"])
    if ordinal >= 0 and store.try_get(KIND, namespace, parent) is not None:
        return [(namespace, parent)]
    return []


def keys_for_claim(store: Store, event_type: str, claim: Obj) -> Iterable[Key]:
    namespace = claim["metadata"].get("namespace", "default")
    return [(namespace, s["metadata"]["name"]) for s in store.list(KIND, namespace)
            if claimlib.parse_claim(s, claim["metadata"]["name"]) is not None]


def keys_for_revision(store: Store, event_type: str, revision: Obj) -> Iterable[Key]:
    ref = base.controller_ref(revision)
    if ref is None or ref.get("kind") != KIND:
        return []
    return [(revision["metadata"].get("namespace", "default"), ref["name"])]


def controller_spec() -> base.ControllerSpec:
    return base.ControllerSpec(
        name="statefulset",
        kind=KIND,
        reconcile=reconcile,
        watches=[("Pod", keys_for_pod), ("PersistentVolumeClaim", keys_for_claim),
                 ("ControllerRevision", keys_for_revision)],
    )


async def run(store: Store, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    await base.run_controller(store, controller_spec(), task_status=task_status)
