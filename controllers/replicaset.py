"""ReplicaSet and ReplicationController: keep `spec.replicas` active pods running.

One implementation serves both kinds; they differ only in the selector's form (a
ReplicationController's is a plain map, defaulted to the template labels). `plan_replicas` is
the whole decision, pure: from the owner and the namespace's pods it works out which orphans to
adopt, which owned pods to release, how many pods to create, which to delete, and the status.
`reconcile` applies it to the store, as Kubernetes' syncReplicaSet does:

- only *active* pods are claimed and counted (not Succeeded/Failed, no deletionTimestamp): an
  ownerless terminal pod that matches is left alone; terminal owned pods are deleted so they
  get replaced by fresh ones rather than linger;
- creates go in slow-start batches (1, 2, 4, ...) so a template that always fails costs one
  error, not `replicas` errors; at most `BURST_REPLICAS` changes per reconcile;
- scale-down victims come first in Kubernetes' ActivePodsWithRanks order, deletion cost
  and log2 age buckets included (see `compare_victims`);
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
from .eventfilter import changes_only, counted_pod_view

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
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def deletion_cost(pod: Obj) -> int:
    """The pod-deletion-cost annotation (an int32; anything else counts as 0, as Kubernetes'
    GetDeletionCostFromPodAnnotations is read with its error ignored)."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST)
    try:
        value = int(str(text).strip(), 10)
    except ValueError:
        return 0
    return value if -2**31 <= value < 2**31 else 0


def _log2_rank(then: float, now: float) -> int:
    """floor(log2(age in ns)), -1 for no age: ages in the same power-of-two bucket tie."""
    ns = (now - then) * 1e9
    return int(math.log2(ns)) if ns > 0 else -1


def _compare_times(a: float | None, b: float | None, now: float, uid_a: str,
                   uid_b: str) -> int:
    """Newer first, compared in log2 buckets of age (Kubernetes' LogarithmicScaleDown); a
    missing time counts as the newest (afterOrZero); within a bucket the uid decides, which
    spreads scale-downs pseudo-randomly over pods of about the same age."""
    if a is None or b is None:
        return (a is not None) - (b is not None)  # None (zero time) first
    diff = _log2_rank(a, now) - _log2_rank(b, now)
    if diff == 0:
        return (uid_a > uid_b) - (uid_a < uid_b)
    return -1 if diff < 0 else 1


def compare_victims(a: Obj, b: Obj, now: float) -> int:
    """Kubernetes' ActivePodsWithRanks.Less as a cmp: negative when `a` goes first.
    Unassigned < assigned; Pending < Unknown < Running; not ready < ready; lower
    pod-deletion-cost < higher; ready for less time < more (log2 buckets); more restarts <
    fewer; newer < older (log2 buckets). One node, so Kubernetes' "doubled up on a node"
    rank ties for every pod and is left out."""
    def assigned(p: Obj) -> int:
        return 1 if (p.get("spec") or {}).get("nodeName") else 0

    def phase(p: Obj) -> int:
        return _PHASE_RANK.get((p.get("status") or {}).get("phase") or "", 0)

    for key in (assigned, phase, lambda p: 1 if meta.is_ready(p) else 0, deletion_cost):
        ka, kb = key(a), key(b)
        if ka != kb:
            return -1 if ka < kb else 1
    uid_a, uid_b = a["metadata"].get("uid", ""), b["metadata"].get("uid", "")
    if meta.is_ready(a) and meta.is_ready(b):
        ready_a, ready_b = meta.ready_since(a), meta.ready_since(b)
        if ready_a != ready_b:
            return _compare_times(ready_a, ready_b, now, uid_a, uid_b)
    restarts_a, restarts_b = base.restart_count(a), base.restart_count(b)
    if restarts_a != restarts_b:
        return -1 if restarts_a > restarts_b else 1
    created_a = meta.parse_time(a["metadata"].get("creationTimestamp"))
    created_b = meta.parse_time(b["metadata"].get("creationTimestamp"))
    if created_a != created_b:
        return _compare_times(created_a, created_b, now, uid_a, uid_b)
    return (a["metadata"]["name"] > b["metadata"]["name"]) - \
        (a["metadata"]["name"] < b["metadata"]["name"])  # deterministic, for tests


