"""Configuration inside a pod's network namespace: eth0's address, eth0 and lo up.

Runs on the host netlink thread, in the same call that made the veth pair (one hop per
attach): `pod_socket` steps that thread into the pod's netns just long enough to open a
netlink socket there (a netlink socket belongs to the netns it was created in) and steps
back at once; every request then goes through that socket while the thread is on the
host's netns again. The requests are sent as one batch (`rawlink`), not through pyroute2,
whose `IPRoute()` costs an asyncio loop and several ms per pod.

The address's prefix gives the on-link route to the pod subnet (the bridge). The only other
route is the service CIDR via the gateway (when the node runs a service proxy), where the
host's nftables rules translate virtual IPs to pods; there is deliberately no default route,
so pod traffic cannot leave the machine.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from . import rawlink
from ._setns import CLONE_NEWNET, setns
from .links import POD_IFNAME

LOOPBACK_INDEX = 1  # the kernel gives lo index 1 in every network namespace


class PeerMismatch(Exception):
    """The pod's eth0 is missing or is not the peer of the expected host veth."""


class HostNetnsLost(RuntimeError):
    """The thread could not step back into the host's netns: it must do no more work."""


@contextmanager
def pod_socket(netns_fd: int, host_netns_fd: int) -> Iterator[socket.socket]:
    """A netlink socket acting in the netns open at `netns_fd`, opened by this thread with a
    short visit there (only `socket()` runs inside the pod's netns)."""
    setns(netns_fd, CLONE_NEWNET)
    try:
        sock = rawlink.open_socket()
    finally:
        try:
            setns(host_netns_fd, CLONE_NEWNET)
        except OSError as exc:
            raise HostNetnsLost(f"returning to the host netns: {exc}") from exc
    try:
        yield sock
    finally:
        sock.close()


def open_host_netns() -> int:
    """An fd on the calling thread's (the host's) netns, to come back to."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def configure_pod_side(
    sock: socket.socket, ip: str, prefixlen: int, expected_peer: int | None = None,
    routes: tuple[tuple[str, str], ...] = (),
) -> None:
    """Configure eth0 and lo through `sock` (opened in the pod's netns by `pod_socket`).
    Idempotent: an address or route already there counts as done.

    `expected_peer`: the host veth's index when the pair existed before this attach; then
    eth0 must be its peer, else PeerMismatch (the caller recreates the pair). A pair just
    created in one request needs no such check."""
    eth0 = rawlink.get_link(sock, POD_IFNAME)
    if eth0 is None:
        raise PeerMismatch(f"{POD_IFNAME}: missing in the pod netns")
    # A veth's IFLA_LINK is its peer's index in the peer's netns (the host's here).
    if expected_peer is not None and eth0.peer_index != expected_peer:
        raise PeerMismatch(
            f"{POD_IFNAME}: paired with host link {eth0.peer_index}, not {expected_peer}"
        )
    batch = [rawlink.add_address(eth0.index, ip, prefixlen)]
    if not eth0.up:
        batch.append(rawlink.set_up(eth0.index))
    batch.append(rawlink.set_up(LOOPBACK_INDEX))
    batch += [rawlink.add_route(destination, gateway, eth0.index)
              for destination, gateway in routes]  # after eth0 is up
    rawlink.send_batch(sock, batch)
