"""Syncs that scale without rolling out: a paused deployment, or a change of spec.replicas.

After Kubernetes' sync.go. A scaling event is noticed through the desired-replicas annotation
each active replica set carries: if it differs from spec.replicas the user scaled, and the
new size is spread over all active replica sets in proportion to their size (so scaling in
the middle of a rollout neither hastens nor rolls back the rollout):

    R=10, S=3 -> 13 pods allowed; new set 5, old set 8 (annotated max-replicas 13).
    Scale to R=20, S=5 -> 25 allowed, 12 to add: new gets round(5*25/13)-5 = 5,
    old gets round(8*25/13)-8 = 7; leftovers (none here) go to the largest set.
"""

from __future__ import annotations

from . import progress, util
from .planner import Plan
from .util import RSState

from tinykube.model.meta import Obj


def sync(plan: Plan) -> None:
    new, old = plan.new_and_old(create=False)
    scale(plan, new, old)
    if util.paused(plan.deployment):
        plan.cleanup(old)  # only fully scaled-down sets go, so a paused rollout is safe
    all_rss = old + ([new] if new is not None else [])
    progress.sync_deployment_status(plan, all_rss, new)


def is_scaling_event(plan: Plan) -> bool:
    new, old = plan.new_and_old(create=False)
    want = util.replicas(plan.deployment)
    for rs in util.active(old + ([new] if new is not None else [])):
        desired = util.int_annotation(rs.obj, util.DESIRED_REPLICAS)
        if desired is not None and desired != want:
            return True
    return False


def scale(plan: Plan, new: RSState | None, old: list[RSState]) -> None:
    d = plan.deployment
    want = util.replicas(d)
    only = active_or_latest(new, old)
    if only is not None:
        if only.replicas != want:
            plan.scale(only, want)
        return
    if is_saturated(d, new):
        # The new set already holds everything (e.g. after adopting old sets): drain the rest.
        for rs in util.active(old):
            plan.scale(rs, 0)
        return
    if not util.is_rolling(d):
        return
    all_rss = util.active(old + ([new] if new is not None else []))
    allowed = want + util.max_surge(d) if want > 0 else 0
    to_add = allowed - util.replica_sum(all_rss)
    # Scale up: bigger first, newer first among equals. Down: bigger first, older first.
    if to_add > 0:
        all_rss.sort(key=RSState.age_key, reverse=True)
        all_rss.sort(key=lambda rs: rs.replicas, reverse=True)
    elif to_add < 0:
        all_rss.sort(key=RSState.age_key)
        all_rss.sort(key=lambda rs: rs.replicas, reverse=True)
    added = 0
    sizes: dict[int, int] = {}
    for i, rs in enumerate(all_rss):
        if to_add != 0:
            share = proportion(rs, d, to_add, added)
            sizes[i] = rs.replicas + share
            added += share
        else:
            sizes[i] = rs.replicas
    for i, rs in enumerate(all_rss):
        if i == 0 and to_add != 0:
            sizes[i] = max(0, sizes[i] + to_add - added)  # leftovers to the largest set
        plan.scale(rs, sizes[i])


def active_or_latest(new: RSState | None, old: list[RSState]) -> RSState | None:
    """The only active replica set, or the newest one if none is active; None if several."""
    if new is None and not old:
        return None
    newest_first = sorted(old, key=RSState.age_key, reverse=True)
    actives = util.active(newest_first + ([new] if new is not None else []))
    if not actives:
        return new if new is not None else newest_first[0]
    if len(actives) == 1:
        return actives[0]
    return None


def is_saturated(d: Obj, rs: RSState | None) -> bool:
    if rs is None:
        return False
    desired = util.int_annotation(rs.obj, util.DESIRED_REPLICAS)
    want = util.replicas(d)
    return rs.replicas == want and desired == want


def proportion(rs: RSState, d: Obj, to_add: int, added: int) -> int:
    """This set's share of `to_add`, bounded so the running total never overshoots."""
    if rs.replicas == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _fraction(rs: RSState, d: Obj) -> int:
    want = util.replicas(d)
    if want == 0:
        return -rs.replicas
    deployment_max = want + util.max_surge(d)
    annotated = util.int_annotation(rs.obj, util.MAX_REPLICAS)
    if not annotated:
        annotated = (d.get("status") or {}).get("replicas", 0)
    if not annotated:
        return 0
    return util.round_half_away(rs.replicas * deployment_max / annotated) - rs.replicas
