"""The plan of one Deployment sync: what to create, scale, delete, record and report.

Kubernetes' deployment controller writes to the API as it goes (create the new ReplicaSet,
scale it, then scale old ones, then write status). Here the same steps run against working
copies held by a `Plan`; the controller applies the plan afterwards. That keeps every
decision a pure function of (deployment, replica sets + their pod counts, now) that unit tests
drive with plain data, while the order of the steps, and so the arithmetic, stays Kubernetes'.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..base import owner_ref
from . import util
from .util import RSState

from tinykube.model import meta
from tinykube.model.meta import Obj


@dataclass
class Plan:
    deployment: Obj  # working copy: annotations and status are edited in place
    rss: list[RSState]  # the replica sets this deployment owns (working copies)
    now: float
    original: Obj = field(init=False)  # the deployment as read, to tell what changed
    create: RSState | None = None  # a new replica set to create (before any other write)
    deletes: list[RSState] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    status: Obj | None = None  # the status to write, None if unchanged
    # Pause/resume noted on Progressing (Unknown), written before anything else as Kubernetes'
    # checkPausedConditions does: a watcher sees it even when this sync then moves on.
    paused_status: Obj | None = None
    requeue_after: float | None = None  # seconds until something must be re-checked

    def __post_init__(self) -> None:
        self.original = copy.deepcopy(self.deployment)
        self.deployment.setdefault("status", {})

    # ---- results -----------------------------------------------------------------------

    @property
    def updates(self) -> list[RSState]:
        """Existing replica sets to write, scale-downs first: a pass that shrinks one RS and
        grows another must never have both sets of pods at once."""
        changed = [rs for rs in self.rss if rs.changed and rs is not self.create]
        return sorted(changed, key=lambda rs: rs.replicas - rs.stored_replicas)

    @property
    def annotations_changed(self) -> bool:
        return (self.deployment["metadata"].get("annotations") or {}) != \
            (self.original["metadata"].get("annotations") or {})

    def event(self, reason: str, message: str, type_: str = "Normal") -> None:
        self.events.append((type_, reason, message))

    def requeue(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds

    # ---- steps shared by every strategy ------------------------------------------------

    def scale(self, rs: RSState, new_scale: int) -> bool:
        """scaleReplicaSet: set the size and the desired/max-replicas annotations; True if
        the size changed (annotation-only writes still happen)."""
        d = self.deployment
        old_scale = rs.replicas
        annotated = util.set_replicas_annotations(
            rs.obj, util.replicas(d), util.replicas(d) + util.max_surge(d))
        if old_scale == new_scale and not annotated:
            return False
        rs.replicas = new_scale
        rs.changed = True
        if old_scale != new_scale:
            direction = "up" if new_scale > old_scale else "down"
            self.event("ScalingReplicaSet",
                       f"Scaled {direction} replica set {rs.name} to {new_scale}")
        return old_scale != new_scale

    def new_and_old(self, create: bool) -> tuple[RSState | None, list[RSState]]:
        """getAllReplicaSetsAndSyncRevision: find (or, if `create`, make) the replica set whose
        template is the deployment's, give it the newest revision, and copy that revision to
        the deployment."""
        d = self.deployment
        template = d["spec"].get("template") or {}
        new = next((rs for rs in sorted(self.rss, key=RSState.age_key)
                    if util.equal_ignore_hash(rs.template, template)), None)
        old = [rs for rs in self.rss if rs is not new]
        new_revision = max((rs.revision for rs in old), default=0) + 1
        if new is not None:
            changed = util.set_new_rs_annotations(d, new.obj, new_revision, exists=True)
            if util.min_ready_seconds(new.obj) != util.min_ready_seconds(d):
                new.obj["spec"]["minReadySeconds"] = util.min_ready_seconds(d)
                changed = True
            new.changed = new.changed or changed
            self._set_revision(new.revision)
            if util.progress_deadline(d) is not None and \
                    util.get_condition(d["status"], util.PROGRESSING) is None:
                util.set_condition(d["status"], util.new_condition(
                    util.PROGRESSING, "True", util.FOUND_NEW_RS,
                    f'Found new replica set "{new.name}"', self.now))
            return new, old
        if not create:
            return None, old
        new = self._new_replica_set(old, new_revision)
        return new, old

    def _new_replica_set(self, old: list[RSState], new_revision: int) -> RSState:
        d = self.deployment
        meta = d["metadata"]
        collision = (d.get("status") or {}).get("collisionCount")
        hash_ = util.template_hash(d["spec"].get("template") or {}, collision)
        template = util.strip_hash_label(d["spec"].get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[util.HASH_LABEL] = hash_
        selector = copy.deepcopy(d["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})[util.HASH_LABEL] = hash_
        obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{hash_}",
                "namespace": meta.get("namespace", "default"),
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [owner_ref(d)],
            },
            "spec": {"replicas": 0, "minReadySeconds": util.min_ready_seconds(d),
                     "selector": selector, "template": template},
        }
        new = RSState(obj=obj, changed=True)
        new.replicas = new_rs_replicas(d, old + [new], new)
        util.set_new_rs_annotations(d, obj, new_revision, exists=False)
        self.create = new
        self.rss.append(new)
        if new.replicas > 0:
            self.event("ScalingReplicaSet", f"Scaled up replica set {new.name} to {new.replicas}")
        self._set_revision(new_revision)
        if util.progress_deadline(d) is not None:
            util.set_condition(d["status"], util.new_condition(
                util.PROGRESSING, "True", util.NEW_RS_CREATED,
                f'Created new replica set "{new.name}"', self.now))
        return new

    def _set_revision(self, revision: int) -> None:
        ann = util.annotations_of(self.deployment)
        if ann.get(util.REVISION) != str(revision):
            ann[util.REVISION] = str(revision)

    def cleanup(self, old: list[RSState]) -> None:
        """cleanupDeployment: keep revisionHistoryLimit old replica sets, deleting the oldest
        revisions first, and only ones that are fully scaled down."""
        limit = util.revision_history_limit(self.deployment)
        alive = [rs for rs in old if not meta.is_being_deleted(rs.obj)]
        excess = len(alive) - limit
        if excess <= 0:
            return
        for rs in sorted(alive, key=lambda r: (r.revision, r.age_key()))[:excess]:
            if rs.replicas != 0 or rs.actual != 0 or rs.terminating != 0 or rs.changed:
                continue
            self.deletes.append(rs)


def new_rs_replicas(d: Obj, all_rss: list[RSState], new: RSState) -> int:
    """NewRSNewReplicas: how far the new replica set may grow now.

    RollingUpdate: up to replicas + maxSurge pods in total (not counting terminating pods,
    see util.pods_sum), never beyond replicas. Recreate: all at once (the
    caller only gets here when no old pod is left).
    """
    want = util.replicas(d)
    if not util.is_rolling(d):
        return want
    max_total = want + util.max_surge(d)
    current = util.pods_sum(all_rss)
    if current >= max_total:
        return new.replicas
    return new.replicas + max(0, min(max_total - current, want - new.replicas))

