"""Configuration inside a pod's network namespace: eth0's address, eth0 and lo up.

Runs on a throwaway thread (`threads.run_on_fresh_thread`) that first `setns`es itself into
the pod's netns, then opens an `IPRoute` there: a netlink socket belongs to the netns it was
created in, so every request on it acts inside the pod. This avoids `IPRoute(netns=...)`,
which forks a helper process per call (7-11 ms). The thread is never reused, so the pod's
netns cannot leak into other work even if something below fails.

The address's prefix gives the on-link route to the pod subnet (the bridge). The only other
route is the service CIDR via the gateway (when the node runs a service proxy), where the
host's nftables rules translate virtual IPs to pods; there is deliberately no default route,
so pod traffic cannot leave the machine.
"""

from __future__ import annotations

import errno
import socket

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ._setns import CLONE_NEWNET, setns
from .links import IFF_UP, POD_IFNAME

LOOPBACK_INDEX = 1  # the kernel gives lo index 1 in every network namespace


class PeerMismatch(Exception):
    """The pod's eth0 is missing or is not the peer of the expected host veth."""


def configure_pod_side(
    netns_fd: int, ip: str, prefixlen: int, expected_peer: int | None = None,
    routes: tuple[tuple[str, str], ...] = (),
) -> None:
    """Enter the netns open at `netns_fd` (this thread only) and configure eth0 and lo.

    `expected_peer`: the host veth's index when the pair existed before this attach; then
    eth0 must be its peer, else PeerMismatch (the caller recreates the pair). A pair just
    created in one request needs no such check."""
    setns(netns_fd, CLONE_NEWNET)
    with IPRoute() as ipr:
        if expected_peer is None:
            index = _index_of_eth0()
            is_up = False  # a veth is born down
        else:
            index, is_up = _verified_eth0(ipr, expected_peer)
        try:
            ipr.addr("add", index=index, address=ip, prefixlen=prefixlen)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:  # already configured by an earlier attempt
                raise
        if not is_up:
            ipr.link("set", index=index, state="up")
        ipr.link("set", index=LOOPBACK_INDEX, state="up")
        for destination, gateway in routes:  # (cidr, via): after eth0 is up
            try:
                ipr.route("add", dst=destination, gateway=gateway, oif=index)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise


def _index_of_eth0() -> int:
    # An ioctl on a socket that libc opens now, so in this thread's (the pod's) netns; about
    # 1 ms cheaper than a netlink request decoded by pyroute2.
    try:
        return socket.if_nametoindex(POD_IFNAME)
    except OSError as exc:
        raise PeerMismatch(f"{POD_IFNAME}: missing in the pod netns") from exc


def _verified_eth0(ipr: IPRoute, expected_peer: int) -> tuple[int, bool]:
    try:
        eth0 = ipr.link("get", ifname=POD_IFNAME)[0]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            raise PeerMismatch(f"{POD_IFNAME}: missing in the pod netns") from exc
        raise
    # A veth's IFLA_LINK is its peer's index in the peer's netns (the host's here).
    if eth0.get("link") != expected_peer:
        raise PeerMismatch(
            f"{POD_IFNAME}: paired with host link {eth0.get('link')}, not {expected_peer}"
        )
    return eth0["index"], bool(eth0["flags"] & IFF_UP)
