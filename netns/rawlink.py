"""A few rtnetlink requests, encoded by hand and sent as ONE batch on a plain socket.

The pod side of an attach (eth0's address, eth0 and lo up, the service route) is four or
five small requests. pyroute2 builds an asyncio loop and a socket per `IPRoute()` and
decodes every answer (~4 ms per pod here); these requests are fixed shapes, so they are
packed with `struct` and sent in one `send`, and only the acks are read back (~0.1 ms).
The kernel handles the messages of one send in order, so "address, then up, then route"
holds within the batch.

The socket must be created in the netns it is to act in (a netlink socket belongs to the
netns of its creator): see `podside.pod_socket`.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
IFLA_LINK = 5
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_NET_NS_FD = 28
VETH_INFO_PEER = 1
IFA_ADDRESS = 1
IFA_LOCAL = 2
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RTN_UNICAST = 1
IFF_UP = 0x1

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, proto, scope,
#                                       type, flags
_RTATTR = struct.Struct("=HH")
_NLMSGERR = struct.Struct("=i")


class NetlinkRequestError(OSError):
    """A request of the batch failed; `what` says which."""

    def __init__(self, code: int, what: str) -> None:
        super().__init__(code, f"{what}: {os.strerror(code)}")
        self.what = what


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, payload: bytes) -> bytes:
    size = _RTATTR.size + len(payload)
    return _RTATTR.pack(size, kind) + payload + b"\0" * (_align(size) - size)


def _ipv4(address: str) -> bytes:
    return ipaddress.IPv4Address(address).packed


@dataclass(frozen=True)
class Request:
    kind: int
    flags: int
    body: bytes
    what: str  # for the error message
    tolerate: int = 0  # an errno that counts as success (EEXIST: done by an earlier attempt)


def add_address(index: int, ip: str, prefixlen: int) -> Request:
    body = _IFADDRMSG.pack(socket.AF_INET, prefixlen, 0, 0, index) + \
        _attr(IFA_LOCAL, _ipv4(ip)) + _attr(IFA_ADDRESS, _ipv4(ip))
    return Request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body,
                   f"adding {ip}/{prefixlen} to link {index}", errno.EEXIST)


def set_up(index: int) -> Request:
    return Request(RTM_NEWLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP),
                   f"setting link {index} up")


def set_down(index: int) -> Request:
    return Request(RTM_NEWLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, IFF_UP),
                   f"setting link {index} down")


def rename_up(index: int, name: str) -> Request:
    """Rename a (down) link and bring it up in one request (the kernel renames first)."""
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP) + \
        _attr(IFLA_IFNAME, name.encode() + b"\0")
    return Request(RTM_NEWLINK, 0, body, f"renaming link {index} to {name}")


def create_veth(name: str, master: int, peer_name: str, peer_netns_fd: int) -> Request:
    """The pair `name` (up, a port of `master`) <-> `peer_name` born in the netns open at
    `peer_netns_fd`, in one request (what `ip link add NAME master M up type veth peer name
    P netns FD` sends). Fails with EEXIST if either name is taken on its side."""
    peer = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + \
        _attr(IFLA_IFNAME, peer_name.encode() + b"\0") + \
        _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
    info = _attr(IFLA_INFO_KIND, b"veth\0") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer))
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + \
        _attr(IFLA_IFNAME, name.encode() + b"\0") + \
        _attr(IFLA_MASTER, struct.pack("=I", master)) + _attr(IFLA_LINKINFO, info)
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body,
                   f"creating veth {name} with peer {peer_name}")


def delete_link(name: str) -> Request:
    """Delete link `name` (a veth's peer goes with it); fails with ENODEV if there is none."""
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name.encode() + b"\0")
    return Request(RTM_DELLINK, 0, body, f"deleting link {name}")


def add_route(destination: str, gateway: str, oif: int) -> Request:
    network = ipaddress.IPv4Network(destination)
    body = _RTMSG.pack(socket.AF_INET, network.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0,
                       RTN_UNICAST, 0) + \
        _attr(RTA_DST, network.network_address.packed) + _attr(RTA_GATEWAY, _ipv4(gateway)) + \
        _attr(RTA_OIF, struct.pack("=i", oif))
    return Request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body,
                   f"adding route {destination} via {gateway}", errno.EEXIST)


