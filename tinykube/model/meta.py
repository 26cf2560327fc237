"""Facts about objects every layer reads: the JSON shape, times, conditions, pod state.

One home for each: the store stamps times with `now_iso`, the kubelet writes them, and the
controllers and the CLI read them back with `parse_time`; "is this pod ready / available /
being deleted" has one answer here, as in Kubernetes' podutil.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

# An API object, or any part of one, as JSON decodes it.
Obj = dict[str, Any]

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # metav1.Time: RFC 3339, UTC, whole seconds
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


# ---- times ------------------------------------------------------------------------------------

def format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(TIME_FORMAT)


def now_iso() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def parse_time(text: str | None) -> float | None:
    """RFC 3339 (`2026-11-03T10:00:00Z`; fractions and offsets allowed) -> epoch seconds;
    None if unset or unreadable. A time without a zone is taken as UTC."""
    if not text or not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)  # 3.11 reads a trailing "Z"
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# ---- any object -------------------------------------------------------------------------------

def is_being_deleted(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def condition(obj: Obj, type_: str) -> Obj | None:
    """The object's status condition of that type, if it has one."""
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == type_:
            return found
    return None


# ---- pods -------------------------------------------------------------------------------------

def pod_phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_terminal(pod: Obj) -> bool:
    return pod_phase(pod) in TERMINAL_PHASES


def is_active(pod: Obj) -> bool:
    """Kubernetes' IsPodActive: not Succeeded/Failed and not being deleted."""
    return not is_terminal(pod) and not is_being_deleted(pod)


def is_ready(pod: Obj) -> bool:
    """Kubernetes' IsPodReady: the Ready condition is True."""
    ready = condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def is_running_and_ready(pod: Obj) -> bool:
    """The StatefulSet controller's isRunningAndReady."""
    return pod_phase(pod) == "Running" and is_ready(pod)


def ready_since(pod: Obj) -> float | None:
    """When the pod last became ready (None if not ready, or the time is unknown)."""
    ready = condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    return parse_time(ready.get("lastTransitionTime"))


def available_in(pod: Obj, min_ready_seconds: int, now: float) -> float | None:
    """How long until the pod is available (Kubernetes' IsPodAvailable: ready for
    minReadySeconds): 0.0 if it is available now, the seconds left if it is ready but not for
    long enough yet, None if it is not ready (or when it became ready is unknown)."""
    if not is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = ready_since(pod)
    if since is None:
        return None
    return max(0.0, since + min_ready_seconds - now)


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    return available_in(pod, min_ready_seconds, now) == 0.0


# ---- Services ------------------------------------------------------------------------------

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # an EndpointSlice's Service


def owning_service(endpoint_slice: Obj) -> str | None:
    """The name of the Service an EndpointSlice belongs to (its service-name label)."""
    name: str | None = (endpoint_slice["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
    return name


def ipv4_slices_by_service(slices: Iterable[Obj]) -> dict[tuple[str, str], list[Obj]]:
    """(namespace, Service name) -> its IPv4 EndpointSlices: what the proxy and DNS serve."""
    found: dict[tuple[str, str], list[Obj]] = {}
    for endpoint_slice in slices:
        owner = owning_service(endpoint_slice)
        if owner and endpoint_slice.get("addressType", "IPv4") == "IPv4":
            namespace = endpoint_slice["metadata"].get("namespace") or "default"
            found.setdefault((namespace, owner), []).append(endpoint_slice)
    return found
