"""Deployment status: counts, the Available condition, and the Progressing condition with its
deadline (after Kubernetes' pkg/controller/deployment/progress.go and sync.go).

Progressing tells a user (and `rollout status`) where the rollout is:
  NewReplicaSetCreated / FoundNewReplicaSet  a rollout started (True)
  ReplicaSetUpdated                          pods moved since the last sync (True; its
                                             lastUpdateTime is the "last progress" clock)
  NewReplicaSetAvailable                     the rollout is complete (True)
  ProgressDeadlineExceeded                   no progress for progressDeadlineSeconds (False)
  DeploymentPaused / DeploymentResumed       (Unknown) so a pause does not count as a stall
Status is written only when it differs from what is stored.
"""

from __future__ import annotations

import copy

from . import util
from .planner import Plan
from .util import RSState

from tinykube.model import meta
from tinykube.model.meta import Obj


def calculate_status(plan: Plan, all_rss: list[RSState], new: RSState | None) -> Obj:
    d = plan.deployment
    available = util.available_sum(all_rss)
    status: Obj = {
        "observedGeneration": d["metadata"].get("generation", 1),
        "replicas": util.actual_sum(all_rss),
        "updatedReplicas": new.actual if new is not None else 0,
        "readyReplicas": util.ready_sum(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, util.replica_sum(all_rss) - available),
    }
    old = d.get("status") or {}
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= util.replicas(d) - util.max_unavailable(d):
        cond = util.new_condition(util.AVAILABLE, "True", util.MIN_AVAILABLE,
                                  "Deployment has minimum availability.", plan.now)
    else:
        cond = util.new_condition(util.AVAILABLE, "False", util.MIN_UNAVAILABLE,
                                  "Deployment does not have minimum availability.", plan.now)
    util.set_condition(status, cond)
    _requeue_for_min_ready(plan, all_rss)
    return status


def sync_deployment_status(plan: Plan, all_rss: list[RSState], new: RSState | None) -> None:
    """Status for syncs that move no rollout forward (paused, scaling, being deleted)."""
    _finish(plan, calculate_status(plan, all_rss, new))


def sync_rollout_status(plan: Plan, all_rss: list[RSState], new: RSState | None) -> None:
    d = plan.deployment
    status = calculate_status(plan, all_rss, new)
    deadline = util.progress_deadline(d)
    if deadline is None:
        util.remove_condition(status, util.PROGRESSING)
    current = util.get_condition(d["status"], util.PROGRESSING)
    complete_before = (status["replicas"] == status["updatedReplicas"] and current is not None
                       and current["reason"] == util.NEW_RS_AVAILABLE)
    if deadline is not None and not complete_before:
        name = f'ReplicaSet "{new.name}"' if new is not None else f'Deployment "{_name(d)}"'
        if util.deployment_complete(d, status):
            util.set_condition(status, util.new_condition(
                util.PROGRESSING, "True", util.NEW_RS_AVAILABLE,
                f"{name} has successfully progressed.", plan.now))
        elif util.deployment_progressing(d["status"], status):
            cond = util.new_condition(util.PROGRESSING, "True", util.RS_UPDATED,
                                      f"{name} is progressing.", plan.now)
            # Unlike other conditions, progress refreshes lastUpdateTime even when the reason
            # is unchanged: it is the clock the deadline is measured from.
            if current is not None:
                if current["status"] == "True":
                    cond["lastTransitionTime"] = current["lastTransitionTime"]
                util.remove_condition(status, util.PROGRESSING)
            util.set_condition(status, cond)
        elif util.deployment_timed_out(d, status, plan.now):
            util.set_condition(status, util.new_condition(
                util.PROGRESSING, "False", util.TIMED_OUT,
                f"{name} has timed out progressing.", plan.now))
    _requeue_stuck(plan, status)
    _finish(plan, status)


def check_paused_conditions(plan: Plan) -> None:
    """Mark pause/resume on Progressing (Unknown), so time spent paused is not a stall."""
    d = plan.deployment
    if util.progress_deadline(d) is None:
        return
    cond = util.get_condition(d["status"], util.PROGRESSING)
    if cond is not None and cond["reason"] == util.TIMED_OUT:
        return
    paused_recorded = cond is not None and cond["reason"] == util.PAUSED
    if util.paused(d) and not paused_recorded:
        util.set_condition(d["status"], util.new_condition(
            util.PROGRESSING, "Unknown", util.PAUSED, "Deployment is paused", plan.now))
    elif not util.paused(d) and paused_recorded:
        util.set_condition(d["status"], util.new_condition(
            util.PROGRESSING, "Unknown", util.RESUMED, "Deployment is resumed", plan.now))
    else:
        return
    plan.paused_status = copy.deepcopy(d["status"])


def _finish(plan: Plan, status: Obj) -> None:
    plan.deployment["status"] = status
    if status != (plan.original.get("status") or {}):
        plan.status = status


STUCK_RECHECK_MIN_SECONDS = 1.0


def _requeue_stuck(plan: Plan, status: Obj) -> None:
    """No event will come when nothing happens: re-check when the deadline would pass."""
    d = plan.deployment
    deadline = util.progress_deadline(d)
    current = util.get_condition(plan.original.get("status") or {}, util.PROGRESSING)
    if deadline is None or current is None:
        return
    if util.deployment_complete(d, status) or current["reason"] == util.TIMED_OUT:
        return
    since = meta.parse_time(current.get("lastUpdateTime"))
    if since is None:
        return
    # Due already (a complete Deployment older than its deadline that just lost a pod): as
    # Kubernetes' requeueStuckDeployment, never "now" in a loop. Its rate-limited retry is at
    # least a second here, and the Deployment settles on Complete or TimedOut meanwhile.
    plan.requeue(max(since + deadline - plan.now + 1, STUCK_RECHECK_MIN_SECONDS))


def _requeue_for_min_ready(plan: Plan, all_rss: list[RSState]) -> None:
    """Pods become available minReadySeconds after Ready with no event: look again then."""
    due = [rs.next_available_at for rs in all_rss if rs.next_available_at is not None]
    if due:
        plan.requeue(min(due) - plan.now + 0.05)


def _name(d: Obj) -> str:
    return d["metadata"]["name"]
