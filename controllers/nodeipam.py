"""Node IPAM: gives each Node without one a `spec.podCIDR`, the next free slice of the
cluster's pod range (kube-controller-manager's range allocator: `--cluster-cidr`,
`--node-cidr-mask-size`, 24 by default). A slice is free when no Node holds it; a deleted
Node's slice is reused. Runs on the leading server."""

from __future__ import annotations

import copy
import ipaddress
import logging
from typing import Any

import trio

from tinykube.model.errors import Conflict, NotFound

log = logging.getLogger("tinykube.controllers.nodeipam")


def next_free(cluster_cidr: str, mask: int, taken: set[str]) -> str | None:
    network = ipaddress.IPv4Network(cluster_cidr)
    used = [ipaddress.IPv4Network(c) for c in taken]
    for subnet in network.subnets(new_prefix=mask):
        if not any(subnet.overlaps(u) for u in used):
            return str(subnet)
    return None


class NodeIpam:
    def __init__(self, store: Any, cluster_cidr: str, mask: int = 24) -> None:
        network = ipaddress.IPv4Network(cluster_cidr)
        if not network.prefixlen < mask <= 30:
            raise ValueError(f"--node-cidr-mask-size {mask} does not fit in {cluster_cidr}")
        self.store = store
        self.cluster_cidr = cluster_cidr
        self.mask = mask

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with self.store.watch("Node", since=self.store.resource_version) as events:
            await self.allocate()
            task_status.started()
            async for _ in events:
                await self.allocate()

    async def allocate(self) -> None:
        nodes = self.store.list("Node")
        taken = {n["spec"]["podCIDR"] for n in nodes if (n.get("spec") or {}).get("podCIDR")}
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            if (node.get("spec") or {}).get("podCIDR"):
                continue
            cidr = next_free(self.cluster_cidr, self.mask, taken)
            if cidr is None:
                log.warning("node %s: no free /%d left in %s", node["metadata"]["name"],
                            self.mask, self.cluster_cidr)
                return
            updated = copy.deepcopy(node)
            updated.setdefault("spec", {}).update(podCIDR=cidr, podCIDRs=[cidr])
            try:
                await self.store.update(updated, durable=True)
            except (Conflict, NotFound):
                continue  # changed meanwhile: its next event brings it back
            taken.add(cidr)
            log.info("node %s: podCIDR %s", node["metadata"]["name"], cidr)
