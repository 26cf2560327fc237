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
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
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
SOURCE = "statefulset-controller"  # the events' component, kubectl's "From"
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
        await store.record_event(sts, "Warning", "InvalidSelector", f"invalid selector: {err}",
                                 source=SOURCE)
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


@dataclass(frozen=True)
class _Step:
    """How one kind of plan action is carried out, and the events that report it (Kubernetes'
    texts: `<verb> <what> <ok>`, `<verb> <what> <fails>: <error>`)."""

    verb: str  # create, update, delete: also the event reasons' Successful<Verb>/Failed<Verb>
    call: Callable[[Store, str, Any], Awaitable[object]]  # (store, namespace, action)
    what: Callable[[Any, str], str] | None  # (action, set name); None: no events at all
    ok: str = "successful"
    fails: str | None = "failed error"  # None: no event when it fails
    done_already: type[ApiError] | None = None  # this error means the outcome is there


def _pod_what(pod: Obj, set_name: str) -> str:
    return f"Pod {pod['metadata']['name']} in StatefulSet {set_name}"


_STEPS: dict[type, _Step] = {
    planlib.CreateClaim: _Step(
        "create", lambda store, ns, a: store.create(a.claim),
        lambda a, set_name: (f"Claim {a.claim['metadata']['name']} Pod {a.pod_name} "
                             f"in StatefulSet {set_name}"),
        ok="success", fails="failure", done_already=AlreadyExists),  # e.g. an earlier pass
    planlib.CreatePod: _Step(
        "create", lambda store, ns, a: store.create(a.pod),
        lambda a, set_name: _pod_what(a.pod, set_name)),
    planlib.DeletePod: _Step(
        "delete", lambda store, ns, a: store.delete("Pod", ns, a.name, uid=a.uid or None),
        lambda a, set_name: f"Pod {a.name} in StatefulSet {set_name}", done_already=NotFound),
    planlib.UpdatePod: _Step(
        "update", lambda store, ns, a: store.update(a.pod),
        lambda a, set_name: _pod_what(a.pod, set_name), fails=None),
    planlib.UpdateClaim: _Step("update", lambda store, ns, a: store.update(a.claim), None),
    planlib.DeleteClaim: _Step(
        "delete", lambda store, ns, a: store.delete("PersistentVolumeClaim", ns, a.name,
                                                    uid=a.uid or None),
        lambda a, set_name: f"Claim {a.name} Pod {a.pod_name} in StatefulSet {set_name}",
        ok="success", fails=None, done_already=NotFound),
}


async def _apply_one(store: Store, sts: Obj, action: planlib.Action) -> None:
    set_name = sts["metadata"]["name"]
    namespace = sts["metadata"].get("namespace", "default")
    step = _STEPS[type(action)]
    what = step.what(action, set_name) if step.what is not None else None
    reason = step.verb.title()
    try:
        await step.call(store, namespace, action)
    except ApiError as err:
        if step.done_already is not None and isinstance(err, step.done_already):
            return
        if what is not None and step.fails is not None:
            await store.record_event(sts, "Warning", f"Failed{reason}",
                                     f"{step.verb} {what} {step.fails}: {err.message}",
                                     source=SOURCE)
        raise
    if isinstance(action, planlib.DeletePod):
        log.info("statefulset %s/%s: deleted pod %s (%s)", namespace, set_name, action.name,
                 action.why)
    if what is not None:
        await store.record_event(sts, "Normal", f"Successful{reason}",
                                 f"{step.verb} {what} {step.ok}", source=SOURCE)


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
