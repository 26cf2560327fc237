"""What an agent's node credential may do: Kubernetes' Node authorizer and NodeRestriction,
simplified to what `tinykube agent` needs.

A node may read pods, nodes, leases, claims, services, endpoint slices, config maps, events
and namespaces (never secrets: the node credentials themselves are secrets; nor pods' logs);
create and update its own Node (and its status) and its own Lease in kube-node-lease; update
the status of, and delete, pods bound to it; and post events. Anything else is 403, naming the node,
the verb, the resource and the rule, as the Node authorizer's denials do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinykube.model.kinds import KindInfo

NODE_LEASE_NAMESPACE = "kube-node-lease"
READABLE = frozenset({"Pod", "Node", "Lease", "PersistentVolumeClaim", "Service",
                      "EndpointSlice", "ConfigMap", "Event", "Namespace"})
VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Target:
    """The resource a request is about (from tinykube.apiserver's routing)."""

    info: KindInfo
    namespace: str | None
    name: str | None
    subresource: str | None


def refusal(node: str, method: str, target: Target | None, body_name: str | None,
            pod: dict[str, Any] | None) -> str | None:
    """Why node `node` may not do this request (a 403 message), or None when it may.
    `body_name`: metadata.name of a POSTed body; `pod`: the stored pod a pod request names."""
    if target is None:  # not a resource: discovery, /version, /healthz
        return None if method == "GET" else _denied(node, method, None, "only reads")
    kind, name = target.info.kind, target.name
    if method == "GET":
        if kind in READABLE and target.subresource not in ("log", "exec"):
            return None
        if target.subresource in ("log", "exec"):
            return _denied(node, method, target, "a node may not read pods' logs")
        return _denied(node, method, target, f"a node may not read {target.info.plural}")
    if kind == "Event" and method == "POST" and name is None:
        return None
    if kind == "Node":
        own = body_name if method == "POST" and name is None else name
        if own == node and method in ("POST", "PUT", "PATCH"):
            return None
        return _denied(node, method, target, "a node may only create and update its own Node")
    if kind == "Lease" and target.namespace == NODE_LEASE_NAMESPACE:
        own = body_name if method == "POST" and name is None else name
        if own == node and method in ("POST", "PUT", "PATCH"):
            return None
        return _denied(node, method, target, "a node may only create and update its own "
                                             f"Lease in {NODE_LEASE_NAMESPACE}")
    if kind == "Pod" and name is not None:
        bound = pod is not None and (pod.get("spec") or {}).get("nodeName") == node
        if bound and ((target.subresource == "status" and method in ("PUT", "PATCH"))
                      or (target.subresource is None and method == "DELETE")):
            return None
        why = ("a node may only update the status of, and delete, pods bound to it" if bound
               or pod is None else f"pod is bound to node "
                                   f"{(pod.get('spec') or {}).get('nodeName') or '(none)'!r}")
        return _denied(node, method, target, why)
    return _denied(node, method, target, "a node may not change it")


def _denied(node: str, method: str, target: Target | None, why: str) -> str:
    verb = VERBS.get(method, method.lower())
    user = f'User "system:node:{node}"'
    if target is None:
        return f"forbidden: {user} cannot {verb} this path: {why}"
    resource = target.info.plural + (f"/{target.subresource}" if target.subresource else "")
    what = f'{target.info.plural} "{target.name}"' if target.name else target.info.plural
    group = target.info.group
    where = f' in the namespace "{target.namespace}"' if target.namespace else ""
    return (f'{what} is forbidden: {user} cannot {verb} resource "{resource}" in API group '
            f'"{group}"{where}: {why}')
