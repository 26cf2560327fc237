"""Host-side link operations over one pyroute2 `IPRoute` (plain sync functions).

They run on the host netlink thread (see `threads.SerialThread`), never on trio's thread.
Each is safe to repeat: "already exists" and "no such device" are outcomes, not errors,
so an attach or a teardown that stopped half-way can simply run again.

A pod's link is a veth pair created in ONE netlink request: the host end `tkv<uid[:8]>`
already enslaved to the bridge and up, its peer created directly inside the pod's netns
(`net_ns_fd`) under the name `eth0`. No separate move or rename step exists that could be
left half-done, and the host never sees a transient peer name.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import rawlink
from .errors import NetworkConfigError

VETH_PREFIX = "tkv"
POD_IFNAME = "eth0"
IFNAMSIZ = 15  # the kernel's limit on interface names, without the NUL
IFF_UP = 0x1
LOCAL_TABLE = 255


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    kind: str | None
    master: int | None
    up: bool


def host_veth_name(pod_uid: str) -> str:
    """`tkv` + the first 8 characters of the uid (11 characters, within IFNAMSIZ)."""
    prefix = pod_uid[:8]
    if len(prefix) < 8 or not all(c.isalnum() or c in "-_." for c in prefix):
        raise ValueError(
            f"pod_uid {pod_uid!r}: needs 8 leading letters, digits, '-', '_' or '.' to name a veth"
        )
    return VETH_PREFIX + prefix


def _as_link(msg: Any) -> Link:  # a pyroute2 ifinfmsg
    return Link(
        name=msg.get("ifname"),
        index=msg["index"],
        kind=msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
        master=msg.get("master"),
        up=bool(msg["flags"] & IFF_UP),
    )


def get_link(ipr: IPRoute, name: str) -> Link | None:
    try:
        return _as_link(ipr.link("get", ifname=name)[0])
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise


def list_veths(ipr: IPRoute) -> list[Link]:
    """Every veth whose name starts with `tkv`, whoever's bridge it is on (in the calling
    thread's netns, as `ipr`'s; read raw: see `rawlink.dump_links`)."""
    return [
        Link(name=name, index=info.index, kind=info.kind, master=info.master, up=info.up)
        for name, info in _dump_links()
        if info.kind == "veth" and name.startswith(VETH_PREFIX)
    ]


def _dump_links() -> list[tuple[str, rawlink.LinkInfo]]:
    with rawlink.open_socket() as sock:
        return rawlink.dump_links(sock)


def delete_link(sock: socket.socket, name: str) -> bool:
    """Delete link `name` through the raw socket `sock`; False if it was already gone."""
    try:
        rawlink.send_batch(sock, [rawlink.delete_link(name)])
        return True
    except rawlink.NetlinkRequestError as exc:
        if exc.errno == errno.ENODEV:
            return False
        raise


def conflicting_routes(
    ipr: IPRoute, network: ipaddress.IPv4Network, own_index: int | None
) -> list[str]:
    """Host routes (any table, default routes aside) that overlap `network`, except those
    through our own bridge `own_index`; each as "dst via dev"."""
    found = []
    for route in ipr.route("dump", family=socket.AF_INET):
        if route["dst_len"] == 0:
            continue  # a default route overlaps everything and is not a conflict
        oif = route.get("oif")
        if own_index is not None and oif == own_index:
            continue
        dst = ipaddress.IPv4Network(f"{route.get('dst')}/{route['dst_len']}", strict=False)
        if dst.overlaps(network):
            table = route.get("table")
            where = f"dev {_link_name(oif)}" if oif is not None else "no device"
            extra = " (local table)" if table == LOCAL_TABLE else ""
            found.append(f"{dst} {where}{extra}")
    return found


def _link_name(index: int) -> str:
    """The name of link `index` (the index itself if it has gone), for messages only."""
    try:
        return socket.if_indextoname(index)
    except OSError:
        return str(index)


def ensure_bridge(ipr: IPRoute, name: str, gateway: str, network: ipaddress.IPv4Network,
                  *, route_services: bool = False) -> int:
    """Create bridge `name` carrying `gateway/prefixlen`, up; returns its index.

    Refuses a same-named link that is not a bridge, a bridge that carries another IPv4
    address, and a CIDR that overlaps a route of the host's other than our bridge's."""
    link = get_link(ipr, name)
    if link is not None and link.kind != "bridge":
        raise NetworkConfigError(
            f"bridge {name}: a link of kind {link.kind or 'unknown'} already has this name"
        )
    own_index = link.index if link is not None else None
    conflicts = conflicting_routes(ipr, network, own_index)
    if conflicts:
        raise NetworkConfigError(
            f"cidr {network}: overlaps host route(s) {', '.join(conflicts)}; "
            "choose a pod CIDR the host does not use"
        )
    if link is None:
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:  # a concurrent creator won: fine
                raise
        link = get_link(ipr, name)
        assert link is not None
    addrs = [
        (msg.get("address"), msg["prefixlen"])
        for msg in ipr.addr("dump", family=socket.AF_INET, index=link.index)
    ]
    others = [f"{a}/{p}" for a, p in addrs if (a, p) != (gateway, network.prefixlen)]
    if others:
        raise NetworkConfigError(
            f"bridge {name}: carries {', '.join(others)}, not the gateway "
            f"{gateway}/{network.prefixlen} of cidr {network}; tear the pod network down "
            "before changing its cidr"
        )
    if not addrs:
        ipr.addr("add", index=link.index, address=gateway, prefixlen=network.prefixlen)
    sysfs_shows(name, link.index)  # decided with our own bridge, before any pod's veth
    keep_pod_traffic_local(name, route_services=route_services, ipr=ipr, index=link.index)
    if not link.up:
        ipr.link("set", index=link.index, state="up")
    return link.index


def keep_pod_traffic_local(bridge: str, *, route_services: bool = False,
                           ipr: IPRoute, index: int | None = None) -> None:
    """Never route what arrives on the bridge to anywhere else, even on a host with
    forwarding enabled.

    Pods have no default route, but a pod running as root could add one via the gateway;
    IPv4 forwarding is decided per input interface, so turning it off on the bridge keeps
    such packets on the machine. IPv6 is switched off on the bridge (the host takes no part
    in it there); pods still reach each other over IPv6 link-local through the bridge.

    `route_services`: the service proxy DNATs a pod's packet to a service's virtual IP
    (sent to the gateway) into a packet for another pod on the same bridge, which the host
    must forward back out of the bridge. Then forwarding is on for the bridge only, and the
    proxy's table (installed first) drops anything forwarded from the bridge to another
    interface. `route_localnet` lets NodePorts answer on 127.0.0.1 (DNAT to a pod, as
    kube-proxy's iptables mode does), and `nf_call_iptables` on this bridge makes bridged
    replies between pods pass conntrack, so DNATed connections are translated back."""
    wanted = {
        f"/proc/sys/net/ipv4/conf/{bridge}/forwarding": "1" if route_services else "0",
        f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6": "1",
    }
    if route_services:
        wanted[f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"] = "1"
        if index is None:
            index = ipr.link_lookup(ifname=bridge)[0]
        if sysfs_shows(bridge, index):
            wanted[f"/sys/class/net/{bridge}/bridge/nf_call_iptables"] = "1"
        else:
            ipr.link("set", index=index, kind="bridge", br_nf_call_iptables=1)
    for path, want in wanted.items():
        _write_if_different(path, want)  # /proc/sys/net: this thread's netns, the host's


def _write_if_different(path: str, want: str) -> None:
    with open(path, "r+") as f:
        if f.read().strip() != want:
            f.seek(0)
            f.write(want)


_sysfs_is_ours: bool | None = None  # decided once per process, by sysfs_shows


def sysfs_shows(name: str, index: int) -> bool:
    """Whether /sys/class/net shows this process's netns, judged once from a link of ours
    (`name` at ifindex `index`). sysfs shows the links of the netns it was mounted from,
    while /proc/sys/net follows the reader: an agent inside a node netns
    (tinykube/cluster/nodenet.py) sets bridge and port options through netlink instead;
    the daemon keeps the cheaper sysfs writes."""
    global _sysfs_is_ours
    if _sysfs_is_ours is None:
        try:
            with open(f"/sys/class/net/{name}/ifindex") as f:
                _sysfs_is_ours = int(f.read()) == index
        except (OSError, ValueError):
            _sysfs_is_ours = False
    return _sysfs_is_ours


def create_pod_veth(sock: socket.socket, host_name: str, bridge_index: int,
                    netns_fd: int) -> bool:
    """Create the pair `host_name` (on the bridge, up) <-> `eth0` in the netns open at
    `netns_fd`, one raw request through `sock` (pyroute2 spent ~1 ms a pod building and
    decoding it). False if a link of that name exists already (on either side)."""
    try:
        rawlink.send_batch(sock, [rawlink.create_veth(host_name, bridge_index, POD_IFNAME,
                                                      netns_fd)])
        return True
    except rawlink.NetlinkRequestError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise


def enable_hairpin(ipr: IPRoute, host_name: str, index: int | None = None) -> None:
    """Let the bridge send a frame back out of the port it came in on (kubelet's
    hairpin-veth mode). A pod that reaches a Service selecting itself sends to the gateway;
    bridge netfilter translates the reply back to the pod itself, on the pod's own port,
    which a bridge otherwise never does."""
    if _sysfs_is_ours is not True and index is None:
        index = ipr.link_lookup(ifname=host_name)[0]
    if _sysfs_is_ours is True or sysfs_shows(host_name, index):  # type: ignore[arg-type]
        _write_if_different(f"/sys/class/net/{host_name}/brport/hairpin_mode", "1")
        return
    ipr.brport("set", index=index, mode=1)


def ensure_port(ipr: IPRoute, link: Link, bridge_index: int) -> None:
    """Make an existing host veth a port of the bridge, up (repairs a half-done attach)."""
    if link.master != bridge_index:
        ipr.link("set", index=link.index, master=bridge_index)
    if not link.up:
        ipr.link("set", index=link.index, state="up")
