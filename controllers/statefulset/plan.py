"""The StatefulSet decision: from (set, its pods, its claims, its revisions) to a plan.

Pure: plain dicts in, a `Plan` (ordered actions + the status to report) out. The async part in
`controller.py` applies it. One call mirrors one pass of Kubernetes' updateStatefulSet
(pkg/controller/statefulset/stateful_set_control.go):

1. Replicas 0..n-1 in ordinal order. A missing ordinal is created (its claims first); a Failed
   or Succeeded pod is deleted so the next pass recreates it under the same name; a pod with the
   wrong hostname/subdomain/storage is deleted to be recreated; wrong identity labels are fixed
   in place. Under OrderedReady ("monotonic") the pass stops at the first ordinal that is
   missing, terminating, or not Running+Ready(+available): so ordinal i is created only after
   0..i-1 are healthy. Under Parallel nothing waits.
2. Condemned pods (ordinal >= n), highest first (reached under OrderedReady only when every
   kept ordinal is healthy). OrderedReady deletes one per pass and waits while it terminates;
   a condemned pod that is not Ready is deleted only if it is the first (lowest) unhealthy pod,
   so one crash-looping pod alone cannot stall the scale-down; otherwise the pass waits.
   Parallel deletes them all at once.
3. Updates. OnDelete: nothing (deleted pods come back at the update revision through step 1).
   RollingUpdate: when every replica is healthy, delete the highest ordinal >= partition whose
   revision is not the update revision; its replacement (step 1 of a later pass) must be Ready
   before the next one goes. Ordinals < partition are created at the *current* revision.

Claims under whenScaled=Delete are deleted once no pod of their ordinal exists; claim owner
references follow whenDeleted (see claims.py). Status counts existing pods as Kubernetes does,
and the rollout completes (currentRevision := updateRevision) when all pods are updated+Ready.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from . import claims as claimlib
from . import identity as ident

from tinykube.model import meta
from tinykube.model.meta import Obj

ORDERED_READY, PARALLEL = "OrderedReady", "Parallel"
ROLLING_UPDATE, ON_DELETE = "RollingUpdate", "OnDelete"


# ---- actions -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CreateClaim:
    claim: Obj
    pod_name: str


@dataclass(frozen=True)
class UpdateClaim:
    claim: Obj  # the claim with ownerReferences set per the retention policy


@dataclass(frozen=True)
class DeleteClaim:
    name: str
    uid: str
    pod_name: str


@dataclass(frozen=True)
class CreatePod:
    pod: Obj


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str
    why: str  # "failed", "scale down", "update", "identity" (for logs and tests)


@dataclass(frozen=True)
class UpdatePod:
    pod: Obj


Action = CreateClaim | UpdateClaim | DeleteClaim | CreatePod | DeletePod | UpdatePod


@dataclass(frozen=True)
class Revision:
    name: str
    template: Obj


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    requeue_after: float | None = None  # seconds, when waiting on minReadySeconds

    def of_type(self, kind: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]


# ---- the set's settings, with Kubernetes' defaults ------------------------------------------

@dataclass(frozen=True)
class Settings:
    replicas: int
    policy: str
    strategy: str
    partition: int
    min_ready_seconds: int

    @classmethod
    def of(cls, sts: Obj) -> Settings:
        spec = sts.get("spec", {})
        strategy = spec.get("updateStrategy") or {}
        replicas = spec.get("replicas")
        return cls(
            replicas=1 if replicas is None else int(replicas),
            policy=spec.get("podManagementPolicy") or ORDERED_READY,
            strategy=strategy.get("type") or ROLLING_UPDATE,
            partition=int((strategy.get("rollingUpdate") or {}).get("partition") or 0),
            min_ready_seconds=int(spec.get("minReadySeconds") or 0),
        )


# ---- pod health (Kubernetes' podutil, tinykube/model/meta.py) -------------------------------

def available_in(pod: Obj, min_ready_seconds: int, now: float) -> float | None:
    """meta.available_in for a Running pod (the StatefulSet controller's isRunningAndAvailable);
    None for a pod in any other phase."""
    if meta.pod_phase(pod) != "Running":
        return None
    return meta.available_in(pod, min_ready_seconds, now)


def is_healthy(pod: Obj | None, min_ready_seconds: int, now: float) -> bool:
    return (pod is not None and not meta.is_being_deleted(pod)
            and available_in(pod, min_ready_seconds, now) == 0.0)


# ---- the plan ----------------------------------------------------------------------------

def decide(sts: Obj, pods: list[Obj], claims: dict[str, Obj], current: Revision,
           update: Revision, collision_count: int, now: float) -> Plan:
    """One reconcile pass (see module docstring). `pods` are the set's own pods, `claims` the
    namespace's PersistentVolumeClaims by name, `now` epoch seconds."""
    return _Planner(sts, pods, claims, current, update, collision_count, now).run()


class _Planner:
    def __init__(self, sts: Obj, pods: list[Obj], claims: dict[str, Obj], current: Revision,
                 update: Revision, collision_count: int, now: float) -> None:
        self.sts = sts
        self.settings = Settings.of(sts)
        self.claims = claims
        self.current = current
        self.update = update
        self.collision_count = collision_count
        self.now = now
        self.plan = Plan()
        self.monotonic = self.settings.policy != PARALLEL
        n = self.settings.replicas
        self.pods = [p for p in pods if ident.ordinal_of(p) >= 0]
        self.replicas: list[Obj | None] = [None] * n
        self.condemned: list[Obj] = []
        for pod in self.pods:
            ordinal = ident.ordinal_of(pod)
            if ordinal < n:
                self.replicas[ordinal] = pod
            else:
                self.condemned.append(pod)
        self.condemned.sort(key=ident.ordinal_of, reverse=True)

    # -- driver

    def run(self) -> Plan:
        self.plan.status = self._status()
        if meta.is_being_deleted(self.sts):
            return self.plan  # the GC is taking it apart: only report
        self._claim_retention()
        if self._replicas() and self.monotonic:
            return self._finish()
        if self._condemned() and self.monotonic:
            return self._finish()
        if self.settings.strategy == ROLLING_UPDATE:
            self._rolling_update()
        return self._finish()

    def _finish(self) -> Plan:
        _complete_rolling_update(self.settings, self.plan.status)
        return self.plan

    # -- step 1: replicas in ordinal order; True means "wait"

    def _replicas(self) -> bool:
        blocked = False
        for ordinal, pod in enumerate(self.replicas):
            if self._process_replica(ordinal, pod):
                blocked = True
                if self.monotonic:
                    return True
        return blocked

    def _process_replica(self, ordinal: int, pod: Obj | None) -> bool:
        if pod is None:
            self._create(ordinal)
            return True
        if meta.pod_phase(pod) in ("Failed", "Succeeded"):
            # The next pass recreates it under the same name once it is gone from the store.
            if not meta.is_being_deleted(pod):
                self._delete(pod, "failed")
            return True
        if meta.is_being_deleted(pod):
            return True
        if meta.pod_phase(pod) in ("", "Pending"):
            self._create_missing_claims(ordinal, pod["metadata"]["name"])
        wait = available_in(pod, self.settings.min_ready_seconds, self.now)
        if wait is None:
            return True
        if wait > 0:
            self._requeue(wait)
            return True
        if not ident.network_matches(self.sts, pod) or not ident.storage_matches(self.sts, pod):
            self._delete(pod, "identity")
            return True
        if not ident.identity_matches(self.sts, pod):
            self.plan.actions.append(UpdatePod(ident.fix_identity(self.sts, pod)))
        return False

    def _create(self, ordinal: int) -> None:
        name = ident.pod_name(self.sts["metadata"]["name"], ordinal)
        if self._stale_claim(ordinal):
            return  # a claim of this ordinal is still being deleted: wait for it to go
        self._create_missing_claims(ordinal, name)
        revision = self._revision_for(ordinal)
        self.plan.actions.append(
            CreatePod(ident.new_pod(self.sts, revision.template, revision.name, ordinal)))

    def _revision_for(self, ordinal: int) -> Revision:
        """Kubernetes' newVersionedStatefulSetPod: below the partition, the current revision."""
        if self.settings.strategy == ROLLING_UPDATE and ordinal < self.settings.partition:
            return self.current
        return self.update

    def _claim_names(self, ordinal: int) -> list[tuple[Obj, str]]:
        set_name = self.sts["metadata"]["name"]
        return [(t, claimlib.claim_name(t["metadata"]["name"], set_name, ordinal))
                for t in ident.claim_templates(self.sts)]

    def _stale_claim(self, ordinal: int) -> bool:
        return any(
            name in self.claims and meta.is_being_deleted(self.claims[name])
            for _, name in self._claim_names(ordinal))

    def _create_missing_claims(self, ordinal: int, pod_name: str) -> None:
        for template, name in self._claim_names(ordinal):
            if name not in self.claims:
                claim = claimlib.new_claim(self.sts, template, ordinal)
                self.plan.actions.append(CreateClaim(claim, pod_name))
                self.claims = {**self.claims, name: claim}  # once per pass

    # -- step 2: condemned pods, highest ordinal first

    def _condemned(self) -> bool:
        """Parallel deletes every condemned pod; OrderedReady handles only the highest one."""
        first_unhealthy = self._first_unhealthy()
        for pod in self.condemned:
            if meta.is_being_deleted(pod):
                if self.monotonic:
                    return True  # wait until it is gone before the next one
                continue
            ready = available_in(pod, self.settings.min_ready_seconds, self.now) == 0.0
            if self.monotonic and not ready and pod is not first_unhealthy:
                return True
            self._delete(pod, "scale down")
            if self.monotonic:
                return True
        return bool(self.condemned)

    def _first_unhealthy(self) -> Obj | None:
        ms, now = self.settings.min_ready_seconds, self.now
        for pod in self.replicas + sorted(self.condemned, key=ident.ordinal_of):
            if not is_healthy(pod, ms, now):
                return pod
        return None

    # -- step 3: rolling update

    def _rolling_update(self) -> None:
        ms, now = self.settings.min_ready_seconds, self.now
        if any(not is_healthy(p, ms, now) for p in self.replicas):
            return  # one pod down at a time: the previous replacement must be Ready first
        for ordinal in range(len(self.replicas) - 1, self.settings.partition - 1, -1):
            pod = self.replicas[ordinal]
            assert pod is not None
            if ident.pod_revision(pod) != self.update.name:
                self._delete(pod, "update")
                self.plan.status["currentReplicas"] -= 1
                return

    # -- claims

    def _claim_retention(self) -> None:
        policy = claimlib.RetentionPolicy.of(self.sts)
        live_ordinals = {ident.ordinal_of(p) for p in self.pods}
        for name in sorted(self.claims):
            claim = self.claims[name]
            parsed = claimlib.parse_claim(self.sts, name)
            if parsed is None or meta.is_being_deleted(claim):
                continue
            _, ordinal = parsed
            if (policy.when_scaled == claimlib.DELETE and ordinal >= self.settings.replicas
                    and ordinal not in live_ordinals):
                self.plan.actions.append(DeleteClaim(
                    name, claim["metadata"].get("uid", ""),
                    ident.pod_name(self.sts["metadata"]["name"], ordinal)))
                continue
            refs = claimlib.owner_refs_for_policy(self.sts, claim)
            if refs is not None:
                fixed = copy.deepcopy(claim)
                fixed["metadata"]["ownerReferences"] = refs
                self.plan.actions.append(UpdateClaim(fixed))

    # -- helpers

    def _delete(self, pod: Obj, why: str) -> None:
        meta = pod["metadata"]
        self.plan.actions.append(DeletePod(meta["name"], meta.get("uid", ""), why))

    def _requeue(self, seconds: float) -> None:
        current = self.plan.requeue_after
        self.plan.requeue_after = seconds if current is None else min(current, seconds)

    def _status(self) -> Obj:
        sts = self.sts
        ms, now = self.settings.min_ready_seconds, self.now
        status = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": 0,
            "readyReplicas": 0,
            "currentReplicas": 0,
            "updatedReplicas": 0,
            "availableReplicas": 0,
            "currentRevision": self.current.name,
            "updateRevision": self.update.name,
            "collisionCount": self.collision_count,
        }
        for pod in self.pods:
            status["replicas"] += 1
            if meta.is_running_and_ready(pod):
                status["readyReplicas"] += 1
                wait = available_in(pod, ms, now)
                if wait == 0.0:
                    status["availableReplicas"] += 1
                elif wait is not None:
                    self._requeue(wait)
            if not meta.is_being_deleted(pod):
                revision = ident.pod_revision(pod)
                status["currentReplicas"] += revision == self.current.name
                status["updatedReplicas"] += revision == self.update.name
        return status


def _complete_rolling_update(settings: Settings, status: Obj) -> None:
    """Kubernetes' completeRollingUpdate: all pods updated and Ready ends the rollout."""
    if (settings.strategy == ROLLING_UPDATE and status["updatedReplicas"] == status["replicas"]
            and status["readyReplicas"] == status["replicas"]):
        status["currentReplicas"] = status["updatedReplicas"]
        status["currentRevision"] = status["updateRevision"]


def status_changed(sts: Obj, status: Obj) -> bool:
    old = sts.get("status") or {}
    return any(old.get(k) != v for k, v in status.items())


def merged_status(sts: Obj, status: Obj) -> Obj:
    """The set's status with our fields replaced (fields others own, e.g. conditions, kept)."""
    return {**(sts.get("status") or {}), **status}
