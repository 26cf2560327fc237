"""The cluster DNS server: one small server in the daemon, UDP and TCP on port 53 of an
address inside the pod network (the bridge's gateway address), answering from a `DnsIndex`
rebuilt whenever a Service or an EndpointSlice changes.

Names in the cluster domain are answered with authority (TTL 5 s, as CoreDNS's kubernetes
plugin). Other names go to the upstream resolver as they came (one UDP exchange, so the
upstream's answer, truncation included, is passed back untouched); without an upstream they
are REFUSED. dnspython parses and builds the messages; sockets are trio's.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import trio

from .dnsrecords import DnsIndex, build_index, normalize
from .watching import rebuild_on_changes

if TYPE_CHECKING:
    from tinykube.store import Store

log = logging.getLogger("tinykube.services.dns")

TTL = 5
UDP_LIMIT = 512  # without EDNS0
UPSTREAM_TIMEOUT = 2.0
TCP_IDLE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int = 53


def parse_upstream(text: str) -> Upstream | None:
    """`none`, `host` (the first nameserver of /etc/resolv.conf), `IP` or `IP:PORT`."""
    if text == "none":
        return None
    if text == "host":
        try:
            with open("/etc/resolv.conf") as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                return Upstream(parts[1])
        return None
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return Upstream(host or text, int(port) if port else 53)


def answer(index: DnsIndex, query: dns.message.Message) -> dns.message.Message | None:
    """The response to `query` from the index, or None when the name is not ours."""
    if len(query.question) != 1:
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    name = normalize(question.name.to_text())
    if not index.in_zone(name):
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    response.flags &= ~dns.flags.RA
    if not index.exists(name):
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response
    qtype = question.rdtype
    if qtype in (dns.rdatatype.A, dns.rdatatype.ANY) and name in index.a:
        response.answer.append(dns.rrset.from_text_list(
            question.name, TTL, dns.rdataclass.IN, dns.rdatatype.A, index.a[name]))
    if qtype in (dns.rdatatype.SRV, dns.rdatatype.ANY) and name in index.srv:
        records = index.srv[name]
        response.answer.append(dns.rrset.from_text_list(
            question.name, TTL, dns.rdataclass.IN, dns.rdatatype.SRV,
            [f"{s.priority} {s.weight} {s.port} {s.target}." for s in records]))
        for target in dict.fromkeys(s.target for s in records):
            if target in index.a:
                response.additional.append(dns.rrset.from_text_list(
                    target + ".", TTL, dns.rdataclass.IN, dns.rdatatype.A, index.a[target]))
    return response


async def bind_sockets(address: str, port: int = 53
                       ) -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    """UDP and TCP sockets bound to address:port (OSError when taken)."""
    udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    tcp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    try:
        tcp.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        await udp.bind((address, port))
        await tcp.bind((address, port))
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


class DnsServer:
    def __init__(self, store: Store, address: str, port: int = 53,
                 upstream: Upstream | None = None) -> None:
        self.store = store
        self.address = address
        self.port = port
        self.upstream = upstream
        self.index = DnsIndex()

    async def rebuild(self) -> None:
        self.index = build_index(self.store.list("Service"), self.store.list("EndpointSlice"))

    async def run(self, sockets: tuple[trio.socket.SocketType, trio.socket.SocketType] | None
                  = None, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve on `sockets` (from `bind_sockets`; bound here when None) until cancelled."""
        udp, tcp = sockets or await bind_sockets(self.address, self.port)
        with udp, tcp:
            tcp.listen(64)
            async with trio.open_nursery() as nursery:
                await nursery.start(rebuild_on_changes, self.store,
                                    ("Service", "EndpointSlice"), self.rebuild, "cluster DNS")
                nursery.start_soon(self._serve_udp, udp, nursery)
                nursery.start_soon(trio.serve_listeners, self._serve_tcp,
                                   [trio.SocketListener(tcp)])
                log.info("cluster DNS on %s:%d (upstream %s)", self.address, self.port,
                         f"{self.upstream.host}:{self.upstream.port}" if self.upstream
                         else "none: other names are refused")
                task_status.started()

    async def respond(self, wire: bytes, *, max_size: int) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 -- garbage from the network: drop it
            return None
        response = answer(self.index, query)
        if response is None:
            return await self._forward(query, wire)
        if query.edns >= 0:
            max_size = max(max_size, min(query.payload, 4096))
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            response.answer.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    async def _forward(self, query: dns.message.Message, wire: bytes) -> bytes:
        if self.upstream is not None:
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with sock:
                with trio.move_on_after(UPSTREAM_TIMEOUT):
                    await sock.sendto(wire, (self.upstream.host, self.upstream.port))
                    while True:
                        data, _ = await sock.recvfrom(65535)
                        if data[:2] == wire[:2]:
                            return data
            rcode = dns.rcode.SERVFAIL
        else:
            rcode = dns.rcode.REFUSED
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        return response.to_wire()

    async def _serve_udp(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        while True:
            wire, peer = await sock.recvfrom(65535)
            nursery.start_soon(self._answer_udp, sock, wire, peer)

    async def _answer_udp(self, sock: trio.socket.SocketType, wire: bytes, peer: Any
                          ) -> None:
        reply = await self.respond(wire, max_size=UDP_LIMIT)
        if reply is not None:
            try:
                await sock.sendto(reply, peer)
            except OSError:
                pass  # the client went away

    async def _serve_tcp(self, stream: trio.SocketStream) -> None:
        async with stream:
            buffer = b""
            while True:
                with trio.move_on_after(TCP_IDLE_TIMEOUT) as idle:
                    while len(buffer) < 2 or len(buffer) < 2 + struct.unpack(
                            "!H", buffer[:2])[0]:
                        data = await stream.receive_some(65535)
                        if not data:
                            return
                        buffer += data
                if idle.cancelled_caught:
                    return
                length = struct.unpack("!H", buffer[:2])[0]
                wire, buffer = buffer[2:2 + length], buffer[2 + length:]
                reply = await self.respond(wire, max_size=65535)
                if reply is None:
                    return
                try:
                    await stream.send_all(struct.pack("!H", len(reply)) + reply)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
