"""A StatefulSet pod's sticky identity: its name, ordinal, labels, hostname and storage.

Pod `web-2` of set `web` is ordinal 2 of `web`, whatever happened to earlier pods of that name.
Its identity is (name, namespace, pod-name label, hostname = name, subdomain = serviceName) and
its storage is one `persistentVolumeClaim` volume per claim template, named after the template
and pointing at claim `<template>-<set>-<ordinal>`. `new_pod` builds such a pod from a template;
`identity_matches` / `storage_matches` tell whether an existing pod still has them (Kubernetes:
stateful_set_utils.go).
"""

from __future__ import annotations

import copy
import re

from ..base import owner_ref
from .claims import claim_name

from tinykube.model.meta import Obj

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"

_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


def parent_and_ordinal(pod_name: str) -> tuple[str, int]:
    """(`web`, 2) for `web-2`; ("", -1) for a name that is no StatefulSet pod's."""
    match = _ORDINAL.match(pod_name)
    if not match:
        return "", -1
    return match.group(1), int(match.group(2))


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod["metadata"]["name"])[1]


def pod_name(set_name: str, ordinal: int) -> str:
    return f"{set_name}-{ordinal}"


def is_member(sts: Obj, pod: Obj) -> bool:
    """Whether the pod's name makes it one of the set's ordinals."""
    parent, ordinal = parent_and_ordinal(pod["metadata"]["name"])
    return ordinal >= 0 and parent == sts["metadata"]["name"]


def pod_revision(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL, "")


def claim_templates(sts: Obj) -> list[Obj]:
    return list(sts.get("spec", {}).get("volumeClaimTemplates") or [])


def _identity_labels(pod_name_: str, ordinal: int) -> dict[str, str]:
    return {POD_NAME_LABEL: pod_name_, POD_INDEX_LABEL: str(ordinal)}


def identity_matches(sts: Obj, pod: Obj) -> bool:
    """Name, namespace and identity labels fit the set (fixable in place by `fix_identity`)."""
    meta = pod["metadata"]
    parent, ordinal = parent_and_ordinal(meta["name"])
    labels = meta.get("labels") or {}
    return (
        ordinal >= 0
        and parent == sts["metadata"]["name"]
        and meta.get("namespace", "default") == sts["metadata"].get("namespace", "default")
        and all(labels.get(k) == v for k, v in _identity_labels(meta["name"], ordinal).items())
    )


def network_matches(sts: Obj, pod: Obj) -> bool:
    """hostname and subdomain fit; the runtime applied them when the pod started, so a pod
    whose network identity is wrong is recreated rather than edited."""
    spec = pod.get("spec", {})
    service = sts.get("spec", {}).get("serviceName") or ""
    return (spec.get("hostname") == pod["metadata"]["name"]
            and (spec.get("subdomain") or "") == service)


def storage_matches(sts: Obj, pod: Obj) -> bool:
    """Every claim template is a volume of the pod pointing at this ordinal's claim."""
    ordinal = ordinal_of(pod)
    if ordinal < 0:
        return False
    volumes = {v.get("name"): v for v in pod.get("spec", {}).get("volumes") or []}
    set_name = sts["metadata"]["name"]
    for template in claim_templates(sts):
        tname = template["metadata"]["name"]
        source = (volumes.get(tname) or {}).get("persistentVolumeClaim") or {}
        if source.get("claimName") != claim_name(tname, set_name, ordinal):
            return False
    return True


def fix_identity(sts: Obj, pod: Obj) -> Obj:
    """A copy of `pod` with the identity labels put right (what Kubernetes' updateIdentity
    can still change on a running pod)."""
    fixed = copy.deepcopy(pod)
    name = fixed["metadata"]["name"]
    labels = fixed["metadata"].setdefault("labels", {})
    labels.update(_identity_labels(name, ordinal_of(fixed)))
    return fixed


def new_pod(sts: Obj, template: Obj, revision_name: str, ordinal: int) -> Obj:
    """The pod for `ordinal` built from `template` (the set's own or an older revision's)."""
    set_meta = sts["metadata"]
    name = pod_name(set_meta["name"], ordinal)
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels.update(_identity_labels(name, ordinal))
    labels[REVISION_LABEL] = revision_name
    metadata: Obj = {
        "name": name,
        "namespace": set_meta.get("namespace", "default"),
        "labels": labels,
        "ownerReferences": [owner_ref(sts)],
    }
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    service = sts.get("spec", {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    else:
        spec.pop("subdomain", None)
    spec["volumes"] = _volumes_with_claims(sts, spec.get("volumes") or [], ordinal)
    if not spec["volumes"]:
        del spec["volumes"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _volumes_with_claims(sts: Obj, volumes: list[Obj], ordinal: int) -> list[Obj]:
    """Claim volumes first (template order), then the template's own volumes that no claim
    template shadows (a same-named template volume is replaced, as Kubernetes does)."""
    set_name = sts["metadata"]["name"]
    names = [t["metadata"]["name"] for t in claim_templates(sts)]
    claimed = [
        {"name": n, "persistentVolumeClaim": {"claimName": claim_name(n, set_name, ordinal)}}
        for n in names
    ]
    return claimed + [copy.deepcopy(v) for v in volumes if v.get("name") not in names]
