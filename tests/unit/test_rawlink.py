"""netns/rawlink: the acks of a batch of rtnetlink requests (pure logic on a fake socket)."""

import errno
import struct

import pytest

from tinykube.netns import rawlink


class FakeSocket:
    """Records what is sent; answers each request with the errno given for its seq."""

    def __init__(self, codes: dict[int, int], split: bool = False) -> None:
        self.codes = codes
        self.sent = b""
        self.split = split  # one answer per recv, as a busy socket may deliver them
        self.answers: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent += data
        offset, replies = 0, []
        while offset < len(data):
            length, _kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
            body = struct.pack("=i", -self.codes.get(seq, 0)) + data[offset:offset + 16]
            replies.append(struct.pack("=IHHII", 16 + len(body), rawlink.NLMSG_ERROR, 0, seq, 0)
                           + body)
            offset += length
        self.answers = replies if self.split else [b"".join(replies)]
        return len(data)

    def recv(self, size: int) -> bytes:
        return self.answers.pop(0)


def batch() -> list[rawlink.Request]:
    return [rawlink.add_address(2, "10.1.2.3", 24), rawlink.set_up(2), rawlink.set_up(1),
            rawlink.add_route("10.96.0.0/16", "10.1.2.1", 2)]


@pytest.mark.parametrize("split", [False, True])
def test_a_batch_is_one_send_and_every_ack_is_read(split):
    sock = FakeSocket({}, split=split)
    rawlink.send_batch(sock, batch())
    seqs = []
    offset = 0
    while offset < len(sock.sent):
        length, kind, flags, seq, _ = struct.unpack_from("=IHHII", sock.sent, offset)
        assert flags & rawlink.NLM_F_ACK and flags & rawlink.NLM_F_REQUEST
        seqs.append((seq, kind))
        offset += length
    assert seqs == [(1, rawlink.RTM_NEWADDR), (2, rawlink.RTM_NEWLINK),
                    (3, rawlink.RTM_NEWLINK), (4, rawlink.RTM_NEWROUTE)]
    assert sock.answers == []


def test_an_address_or_route_already_there_counts_as_done():
    rawlink.send_batch(FakeSocket({1: errno.EEXIST, 4: errno.EEXIST}), batch())


@pytest.mark.parametrize("split", [False, True])
def test_a_failed_request_is_named_in_the_error(split):
    sock = FakeSocket({2: errno.ENODEV, 3: errno.EPERM}, split=split)
    with pytest.raises(rawlink.NetlinkRequestError, match="setting link 2 up") as info:
        rawlink.send_batch(sock, batch())
    assert info.value.errno == errno.ENODEV  # the first failure
    assert sock.answers == []  # every ack was still read: the socket stays usable


def test_a_link_up_request_does_not_tolerate_eexist():
    with pytest.raises(rawlink.NetlinkRequestError):
        rawlink.send_batch(FakeSocket({1: errno.EEXIST}), [rawlink.set_up(1)])


def test_a_veth_pair_is_one_request_with_its_peer_born_in_the_pod_netns():
    request = rawlink.create_veth("tkvabcdef12", 7, "eth0", 42)
    assert request.kind == rawlink.RTM_NEWLINK
    assert request.flags == rawlink.NLM_F_CREATE | rawlink.NLM_F_EXCL
    _family, _type, index, flags, change = struct.unpack_from("=BxHiII", request.body)
    assert (index, flags & rawlink.IFF_UP, change & rawlink.IFF_UP) == (0, 1, 1)
    attrs = rawlink._attrs(request.body, 16, len(request.body))
    assert attrs[rawlink.IFLA_IFNAME] == b"tkvabcdef12\0"
    assert struct.unpack("=I", attrs[rawlink.IFLA_MASTER]) == (7,)
    info = rawlink._attrs(attrs[rawlink.IFLA_LINKINFO], 0, len(attrs[rawlink.IFLA_LINKINFO]))
    assert info[rawlink.IFLA_INFO_KIND] == b"veth\0"
    data = info[rawlink.IFLA_INFO_DATA]
    peer = rawlink._attrs(data, 0, len(data))[rawlink.VETH_INFO_PEER]
    peer_attrs = rawlink._attrs(peer, 16, len(peer))  # after the peer's own ifinfomsg
    assert peer_attrs[rawlink.IFLA_IFNAME] == b"eth0\0"
    assert struct.unpack("=I", peer_attrs[rawlink.IFLA_NET_NS_FD]) == (42,)


def test_create_and_delete_tell_already_there_and_already_gone_apart():
    from tinykube.netns import links

    assert links.create_pod_veth(FakeSocket({}), "tkvabcdef12", 7, 42) is True
    assert links.create_pod_veth(FakeSocket({1: errno.EEXIST}), "tkvabcdef12", 7, 42) is False
    assert links.delete_link(FakeSocket({}), "tkvabcdef12") is True
    assert links.delete_link(FakeSocket({1: errno.ENODEV}), "tkvabcdef12") is False
    with pytest.raises(rawlink.NetlinkRequestError, match="deleting link tkvabcdef12"):
        links.delete_link(FakeSocket({1: errno.EPERM}), "tkvabcdef12")