def open_socket() -> socket.socket:
    """A route netlink socket in the calling thread's netns."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                         NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def send_batch(sock: socket.socket, requests: list[Request]) -> None:
    """Send every request in one write, each asking for an ack; raise for the first failure
    (after reading every answer, so the socket stays usable)."""
    if not requests:
        return
    payload = bytearray()
    for seq, request in enumerate(requests, start=1):
        flags = NLM_F_REQUEST | NLM_F_ACK | request.flags
        payload += _NLMSGHDR.pack(_NLMSGHDR.size + len(request.body), request.kind, flags, seq,
                                  0)
        payload += request.body
    sock.send(bytes(payload))
    pending = set(range(1, len(requests) + 1))
    failure: NetlinkRequestError | None = None
    while pending:
        data = sock.recv(65536)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                break
            if kind == NLMSG_ERROR and seq in pending:
                pending.discard(seq)
                (code,) = _NLMSGERR.unpack_from(data, offset + _NLMSGHDR.size)
                request = requests[seq - 1]
                if code and -code != request.tolerate and failure is None:
                    failure = NetlinkRequestError(-code, request.what)
            offset += _align(length)
    if failure is not None:
        raise failure


@dataclass(frozen=True)
class LinkInfo:
    index: int
    up: bool
    peer_index: int | None  # IFLA_LINK: a veth's peer index (in the peer's netns)
    master: int | None = None  # IFLA_MASTER: the bridge it is a port of
    kind: str | None = None  # IFLA_LINKINFO / IFLA_INFO_KIND: "veth", "bridge", ...


def set_master(index: int, master: int) -> Request:
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0) + \
        _attr(IFLA_MASTER, struct.pack("=I", master))
    return Request(RTM_NEWLINK, 0, body, f"making link {index} a port of link {master}")


def _attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    found = {}
    while offset + _RTATTR.size <= end:
        size, attr = _RTATTR.unpack_from(data, offset)
        if size < _RTATTR.size:
            break
        found[attr & 0x3FFF] = data[offset + _RTATTR.size:offset + size]  # no NLA_F_* bits
        offset += _align(size)
    return found


def get_link(sock: socket.socket, name: str) -> LinkInfo | None:
    """The link called `name` in the socket's netns, None if there is none."""
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + \
        _attr(IFLA_IFNAME, name.encode() + b"\0")
    sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST, 1, 0)
              + body)
    data = sock.recv(65536)
    length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, 0)
    if kind == NLMSG_ERROR:
        (code,) = _NLMSGERR.unpack_from(data, _NLMSGHDR.size)
        if -code == errno.ENODEV:
            return None
        raise NetlinkRequestError(-code, f"looking up link {name}")
    return _link_info(data, 0, length)[1]


def dump_links(sock: socket.socket) -> list[tuple[str, LinkInfo]]:
    """(name, info) of every link in the socket's netns. pyroute2 decodes every attribute of
    every link (~3 ms a link on a loaded 2-core host: seconds with hundreds of pod veths);
    this reads the four it needs with `struct`."""
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETLINK,
                             NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
    found: list[tuple[str, LinkInfo]] = []
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                break
            if kind == NLMSG_DONE:
                return found
            if kind == NLMSG_ERROR:
                (code,) = _NLMSGERR.unpack_from(data, offset + _NLMSGHDR.size)
                raise NetlinkRequestError(-code, "listing links")
            if kind == RTM_NEWLINK:
                found.append(_link_info(data, offset, offset + length))
            offset += _align(length)


def _link_info(data: bytes, offset: int, end: int) -> tuple[str, LinkInfo]:
    """(name, info) of the RTM_NEWLINK message at `offset`."""
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, offset + _NLMSGHDR.size)
    attrs = _attrs(data, offset + _NLMSGHDR.size + _IFINFOMSG.size, end)
    name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace")
    kind = None
    if IFLA_LINKINFO in attrs:
        info = attrs[IFLA_LINKINFO]
        raw = _attrs(info, 0, len(info)).get(IFLA_INFO_KIND)
        kind = raw.rstrip(b"\0").decode() if raw is not None else None

    def number(attr: int) -> int | None:
        value = attrs.get(attr)
        return struct.unpack("=i", value[:4])[0] if value is not None else None

    return name, LinkInfo(index=index, up=bool(flags & IFF_UP), peer_index=number(IFLA_LINK),
                          master=number(IFLA_MASTER), kind=kind)
