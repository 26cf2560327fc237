"""The Deployment controller's vocabulary: spec defaults, surge/unavailable arithmetic, the
pod-template hash, revisions and annotations, conditions, and the per-ReplicaSet counts.

Everything here is pure (plain dicts in, values out), after Kubernetes'
pkg/controller/deployment/util/deployment_util.go.

One deliberate difference: Kubernetes reads pod counts from each ReplicaSet's `status`, which
lags the pods by a reconcile of the ReplicaSet controller. tinykube's store is in-process and
always current, so the controller counts the pods themselves (`RSState.actual/ready/
available`); the surge and availability bounds then hold at every instant, not only once the
ReplicaSet statuses have caught up.
"""

from __future__ import annotations

import copy
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..hashing import canonical_json, hash_string

from tinykube.model import meta
from tinykube.model.meta import Obj

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# Annotations that describe one ReplicaSet's place in the rollout, never copied between a
# Deployment and its ReplicaSets (annotationsToSkip in Kubernetes).
ANNOTATIONS_TO_SKIP = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                                 MAX_REPLICAS})

ROLLING, RECREATE = "RollingUpdate", "Recreate"
DEFAULT_SURGE = DEFAULT_UNAVAILABLE = "25%"
DEFAULT_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE = 600
NO_DEADLINE = 2**31 - 1  # Kubernetes treats MaxInt32 as "no deadline"

# Condition types and reasons (deployment_util.go).
AVAILABLE, PROGRESSING = "Available", "Progressing"
MIN_AVAILABLE, MIN_UNAVAILABLE = "MinimumReplicasAvailable", "MinimumReplicasUnavailable"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED, RESUMED = "DeploymentPaused", "DeploymentResumed"


# ---- spec with defaults -------------------------------------------------------------------

