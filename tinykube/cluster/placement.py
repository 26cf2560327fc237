"""Where a pod may run and where it runs best: the scheduler's pure decision.

Filters (as kube-scheduler's plugins of the same names): NodeUnschedulable, NodeReady,
NodeName, NodeAffinity (`nodeSelector`), NodeResourcesFit (requests of cpu and memory, and the
pod count, against `status.allocatable`) and VolumeBinding (a claim already used on a node
carries that node in its `volume.kubernetes.io/selected-node` annotation, as a local
PersistentVolume's node affinity does: the pod can only go there).
Score: spreading of the pod's controller's replicas (PodTopologySpread / SelectorSpread by
node): fewest siblings first, then fewest pods, then the name, so the result is stable.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tinykube.model import quantity

SELECTED_NODE = "volume.kubernetes.io/selected-node"
Obj = dict[str, Any]


def is_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _quantity(parse: Any, value: Any) -> int:
    try:
        return parse(value)
    except (quantity.QuantityError, ValueError, TypeError):
        return 0


def pod_requests(pod: Obj) -> tuple[int, int]:
    """(millicores, bytes) the pod asks for: each container's requests, or its limits where it
    sets no request (Kubernetes defaults requests to limits)."""
    cpu = memory = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        cpu += _quantity(quantity.cpu_millis, wanted.get("cpu", 0))
        memory += _quantity(quantity.memory_bytes, wanted.get("memory", 0))
    return cpu, memory


def controller_uid(pod: Obj) -> str | None:
    for owner in pod["metadata"].get("ownerReferences") or []:
        if owner.get("controller"):
            return owner.get("uid")
    return None


def occupies_node(pod: Obj) -> bool:
    """A pod holds its node's resources until it is terminal (Succeeded/Failed)."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


@dataclass
class NodeLoad:
    cpu: int = 0
    memory: int = 0
    pods: int = 0
    by_controller: Counter[str] = field(default_factory=Counter)

    def add(self, pod: Obj) -> None:
        cpu, memory = pod_requests(pod)
        self.cpu += cpu
        self.memory += memory
        self.pods += 1
        owner = controller_uid(pod)
        if owner:
            self.by_controller[owner] += 1


def loads(pods: list[Obj]) -> dict[str, NodeLoad]:
    """What the bound, non-terminal pods take on each node."""
    result: dict[str, NodeLoad] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and occupies_node(pod):
            result.setdefault(node, NodeLoad()).add(pod)
    return result


def _allocatable(node: Obj) -> tuple[int, int, int]:
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    return (_quantity(quantity.cpu_millis, alloc.get("cpu", 0)),
            _quantity(quantity.memory_bytes, alloc.get("memory", 0)),
            _quantity(quantity.whole_number, alloc.get("pods", 0)))


def claim_nodes(pod: Obj, claims: dict[tuple[str, str], Obj]) -> set[str]:
    """The nodes the pod's claims are already bound to (their selected-node annotation)."""
    namespace = pod["metadata"].get("namespace") or "default"
    found = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        claim = claims.get((namespace, name)) if name else None
        selected = ((claim or {}).get("metadata", {}).get("annotations") or {}).get(
            SELECTED_NODE)
        if selected:
            found.add(selected)
    return found


@dataclass
class Decision:
    node: str | None
    reasons: Counter[str]  # why nodes were ruled out: message -> how many nodes

    def message(self, total: int) -> str:
        """kube-scheduler's FailedScheduling text: `0/3 nodes are available: 2 Insufficient
        cpu, 1 node(s) didn't match Pod's node affinity/selector.`"""
        parts = ", ".join(sorted(f"{n} {why}" for why, n in self.reasons.items()))
        return f"0/{total} nodes are available: {parts}." if parts else \
            f"0/{total} nodes are available."


def choose(pod: Obj, nodes: list[Obj], node_loads: dict[str, NodeLoad],
           claims: dict[tuple[str, str], Obj] | None = None) -> Decision:
    spec = pod.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    cpu, memory = pod_requests(pod)
    pinned = claim_nodes(pod, claims or {})
    reasons: Counter[str] = Counter()
    fitting = []
    for node in nodes:
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        load = node_loads.get(name) or NodeLoad()
        alloc_cpu, alloc_memory, alloc_pods = _allocatable(node)
        if (node.get("spec") or {}).get("unschedulable"):
            reasons["node(s) were unschedulable"] += 1
        elif not is_ready(node):
            reasons["node(s) were not ready"] += 1
        elif any(labels.get(k) != v for k, v in selector.items()):
            reasons["node(s) didn't match Pod's node affinity/selector"] += 1
        elif len(pinned) > 1 or (pinned and name not in pinned):
            reasons["node(s) had volume node affinity conflict"] += 1
        elif load.pods + 1 > alloc_pods:
            reasons["Too many pods"] += 1
        elif cpu and load.cpu + cpu > alloc_cpu:
            reasons["Insufficient cpu"] += 1
        elif memory and load.memory + memory > alloc_memory:
            reasons["Insufficient memory"] += 1
        else:
            fitting.append((name, load))
    if not fitting:
        return Decision(None, reasons)
    owner = controller_uid(pod)
    best = min(fitting, key=lambda item: (item[1].by_controller[owner] if owner else 0,
                                          item[1].pods, item[0]))
    return Decision(best[0], reasons)
