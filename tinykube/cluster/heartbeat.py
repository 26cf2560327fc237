"""A node's registration and heartbeat: its Node object, then its Lease renewed on a timer.

As the kubelet does: register (create the Node, or refresh the status of the one a previous
run left), then renew the Lease in `kube-node-lease` every quarter of its duration. The node
lifecycle controller (controllers/nodelifecycle.py) turns a node NotReady when its Lease goes
stale. A failed write is logged and retried on the next beat: the API being away for a moment
must not stop the node's pods.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import trio

from .nodeobjects import (
    LEASE_NAMESPACE,
    NODE_LEASE_SECONDS,
    NodeFacts,
    lease_object,
    micro_now,
    node_object,
    node_status,
)
from .objects import Objects

from tinykube.client import DaemonUnreachable
from tinykube.model.errors import AlreadyExists, ApiError, Conflict

log = logging.getLogger("tinykube.cluster.heartbeat")


class Heartbeat:
    def __init__(self, objects: Objects, facts: NodeFacts, *,
                 lease_seconds: int = NODE_LEASE_SECONDS) -> None:
        self.objects = objects
        self.facts = facts
        self.lease_seconds = lease_seconds
        self.node: dict[str, Any] | None = None

    @property
    def renew_interval(self) -> float:
        return self.lease_seconds / 4  # the kubelet's renewInterval fraction

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            try:
                if self.node is None:
                    self.node = await self.register()
                await self.renew()
            except (ApiError, DaemonUnreachable, OSError) as e:
                log.warning("node %s: heartbeat failed (%s); retrying", self.facts.name, e)
            if not started:
                task_status.started()
                started = True
            await trio.sleep(self.renew_interval)

    async def register(self) -> dict[str, Any]:
        """Create this node's Node, or bring an existing one up to date (keeping what others
        set on it: labels, an assigned podCIDR, unschedulable)."""
        wanted = node_object(self.facts)
        current = await self.objects.get("Node", "", self.facts.name)
        if current is None:
            try:
                current = await self.objects.create(wanted)
            except AlreadyExists:
                current = await self.objects.get("Node", "", self.facts.name)
                assert current is not None
        else:
            updated = copy.deepcopy(current)
            labels = updated["metadata"].setdefault("labels", {})
            labels.update(wanted["metadata"]["labels"])
            spec = updated.setdefault("spec", {})
            for key, value in wanted["spec"].items():
                spec.setdefault(key, value)
            if updated != current:
                current = await self.objects.update(updated)
        current = copy.deepcopy(current)
        current["status"] = node_status(self.facts)
        node = await self.objects.update_status(current)
        log.info("node %s registered", self.facts.name)
        return node

    async def renew(self) -> None:
        assert self.node is not None
        lease = await self.objects.get("Lease", LEASE_NAMESPACE, self.facts.name)
        if lease is None:
            try:
                await self.objects.create(lease_object(self.node, seconds=self.lease_seconds))
            except AlreadyExists:
                pass  # renewed on the next beat
            return
        lease = copy.deepcopy(lease)
        spec = lease.setdefault("spec", {})
        spec.update(holderIdentity=self.facts.name, leaseDurationSeconds=self.lease_seconds,
                    renewTime=micro_now())
        try:
            await self.objects.update(lease)
        except Conflict:
            pass  # someone else wrote it meanwhile; renewed on the next beat
        await self._refresh_ready()

    async def _refresh_ready(self) -> None:
        """Ready again after the lifecycle controller marked the node NotReady/Unknown."""
        assert self.node is not None
        node = await self.objects.get("Node", "", self.facts.name)
        if node is None:  # deleted by someone: register again on the next beat
            self.node = None
            return
        ready = [c for c in (node.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Ready"]
        if ready and ready[0].get("status") == "True":
            return
        node = copy.deepcopy(node)
        node["status"] = node_status(self.facts)
        self.node = await self.objects.update_status(node)
