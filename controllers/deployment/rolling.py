"""RollingUpdate: grow the new replica set and shrink the old ones within two fences.

After Kubernetes' pkg/controller/deployment/rolling.go. With R = spec.replicas, the fences
are maxSurge (S, rounded up from a percentage) and maxUnavailable (U, rounded down):

- never more than R + S pods: the new set grows only into the room the old ones leave;
- never fewer than R - U available pods: old sets shrink only by the surplus availability.

One sync does at most one of the two moves (grow new, else shrink old), then reports status;
the next event (a pod becoming ready, a pod gone) drives the next move.

Worked example, R=6, 25%/25% -> S=2 (1.5 up), U=1 (1.5 down), old set at 6 all available:
  grow new to 2 (8 pods) | 8 available? no: the 2 new are not ready yet; old may shrink by
  available(6) - minAvailable(5) = 1 -> old 5 | room for 1 more new -> new 3 | ... and so on
  until new=6, old=0. If the new pods never become ready the rollout stalls at old=5, new=3:
  5 old pods keep serving and nothing more is deleted.
"""

from __future__ import annotations

from . import progress, util
from .planner import Plan, new_rs_replicas
from .util import RSState


def rollout_rolling(plan: Plan) -> None:
    new, old = plan.new_and_old(create=True)
    assert new is not None
    all_rss = old + [new]
    if reconcile_new_replica_set(plan, all_rss, new):
        progress.sync_rollout_status(plan, all_rss, new)
        return
    if reconcile_old_replica_sets(plan, all_rss, util.active(old), new):
        progress.sync_rollout_status(plan, all_rss, new)
        return
    if util.deployment_complete(plan.deployment, plan.original.get("status") or {}):
        plan.cleanup(old)
    progress.sync_rollout_status(plan, all_rss, new)


def reconcile_new_replica_set(plan: Plan, all_rss: list[RSState], new: RSState) -> bool:
    want = util.replicas(plan.deployment)
    if new.replicas == want:
        return False
    if new.replicas > want:
        return plan.scale(new, want)
    return plan.scale(new, new_rs_replicas(plan.deployment, all_rss, new))


def reconcile_old_replica_sets(plan: Plan, all_rss: list[RSState], old: list[RSState],
                               new: RSState) -> bool:
    """Shrink old replica sets, unhealthy pods first, without dropping below minAvailable.

    maxScaledDown = allPods - minAvailable - newUnavailable: the new set's unavailable pods
    are subtracted so that a broken new template cannot make us delete healthy old pods.
    Example (Kubernetes'): R=10, U=2, S=3; new set at 5 crash-looping, old at 8: 13 - 8 - 5 =
    0, nothing more goes even if an old pod fails. After `rollout undo` back to the old
    template, the "new" set is the healthy one: 13 - 8 - 1 = 4 crash-looping pods may go.
    """
    if util.replica_sum(old) == 0:
        return False
    d = plan.deployment
    min_available = util.replicas(d) - util.max_unavailable(d)
    new_unavailable = new.replicas - new.settled_available
    max_scaled_down = util.replica_sum(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    cleaned = cleanup_unhealthy_replicas(plan, old, max_scaled_down)
    scaled = scale_down_old_replica_sets(plan, all_rss, old)
    return cleaned + scaled > 0


def cleanup_unhealthy_replicas(plan: Plan, old: list[RSState], max_cleanup: int) -> int:
    """Drop the not-available pods of old sets first (the ReplicaSet controller deletes
    not-ready pods before ready ones), so they cannot block the rollout."""
    total = 0
    for rs in sorted(old, key=RSState.age_key):
        if total >= max_cleanup:
            break
        if rs.replicas == 0 or rs.replicas == rs.settled_available:
            continue
        count = min(max_cleanup - total, rs.replicas - rs.settled_available)
        plan.scale(rs, rs.replicas - count)
        total += count
    return total


def scale_down_old_replica_sets(plan: Plan, all_rss: list[RSState], old: list[RSState]) -> int:
    """Shrink old sets, oldest first, by however many available pods exceed minAvailable."""
    d = plan.deployment
    min_available = util.replicas(d) - util.max_unavailable(d)
    available = util.settled_available_sum(all_rss)
    if available <= min_available:
        return 0
    budget = available - min_available
    total = 0
    for rs in sorted(old, key=RSState.age_key):
        if total >= budget:
            break
        if rs.replicas == 0:
            continue
        count = min(rs.replicas, budget - total)
        plan.scale(rs, rs.replicas - count)
        total += count
    return total
