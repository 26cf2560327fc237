"""The node network of a cluster on one machine: each agent in a network namespace of its own
(`tkn-<node>`), as if it were a machine of its own, joined by a veth to one cluster bridge
(`tkncl<tag>`) in the host's netns.

    host netns:  bridge tkncl<tag> 10.254.X.1/24 (servers listen here) ─┬─ tknh<tag><i> ┐ veth
    node netns tkn-<node>:                          eth0 10.254.X.(i+1)/24 ┘  + the agent, its
                                                    pod bridge, its pods' veths, its routes

The agent runs inside its node netns (`command_in`), so everything it makes (pod bridge,
pod veths, host-gw routes to the other nodes' pod slices via their eth0 addresses) lives
there, and the traffic between two nodes' pods crosses the cluster bridge, as between
machines. Everything is named with tinykube's prefixes and removed by `remove_node` and
`remove`; deleting a node netns deletes every link and route left inside it.
"""

from __future__ import annotations

import ipaddress
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from tinykube.netns._setns import setns

# Node addresses come from here, one /24 per local cluster: 10.254/16 is private, and far
# from the pod ranges (tinykube's 10.88/16, local clusters' 10.100-199/16).
NODE_RANGE = ipaddress.IPv4Network("10.254.0.0/16")
UPLINK = "eth0"  # the node's end of its veth, inside its netns
NETNS_DIR = Path("/run/netns")


def choose_subnet() -> ipaddress.IPv4Network:
    """A /24 of NODE_RANGE that no route on this machine overlaps (other clusters' bridges
    included)."""
    with IPRoute() as ipr:
        used = []
        for route in ipr.get_routes(family=2, table=254):
            dst = route.get_attr("RTA_DST")
            if dst:
                used.append(ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
    candidates = list(NODE_RANGE.subnets(new_prefix=24))
    random.shuffle(candidates)
    for subnet in candidates:
        if not any(subnet.overlaps(u) for u in used):
            return subnet
    raise RuntimeError(f"every /24 of {NODE_RANGE} is routed on this machine already")


def claim_node_network(bridge: str, attempts: int = 5) -> NodeNetwork:
    """A NodeNetwork on a free /24 with its bridge created. Two clusters starting at the same
    moment may pick the same /24: the one that finds another link routing it gives its pick
    up and picks again."""
    for _ in range(attempts):
        network = NodeNetwork(bridge, choose_subnet())
        network.create()
        if network.sole_route():
            return network
        network.remove()
    raise RuntimeError(f"no free /24 in {NODE_RANGE} for bridge {bridge} after {attempts} tries")


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def command_in(name: str, argv: list[str]) -> list[str]:
    """`argv` run inside node netns `name` (network namespace only: the agent keeps the host's
    mounts, so cgroups, /run and its root stay where the host sees them). nsenter execs, so
    the pid the caller gets is the agent's."""
    return ["nsenter", f"--net={netns_path(name)}", "--", *argv]


def node_netns_name(node: str) -> str:
    return f"tkn-{node}"


@dataclass
class NodeNetwork:
    bridge: str  # in the host netns
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> str:
        """The host's address on the cluster bridge: where the servers listen for agents."""
        return str(self.subnet[1])

    def address_of(self, index: int) -> str:
        """Node `index`'s (1-based) address."""
        return str(self.subnet[index + 1])

    def create(self) -> None:
        """The cluster bridge, with the host's address, up (idempotent)."""
        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=self.bridge):
                ipr.link("add", ifname=self.bridge, kind="bridge")
            index = ipr.link_lookup(ifname=self.bridge)[0]
            if not ipr.get_addr(index=index, family=2):
                ipr.addr("add", index=index, address=self.gateway,
                         prefixlen=self.subnet.prefixlen)
            ipr.link("set", index=index, state="up")

    def sole_route(self) -> bool:
        """Whether the bridge is the only link with a route to the subnet."""
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=self.bridge)[0]
            return all(route.get_attr("RTA_OIF") == index
                       for route in ipr.get_routes(family=2, table=254)
                       if route.get_attr("RTA_DST") and ipaddress.IPv4Network(
                           f"{route.get_attr('RTA_DST')}/{route['dst_len']}",
                           strict=False).overlaps(self.subnet))

    def add_node(self, name: str, host_veth: str, address: str) -> None:
        """Node netns `name` with `eth0` at `address` on the cluster bridge; the node forwards
        what arrives on eth0 for its pods (a fresh netns forwards nothing)."""
        if name not in netns.listnetns():
            netns.create(name)
        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=host_veth):
                fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
                try:
                    ipr.link("add", ifname=host_veth, kind="veth",
                             peer={"ifname": UPLINK, "net_ns_fd": fd})
                finally:
                    os.close(fd)
            index = ipr.link_lookup(ifname=host_veth)[0]
            ipr.link("set", index=index, master=ipr.link_lookup(ifname=self.bridge)[0],
                     state="up")

        def configure() -> None:
            with IPRoute() as inner:
                lo = inner.link_lookup(ifname="lo")[0]
                inner.link("set", index=lo, state="up")
                eth0 = inner.link_lookup(ifname=UPLINK)[0]
                if not inner.get_addr(index=eth0, family=2):
                    inner.addr("add", index=eth0, address=address,
                               prefixlen=self.subnet.prefixlen)
                inner.link("set", index=eth0, state="up")
            for key in ("forwarding", "disable_ipv6"):
                family = "ipv6" if key == "disable_ipv6" else "ipv4"
                with open(f"/proc/sys/net/{family}/conf/{UPLINK}/{key}", "w") as f:
                    f.write("1")

        in_netns(name, configure)

    def remove(self) -> None:
        """The cluster bridge (idempotent)."""
        remove_bridge(self.bridge)


def remove_bridge(name: str) -> None:
    _delete_link(name)


def remove_node(name: str, host_veth: str) -> None:
    """A node's veth and netns (idempotent); links and routes left inside the netns go with
    it once no process is in it any more."""
    _delete_link(host_veth)
    if name in netns.listnetns():
        netns.remove(name)


def _delete_link(name: str) -> None:
    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=name):
            try:
                ipr.link("del", index=index)
            except NetlinkError:  # gone meanwhile
                pass


def in_netns(name: str, fn: Callable[[], None]) -> None:
    """Run `fn` on a thread of its own inside netns `name` (setns moves only the calling
    thread; the thread ends with `fn`, so the namespace never leaks into other work)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(fd)
            finally:
                os.close(fd)
            fn()
        except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread
            failure.append(e)

    thread = threading.Thread(target=run, name=f"tk-in-{name}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def links_in(name: str) -> set[str]:
    """The names of the links inside netns `name` (for tests and checks)."""
    found: set[str] = set()

    def read() -> None:
        with IPRoute() as ipr:
            found.update(link.get_attr("IFLA_IFNAME") for link in ipr.get_links())

    in_netns(name, read)
    return found


def routes_in(name: str) -> list[tuple[str, str | None, int]]:
    """(destination/len, gateway, protocol) of the IPv4 main-table routes inside netns
    `name`."""
    found: list[tuple[str, str | None, int]] = []

    def read() -> None:
        with IPRoute() as ipr:
            for route in ipr.get_routes(family=2, table=254):
                dst = route.get_attr("RTA_DST")
                if dst:
                    found.append((f"{dst}/{route['dst_len']}", route.get_attr("RTA_GATEWAY"),
                                  route["proto"]))

    in_netns(name, read)
    return found
