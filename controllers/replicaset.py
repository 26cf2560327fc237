"""ReplicaSet and ReplicationController: keep `spec.replicas` active pods running.

One implementation serves both kinds; they differ only in the selector's form (a
ReplicationController's is a plain map, defaulted to the template labels). `plan_replicas` is
the whole decision, pure: from the owner and the namespace's pods it works out which orphans to
adopt, which owned pods to release, how many pods to create, which to delete, and the status.
`reconcile` applies it to the store, as Kubernetes' syncReplicaSet does:

- only *active* owned pods count (not Succeeded/Failed, no deletionTimestamp); terminal owned
  pods are deleted so they get replaced by fresh ones rather than linger;
- creates go in slow-start batches (1, 2, 4, ...) so a template that always fails costs one
  error, not `replicas` errors; at most `BURST_REPLICAS` changes per reconcile;
- scale-down victims come first in Kubernetes' ActivePods order (see `victim_rank`);
- status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
  observedGeneration) is written only when it changed; a pod that is ready but not yet ready
  for minReadySeconds makes the reconcile ask to be re-run when it will be.

An owner with a deletionTimestamp is left alone: the garbage collector deals with its pods.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from . import base
from .base import ControllerSpec, Key, Requeue

from tinykube.model import meta
from tinykube.model.errors import NotFound
from tinykube.model.meta import Obj

if TYPE_CHECKING:
    from tinykube.store import Store

KINDS = ("ReplicaSet", "ReplicationController")
BURST_REPLICAS = 500  # Kubernetes' burstReplicas: the most creates/deletes in one sync
SLOW_START_INITIAL_BATCH = 1


@dataclass(frozen=True)
class ReplicaPlan:
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)
    create: int = 0
    victims: list[Obj] = field(default_factory=list)  # scale-down, in deletion order
    terminal: list[Obj] = field(default_factory=list)  # owned Succeeded/Failed pods to delete
    status: Obj | None = None  # the new status; None when unchanged
    requeue_after: float | None = None  # re-check minReadySeconds availability then

    @property
    def changes_pods(self) -> bool:
        return bool(self.adopt or self.release or self.create or self.victims or self.terminal)


# ---- the pure decision --------------------------------------------------------------------

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def victim_rank(pod: Obj) -> tuple[Any, ...]:
    """Sort key: pods that sort first are deleted first (Kubernetes' ActivePods.Less):
    unassigned < assigned; Pending < Unknown < Running; not ready < ready; ready for a shorter
    time first; more restarts first; newer first. A missing time counts as the newest, as in
    Kubernetes' afterOrZero. The name breaks remaining ties so the order is deterministic."""
    spec = pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase") or ""
    ready = meta.is_ready(pod)
    ready_at = meta.ready_since(pod) if ready else None
    created = meta.parse_time(pod["metadata"].get("creationTimestamp"))
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_RANK.get(phase, 0),
        1 if ready else 0,
        -(ready_at if ready_at is not None else math.inf) if ready else 0.0,
        -base.restart_count(pod),
        -(created if created is not None else math.inf),
        pod["metadata"]["name"],
    )


def plan_replicas(owner: Obj, pods: list[Obj], now: float, *,
                  burst: int = BURST_REPLICAS) -> ReplicaPlan:
    """The decision for one ReplicaSet/ReplicationController given every pod in its namespace."""
    if meta.is_being_deleted(owner):
        return ReplicaPlan()
    spec = owner.get("spec") or {}
    matches = base.labels_match(base.selector_for(owner))
    namespace = owner["metadata"].get("namespace") or "default"
    candidates = [p for p in pods if (p["metadata"].get("namespace") or "default") == namespace]
    claim = base.classify(owner, candidates, matches)
    mine = claim.owned + claim.adopt
    active = [p for p in mine if meta.is_active(p)]
    terminal = [p for p in mine if meta.is_terminal(p) and not meta.is_being_deleted(p)]

    wanted = int(spec.get("replicas", 1))
    diff = len(active) - wanted
    create = min(-diff, burst) if diff < 0 else 0
    victims = sorted(active, key=victim_rank)[:min(diff, burst)] if diff > 0 else []

    min_ready = int(spec.get("minReadySeconds") or 0)
    status = compute_status(owner, active, min_ready, now)
    waits = [w for p in active if (w := meta.available_in(p, min_ready, now))]  # not yet
    return ReplicaPlan(
        adopt=claim.adopt,
        release=claim.release,
        create=create,
        victims=victims,
        terminal=terminal,
        status=status if status != (owner.get("status") or {}) else None,
        requeue_after=min(waits) if waits else None,
    )


