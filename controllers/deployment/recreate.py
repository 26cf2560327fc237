"""Recreate: stop every old pod, wait until none is left, then start the new ones.

After Kubernetes' recreate.go. "None left" includes pods still terminating (deletionTimestamp
set, processes not yet gone): Recreate promises the old and new template never run side by
side, e.g. for an app that holds an exclusive lock or a volume.
"""

from __future__ import annotations

from . import progress, util
from .planner import Plan
from .util import RSState


def rollout_recreate(plan: Plan) -> None:
    # Do not create the new set yet: creating it would start pods before old ones are gone.
    new, old = plan.new_and_old(create=False)
    all_rss = old + ([new] if new is not None else [])
    if scale_down_old(plan, util.active(old)):
        progress.sync_rollout_status(plan, all_rss, new)
        return
    if old_pods_running(old):
        progress.sync_rollout_status(plan, all_rss, new)
        return
    if new is None:
        new, old = plan.new_and_old(create=True)
        assert new is not None
        all_rss = old + [new]
    want = util.replicas(plan.deployment)
    if new.replicas != want:
        plan.scale(new, want)
    if util.deployment_complete(plan.deployment, plan.original.get("status") or {}):
        plan.cleanup(old)
    progress.sync_rollout_status(plan, all_rss, new)


def scale_down_old(plan: Plan, old: list[RSState]) -> bool:
    scaled = False
    for rs in old:
        if plan.scale(rs, 0):
            scaled = True
    return scaled


def old_pods_running(old: list[RSState]) -> bool:
    """Any pod of an old set not finished yet, terminating ones included."""
    return any(rs.actual > 0 or rs.terminating > 0 for rs in old)
