"""The one pure entry point: (deployment, its replica sets, their pods, now) -> Plan.

The branch order is Kubernetes' syncDeployment: an empty selector is refused; a deployment
being deleted only reports status; pause/resume is noted on Progressing; a paused deployment
or a change of replicas is a scaling sync (no rollout progress); otherwise the strategy runs.
Edits made while paused create no replica set, so the resume starts exactly one rollout.
"""

from __future__ import annotations

from . import progress, recreate, rolling, sync, util
from .planner import Plan
from .util import RSState

from tinykube.model import meta
from tinykube.model.meta import Obj


def decide(deployment: Obj, rss: list[RSState], now: float) -> Plan:
    plan = Plan(deployment=deployment, rss=rss, now=now)
    d = plan.deployment
    selector = d["spec"].get("selector") or {}
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        plan.event("SelectingAll", "This deployment is selecting all pods. "
                   "A non-empty selector is required.", "Warning")
        status = dict(plan.original.get("status") or {})
        if status.get("observedGeneration", 0) < d["metadata"].get("generation", 1):
            status["observedGeneration"] = d["metadata"].get("generation", 1)
            plan.status = status
        return plan
    if util.strategy_type(d) not in (util.ROLLING, util.RECREATE):
        plan.event("InvalidStrategy", f"spec.strategy.type: unsupported value "
                   f'"{util.strategy_type(d)}": supported values: "Recreate", "RollingUpdate"',
                   "Warning")
        return plan
    try:
        if util.is_rolling(d):
            util.resolve_fenceposts(*util.rolling_params(d), util.replicas(d))
    except ValueError as e:
        plan.event("InvalidStrategy", f"spec.strategy.rollingUpdate: {e}", "Warning")
        return plan
    if meta.is_being_deleted(d):
        new, old = plan.new_and_old(create=False)
        progress.sync_deployment_status(plan, old + ([new] if new else []), new)
        return plan
    progress.check_paused_conditions(plan)
    if util.paused(d) or sync.is_scaling_event(plan):
        sync.sync(plan)
    elif util.strategy_type(d) == util.RECREATE:
        recreate.rollout_recreate(plan)
    else:
        rolling.rollout_rolling(plan)
    return plan