def compute_status(owner: Obj, active: list[Obj], min_ready: int, now: float) -> Obj:
    """Status over the active owned pods; fields we do not own (conditions) are kept."""
    template_labels = (((owner.get("spec") or {}).get("template") or {}).get("metadata")
                       or {}).get("labels") or {}

    def fully_labeled(pod: Obj) -> bool:
        pod_labels = pod["metadata"].get("labels") or {}
        return all(pod_labels.get(k) == v for k, v in template_labels.items())

    status = dict(owner.get("status") or {})
    status.update(
        replicas=len(active),
        fullyLabeledReplicas=sum(1 for p in active if fully_labeled(p)),
        readyReplicas=sum(1 for p in active if meta.is_ready(p)),
        availableReplicas=sum(1 for p in active if meta.is_available(p, min_ready, now)),
        observedGeneration=owner["metadata"].get("generation", 1),
    )
    return status


# ---- the actuator -------------------------------------------------------------------------

async def reconcile(store: Store, key: Key, *, kind: str) -> Requeue | None:
    namespace, name = key
    owner = store.try_get(kind, namespace, name)
    if owner is None:
        return None  # deleted: the garbage collector handles its pods
    plan = plan_replicas(owner, store.list("Pod", namespace), base.now())
    # Status describes the pods as found, as in Kubernetes: the events of the pods changed
    # here bring the key back, and that pass (which has to list the pods anyway) updates it.
    if plan.changes_pods and not await _apply_pod_changes(store, owner, plan):
        return Requeue(0)  # an adoption lost a race: decide again on fresh state
    if plan.status is not None:
        owner["status"] = plan.status
        await store.update_status(owner)
    if plan.requeue_after is not None:
        return Requeue(plan.requeue_after)
    return None


async def _apply_pod_changes(store: Store, owner: Obj, plan: ReplicaPlan) -> bool:
    """Apply adoption, release, creates and deletes; False if an adoption lost a race."""
    matches = base.labels_match(base.selector_for(owner))
    for pod in plan.release:
        await base.release(store, owner, pod)
    adopted_all = True
    for pod in plan.adopt:
        if await base.adopt(store, owner, pod, matches) is None:
            adopted_all = False
    if not adopted_all:
        return False
    if plan.create:
        await _create_pods(store, owner, plan.create)
    for pod in plan.victims + plan.terminal:
        await _delete_pod(store, owner, pod)
    return True


async def _create_pods(store: Store, owner: Obj, count: int) -> None:
    """Slow start: batches of 1, 2, 4, ...; stop after the first batch with a failure."""
    template = owner["spec"].get("template") or {}
    failures: list[Exception] = []

    async def create_one() -> None:
        try:
            pod = await base.create_pod(store, owner, template)
        except Exception as exc:  # noqa: BLE001 -- reported (and re-raised) once per batch
            failures.append(exc)
            return
        await store.record_event(owner, "Normal", "SuccessfulCreate",
                                 f"Created pod: {pod['metadata']['name']}")

    remaining, batch = count, SLOW_START_INITIAL_BATCH
    while remaining > 0:
        size = min(batch, remaining)
        async with trio.open_nursery() as nursery:
            for _ in range(size):
                nursery.start_soon(create_one)
        if failures:
            await store.record_event(owner, "Warning", "FailedCreate",
                                     f"Error creating: {failures[0]}")
            raise failures[0]
        remaining -= size
        batch *= 2


async def _delete_pod(store: Store, owner: Obj, pod: Obj) -> None:
    meta = pod["metadata"]
    try:
        await store.delete("Pod", meta.get("namespace") or "default", meta["name"],
                           uid=meta["uid"])
    except NotFound:
        return  # already gone: that is what we wanted
    except Exception as exc:
        await store.record_event(owner, "Warning", "FailedDelete",
                                 f"Error deleting: {exc}")
        raise
    await store.record_event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")


# ---- wiring -------------------------------------------------------------------------------

def controller_spec(kind: str) -> ControllerSpec:
    if kind not in KINDS:
        raise ValueError(f"replicaset controller: unsupported kind {kind!r}")
    name = "replicaset" if kind == "ReplicaSet" else "replicationcontroller"
    return ControllerSpec(
        name=name,
        kind=kind,
        reconcile=functools.partial(reconcile, kind=kind),
        watches=[("Pod", base.owner_keys_for(kind))],
    )


async def run(store: Store, *, kind: str = "ReplicaSet",
              task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the ReplicaSet (or, with kind="ReplicationController", the RC) controller."""
    await base.run_controller(store, controller_spec(kind), task_status=task_status)
