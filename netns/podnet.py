"""The pod network: one bridge, one veth pair per pod, addresses from IPAM.

    host netns:  bridge tk0 (gateway 10.88.0.1/16) ── tkv<uid[:8]> ┐ veth pair
    pod netns:                                       eth0 10.88.x.y/16 ┘   (+ lo up)

Pods reach each other through the bridge (layer 2, no forwarding). Pods get no default
route, so nothing they send can leave the machine.

Order of an attach (record first, then act, every step repeatable):
  1. IPAM records the pod's address in its file (`Ipam.allocate`, idempotent per uid).
  2. One netlink request creates the veth pair, host end on the bridge and up, peer born
     as `eth0` inside the pause process's netns.
  3. Through a netlink socket opened in the pod's netns, one batch sets eth0's address,
     eth0 up, lo up (and the service route).
A crash between steps leaves an allocation (and maybe a veth) that the next attach of the
same pod completes, or that `sweep` removes at start-up when the pod is no longer live.

Threads: every host netlink call and IPAM change runs on one dedicated thread (which also
serialises them); steps 1-3 are one call there (one hop per attach). See `threads.py` and
`podside.py` for why.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute

from . import links, rawlink
from .errors import NetworkConfigError
from .ipam import DEFAULT_CIDR, Ipam
from .podside import (
    HostNetnsLost,
    PeerMismatch,
    configure_pod_side,
    open_host_netns,
    pod_socket,
)
from .threads import SerialThread

R = TypeVar("R")


@dataclass(frozen=True)
class Attachment:
    """What a pod got: its address on eth0, the bridge's gateway and the host-side veth."""

    ip: str
    prefixlen: int
    gateway: str
    host_veth: str


