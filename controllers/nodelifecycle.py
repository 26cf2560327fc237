"""Node lifecycle: a node whose Lease stops being renewed turns Ready=Unknown, and after the
eviction timeout its pods are deleted so that their controllers replace them elsewhere.

As kube-controller-manager's node lifecycle controller: freshness is judged by when this
controller last *saw* the Lease's renewTime change, on its own monotonic clock (node clocks
may be skewed; a new leader gives every node a full grace period). When the grace period
(`--node-monitor-grace-period`, 40 s) passes without a renewal the node's Ready condition
becomes Unknown (reason NodeStatusUnknown) and its pods' Ready conditions False, so Services
stop sending them traffic. After the eviction timeout (300 s, the default toleration of
`node.kubernetes.io/unreachable`) its pods are deleted gracefully: with no kubelet to finish
the deletion they stay Terminating until the node comes back or its Node is deleted, which
ReplicaSets count as gone (a replacement starts) and StatefulSets do not (a pod identity never
runs twice at once). Pods of a deleted Node are removed at once (the pod GC's orphan rule).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import trio

from tinykube.model.errors import ApiError, Conflict, NotFound
from tinykube.model.meta import now_iso

log = logging.getLogger("tinykube.controllers.nodelifecycle")

LEASE_NAMESPACE = "kube-node-lease"
DEFAULT_GRACE_SECONDS = 40.0
DEFAULT_EVICTION_SECONDS = 300.0


@dataclass
class _Health:
    renew_time: str | None
    seen_at: float  # trio.current_time() when renew_time last changed (or was first seen)
    unknown_since: float | None = None


class NodeLifecycle:
    def __init__(self, store: Any, *, grace_seconds: float = DEFAULT_GRACE_SECONDS,
                 eviction_seconds: float = DEFAULT_EVICTION_SECONDS,
                 period_seconds: float | None = None) -> None:
        self.store = store
        self.grace = grace_seconds
        self.eviction = eviction_seconds
        self.period = period_seconds or max(0.2, min(5.0, grace_seconds / 8))
        self._health: dict[str, _Health] = {}
        self._gone: set[str] = set()  # nodes seen and then deleted

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                await self.check()
            except ApiError as e:
                log.warning("node lifecycle round failed: %s", e)
            await trio.sleep(self.period)

    async def check(self) -> None:
        now = trio.current_time()
        leases = {lease["metadata"]["name"]: lease
                  for lease in self.store.list("Lease", LEASE_NAMESPACE)}
        nodes = {node["metadata"]["name"]: node for node in self.store.list("Node")}
        for name in set(self._health) - set(nodes):
            del self._health[name]
            self._gone.add(name)
        self._gone -= set(nodes)
        pods = self.store.list("Pod")
        for pod in pods:
            # Pods of a deleted Node: nothing will ever finish them (a pod naming a node that
            # never registered stays Pending instead, as in Kubernetes).
            if (pod.get("spec") or {}).get("nodeName") in self._gone:
                await self._delete_pod(pod, grace_period=0)
        for name, node in nodes.items():
            renew = ((leases.get(name) or {}).get("spec") or {}).get("renewTime")
            health = self._health.get(name)
            if health is None or health.renew_time != renew:
                health = self._health[name] = _Health(renew, now)
            if now - health.seen_at <= self.grace:
                health.unknown_since = None  # heard from again: a later silence starts over
                continue
            if health.unknown_since is None:
                health.unknown_since = now
            on_node = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name]
            if _ready_status(node) != "Unknown":
                log.info("node %s: no heartbeat for %.0f s: Ready=Unknown", name,
                         now - health.seen_at)
                await self._mark_unknown(node)
                for pod in on_node:
                    await self._mark_pod_not_ready(pod)
            if now - health.unknown_since >= self.eviction:
                for pod in on_node:
                    if not pod["metadata"].get("deletionTimestamp"):
                        log.info("node %s: evicting pod %s/%s", name,
                                 pod["metadata"]["namespace"], pod["metadata"]["name"])
                        await self._delete_pod(pod)

    async def _mark_unknown(self, node: dict[str, Any]) -> None:
        node = copy.deepcopy(node)
        status = node.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
        now = now_iso()
        conditions.append({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                           "message": "Kubelet stopped posting node status.",
                           "lastHeartbeatTime": now, "lastTransitionTime": now})
        status["conditions"] = conditions
        try:
            await self.store.update_status(node, durable=True)
        except (Conflict, NotFound):
            pass  # the next round looks again

    async def _mark_pod_not_ready(self, pod: dict[str, Any]) -> None:
        pod = copy.deepcopy(pod)
        status = pod.setdefault("status", {})
        changed = False
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Ready" and condition.get("status") != "False":
                condition.update(status="False", reason="NodeNotReady",
                                 lastTransitionTime=now_iso())
                changed = True
        if changed:
            try:
                await self.store.update_status(pod, durable=True)
            except (Conflict, NotFound):
                pass

    async def _delete_pod(self, pod: dict[str, Any], grace_period: int | None = None) -> None:
        meta = pod["metadata"]
        try:
            await self.store.delete("Pod", meta["namespace"], meta["name"], uid=meta["uid"],
                                    grace_period=grace_period, durable=True)
        except NotFound:
            pass


def _ready_status(node: dict[str, Any]) -> str:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return "Unknown"
