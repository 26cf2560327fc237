"""Routes to the other nodes' pod slices, as flannel's host-gw backend sets them: for every
other Node with a `spec.podCIDR` and an InternalIP, `<podCIDR> via <InternalIP>` in this
node's network namespace (pyroute2). A Node that leaves (is deleted, or loses its slice)
loses its route. Nodes whose address is this node's own (agents sharing one network
namespace, as in tests) need no route: their bridges are connected routes already.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import trio
from pyroute2 import IPRoute

log = logging.getLogger("tinykube.cluster.routes")

# Routes we add carry this protocol number (`ip route show proto 0x74`), so they are ours.
ROUTE_PROTO = 0x74


def wanted_routes(nodes: list[dict[str, Any]], own: str, local: set[str]) -> dict[str, str]:
    """podCIDR -> gateway for every other node reachable through a route."""
    routes = {}
    for node in nodes:
        name = node["metadata"]["name"]
        cidr = (node.get("spec") or {}).get("podCIDR")
        address = next((a.get("address") for a in (node.get("status") or {}).get(
            "addresses") or [] if a.get("type") == "InternalIP"), None)
        if name == own or not cidr or not address or address in local:
            continue
        try:
            ipaddress.IPv4Network(cidr)
            ipaddress.IPv4Address(address)
        except ValueError:
            log.warning("node %s: podCIDR %r or address %r is not IPv4; no route", name, cidr,
                        address)
            continue
        routes[cidr] = address
    return routes


class HostGwRoutes:
    def __init__(self, store: Any, own: str) -> None:
        self.store = store  # anything with list/watch of Nodes (the agent's ApiStore)
        self.own = own
        self.installed: dict[str, str] = {}

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with self.store.watch("Node") as events:
            await self.sync()
            task_status.started()
            async for _ in events:
                await self.sync()

    async def sync(self) -> None:
        wanted = wanted_routes(self.store.list("Node"), self.own, await _local_addresses())
        if wanted != self.installed:
            await trio.to_thread.run_sync(self._apply, wanted)

    def _apply(self, wanted: dict[str, str]) -> None:
        with IPRoute() as ipr:
            for cidr, gateway in list(self.installed.items()):
                if wanted.get(cidr) != gateway:
                    try:
                        ipr.route("del", dst=cidr, gateway=gateway, proto=ROUTE_PROTO)
                    except Exception as e:  # noqa: BLE001 - gone already is fine
                        log.debug("route %s via %s: %s", cidr, gateway, e)
                    del self.installed[cidr]
            for cidr, gateway in wanted.items():
                if self.installed.get(cidr) != gateway:
                    ipr.route("replace", dst=cidr, gateway=gateway, proto=ROUTE_PROTO)
                    self.installed[cidr] = gateway
                    log.info("route %s via %s", cidr, gateway)

    def teardown(self) -> None:
        self._apply({})


def remove_all_routes() -> list[str]:
    """Delete every route of ours (ROUTE_PROTO) in this netns: `tinykube reset` after an
    agent that could not tear its routes down (killed). Returns the routes removed."""
    removed = []
    with IPRoute() as ipr:
        for route in ipr.get_routes(family=2, proto=ROUTE_PROTO):
            dst = f"{route.get_attr('RTA_DST')}/{route['dst_len']}"
            try:
                ipr.route("del", dst=dst, gateway=route.get_attr("RTA_GATEWAY"),
                          proto=ROUTE_PROTO, table=route.get_attr("RTA_TABLE"))
            except Exception as e:  # noqa: BLE001 - gone meanwhile is fine
                log.debug("route %s: %s", dst, e)
                continue
            removed.append(f"{dst} via {route.get_attr('RTA_GATEWAY')}")
    return removed


async def _local_addresses() -> set[str]:
    def read() -> set[str]:
        with IPRoute() as ipr:
            return {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=2)}
    return await trio.to_thread.run_sync(read)
