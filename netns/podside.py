"""Configuration inside a pod's network namespace: eth0's address, eth0 and lo up.

Runs on a throwaway thread (`threads.run_on_fresh_thread`) that first `setns`es itself into
the pod's netns, then opens an `IPRoute` there: a netlink socket belongs to the netns it was
created in, so every request on it acts inside the pod. This avoids `IPRoute(netns=...)`,
which forks a helper process per call (7-11 ms). The thread is never reused, so the pod's
netns cannot leak into other work even if something below fails.

No route is added: the address's prefix gives the on-link route to the pod subnet (the
bridge), and there is deliberately no default route, so pod traffic cannot leave the machine.
"""

from __future__ import annotations

import errno

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netns._setns import CLONE_NEWNET, setns
from netns.links import IFF_UP, POD_IFNAME

LOOPBACK_INDEX = 1  # the kernel gives lo index 1 in every network namespace


class PeerMismatch(Exception):
    """The pod's eth0 is missing or is not the peer of the expected host veth."""


def configure_pod_side(netns_fd: int, host_index: int, ip: str, prefixlen: int) -> None:
    """Enter the netns open at `netns_fd` (this thread only) and configure eth0 and lo.

    Raises PeerMismatch if eth0 is absent or paired with another host link than
    `host_index` (the caller recreates the pair)."""
    setns(netns_fd, CLONE_NEWNET)
    with IPRoute() as ipr:
        try:
            eth0 = ipr.link("get", ifname=POD_IFNAME)[0]
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                raise PeerMismatch(f"{POD_IFNAME}: missing in the pod netns") from exc
            raise
        # A veth's IFLA_LINK is its peer's index in the peer's netns (the host's here).
        if eth0.get("link") != host_index:
            raise PeerMismatch(
                f"{POD_IFNAME}: paired with host link {eth0.get('link')}, not {host_index}"
            )
        index = eth0["index"]
        try:
            ipr.addr("add", index=index, address=ip, prefixlen=prefixlen)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:  # already configured by an earlier attempt
                raise
        if not eth0["flags"] & IFF_UP:
            ipr.link("set", index=index, state="up")
        ipr.link("set", index=LOOPBACK_INDEX, state="up")