def victims_in_order(pods: list[Obj], now: float) -> list[Obj]:
    """The pods sorted so that those to delete first come first."""
    def compare(a: Obj, b: Obj) -> int:
        return compare_victims(a, b, now)
    return sorted(pods, key=functools.cmp_to_key(compare))


def plan_replicas(owner: Obj, pods: list[Obj], now: float, *,
                  burst: int = BURST_REPLICAS) -> ReplicaPlan:
    """The decision for one ReplicaSet/ReplicationController given every pod in its namespace."""
    if meta.is_being_deleted(owner):
        return ReplicaPlan()
    spec = owner.get("spec") or {}
    matches = base.labels_match(base.selector_for(owner))
    namespace = owner["metadata"].get("namespace") or "default"
    # Kubernetes filters inactive pods out before claiming: an ownerless Succeeded/Failed
    # (or terminating) pod that matches is neither adopted nor deleted. Owned terminal pods
    # stay candidates, to be replaced (`terminal` below).
    candidates = [p for p in pods if (p["metadata"].get("namespace") or "default") == namespace
                  and (meta.is_active(p) or base.is_controlled_by(p, owner))]
    claim = base.classify(owner, candidates, matches)
    mine = claim.owned + claim.adopt
    active = [p for p in mine if meta.is_active(p)]
    terminal = [p for p in mine if meta.is_terminal(p) and not meta.is_being_deleted(p)]

    wanted = int(spec.get("replicas", 1))
    diff = len(active) - wanted
    create = min(-diff, burst) if diff < 0 else 0
    victims = victims_in_order(active, now)[:min(diff, burst)] if diff > 0 else []

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
    # Read-only pods (no copies): planning only reads them; adoption and release re-read
    # the pod they change.
    plan = plan_replicas(owner, store.list("Pod", namespace, copy=False), base.now())
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
    await _delete_pods(store, owner, plan.victims + plan.terminal)
    return True


async def _delete_pods(store: Store, owner: Obj, pods: list[Obj]) -> None:
    """All at once, as Kubernetes' manageReplicas does (a goroutine per pod): one after
    another, each delete waited for its own fsync; together the store commits them in a
    few transactions. The first failure is raised once every delete was tried."""
    failures: list[Exception] = []

    async def delete_one(pod: Obj) -> None:
        try:
            await _delete_pod(store, owner, pod)
        except Exception as exc:  # noqa: BLE001 -- reported (and re-raised) once, below
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        for pod in pods:
            nursery.start_soon(delete_one, pod)
    if failures:
        raise failures[0]


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
                                 f"Created pod: {pod['metadata']['name']}",
                                 source=event_source(owner))

    remaining, batch = count, SLOW_START_INITIAL_BATCH
    while remaining > 0:
        size = min(batch, remaining)
        async with trio.open_nursery() as nursery:
            for _ in range(size):
                nursery.start_soon(create_one)
        if failures:
            await store.record_event(owner, "Warning", "FailedCreate",
                                     f"Error creating: {failures[0]}", source=event_source(owner))
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
                                 f"Error deleting: {exc}", source=event_source(owner))
        raise
    await store.record_event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}",
                             source=event_source(owner))


def event_source(owner: Obj) -> str:
    """Kubernetes' component names, kubectl's "From" column."""
    return "replicaset-controller" if owner["kind"] == "ReplicaSet" else "replication-controller"


# ---- wiring -------------------------------------------------------------------------------

def controller_spec(kind: str) -> ControllerSpec:
    if kind not in KINDS:
        raise ValueError(f"replicaset controller: unsupported kind {kind!r}")
    name = "replicaset" if kind == "ReplicaSet" else "replicationcontroller"
    return ControllerSpec(
        name=name,
        kind=kind,
        reconcile=functools.partial(reconcile, kind=kind),
        # Only pod events that change what is counted (controllers/eventfilter.py).
        watches=[("Pod", changes_only(counted_pod_view, base.owner_keys_for(kind)))],
    )


async def run(store: Store, *, kind: str = "ReplicaSet",
              task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the ReplicaSet (or, with kind="ReplicationController", the RC) controller."""
    await base.run_controller(store, controller_spec(kind), task_status=task_status)
