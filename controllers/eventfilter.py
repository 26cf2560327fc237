"""Watch events that change nothing a controller reads are dropped before they become keys.

Every pod status write is a watch event. The Deployment controller counts pods itself, and
it reconciled on each of them: ~210 passes in a 20-replica rollout, 12% of the daemon's
thread (py-spy), most of them after a write that changed nothing it counts (a container
went from waiting to running, a pod got its address). The same went for every status write
of a ReplicaSet, whose status the Deployment never reads.

`changes_only(view, mapper)` remembers, per object uid, the part of the object the
controller reads (`view`) and hands an event to `mapper` only when that part changed, or
when the object is new to it or gone. Level-triggered correctness is unchanged: every change
that could change a decision still brings the key, and the periodic resync still runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from tinykube.model import meta
from tinykube.model.meta import Obj

if TYPE_CHECKING:
    from .base import Key, KeyMapper

    from tinykube.store import Store

# Uids of objects deleted while a watch was down (re-listed after Gone) are never seen
# DELETED; past this many remembered objects the memory is cleared (one extra pass each).
MAX_REMEMBERED = 100_000


def changes_only(view: Callable[[Obj], object], mapper: KeyMapper) -> KeyMapper:
    """`mapper`, called only for events whose `view(obj)` differs from the last one seen."""
    seen: dict[str, object] = {}

    def filtered(store: Store, event_type: str, obj: Obj) -> Iterable[Key]:
        uid = obj["metadata"].get("uid") or ""
        if event_type == "DELETED":
            seen.pop(uid, None)
            return mapper(store, event_type, obj)
        current = view(obj)
        if uid in seen and seen[uid] == current:
            return ()
        keys = list(mapper(store, event_type, obj))  # remembered only once mapped
        if len(seen) >= MAX_REMEMBERED:
            seen.clear()
        seen[uid] = current
        return keys

    return filtered


def counted_pod_view(pod: Obj) -> object:
    """What a replica controller reads of a pod to count it (controllers/deployment/util.py
    `rs_state`, controllers/replicaset.py `compute_status`): its controller, labels,
    whether it is finished or being deleted, and whether it is ready and since when (for
    minReadySeconds)."""
    metadata = pod["metadata"]
    ref: Obj = next((r for r in metadata.get("ownerReferences") or []
                     if r.get("controller")), {})
    ready = meta.condition(pod, "Ready") or {}
    return (ref.get("uid"), ref.get("kind"), ref.get("name"),
            tuple(sorted((metadata.get("labels") or {}).items())),
            meta.is_terminal(pod), bool(metadata.get("deletionTimestamp")),
            ready.get("status"), ready.get("lastTransitionTime"))


def without_status(obj: Obj) -> object:
    """Everything but the status (and the resourceVersion every write moves): for a
    controller that reads another kind's metadata and spec only. Stored objects are
    replaced on write, never changed in place, so keeping their parts is safe."""
    metadata = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return (metadata, obj.get("spec"))
