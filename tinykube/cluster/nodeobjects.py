"""What a node publishes about itself: its Node object and its heartbeat Lease.

Pure builders (no I/O beyond reading the host's facts once), so unit tests check the shapes
Kubernetes clients expect: `status.capacity`/`allocatable` (cpu, memory, pods), the `Ready`
condition, `addresses`, `spec.podCIDR`, and a Lease in `kube-node-lease` named after the node
and owned by it (deleting the Node deletes its Lease), as the kubelet writes them.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tinykube.model.meta import now_iso

LEASE_NAMESPACE = "kube-node-lease"
DEFAULT_MAX_PODS = 110  # the kubelet's --max-pods default
NODE_LEASE_SECONDS = 40  # the kubelet's nodeLeaseDurationSeconds
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"
VERSION = "v1.31.0-tinykube"  # what `kubectl get nodes` shows under VERSION


@dataclass(frozen=True)
class NodeFacts:
    name: str
    address: str | None = None  # InternalIP: where other nodes reach this node's pods
    pod_cidr: str | None = None
    cpu_millis: int = 0
    memory_bytes: int = 0
    max_pods: int = DEFAULT_MAX_PODS
    kubelet_port: int | None = None  # its log/exec endpoint (status.daemonEndpoints)
    labels: dict[str, str] = field(default_factory=dict)


def host_capacity() -> tuple[int, int]:
    """(millicores, bytes of memory) of this machine."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 0
    return (cpus or 1) * 1000, memory


def _cpu_text(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _resources(facts: NodeFacts) -> dict[str, str]:
    return {"cpu": _cpu_text(facts.cpu_millis), "memory": f"{facts.memory_bytes // 1024}Ki",
            "pods": str(facts.max_pods)}


def ready_condition(ready: bool, message: str, now: str | None = None,
                    since: str | None = None) -> dict[str, Any]:
    now = now or now_iso()
    return {"type": "Ready", "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady", "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": since or now}


def node_object(facts: NodeFacts) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": facts.name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": _arch(), **facts.labels}
    spec: dict[str, Any] = {}
    if facts.pod_cidr:
        spec = {"podCIDR": facts.pod_cidr, "podCIDRs": [facts.pod_cidr]}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": facts.name, "labels": labels},
            "spec": spec, "status": node_status(facts)}


def node_status(facts: NodeFacts) -> dict[str, Any]:
    addresses = [{"type": "Hostname", "address": facts.name}]
    if facts.address:
        addresses.insert(0, {"type": "InternalIP", "address": facts.address})
    uname = platform.uname()
    endpoints = {"kubeletEndpoint": {"Port": facts.kubelet_port}} if facts.kubelet_port else {}
    return {
        "capacity": _resources(facts), "allocatable": _resources(facts),
        # No pod slice yet (the server's node IPAM has not given one): not ready for pods,
        # as a kubelet whose network plugin is not ready.
        "conditions": [ready_condition(True, "tinykube is posting ready status")
                       if facts.pod_cidr else
                       ready_condition(False, "network not ready: waiting for spec.podCIDR")],
        "addresses": addresses,
        **({"daemonEndpoints": endpoints} if endpoints else {}),
        "nodeInfo": {"kubeletVersion": VERSION, "kubeProxyVersion": VERSION,
                     "operatingSystem": "linux", "architecture": _arch(),
                     "kernelVersion": uname.release, "osImage": _os_image(),
                     "containerRuntimeVersion": "tinykube://process"},
    }


def lease_object(node: dict[str, Any], holder: str | None = None,
                 seconds: int = NODE_LEASE_SECONDS) -> dict[str, Any]:
    """The node's heartbeat Lease, owned by its Node."""
    meta = node["metadata"]
    owner = [{"apiVersion": "v1", "kind": "Node", "name": meta["name"], "uid": meta["uid"]}
             ] if meta.get("uid") else []
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": meta["name"], "namespace": LEASE_NAMESPACE,
                         "ownerReferences": owner},
            "spec": {"holderIdentity": holder or meta["name"], "leaseDurationSeconds": seconds,
                     "renewTime": micro_now()}}


def micro_now() -> str:
    """Kubernetes' MicroTime (Lease times): RFC 3339 with exactly six fraction digits."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _os_image() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"