class PodNetwork:
    """Bridge `bridge` for pods with addresses from `cidr`; IPAM state in `state_dir`."""

    def __init__(self, state_dir: Path, bridge: str = "tk0", cidr: str = DEFAULT_CIDR,
                 service_cidr: str | None = None, cluster_cidr: str | None = None) -> None:
        if not bridge or len(bridge) > links.IFNAMSIZ or "/" in bridge or " " in bridge:
            raise NetworkConfigError(
                f"bridge {bridge!r}: not a valid interface name (1-{links.IFNAMSIZ} characters)"
            )
        self.bridge = bridge
        self._ipam = Ipam(Path(state_dir), cidr)
        # Pods route the service CIDR via the gateway (the service proxy's rules are there).
        self.service_cidr = service_cidr
        # Cluster mode: this bridge holds one node's slice; pods reach the other slices
        # (on other nodes) via the gateway too (tinykube/cluster/routes.py routes them on).
        self.cluster_cidr = cluster_cidr
        self._route_services = False
        self._host: SerialThread[IPRoute] = SerialThread(
            name=f"tk-netlink-{bridge}", open_resource=IPRoute, close_resource=IPRoute.close
        )
        # The bridge's index, looked up once (a netlink get costs ~1 ms); touched only on
        # the host thread, and looked up again when a request with it fails.
        self._bridge_index: int | None = None
        # The host netns, for the host thread to step back into after opening a socket in a
        # pod's (podside.pod_socket); set if it ever could not, and then nothing more runs.
        self._host_netns_fd = open_host_netns()
        self._host_netns_lost: str | None = None
        self._host_raw: socket.socket | None = None  # see _host_socket

    @property
    def cidr(self) -> str:
        return str(self._ipam.network)

    @property
    def gateway(self) -> str:
        return self._ipam.gateway

    @property
    def prefixlen(self) -> int:
        return self._ipam.prefixlen

    def allocations(self) -> dict[str, str]:
        """{pod uid: ip} as recorded by IPAM."""
        return self._ipam.allocations()

    def close(self) -> None:
        """Stop the host netlink thread (links and allocations stay). Idempotent."""
        self._host.close()
        if self._host_raw is not None:
            self._host_raw.close()
            self._host_raw = None
        if self._host_netns_fd >= 0:
            os.close(self._host_netns_fd)
            self._host_netns_fd = -1

    async def ensure_bridge(self) -> None:
        """Create the bridge with the gateway address, up (idempotent). NetworkConfigError if
        the CIDR overlaps a host route other than our bridge's, or the bridge disagrees."""

        def ensure(ipr: IPRoute) -> None:
            self._bridge_index = links.ensure_bridge(
                ipr, self.bridge, self.gateway, self._ipam.network,
                route_services=self._route_services,
            )

        await self._host.run(ensure)

    async def route_services(self) -> None:
        """Let the host route pods' service traffic back into the bridge (see
        `links.keep_pod_traffic_local`). Call it once the proxy's rules, which drop anything
        forwarded out of the bridge, are in place."""
        self._route_services = True

        def enable(ipr: IPRoute) -> None:
            links.keep_pod_traffic_local(self.bridge, route_services=True, ipr=ipr)
            if self.service_cidr:
                # The host's own service traffic goes to the bridge too, never to a default
                # route: an address no rule translates then stays on the machine.
                ipr.route("replace", dst=self.service_cidr,
                          oif=self._lookup_bridge(ipr, cached=True))

        await self._host.run(enable)

    async def attach(self, pod_uid: str, pause_pid: int) -> Attachment:
        """Give the pod whose pause process is `pause_pid` its eth0 and address (idempotent;
        repairs a half-done earlier attach). One call on the host thread does it all."""
        host_veth = links.host_veth_name(pod_uid)
        netns_fd = _open_pod_netns(pause_pid)
        try:
            return await self._host.run(
                partial(self._attach_on_host_thread, pod_uid, pause_pid, host_veth, netns_fd)
            )
        finally:
            os.close(netns_fd)

    def _attach_on_host_thread(self, pod_uid: str, pause_pid: int, host_veth: str,
                               netns_fd: int, ipr: IPRoute) -> Attachment:
        if self._host_netns_lost is not None:
            raise NetworkConfigError(f"pod network unusable: {self._host_netns_lost}")
        recreate = False
        mismatch: PeerMismatch | None = None
        for _ in range(2):
            ip, expected_peer = self._attach_host_side(pod_uid, host_veth, netns_fd, recreate,
                                                       ipr)
            try:
                self._configure_pod_side(netns_fd, ip, expected_peer)
            except PeerMismatch as exc:
                mismatch = exc
                recreate = True  # stale pair from an older sandbox: replace it
                continue
            return Attachment(
                ip=ip, prefixlen=self.prefixlen, gateway=self.gateway, host_veth=host_veth
            )
        raise NetworkConfigError(
            f"pod {pod_uid}: could not pair {host_veth} with eth0 in the netns of pause "
            f"pid {pause_pid} ({mismatch})"
        )

    def _configure_pod_side(self, netns_fd: int, ip: str, expected_peer: int | None) -> None:
        """Pod-side set-up from the host thread (see podside.py); a thread that could not get
        back into the host netns poisons the network rather than act in a pod's."""
        try:
            with pod_socket(netns_fd, self._host_netns_fd) as sock:
                configure_pod_side(sock, ip, self.prefixlen, expected_peer, self._pod_routes())
        except HostNetnsLost as exc:
            self._host_netns_lost = str(exc)
            raise NetworkConfigError(f"pod network unusable: {exc}") from exc

    async def hand_over(self, old_uid: str, new_uid: str, also: Callable[[], R]
                        ) -> tuple[Attachment, R]:
        """Give `old_uid`'s attachment (a warm sandbox's) to `new_uid`: its address in IPAM
        (persisted first), then its host veth renamed; then `also()` runs on the same thread
        (one hop for the whole claim). On failure the pieces carry one uid or the other,
        each found and removed by that uid's detach."""
        return await self._host.run(partial(self._hand_over_on_host_thread, old_uid, new_uid,
                                            also))

    def _hand_over_on_host_thread(self, old_uid: str, new_uid: str, also: Callable[[], R],
                                  ipr: IPRoute) -> tuple[Attachment, R]:
        old_veth, new_veth = links.host_veth_name(old_uid), links.host_veth_name(new_uid)
        if self._prefix_taken_by_other(new_uid, besides=old_uid):
            raise NetworkConfigError(
                f"pod {new_uid}: veth name {new_veth} is taken by another pod whose uid "
                "starts with the same 8 characters"
            )
        ip = self._ipam.rename(old_uid, new_uid)
        sock = self._host_socket()
        link = rawlink.get_link(sock, old_veth)
        if link is None:
            raise NetworkConfigError(f"pod {new_uid}: warm sandbox veth {old_veth} is gone")
        # A link is renamed only while down; the second request renames it and brings it up.
        rawlink.send_batch(sock, [rawlink.set_down(link.index),
                                  rawlink.rename_up(link.index, new_veth)])
        attachment = Attachment(ip=ip, prefixlen=self.prefixlen, gateway=self.gateway,
                                host_veth=new_veth)
        return attachment, also()

    def _host_socket(self) -> socket.socket:
        """A raw netlink socket in the host netns (host thread only, opened on first use)."""
        if self._host_raw is None:
            self._host_raw = rawlink.open_socket()
        return self._host_raw

    async def detach(self, pod_uid: str) -> None:
        """Remove the pod's host veth (its peer dies with it) and release its address.
        Idempotent; fine when the pod's netns is already gone."""
        host_veth = links.host_veth_name(pod_uid)

        def detach_host_side(ipr: IPRoute) -> None:
            if not self._prefix_taken_by_other(pod_uid):
                links.delete_link(self._host_socket(), host_veth)
            self._ipam.release(pod_uid)  # after the link: the address is free only now

        await self._host.run(detach_host_side)

    async def sweep(self, live_uids: set[str]) -> list[str]:
        """Remove the veths of this bridge and the allocations that no live pod owns; one
        log line per removal."""
        return await self._host.run(partial(self._sweep_host_side, set(live_uids)))

    async def teardown(self) -> None:
        """Remove every pod veth of this bridge, the bridge and the IPAM file (full reset)."""
        await self._host.run(self._teardown_host_side)

    def _pod_routes(self) -> tuple[tuple[str, str], ...]:
        return tuple((cidr, self.gateway) for cidr in (self.service_cidr, self.cluster_cidr)
                     if cidr)

    # -- host-side steps (run on the host netlink thread) ----------------------------------

    def _attach_host_side(
        self, pod_uid: str, host_veth: str, netns_fd: int, recreate: bool, ipr: IPRoute
    ) -> tuple[str, int | None]:
        """Record the address, then make the pair. Returns (ip, index of a pre-existing host
        veth whose peer the pod side must verify, or None for a pair created just now)."""
        if self._prefix_taken_by_other(pod_uid):
            raise NetworkConfigError(
                f"pod {pod_uid}: veth name {host_veth} is taken by another pod whose uid "
                "starts with the same 8 characters"
            )
        bridge_index = self._lookup_bridge(ipr, cached=True)
        ip = self._ipam.allocate(pod_uid)  # record first, then create links
        sock = self._host_socket()
        if recreate:
            links.delete_link(sock, host_veth)
        else:
            existing = self._existing_port(pod_uid, host_veth, bridge_index, ipr)
            if existing is not None:
                return ip, existing
        try:
            created = links.create_pod_veth(sock, host_veth, bridge_index, netns_fd)
        except rawlink.NetlinkRequestError:
            # Perhaps the bridge was recreated under another index: look it up, try again.
            bridge_index = self._lookup_bridge(ipr, cached=False)
            created = links.create_pod_veth(sock, host_veth, bridge_index, netns_fd)
        if created:
            links.enable_hairpin(ipr, host_veth)
            return ip, None
        link = links.get_link(ipr, host_veth)
        if link is None:
            raise NetworkConfigError(
                f"pod {pod_uid}: its netns already has an {links.POD_IFNAME} that tinykube did "
                "not create"
            )
        if link.kind != "veth":
            raise NetworkConfigError(
                f"pod {pod_uid}: {host_veth} exists but is a {link.kind or 'unknown'} link, "
                "not a veth"
            )
        links.ensure_port(ipr, link, bridge_index)
        links.enable_hairpin(ipr, host_veth, link.index)
        return ip, link.index

    def _existing_port(self, pod_uid: str, host_veth: str, bridge_index: int,
                       ipr: IPRoute) -> int | None:
        """The index of the pod's host veth if it exists (a re-adopted pod's, or a half-done
        attach's), made a port of the bridge and up; None if there is none. Raw requests: a
        restart re-adopting hundreds of pods pays ~0.1 ms each, not two pyroute2 calls."""
        sock = self._host_socket()
        link = rawlink.get_link(sock, host_veth)
        if link is None:
            return None
        if link.kind != "veth":
            raise NetworkConfigError(
                f"pod {pod_uid}: {host_veth} exists but is a {link.kind or 'unknown'} link, "
                "not a veth"
            )
        fixes = []
        if link.master != bridge_index:
            fixes.append(rawlink.set_master(link.index, self._lookup_bridge(ipr, cached=False)))
        if not link.up:
            fixes.append(rawlink.set_up(link.index))
        rawlink.send_batch(sock, fixes)
        links.enable_hairpin(ipr, host_veth, link.index)
        return link.index

    def _lookup_bridge(self, ipr: IPRoute, cached: bool) -> int:
        if cached and self._bridge_index is not None:
            return self._bridge_index
        bridge = links.get_link(ipr, self.bridge)
        if bridge is None or bridge.kind != "bridge":
            self._bridge_index = None
            raise NetworkConfigError(f"bridge {self.bridge}: missing; call ensure_bridge() first")
        self._bridge_index = bridge.index
        return bridge.index

    def _sweep_host_side(self, live_uids: set[str], ipr: IPRoute) -> list[str]:
        lines = []
        allocated = self._ipam.allocations()
        live_prefixes = {uid[:8] for uid in live_uids}
        for link in self._own_veths(ipr, allocated):
            owned = link.name[len(links.VETH_PREFIX) :] in live_prefixes
            if not owned and links.delete_link(self._host_socket(), link.name):
                lines.append(f"removed veth {link.name}: no live pod owns it")
        for uid, ip in allocated.items():
            if uid not in live_uids:
                self._ipam.release(uid)
                lines.append(f"released {ip} of pod {uid}: the pod is not live")
        return lines

    def _teardown_host_side(self, ipr: IPRoute) -> None:
        sock = self._host_socket()
        for link in self._own_veths(ipr, self._ipam.allocations()):
            links.delete_link(sock, link.name)
        bridge = links.get_link(ipr, self.bridge)
        if bridge is not None and bridge.kind == "bridge":
            links.delete_link(sock, self.bridge)
        self._bridge_index = None
        self._ipam.remove_file()

    def _own_veths(self, ipr: IPRoute, allocated: dict[str, str]) -> list[links.Link]:
        """tkv veths on our bridge, plus loose ones (no bridge) named after our allocations.
        Veths on other bridges belong to other pod networks and are left alone."""
        bridge = links.get_link(ipr, self.bridge)
        allocated_names = {links.VETH_PREFIX + uid[:8] for uid in allocated}
        return [
            link
            for link in links.list_veths(ipr)
            if (bridge is not None and link.master == bridge.index)
            or (link.master is None and link.name in allocated_names)
        ]

    def _prefix_taken_by_other(self, pod_uid: str, besides: str | None = None) -> bool:
        prefix = pod_uid[:8]
        return any(uid not in (pod_uid, besides) and uid[:8] == prefix
                   for uid in self._ipam.allocations())


def _open_pod_netns(pause_pid: int) -> int:
    """An fd on the pause process's netns; refuses the host's own netns."""
    try:
        fd = os.open(f"/proc/{pause_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise NetworkConfigError(f"pause pid {pause_pid}: no such process") from exc
    pod = os.fstat(fd)
    host = os.stat("/proc/self/ns/net")
    if (pod.st_dev, pod.st_ino) == (host.st_dev, host.st_ino):
        os.close(fd)
        raise NetworkConfigError(
            f"pause pid {pause_pid}: shares the host's network namespace; refusing to "
            "configure it as a pod"
        )
    return fd
