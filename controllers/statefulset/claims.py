"""PersistentVolumeClaims of a StatefulSet: names, objects, and the retention policy.

Claim `<template>-<set>-<ordinal>` belongs to one ordinal, not to one pod: it outlives pod
deletion, restarts and scale-down, so `web-1` finds its data again when it comes back. tinykube
has no volume provisioner: a claim is Bound from birth and the runtime maps its name to the
directory `<root>/volumes/<namespace>/<claim>/`, removing that directory when the claim object
is deleted.

`persistentVolumeClaimRetentionPolicy` (default Retain/Retain):
- `whenDeleted: Delete`: the claims carry the set as (non-controller) owner, so the garbage
  collector deletes them with the set; with Retain they carry no owner reference from us.
- `whenScaled: Delete`: claims of ordinals >= replicas are deleted once their pod is gone.
  (Kubernetes makes the condemned pod the claim's owner and lets the GC do it; deleting
  directly after the pod is gone has the same effect with one less moving part.)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from ..base import owner_ref

from tinykube.model.meta import Obj

RETAIN, DELETE = "Retain", "Delete"


def claim_name(template_name: str, set_name: str, ordinal: int) -> str:
    return f"{template_name}-{set_name}-{ordinal}"


@dataclass(frozen=True)
class RetentionPolicy:
    when_deleted: str = RETAIN
    when_scaled: str = RETAIN

    @classmethod
    def of(cls, sts: Obj) -> RetentionPolicy:
        policy = sts.get("spec", {}).get("persistentVolumeClaimRetentionPolicy") or {}
        return cls(policy.get("whenDeleted") or RETAIN, policy.get("whenScaled") or RETAIN)


def set_owner_reference(sts: Obj) -> Obj:
    """The claim's reference to the set: not a controller ref (a claim has no controller)."""
    ref = owner_ref(sts)
    del ref["controller"]
    return ref


def claim_selector_labels(sts: Obj) -> dict[str, str]:
    selector = sts.get("spec", {}).get("selector") or {}
    return dict(selector.get("matchLabels") or {})


def new_claim(sts: Obj, template: Obj, ordinal: int) -> Obj:
    """The claim object for one template and ordinal, Bound at once."""
    set_meta = sts["metadata"]
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels.update(claim_selector_labels(sts))
    metadata: Obj = {
        "name": claim_name(tmeta["name"], set_meta["name"], ordinal),
        "namespace": set_meta.get("namespace", "default"),
        "labels": labels,
    }
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    if RetentionPolicy.of(sts).when_deleted == DELETE:
        metadata["ownerReferences"] = [set_owner_reference(sts)]
    spec = copy.deepcopy(template.get("spec") or {})
    spec.setdefault("accessModes", ["ReadWriteOnce"])
    status: Obj = {"phase": "Bound", "accessModes": list(spec["accessModes"])}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is not None:
        status["capacity"] = {"storage": storage}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata,
            "spec": spec, "status": status}


def owner_refs_for_policy(sts: Obj, claim: Obj) -> list[Obj] | None:
    """The claim's ownerReferences under the set's whenDeleted policy, or None if they are
    already right. Other owners (someone else's) are kept untouched."""
    uid = sts["metadata"]["uid"]
    refs = list(claim["metadata"].get("ownerReferences") or [])
    ours = [r for r in refs if r.get("uid") == uid]
    others = [r for r in refs if r.get("uid") != uid]
    if RetentionPolicy.of(sts).when_deleted == DELETE:
        return None if ours else others + [set_owner_reference(sts)]
    return others if ours else None


def parse_claim(sts: Obj, name: str) -> tuple[str, int] | None:
    """(template, ordinal) if `name` is one of the set's claims, else None."""
    set_name = sts["metadata"]["name"]
    for template in sts.get("spec", {}).get("volumeClaimTemplates") or []:
        prefix = f"{template['metadata']['name']}-{set_name}-"
        rest = name[len(prefix):]
        if name.startswith(prefix) and rest.isdigit() and str(int(rest)) == rest:
            return template["metadata"]["name"], int(rest)
    return None
