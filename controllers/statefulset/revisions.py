"""ControllerRevisions: the StatefulSet's history of pod templates.

Each distinct `spec.template` the set has had is one `apps/v1` ControllerRevision named
`<set>-<hash>`, with `data` = the template and `revision` = a number that grows with each
change. Pods carry the revision name in their `controller-revision-hash` label, which is how
the controller tells updated pods from old ones.

As in Kubernetes (pkg/controller/history, getStatefulSetRevisions):
- the update revision is the set's current template. If the newest stored revision already
  has that template nothing changes; if an *older* one has it (a rollback: `rollout undo` writes
  an old template back) that revision is reused and renumbered to next, so the pods that still
  run it count as updated and no new name appears; otherwise a new revision is created.
- the hash is FNV-32a over the template's canonical JSON plus `status.collisionCount`; a name
  taken by a different template bumps collisionCount and hashes again.
- the current revision is the one named in `status.currentRevision` (the update revision on
  the first sync).
- history beyond `revisionHistoryLimit` (default 10) is pruned oldest first, never a revision
  that is current, update, or still run by a pod.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..base import owner_ref
from ..hashing import canonical_json, hash_string
from .identity import pod_revision

from tinykube.model.errors import AlreadyExists, NotFound
from tinykube.model.meta import Obj

if TYPE_CHECKING:
    from tinykube.store import Store

KIND = "ControllerRevision"
HASH_LABEL = "controller.kubernetes.io/hash"
DEFAULT_HISTORY_LIMIT = 10


def template_hash(template: Obj, collision_count: int) -> str:
    raw = canonical_json(template)
    if collision_count:
        raw += str(collision_count).encode()
    return hash_string(raw)


def revision_name(set_name: str, hash_: str) -> str:
    return f"{set_name[:223]}-{hash_}"


def sort_key(rev: Obj) -> tuple[Any, ...]:
    meta = rev["metadata"]
    return (int(rev.get("revision", 0)), meta.get("creationTimestamp", ""), meta["name"])


def next_revision_number(revisions: list[Obj]) -> int:
    return max((int(r.get("revision", 0)) for r in revisions), default=0) + 1


def new_revision(sts: Obj, number: int, collision_count: int) -> Obj:
    template = copy.deepcopy(sts["spec"]["template"])
    hash_ = template_hash(template, collision_count)
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels[HASH_LABEL] = hash_
    return {
        "apiVersion": "apps/v1",
        "kind": KIND,
        "metadata": {
            "name": revision_name(sts["metadata"]["name"], hash_),
            "namespace": sts["metadata"].get("namespace", "default"),
            "labels": labels,
            "ownerReferences": [owner_ref(sts)],
        },
        "data": template,
        "revision": number,
    }


def template_of(revision: Obj) -> Obj:
    return revision.get("data") or {}


@dataclass
class Revisions:
    current: Obj
    update: Obj
    collision_count: int


def owned_revisions(store: Store, sts: Obj) -> list[Obj]:
    uid = sts["metadata"]["uid"]
    found = [
        r for r in store.list(KIND, sts["metadata"].get("namespace", "default"))
        if any(ref.get("uid") == uid and ref.get("controller")
               for ref in r["metadata"].get("ownerReferences") or [])
    ]
    return sorted(found, key=sort_key)


async def sync_revisions(store: Store, sts: Obj, revisions: list[Obj]) -> Revisions:
    """Find or make the update revision and find the current one (see module docstring).
    `revisions` (sorted) is updated in place with what was created or renumbered."""
    status = sts.get("status") or {}
    collision_count = int(status.get("collisionCount") or 0)
    wanted = new_revision(sts, next_revision_number(revisions), collision_count)
    equal = [r for r in revisions if template_of(r) == wanted["data"]]
    if equal and equal[-1] is revisions[-1]:
        update = revisions[-1]
    elif equal:
        old = copy.deepcopy(equal[-1])
        old["revision"] = wanted["revision"]
        update = await store.update(old)
        revisions.remove(equal[-1])
        revisions.append(update)
    else:
        update, collision_count = await _create_revision(store, sts, wanted, collision_count)
        revisions.append(update)
    current = next((r for r in revisions if r["metadata"]["name"] == status.get("currentRevision")),
                   update)
    return Revisions(current, update, collision_count)


async def _create_revision(store: Store, sts: Obj, wanted: Obj,
                           collision_count: int) -> tuple[Obj, int]:
    while True:
        try:
            return await store.create(wanted), collision_count
        except AlreadyExists:
            meta = wanted["metadata"]
            existing = store.try_get(KIND, meta["namespace"], meta["name"])
            if existing is not None and template_of(existing) == wanted["data"]:
                return existing, collision_count
            collision_count += 1
            wanted = new_revision(sts, wanted["revision"], collision_count)


def history_to_prune(sts: Obj, pods: list[Obj], revisions: list[Obj],
                     live_names: set[str]) -> list[Obj]:
    """The oldest non-live revisions beyond the set's revisionHistoryLimit."""
    limit = sts.get("spec", {}).get("revisionHistoryLimit")
    limit = DEFAULT_HISTORY_LIMIT if limit is None else int(limit)
    live = set(live_names) | {pod_revision(p) for p in pods}
    history = [r for r in sorted(revisions, key=sort_key) if r["metadata"]["name"] not in live]
    if limit < 0 or len(history) <= limit:
        return []
    return history[: len(history) - limit]


async def prune_history(store: Store, sts: Obj, pods: list[Obj], revisions: list[Obj],
                        live_names: set[str]) -> None:
    for rev in history_to_prune(sts, pods, revisions, live_names):
        try:
            await store.delete(KIND, rev["metadata"]["namespace"], rev["metadata"]["name"],
                               uid=rev["metadata"]["uid"])
        except NotFound:
            pass