def replicas(d: Obj) -> int:
    value = (d.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def strategy_type(d: Obj) -> str:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type") or ROLLING


def is_rolling(d: Obj) -> bool:
    return strategy_type(d) == ROLLING


def min_ready_seconds(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("minReadySeconds") or 0)


def revision_history_limit(d: Obj) -> int:
    value = (d.get("spec") or {}).get("revisionHistoryLimit")
    return DEFAULT_HISTORY_LIMIT if value is None else int(value)


def progress_deadline(d: Obj) -> int | None:
    """Seconds, or None when the deployment has no deadline."""
    spec = d.get("spec") or {}
    value = spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
    if value is None or int(value) >= NO_DEADLINE:
        return None
    return int(value)


def paused(d: Obj) -> bool:
    return bool((d.get("spec") or {}).get("paused"))


# ---- maxSurge / maxUnavailable ------------------------------------------------------------

def scaled_value(value: int | str, total: int, round_up: bool, name: str) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "N%" of total rounded."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1], 10)
        except ValueError:
            raise ValueError(f"{name}: invalid value {value!r}: "
                             "a percentage must be an integer followed by %") from None
        product = percent * total
        # Integer arithmetic: a float ceil of 0.29*100 would give 29.000000000000004 -> 30.
        return -(-product // 100) if round_up else product // 100
    raise ValueError(f"{name}: invalid value {value!r}: "
                     'must be an integer or a percentage such as "25%"')


def _is_zero(value: int | str) -> bool:
    return value == 0 or (isinstance(value, str) and value.strip() in ("0%", "0"))


def resolve_fenceposts(max_surge: int | str, max_unavailable: int | str,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable) for `desired` replicas: surge rounds up, unavailable rounds down.

    Both given as zero is invalid (no rollout could ever make progress). If only rounding made
    both zero (e.g. 1 replica, 25%/25% would be 1/0; 1%/1% on 2 replicas is 1/0 too), Kubernetes
    allows one unavailable pod: a surge might be blocked by quota, an unavailable pod never is.
    """
    if _is_zero(max_surge) and _is_zero(max_unavailable):
        raise ValueError("maxUnavailable: may not be 0 when maxSurge is 0")
    surge = scaled_value(max_surge, desired, True, "maxSurge")
    unavailable = scaled_value(max_unavailable, desired, False, "maxUnavailable")
    if surge < 0 or unavailable < 0:
        raise ValueError("maxSurge and maxUnavailable must be non-negative")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def rolling_params(d: Obj) -> tuple[int | str, int | str]:
    rolling = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    surge = rolling.get("maxSurge")
    unavailable = rolling.get("maxUnavailable")
    return (DEFAULT_SURGE if surge is None else surge,
            DEFAULT_UNAVAILABLE if unavailable is None else unavailable)


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    return resolve_fenceposts(*rolling_params(d), replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    return resolve_fenceposts(*rolling_params(d), replicas(d))[1]


# ---- the pod-template hash ----------------------------------------------------------------

def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """Stable hash of a pod template (without its own hash label), as the RS name suffix.

    FNV-32a over canonical JSON (sorted keys), plus the collision count as 4 little-endian
    bytes when set (as ComputeHash does), encoded digit by digit in a vowel-free alphabet.
    """
    template = strip_hash_label(template)
    data = canonical_json(template)
    if collision_count is not None:
        data += struct.pack("<I", int(collision_count) & 0xFFFFFFFF)
    return hash_string(data)


def strip_hash_label(template: Obj) -> Obj:
    template = copy.deepcopy(template or {})
    labels = (template.get("metadata") or {}).get("labels")
    if labels and HASH_LABEL in labels:
        del labels[HASH_LABEL]
    return template


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    """Two pod templates are the same revision when they differ at most in the hash label."""
    return _normal(strip_hash_label(a)) == _normal(strip_hash_label(b))


def _normal(template: Obj) -> Obj:
    # An empty labels/annotations map and a missing one are the same template.
    meta = template.get("metadata")
    if isinstance(meta, dict):
        for key in ("labels", "annotations"):
            if key in meta and not meta[key]:
                del meta[key]
        if not meta:
            del template["metadata"]
    return template


# ---- revisions and annotations ------------------------------------------------------------

def annotations_of(obj: Obj) -> dict[str, str]:
    """The object's annotations map, created if missing (callers write into it)."""
    found: dict[str, str] = obj.setdefault("metadata", {}).setdefault("annotations", {})
    return found


def revision(obj: Obj) -> int:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def int_annotation(obj: Obj, key: str) -> int | None:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    """Carry the deployment's annotations (change-cause, ...) to its new RS; True if changed."""
    changed = False
    rs_annotations = annotations_of(rs)
    for key, value in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if key in ANNOTATIONS_TO_SKIP or rs_annotations.get(key) == value:
            continue
        rs_annotations[key] = value
        changed = True
    return changed


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    ann = annotations_of(rs)
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """SetNewReplicaSetAnnotations: copy the deployment's annotations, raise the revision to
    `new_revision` (keeping the old numbers in revision-history when a rollback reuses this
    RS), and on creation record the desired/max replicas."""
    changed = copy_deployment_annotations(d, rs)
    ann = annotations_of(rs)
    had_revision = REVISION in ann
    old = revision(rs)
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if had_revision:
            history = ann.get(REVISION_HISTORY)
            ann[REVISION_HISTORY] = f"{history},{old}" if history else str(old)
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


# ---- conditions ---------------------------------------------------------------------------

def get_condition(status: Obj, type_: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    stamp = meta.format_time(now)
    return {"type": type_, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    """Add or replace; unchanged if the same status and reason are already there (so nothing
    is written), and lastTransitionTime only moves when the status value changes."""
    current = get_condition(status, cond["type"])
    if current and current["status"] == cond["status"] and current["reason"] == cond["reason"]:
        return
    cond = dict(cond)
    if current and current["status"] == cond["status"]:
        cond["lastTransitionTime"] = current["lastTransitionTime"]
    remove_condition(status, cond["type"])
    status.setdefault("conditions", []).append(cond)


def remove_condition(status: Obj, type_: str) -> None:
    conds = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


# ---- pods ---------------------------------------------------------------------------------

def controller_uid(obj: Obj) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


# ---- one ReplicaSet as the planner sees it ------------------------------------------------

@dataclass
class RSState:
    """A ReplicaSet plus the counts of its pods. `obj` is a working copy: the planner edits
    its spec.replicas/annotations, and `changed` says it must be written back."""

    obj: Obj
    actual: int = 0  # active pods (not terminating, not finished)
    ready: int = 0
    available: int = 0
    terminating: int = 0  # pods with deletionTimestamp that have not finished yet
    changed: bool = False
    next_available_at: float | None = None  # earliest time a ready pod becomes available
    stored_replicas: int = field(init=False)  # spec.replicas as read, before the plan

    def __post_init__(self) -> None:
        self.stored_replicas = self.replicas

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def uid(self) -> str | None:
        return self.obj["metadata"].get("uid")

    @property
    def replicas(self) -> int:
        value = (self.obj.get("spec") or {}).get("replicas")
        return 1 if value is None else int(value)

    @replicas.setter
    def replicas(self, value: int) -> None:
        self.obj.setdefault("spec", {})["replicas"] = int(value)

    @property
    def revision(self) -> int:
        return revision(self.obj)

    @property
    def settled_available(self) -> int:
        """Available pods once the RS controller has removed its surplus (it deletes
        not-available pods first): a pod above spec.replicas is about to go, so it cannot
        count toward minAvailable."""
        return min(self.available, self.replicas)

    @property
    def template(self) -> Obj:
        return (self.obj.get("spec") or {}).get("template") or {}

    def age_key(self) -> tuple[Any, ...]:
        """Oldest first: creation time, then revision, then name (timestamps are seconds)."""
        return (self.obj["metadata"].get("creationTimestamp") or "", self.revision, self.name)


def rs_state(rs: Obj, pods: list[Obj], now: float) -> RSState:
    """Count the pods this ReplicaSet controls (by owner uid)."""
    state = RSState(obj=copy.deepcopy(rs))
    min_ready = min_ready_seconds(rs)
    for pod in pods:
        if meta.is_terminal(pod):
            continue
        if meta.is_being_deleted(pod):
            state.terminating += 1
            continue
        state.actual += 1
        if not meta.is_ready(pod):
            continue
        state.ready += 1
        wait = meta.available_in(pod, min_ready, now)
        if wait == 0.0:
            state.available += 1
        elif wait is not None and (state.next_available_at is None
                                   or now + wait < state.next_available_at):
            state.next_available_at = now + wait
    return state


def replica_sum(rss: Sequence[RSState | None]) -> int:
    return sum(rs.replicas for rs in rss if rs is not None)


def actual_sum(rss: Sequence[RSState | None]) -> int:
    return sum(rs.actual for rs in rss if rs is not None)


def available_sum(rss: Sequence[RSState | None]) -> int:
    """Available pods, for status (what runs now)."""
    return sum(rs.available for rs in rss if rs is not None)


def settled_available_sum(rss: Sequence[RSState | None]) -> int:
    """Available pods that will stay, for scale-down decisions."""
    return sum(rs.settled_available for rs in rss if rs is not None)


def ready_sum(rss: Sequence[RSState | None]) -> int:
    return sum(rs.ready for rs in rss if rs is not None)


def pods_sum(rss: Sequence[RSState | None]) -> int:
    """Pods that count against maxSurge: per RS the larger of spec and active pods.

    Terminating pods do not count, as in Kubernetes (GetReplicaCountForReplicaSets sums the
    sets' spec.replicas; the default podReplacementPolicy TerminationStarted): a rollout never
    waits out an old pod's grace period. Active pods above spec do count: an old RS just
    scaled down keeps them until its own reconcile deletes them (a moment later), and
    counting them keeps replicas + maxSurge as the bound on pods not being deleted."""
    return sum(max(rs.replicas, rs.actual) for rs in rss if rs is not None)


def active(rss: list[RSState]) -> list[RSState]:
    return [rs for rs in rss if rs.replicas > 0]


def round_half_away(x: float) -> int:
    """Go's math.Round (Python's round() would round half to even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = replicas(d)
    return (status.get("updatedReplicas", 0) == want
            and status.get("replicas", 0) == want
            and status.get("availableReplicas", 0) >= want - max_unavailable(d)
            and status.get("observedGeneration", 0) >= d["metadata"].get("generation", 0))


def deployment_progressing(old: Obj, new: Obj) -> bool:
    """Progress: more updated pods, fewer old pods, or more available pods than last time."""
    old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old = new.get("replicas", 0) - new.get("updatedReplicas", 0)
    return (new.get("updatedReplicas", 0) > old.get("updatedReplicas", 0)
            or new_old < old_old
            or new.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def deployment_timed_out(d: Obj, status: Obj, now: float) -> bool:
    deadline = progress_deadline(d)
    if deadline is None:
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = meta.parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + deadline < now

