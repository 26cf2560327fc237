"""When is an object "Ready" for a test: pure functions over the object as the API returns it.

A Pod is Ready when its Ready condition is True. Workloads have no Ready condition in
Kubernetes, so "Ready" means what `kubectl rollout status` waits for: a Deployment or
StatefulSet rolled out (tinykube.cli.rollout's status viewers), a ReplicaSet or
ReplicationController with every replica ready. Other kinds (Service, ConfigMap, ...) are
ready once they exist.
"""

from __future__ import annotations

from typing import Any

from tinykube.cli.rollout import RolloutError, status_of


def has_condition(obj: dict[str, Any], cond: str, value: str = "True") -> bool:
    """Condition `cond` (any case, as kubectl wait) has status `value`."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if str(c.get("type", "")).lower() == cond.lower():
            return str(c.get("status", "")).lower() == value.lower()
    return False


def is_ready(obj: dict[str, Any]) -> bool:
    kind = obj.get("kind")
    if kind == "Pod":
        return has_condition(obj, "Ready")
    if kind in ("Deployment", "StatefulSet"):
        try:
            return status_of(obj)[1]
        except RolloutError:  # an OnDelete StatefulSet has no rollout: ready when its pods are
            return _replicas_ready(obj)
    if kind in ("ReplicaSet", "ReplicationController"):
        return _replicas_ready(obj)
    return True


def _replicas_ready(obj: dict[str, Any]) -> bool:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = 1 if spec.get("replicas") is None else int(spec["replicas"])
    observed = status.get("observedGeneration", 0)
    return (observed >= obj["metadata"].get("generation", 0)
            and status.get("readyReplicas", 0) >= want and status.get("replicas", 0) == want)


def why_not_ready(obj: dict[str, Any]) -> str:
    """One line for a report: the rollout message or the pod's phase and reasons."""
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet"):
        try:
            return status_of(obj)[0]
        except RolloutError as e:
            return str(e)
    status = obj.get("status") or {}
    if kind == "Pod":
        waiting = [f"{cs.get('name')}: {_state_reason(cs)}"
                   for cs in status.get("containerStatuses") or [] if not cs.get("ready")]
        return f"phase {status.get('phase', 'Pending')}" + (f" ({', '.join(waiting)})"
                                                           if waiting else "")
    return f"{status.get('readyReplicas', 0)} of {(obj.get('spec') or {}).get('replicas', 1)} ready"


def _state_reason(container_status: dict[str, Any]) -> str:
    for state in (container_status.get("state") or {}).values():  # one of waiting/running/...
        return str((state or {}).get("reason") or "not ready")
    return "not ready"
