"""The `pods/binding` subresource: how a scheduler puts a pod on a node.

A Pod's spec is frozen after creation, `spec.nodeName` included; binding is the one way to
set it, once, as Kubernetes' registry does (`assignPod`): a pod already on a node, or being
deleted, is a Conflict, and the pod gains the condition PodScheduled=True.
"""

from __future__ import annotations

import copy
from typing import Any

from tinykube.model import names
from tinykube.model.errors import BadRequest, Conflict, FieldError, Invalid
from tinykube.model.meta import now_iso


def bound(pod: dict[str, Any], binding: Any) -> dict[str, Any]:
    """`pod` placed on the node `binding` names (a new dict); ApiError when it may not be."""
    node = _target_node(binding)
    name = pod["metadata"]["name"]
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise Conflict.for_object("Pod", name, why=f'pod {name} is already assigned to node '
                                  f'"{current}"')
    if pod["metadata"].get("deletionTimestamp"):
        raise Conflict.for_object("Pod", name,
                                  why=f"pod {name} is being deleted, cannot be assigned to a host")
    new = copy.deepcopy(pod)
    new.setdefault("spec", {})["nodeName"] = node
    status = new.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True",
                       "lastTransitionTime": now_iso()})
    status["conditions"] = conditions
    return new


def _target_node(binding: Any) -> str:
    if not isinstance(binding, dict):
        raise BadRequest("the request body must be a Binding object")
    if binding.get("kind") not in (None, "Binding"):
        raise BadRequest(f"kind: the body's kind {binding.get('kind')!r} must be Binding")
    name = str((binding.get("metadata") or {}).get("name") or "")
    target = binding.get("target")
    if not isinstance(target, dict):
        raise Invalid("Binding", name, [FieldError.required("target")], group="")
    if target.get("kind") not in (None, "", "Node"):
        raise Invalid("Binding", name, [FieldError.unsupported(
            "target.kind", target.get("kind"), ["Node"])], group="")
    node = target.get("name")
    if not isinstance(node, str) or not node:
        raise Invalid("Binding", name, [FieldError.required("target.name")], group="")
    problems = names.dns1123_subdomain(node)
    if problems:
        raise Invalid("Binding", name, [FieldError.invalid("target.name", node,
                                                           "; ".join(problems))], group="")
    return node
